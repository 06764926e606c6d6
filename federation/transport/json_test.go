package transport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestFetchJSONGuardAndLimits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", JSONMaxBody+1)))
		case "/gone":
			http.NotFound(w, r)
		case "/away":
			http.Redirect(w, r, "http://10.0.0.1/x", http.StatusFound)
		default:
			_, _ = w.Write([]byte(`{"ok":true}`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	// Without the loopback allowance the guard refuses the test server.
	if _, err := NewClient(ClientConfig{}).FetchJSON(ctx, srv.URL+"/wf"); !IsRefused(err) {
		t.Fatalf("loopback without allowance: %v, want refused", err)
	}
	c := NewClient(ClientConfig{AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	f, err := c.FetchJSON(ctx, srv.URL+"/wf")
	if err != nil || string(f.Body) != `{"ok":true}` {
		t.Fatalf("FetchJSON: %v %q", err, f)
	}
	if _, err := c.FetchJSON(ctx, srv.URL+"/big"); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("big: %v", err)
	}
	var se *StatusError
	if _, err := c.FetchJSON(ctx, srv.URL+"/gone"); !errors.As(err, &se) || se.Status != 404 {
		t.Errorf("404: %v", err)
	}
	if _, err := c.FetchJSON(ctx, srv.URL+"/away"); !IsRefused(err) {
		t.Errorf("redirect to a private address: %v, want refused", err)
	}
}
