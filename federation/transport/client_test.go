package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
)

func TestClientCheckAddr(t *testing.T) {
	c := NewClient(ClientConfig{})
	refused := []string{
		"127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1",
		"169.254.169.254", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255",
		"240.0.0.1", "192.0.2.1", "198.18.0.1", "::", "::1", "fc00::1", "fd12:3456::1", "fe80::1",
		"ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "64:ff9b::7f00:1", "64:ff9b::a00:1",
		"2001:db8::1", "fe80::1%eth0",
	}
	allowed := []string{"1.1.1.1", "93.184.215.14", "8.8.8.8", "2606:4700::1111", "2a01:4f8::1", "64:ff9b::101:101", "::ffff:1.1.1.1"}
	for _, s := range refused {
		if err := c.checkAddr(netip.MustParseAddr(s)); !IsRefused(err) {
			t.Errorf("%s: err %v, want a refusal", s, err)
		}
	}
	for _, s := range allowed {
		if err := c.checkAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	c = NewClient(ClientConfig{AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	if err := c.checkAddr(netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("allowed prefix refused: %v", err)
	}
	if err := c.checkAddr(netip.MustParseAddr("10.2.0.1")); !IsRefused(err) {
		t.Errorf("address outside the allowed prefix: %v", err)
	}
}

func TestClientCheckURL(t *testing.T) {
	c := NewClient(ClientConfig{})
	for _, u := range []string{"file:///etc/passwd", "gopher://x.example/", "ftp://x.example/", "http:///nohost",
		"https://user:pw@x.example/", "http://10.0.0.1/", "http://[::1]:80/", "/relative", "javascript:alert(1)"} {
		if _, err := c.checkURL(u); !IsRefused(err) {
			t.Errorf("%q: err %v, want a refusal", u, err)
		}
	}
	for _, u := range []string{"https://mastodon.example/users/a", "http://x.example:8080/inbox?x=1"} {
		if _, err := c.checkURL(u); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
}

// countingServer counts requests; any request is a failure of the guard
// when the test expects a refusal.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestClientLoopbackGuard(t *testing.T) {
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/activity+json")
		w.Write([]byte(`{"id":"x"}`))
	})
	localhostURL := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	guarded := NewClient(ClientConfig{})
	for _, u := range []string{srv.URL + "/a", localhostURL + "/a"} {
		f, err := guarded.FetchActivity(testkit.Context(t), u, nil)
		if !IsRefused(err) || f != nil {
			t.Errorf("GET %s: %+v, %v, want a refusal", u, f, err)
		}
		resp, err := guarded.Post(testkit.Context(t), u+"/inbox", []byte(`{}`), nil)
		if !IsRefused(err) || resp != nil {
			t.Errorf("POST %s: %v %v, want a refusal", u, resp, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("guard let %d requests through to loopback", hits.Load())
	}

	open := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(open.CloseIdleConnections)
	for _, u := range []string{srv.URL + "/a", localhostURL + "/a"} {
		f, err := open.FetchActivity(testkit.Context(t), u, nil)
		if err != nil || string(f.Body) != `{"id":"x"}` {
			t.Errorf("GET %s with 127.0.0.0/8 allowed: %+v %v", u, f, err)
		}
	}
}

func TestClientRedirects(t *testing.T) {
	var srvURL string
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/r/%d", &n)
		switch {
		case r.URL.Path == "/to-private":
			http.Redirect(w, r, "http://10.0.0.1/x", http.StatusFound)
		case r.URL.Path == "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case n > 0:
			http.Redirect(w, r, fmt.Sprintf("%s/r/%d", srvURL, n-1), http.StatusFound)
		default:
			// The final hop must be signed for its own target.
			if !strings.Contains(r.Header.Get("Signature"), `headers="(request-target) host date"`) {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/activity+json")
			w.Write([]byte(`{"ok":true}`))
		}
	})
	srvURL = srv.URL
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback(), MaxRedirects: 3})
	t.Cleanup(c.CloseIdleConnections)
	signer, _ := signature.NewSigner("https://crieur.example/@reports#main-key", testkit.Key(t, 0), nil)

	if f, err := c.FetchActivity(testkit.Context(t), srv.URL+"/r/3", signer); err != nil || string(f.Body) != `{"ok":true}` || f.URL != srv.URL+"/r/0" {
		t.Errorf("3 redirects with a cap of 3: %+v %v", f, err)
	}
	hits.Store(0)
	if _, err := c.FetchActivity(testkit.Context(t), srv.URL+"/r/4", signer); !errors.Is(err, ErrTooManyRedirects) {
		t.Errorf("4 redirects: err %v, want ErrTooManyRedirects", err)
	}
	if hits.Load() != 4 {
		t.Errorf("%d requests for 4 redirects with a cap of 3, want 4 (no fifth)", hits.Load())
	}
	for _, path := range []string{"/to-private", "/to-file"} {
		if _, err := c.FetchActivity(testkit.Context(t), srv.URL+path, signer); !IsRefused(err) {
			t.Errorf("redirect %s: err %v, want a refusal", path, err)
		}
	}
	// POST never follows redirects: the answer is the 3xx itself.
	resp, err := c.Post(testkit.Context(t), srv.URL+"/r/1", []byte(`{}`), signer)
	if err != nil || resp.Status != http.StatusFound {
		t.Errorf("POST redirect: %+v %v", resp, err)
	}
}

func TestClientBodyCap(t *testing.T) {
	const limit = 1000
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/%d", &n)
		w.Header().Set("Content-Type", "application/activity+json")
		w.Write(bytes.Repeat([]byte("a"), n))
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback(), MaxBody: limit})
	t.Cleanup(c.CloseIdleConnections)
	if f, err := c.FetchActivity(testkit.Context(t), fmt.Sprintf("%s/%d", srv.URL, limit), nil); err != nil || len(f.Body) != limit {
		t.Errorf("body of exactly the cap: %+v, %v", f, err)
	}
	if _, err := c.FetchActivity(testkit.Context(t), fmt.Sprintf("%s/%d", srv.URL, limit+1), nil); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("body over the cap: %v, want ErrResponseTooLarge", err)
	}
	resp, err := c.Post(testkit.Context(t), fmt.Sprintf("%s/%d", srv.URL, 100*limit), []byte(`{}`), nil)
	if err != nil || resp.Status != 200 || len(resp.Body) > clientErrorBodyKept {
		t.Errorf("POST with a large answer: %v, kept %d bytes", err, len(resp.Body))
	}
}

func TestClientDefaults(t *testing.T) {
	c := NewClient(ClientConfig{})
	cfg := c.Config()
	if cfg.Timeout != 30*time.Second || cfg.MaxBody != 1<<20 || cfg.MaxRedirects != 3 {
		t.Errorf("defaults %+v", cfg)
	}
	if c.http.Timeout != 30*time.Second || c.transport.TLSHandshakeTimeout != 10*time.Second ||
		c.transport.ResponseHeaderTimeout != 20*time.Second || c.transport.Proxy != nil ||
		c.transport.MaxIdleConnsPerHost != 4 || c.transport.MaxIdleConns != 256 {
		t.Errorf("transport settings differ from the documented ones")
	}
}

func TestClientStatusAndRetryAfter(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/activity+json")
		switch r.URL.Path {
		case "/gone":
			w.WriteHeader(http.StatusGone)
		case "/busy":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/busy-date":
			w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	if _, err := c.FetchActivity(testkit.Context(t), srv.URL+"/gone", nil); HTTPStatus(err) != http.StatusGone {
		t.Errorf("GET 410: %v", err)
	}
	resp, err := c.Post(testkit.Context(t), srv.URL+"/busy", []byte(`{}`), nil)
	if err != nil || resp.Status != 429 || resp.RetryAfter != 120*time.Second {
		t.Errorf("429: %+v %v", resp, err)
	}
	resp, err = c.Post(testkit.Context(t), srv.URL+"/busy-date", []byte(`{}`), nil)
	if err != nil || resp.Status != 503 || resp.RetryAfter < 58*time.Minute || resp.RetryAfter > time.Hour {
		t.Errorf("503 with a date: %+v %v", resp, err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"": 0, "0": 0, "-5": 0, "abc": 0, " 30 ": 30 * time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
		"99999999999": 365 * 24 * time.Hour,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestFetchActivityOrigin: FetchActivity follows redirects on the origin
// it was asked for and reports where the document came from; a redirect
// to another origin (another port, another host name, another scheme) is
// refused before the other origin sees a request.
func TestFetchActivityOrigin(t *testing.T) {
	other, otherHits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/activity+json")
		w.Write([]byte(`{"id":"elsewhere"}`))
	})
	var self string
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/doc", http.StatusFound)
		case "/same-absolute":
			http.Redirect(w, r, self+"/doc", http.StatusMovedPermanently)
		case "/other-port":
			http.Redirect(w, r, other.URL+"/doc", http.StatusFound)
		case "/other-host":
			// Same address and port, another name: another origin.
			http.Redirect(w, r, strings.Replace(self, "127.0.0.1", "localhost", 1)+"/doc", http.StatusFound)
		case "/other-scheme":
			http.Redirect(w, r, strings.Replace(self, "http://", "https://", 1)+"/doc", http.StatusFound)
		case "/doc":
			w.Header().Set("Content-Type", "application/activity+json; charset=utf-8")
			w.Write([]byte(`{"id":"doc"}`))
		}
	})
	self = srv.URL
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)

	for _, path := range []string{"/doc", "/same", "/same-absolute"} {
		f, err := c.FetchActivity(testkit.Context(t), srv.URL+path, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if f.URL != srv.URL+"/doc" || string(f.Body) != `{"id":"doc"}` || f.ContentType != "application/activity+json; charset=utf-8" {
			t.Errorf("%s: %+v", path, f)
		}
	}
	for _, path := range []string{"/other-port", "/other-host", "/other-scheme"} {
		f, err := c.FetchActivity(testkit.Context(t), srv.URL+path, nil)
		if !errors.Is(err, ErrCrossOrigin) || f != nil {
			t.Errorf("%s: %+v, %v, want ErrCrossOrigin", path, f, err)
		}
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other origin saw %d requests, want none", n)
	}
}

// TestFetchActivityContentType: only ActivityStreams JSON types are read;
// anything else (plain JSON included) is refused, and a non-2xx answer is
// still a *StatusError whatever its type.
func TestFetchActivityContentType(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if ct := r.URL.Query().Get("ct"); ct != "none" {
			w.Header()["Content-Type"] = []string{ct}
		}
		if r.URL.Query().Get("status") == "410" {
			w.WriteHeader(http.StatusGone)
		}
		w.Write([]byte(`{"id":"x"}`))
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	get := func(ct, status string) (*Fetched, error) {
		q := url.Values{"ct": {ct}, "status": {status}}
		return c.FetchActivity(testkit.Context(t), srv.URL+"/?"+q.Encode(), nil)
	}
	for _, ct := range []string{
		"application/activity+json",
		"application/activity+json; charset=utf-8",
		`application/ld+json; profile="https://www.w3.org/ns/activitystreams"`,
		`application/ld+json;profile=https://www.w3.org/ns/activitystreams`,
		`Application/LD+JSON; charset=utf-8; profile="https://www.w3.org/ns/activitystreams https://w3id.org/security/v1"`,
	} {
		if f, err := get(ct, ""); err != nil || string(f.Body) != `{"id":"x"}` {
			t.Errorf("%q: %v", ct, err)
		}
	}
	for _, ct := range []string{
		"none", "", "application/json", "application/json; charset=utf-8", "text/plain; charset=utf-8",
		"text/html", "application/ld+json", `application/ld+json; profile="https://www.w3.org/ns/activitystreams/x"`,
		`application/ld+json; profile="https://w3id.org/security/v1"`, "application/activity+jsonx",
	} {
		if f, err := get(ct, ""); !errors.Is(err, ErrNotActivityStreams) || f != nil {
			t.Errorf("%q: %+v, %v, want ErrNotActivityStreams", ct, f, err)
		}
	}
	if _, err := get("text/html", "410"); HTTPStatus(err) != http.StatusGone {
		t.Errorf("410 as HTML: %v, want the status", err)
	}
}

func TestSameOrigin(t *testing.T) {
	cases := []struct {
		a, b string
		same bool
	}{
		{"https://a.example/x", "https://a.example/y?z", true},
		{"https://a.example/x", "https://A.EXAMPLE:443/y", true},
		{"http://a.example/x", "http://a.example:80/y", true},
		{"https://a.example/x", "http://a.example/x", false},
		{"https://a.example/x", "https://a.example:8443/x", false},
		{"https://a.example/x", "https://b.a.example/x", false},
		{"https://a.example/x", "https://a.example.evil/x", false},
	}
	for _, tc := range cases {
		a, _ := url.Parse(tc.a)
		b, _ := url.Parse(tc.b)
		if got := SameOrigin(a, b); got != tc.same {
			t.Errorf("SameOrigin(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

// A blocked host is refused before any connection, for fetches and
// deliveries alike, and its subdomains with it.
func TestBlockedHostRefused(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback(), Blocked: func(h string) bool { return h == "127.0.0.1" }})
	defer c.CloseIdleConnections()
	if _, err := c.FetchActivity(testkit.Context(t), srv.URL+"/a", nil); !IsRefused(err) {
		t.Errorf("fetch from a blocked host: %v", err)
	}
	if _, err := c.PostDigest(testkit.Context(t), srv.URL+"/inbox", []byte("{}"), signature.BodyDigest([]byte("{}")), nil, PostOptions{}); !IsRefused(err) {
		t.Errorf("delivery to a blocked host: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the blocked host got %d requests", n)
	}
}
