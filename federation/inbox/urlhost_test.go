package inbox

import (
	"net/url"
	"testing"
)

// FuzzURLHost: the fast path answers exactly what url.Parse would, for
// every string it takes on.
func FuzzURLHost(f *testing.F) {
	for _, s := range []string{
		"https://a.example/users/u#main-key", "http://127.0.0.1:8080/inbox", "https://A.Example",
		"https://a.example:/x", "https://a.example:80x/", "https://u@a.example/", "https://[::1]:443/",
		"https://a.example?q", "https://a.example#f", "https://", "https:///path", "ftp://a.example/",
		"https://a.example/%zz", "https://a b/", "https://a.example/\x7f", "HTTPS://a.example/",
		"https://a_b.example/", "https://a.example\\@b.example/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		host, ok := plainURLHost(raw)
		if !ok {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("fast path took %q (host %q), url.Parse refuses it: %v", raw, host, err)
		}
		if u.Host != host {
			t.Fatalf("%q: fast path %q, url.Parse %q", raw, host, u.Host)
		}
	})
}
