package signature

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// FuzzVerifyRFC9421 feeds the verifier hostile headers, request targets
// and bodies. It must never panic; a refusal must wrap one of the
// package's causes and return no result; an acceptance must name the only
// key the lookup knows. The seeds are real signed requests (Mastodon,
// WordPress and Fedify shapes) that verify, an RFC example, and odd
// structured fields.
func FuzzVerifyRFC9421(f *testing.F) {
	key := rfcRSAKey(f)
	now := time.Unix(testNow, 0)

	seed := func(method, target string, s testSigner, body []byte) {
		r := httptest.NewRequest(method, target, nil)
		r.Host = "blog.example"
		r.Header.Set("Date", now.UTC().Format(http.TimeFormat))
		s.sign(f, r, "https://blog.example"+target, body)
		f.Add(method, target, r.Header.Get("Signature-Input"), r.Header.Get("Signature"), r.Header.Get("Content-Digest"), "", body)
	}
	seed("POST", "/inbox", mastodon(key, now), follow)
	seed("POST", "/inbox", wordpress(key, now), follow)
	seed("POST", "/inbox", fedify(key, now), follow)
	pss := mastodon(key, now)
	pss.alg, pss.digest = AlgRSAPSSSHA512, "both"
	seed("POST", "/inbox?a=1&b=%20x", pss, follow)
	q := mastodon(key, now)
	q.components = []string{"@method", "@authority", "@request-target", "@query", "content-digest"}
	q.expires, q.nonce, q.tag = now.Add(time.Minute), "n", "t"
	seed("PUT", "/inbox?page=2", q, []byte("{}"))
	get := mastodon(key, now)
	get.components, get.digest = []string{"@method", "@target-uri"}, "none"
	seed("GET", "/actor", get, nil)
	f.Add("POST", "/foo?param=Value&Pet=dog",
		`sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"`,
		`sig-b22=:LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvuJyE5qH7KT8UCMkSowOB4+ECxCmT8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SARYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd4je2U/lankenQ99PZfB4jY3I5rSV2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==:`,
		`sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:`,
		"x", []byte(`{"hello": "world"}`))
	f.Add("POST", "/inbox", `a=(), b=("@method";x=%"\", "c,d");created=1.5, c=:AA==:`, `a=:AA==:, a=?0`, `sha-256=(1 2)`, "y", []byte{0xff})

	pub := testKey(f, &key.PublicKey)
	opts := Options{
		Key: func(_ context.Context, id string) (*PublicKey, error) {
			if id != testKeyID {
				return nil, fmt.Errorf("no key %q", id)
			}
			return pub, nil
		},
		Now:     func() time.Time { return now },
		BaseURL: "https://blog.example",
	}
	causes := []error{ErrNoSignature, ErrMalformed, ErrNotCovered, ErrExpired, ErrFuture, ErrDigest, ErrAlgorithm, ErrKey, ErrBadSignature}

	f.Fuzz(func(t *testing.T, method, target, sigInput, sig, digest, extra string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			u = &url.URL{Path: "/"}
		}
		r := &http.Request{
			Method:     method,
			URL:        u,
			RequestURI: target,
			Host:       "blog.example",
			Header: http.Header{
				"Signature-Input": {sigInput},
				"Signature":       {sig},
				"Content-Digest":  {digest},
				"Date":            {now.UTC().Format(http.TimeFormat)},
				"X-Extra":         {extra},
			},
		}
		r = r.WithContext(context.Background())
		for _, o := range []Options{opts, withLabel(opts, "sig1")} {
			res, err := VerifyRFC9421(r, body, o)
			if err != nil {
				if res != nil {
					t.Fatalf("result with an error: %+v", res)
				}
				found := false
				for _, c := range causes {
					found = found || errors.Is(err, c)
				}
				if !found {
					t.Fatalf("error without a cause: %v", err)
				}
				continue
			}
			if res.KeyID != testKeyID {
				t.Fatalf("accepted key %q", res.KeyID)
			}
		}
	})
}

func withLabel(o Options, label string) Options {
	o.Label = label
	return o
}
