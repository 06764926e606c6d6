package transport

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/crieur/crieur/federation/internal/testkit"
)

// pngHeader is the start of every PNG file: enough for the sniffer.
var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

// TestFetchImage: a PNG is fetched with its type; HTML labelled as an
// image, an SVG, a body over the cap (declared or not), an error status
// and a loopback address without the allowance are all refused.
func TestFetchImage(t *testing.T) {
	big := append(append([]byte(nil), pngHeader...), bytes.Repeat([]byte{0}, ImageMaxBody)...)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(pngHeader)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok.png", http.StatusFound)
	})
	mux.HandleFunc("/lie.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write([]byte("<html><script>alert(1)</script></html>"))
	})
	mux.HandleFunc("/a.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"))
	})
	mux.HandleFunc("/declared-big.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		_, _ = w.Write(big)
	})
	mux.HandleFunc("/chunked-big.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		for i := 0; i < len(big); i += 64 << 10 {
			_, _ = w.Write(big[i:min(i+64<<10, len(big))])
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/missing.png", http.NotFound)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	for _, p := range []string{"/ok.png", "/moved"} {
		img, err := c.FetchImage(ctx, srv.URL+p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if img.ContentType != "image/png" || !bytes.Equal(img.Body, pngHeader) {
			t.Errorf("%s: got %s, %d bytes", p, img.ContentType, len(img.Body))
		}
	}
	for path, want := range map[string]error{
		"/lie.png":           ErrNotImage,
		"/a.svg":             ErrNotImage,
		"/declared-big.png":  ErrResponseTooLarge,
		"/chunked-big.png":   ErrResponseTooLarge,
		"/missing.png":       nil,
		"javascript:alert()": ErrRefused,
	} {
		u := srv.URL + path
		if path[0] != '/' {
			u = path
		}
		_, err := c.FetchImage(ctx, u)
		if err == nil || want != nil && !errors.Is(err, want) {
			t.Errorf("%s: err %v, want %v", path, err, want)
		}
		if path == "/missing.png" && HTTPStatus(err) != http.StatusNotFound {
			t.Errorf("%s: err %v, want a 404 StatusError", path, err)
		}
	}
	guarded := NewClient(ClientConfig{})
	if _, err := guarded.FetchImage(ctx, srv.URL+"/ok.png"); !IsRefused(err) {
		t.Errorf("loopback without allowance: %v, want a refusal", err)
	}
}

func TestImageType(t *testing.T) {
	for in, want := range map[string]string{
		"image/png": "image/png", "IMAGE/JPEG; charset=x": "image/jpeg", "image/jpg": "image/jpeg",
		"image/webp": "image/webp", "image/gif": "image/gif", "image/svg+xml": "", "text/html": "", "": "",
	} {
		if got := ImageType(in); got != want {
			t.Errorf("ImageType(%q) = %q, want %q", in, got, want)
		}
	}
}
