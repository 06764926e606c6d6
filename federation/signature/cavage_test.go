package signature

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/go-fed/httpsig"
)

// goFedVerify is what VerifyCavage was: go-fed's verifier, with the
// query fallback. The tests hold the new one to its verdicts.
func goFedVerify(r *http.Request, pub *rsa.PublicKey) error {
	r = r.Clone(r.Context()) // go-fed writes Host into the header map
	v, err := httpsig.NewVerifier(r)
	if err != nil {
		return err
	}
	err = v.Verify(pub, httpsig.RSA_SHA256)
	if err == nil || r.URL.RawQuery == "" {
		return err
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = ""
	v2, err2 := httpsig.NewVerifier(r2)
	if err2 != nil {
		return err
	}
	if v2.Verify(pub, httpsig.RSA_SHA256) == nil {
		return nil
	}
	return err
}

// cavageCase is a request signed by go-fed or crieur's Signer, as a
// server receives it.
type cavageCase struct {
	name string
	req  func(t *testing.T) (*http.Request, []byte)
}

func cavageCases(key *rsa.PrivateKey, keyID string) []cavageCase {
	goFed := func(method, target string, body []byte, headers []string, expiresIn int64, extra func(http.Header)) func(t *testing.T) (*http.Request, []byte) {
		return func(t *testing.T) (*http.Request, []byte) {
			t.Helper()
			r := httptest.NewRequest(method, target, bytes.NewReader(body))
			r.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
			r.Header.Set("Host", r.Host)
			if extra != nil {
				extra(r.Header)
			}
			s, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256, headers, httpsig.Signature, expiresIn)
			if err != nil {
				t.Fatal(err)
			}
			var b []byte
			if method == http.MethodPost {
				b = body
			}
			if err := s.SignRequest(key, keyID, r, b); err != nil {
				t.Fatal(err)
			}
			r.Header.Del("Host") // a server sees it in r.Host
			return r, body
		}
	}
	crieur := func(engine RSAEngine, method, target string, body []byte) func(t *testing.T) (*http.Request, []byte) {
		return func(t *testing.T) (*http.Request, []byte) {
			t.Helper()
			s, err := NewSignerEngine(keyID, key, nil, engine)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(method, "https://blog.example"+target, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/activity+json")
			if method == http.MethodPost {
				err = s.SignRequest(req, body)
			} else {
				err = s.SignRequest(req, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			// As the server reads it: Host in r.Host only, the path and
			// query from the request line.
			r := httptest.NewRequest(method, target, bytes.NewReader(body))
			r.Host = req.Host
			r.Header = req.Header.Clone()
			r.Header.Del("Host")
			return r, body
		}
	}
	body := []byte(`{"type":"Follow","actor":"https://remote.example/users/alice"}`)
	post := []string{httpsig.RequestTarget, "host", "date", "digest"}
	mastodon := []string{httpsig.RequestTarget, "host", "date", "digest", "content-type"}
	contentType := func(h http.Header) { h.Set("Content-Type", "application/activity+json") }
	return []cavageCase{
		{"go-fed POST", goFed("POST", "/inbox", body, post, 0, nil)},
		{"Mastodon-shaped POST", func(t *testing.T) (*http.Request, []byte) {
			// Mastodon names the algorithm rsa-sha256; it is not signed.
			r, b := goFed("POST", "/users/news/inbox", body, mastodon, 0, contentType)(t)
			r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), `algorithm="hs2019"`, `algorithm="rsa-sha256"`, 1))
			return r, b
		}},
		// GoToSocial signs with a fork of go-fed's httpsig.
		{"GoToSocial-shaped POST", goFed("POST", "/inbox", body, post, 0, contentType)},
		{"names out of order", goFed("POST", "/inbox", body, []string{"date", "digest", "host", httpsig.RequestTarget}, 0, nil)},
		{"several values and white space", goFed("POST", "/inbox", body,
			[]string{httpsig.RequestTarget, "host", "date", "digest", "accept", "user-agent", "x-empty"}, 0, func(h http.Header) {
				h.Add("Accept", "application/activity+json ")
				h.Add("Accept", "\tapplication/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"")
				h.Set("User-Agent", "  Fedi/1.0  (+https://remote.example) ")
				h["X-Empty"] = []string{""}
			})},
		{"(created) and (expires)", goFed("POST", "/inbox", body,
			[]string{httpsig.RequestTarget, "(created)", "(expires)", "host", "date", "digest"}, 300, nil)},
		{"POST with a query", goFed("POST", "/inbox?x=1&y=%2F", body, post, 0, nil)},
		{"GET with a query", goFed("GET", "/@news/outbox?page=2", nil, []string{httpsig.RequestTarget, "host", "date"}, 0, nil)},
		{"crieur's Signer, Go", crieur(RSAGo, "POST", "/inbox", body)},
		{"crieur's Signer, auto", crieur(RSAAuto, "POST", "/users/news/inbox?a=b", body)},
		{"crieur's Signer, GET", crieur(RSAAuto, "GET", "/users/news?page=1", nil)},
	}
}

// TestVerifyCavage: signatures made by go-fed's signer and crieur's
// Signer, over several header sets, verify with either engine, and every
// tampering is refused; go-fed's verifier agrees on each.
func TestVerifyCavage(t *testing.T) {
	key := testkit.Key(t, 1)
	const keyID = "https://remote.example/users/alice#main-key"
	other := testkit.Key(t, 2)
	for _, c := range cavageCases(key, keyID) {
		t.Run(c.name, func(t *testing.T) {
			r, body := c.req(t)
			p, err := CheckRequest(r, body, time.Now())
			if err != nil {
				t.Fatalf("CheckRequest: %v", err)
			}
			for ename, v := range verifierEngines(t) {
				pub, err := v.Key(&key.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyCavage(r, p, pub); err != nil {
					t.Fatalf("%s: %v\nsigning string %q", ename, err, must(cavageSigningString(r, p, true)))
				}
			}
			if err := goFedVerify(r, &key.PublicKey); err != nil {
				t.Fatalf("go-fed refuses the request: %v", err)
			}

			pub := testKey(t, &key.PublicKey)
			refuse := func(what string, r *http.Request, p Params, pub *PublicKey, goFedPub *rsa.PublicKey) {
				t.Helper()
				if err := VerifyCavage(r, p, pub); err == nil {
					t.Errorf("%s: verified", what)
				}
				if p.Signature == "" || goFedPub == nil {
					return
				}
				r = r.Clone(r.Context())
				r.Header.Set("Signature", rebuildHeader(p))
				if err := goFedVerify(r, goFedPub); err == nil {
					t.Errorf("%s: go-fed verifies it", what)
				}
			}
			tamper := func(f func(r *http.Request)) *http.Request {
				r2 := r.Clone(r.Context())
				f(r2)
				return r2
			}
			refuse("method", tamper(func(r *http.Request) { r.Method = "PUT" }), p, pub, &key.PublicKey)
			refuse("method case", tamper(func(r *http.Request) { r.Method = strings.ToLower(r.Method) + "x" }), p, pub, &key.PublicKey)
			refuse("path", tamper(func(r *http.Request) { r.URL.Path += "x" }), p, pub, &key.PublicKey)
			refuse("host", tamper(func(r *http.Request) { r.Host = "evil.example" }), p, pub, &key.PublicKey)
			refuse("host port", tamper(func(r *http.Request) { r.Host += ":443" }), p, pub, &key.PublicKey)
			refuse("date", tamper(func(r *http.Request) {
				d, _ := http.ParseTime(r.Header.Get("Date"))
				r.Header.Set("Date", d.Add(time.Second).Format(http.TimeFormat))
			}), p, pub, &key.PublicKey)
			refuse("other key", r, p, testKey(t, &other.PublicKey), &other.PublicKey)
			if r.Method == http.MethodPost {
				refuse("digest", tamper(func(r *http.Request) { r.Header.Set("Digest", BodyDigest([]byte("other"))) }), p, pub, &key.PublicKey)
				refuse("digest value twice", tamper(func(r *http.Request) { r.Header.Add("Digest", r.Header.Get("Digest")) }), p, pub, &key.PublicKey)
				refuse("no digest", tamper(func(r *http.Request) { r.Header.Del("Digest") }), p, pub, &key.PublicKey)
			}
			// A query added to a request signed without one is taken (the
			// fallback); one changed in a signed query is not.
			if r.URL.RawQuery != "" {
				refuse("query", tamper(func(r *http.Request) { r.URL.RawQuery += "&z=1" }), p, pub, &key.PublicKey)
				refuse("query dropped", tamper(func(r *http.Request) { r.URL.RawQuery = "" }), p, pub, &key.PublicKey)
			}
			for _, h := range p.Headers {
				if strings.HasPrefix(h, "(") || h == "host" {
					continue
				}
				refuse("another value of "+h, tamper(func(r *http.Request) { r.Header.Add(h, "x") }), p, pub, &key.PublicKey)
			}
			// The names in another order: the same lines, another string.
			swapped := p
			swapped.Headers = append([]string(nil), p.Headers...)
			swapped.Headers[0], swapped.Headers[1] = swapped.Headers[1], swapped.Headers[0]
			refuse("names reordered", r, swapped, pub, &key.PublicKey)
			dropped := p
			dropped.Headers = p.Headers[1:]
			refuse("a name dropped", r, dropped, pub, &key.PublicKey)
			added := p
			added.Headers = append(append([]string(nil), p.Headers...), "date")
			refuse("a name added", r, added, pub, &key.PublicKey)
			sig, _ := base64.StdEncoding.DecodeString(p.Signature)
			for _, bad := range []string{"!!!!", p.Signature[:len(p.Signature)-4], base64.StdEncoding.EncodeToString(append(sig, 0)),
				base64.RawStdEncoding.EncodeToString(sig[:len(sig)-1]), ""} {
				q := p
				q.Signature = bad
				refuse("signature "+bad, r, q, pub, nil)
			}
			flipped := append([]byte(nil), sig...)
			flipped[len(flipped)/2] ^= 4
			q := p
			q.Signature = base64.StdEncoding.EncodeToString(flipped)
			refuse("signature bit flipped", r, q, pub, &key.PublicKey)
			for _, alg := range []string{"rsa-sha512", "hmac-sha256", "ed25519", ""} {
				q := p
				q.Algorithm = alg
				refuse("algorithm "+alg, r, q, pub, nil)
			}
			if p.Created != 0 {
				q := p
				q.Created++
				refuse("created", r, q, pub, &key.PublicKey)
				q = p
				q.Expires = 0
				refuse("expires absent", r, q, pub, nil)
			}
		})
	}
}

// TestVerifyCavageQueryFallback: a signature over the path alone still
// verifies when the request carries a query (as Mastodon and GoToSocial
// take it), and only then.
func TestVerifyCavageQueryFallback(t *testing.T) {
	key := testkit.Key(t, 1)
	fx := &verifyFixture{key: key, keyID: "https://remote.example/users/alice#main-key", now: time.Now()}
	r := fx.request(t, "GET", "/@news/outbox", nil, fx.now, []string{httpsig.RequestTarget, "host", "date"})
	p, err := CheckHeaders(r, fx.now)
	if err != nil {
		t.Fatal(err)
	}
	pub := testKey(t, &key.PublicKey)
	if err := VerifyCavage(r, p, pub); err != nil {
		t.Fatal(err)
	}
	r.URL.RawQuery = "page=1"
	if err := VerifyCavage(r, p, pub); err != nil {
		t.Fatalf("with a query: %v", err)
	}
	r.URL.Path = "/@news/outbox/"
	if err := VerifyCavage(r, p, pub); err == nil {
		t.Fatal("another path verified")
	}
}

// TestCheckHeadersCreatedExpires: created and expires are refused as
// go-fed refused them, 10 s of skew either way, on the caller's clock.
func TestCheckHeadersCreatedExpires(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		params string
		ok     bool
	}{
		{"", true},
		{"created=" + strconv.FormatInt(now.Unix()+10, 10), true},
		{"created=" + strconv.FormatInt(now.Unix()+11, 10), false},
		{"created=" + strconv.FormatInt(now.Unix()-3600, 10), true},
		{"expires=" + strconv.FormatInt(now.Unix()-10, 10), true},
		{"expires=" + strconv.FormatInt(now.Unix()-11, 10), false},
		{"created=0,expires=0", true},
	} {
		r := httptest.NewRequest("GET", "/outbox", nil)
		r.Header.Set("Date", now.Format(http.TimeFormat))
		h := `keyId="k",headers="(request-target) host date",signature="AAAA"`
		if c.params != "" {
			h += "," + c.params
		}
		r.Header.Set("Signature", h)
		_, err := CheckHeaders(r, now)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.params, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// rebuildHeader writes p back as a Signature header, for go-fed.
func rebuildHeader(p Params) string {
	h := `keyId="` + p.KeyID + `",algorithm="` + p.Algorithm + `",headers="` + strings.Join(p.Headers, " ") + `",signature="` + p.Signature + `"`
	if p.Created != 0 {
		h += ",created=" + strconv.FormatInt(p.Created, 10)
	}
	if p.Expires != 0 {
		h += ",expires=" + strconv.FormatInt(p.Expires, 10)
	}
	return h
}

// FuzzCavageSigningString holds cavageSigningString to go-fed's: a
// Signature header carrying the HMAC of our signing string verifies with
// go-fed's verifier (hmac-sha256 with the same key) exactly when go-fed
// builds the same string. Whenever we build a string, go-fed must build
// the same; whenever we refuse, go-fed must too.
func FuzzCavageSigningString(f *testing.F) {
	f.Add("POST", "/inbox", "blog.example", "(request-target) host date digest", "Sun, 06 Nov 1994 08:49:37 GMT", "SHA-256=abc", "a\n b ", false, false)
	f.Add("get", "/outbox?page=1&x=%2F", "blog.example:8443", "date (request-target) host x-multi", " d ", "", " a ,b\t\n\tc ", true, true)
	f.Add("POST", "/a%20b/c", "", "host date", "d", "x", "", false, false)
	f.Add("PUT", "/", "h", "(created) (expires) digest", "", "", "", true, false)
	f.Add("POST", "/inbox", "h", "x-missing date", "d", "", "", false, true)
	f.Add("POST", "/é?q=é", "h", "(request-target) x-multi x-multi", "d", "", "\n\n", false, false)
	secret := []byte("crieur fuzz")
	f.Fuzz(func(t *testing.T, method, target, host, headers, date, digest, multi string, created, expires bool) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := &http.Request{Method: method, URL: u, Host: host, Header: http.Header{}}
		r.Header["Date"] = []string{date}
		if digest != "" {
			r.Header["Digest"] = []string{digest}
		}
		r.Header["X-Multi"] = strings.Split(multi, "\n")
		sh := `keyId="k",algorithm="hs2019",headers="` + headers + `"`
		now := time.Now().Unix()
		if created {
			sh += ",created=" + strconv.FormatInt(now-5, 10)
		}
		if expires {
			sh += ",expires=" + strconv.FormatInt(now+300, 10)
		}
		p, err := ParseHeader(sh + `,signature="AAAA"`)
		if err != nil {
			return
		}
		ours, oursErr := cavageSigningString(r, p, true)
		mac := hmac.New(sha256.New, secret)
		mac.Write(ours)
		r.Header.Set("Signature", sh+`,signature="`+base64.StdEncoding.EncodeToString(mac.Sum(nil))+`"`)
		v, err := httpsig.NewVerifier(r)
		if err != nil {
			t.Fatalf("go-fed refuses the header %q: %v", r.Header.Get("Signature"), err)
		}
		theirsErr := v.Verify(secret, httpsig.HMAC_SHA256)
		switch {
		case oursErr == nil && theirsErr != nil:
			t.Fatalf("signing strings differ (go-fed: %v); ours:\n%q", theirsErr, ours)
		case oursErr != nil && theirsErr == nil:
			t.Fatalf("we refuse (%v) what go-fed builds", oursErr)
		}
	})
}

// BenchmarkVerify compares, per operation on one core: Go's
// rsa.VerifyPKCS1v15; PublicKey.VerifySHA256 with OpenSSL and with Go;
// and the whole VerifyCavage of a signed delivery, go-fed's verifier (what
// crieur used) against crieur's own with each engine.
func BenchmarkVerify(b *testing.B) {
	key := testkit.Key(b, 1)
	digest := sha256.Sum256([]byte("a delivery"))
	sig := must(rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]))
	goKey := must((&Verifier{}).Key(&key.PublicKey))
	var osslKey *PublicKey
	if _, err := openssl(); err == nil {
		osslKey = must(NewVerifier(RSAOpenSSL)).mustKey(b, &key.PublicKey)
	}
	body := bytes.Repeat([]byte("x"), 2000)
	s := must(NewSignerEngine("https://remote.example/users/alice#main-key", key, nil, RSAGo))
	req, _ := http.NewRequest("POST", "https://blog.example/inbox", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/activity+json")
	if err := s.SignRequest(req, body); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/inbox", nil)
	r.Host, r.Header = req.Host, req.Header.Clone()
	r.Header.Del("Host")
	p := must(CheckRequest(r, body, time.Now()))

	b.Run("rsa.VerifyPKCS1v15", func(b *testing.B) {
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifySHA256/openssl", func(b *testing.B) {
		if osslKey == nil {
			b.Skip("no OpenSSL")
		}
		for b.Loop() {
			if err := osslKey.VerifySHA256(digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifySHA256/go", func(b *testing.B) {
		for b.Loop() {
			if err := goKey.VerifySHA256(digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyCavage/go-fed", func(b *testing.B) {
		for b.Loop() {
			v, err := httpsig.NewVerifier(r)
			if err == nil {
				err = v.Verify(&key.PublicKey, httpsig.RSA_SHA256)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyCavage/openssl", func(b *testing.B) {
		if osslKey == nil {
			b.Skip("no OpenSSL")
		}
		for b.Loop() {
			if err := VerifyCavage(r, p, osslKey); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyCavage/go", func(b *testing.B) {
		for b.Loop() {
			if err := VerifyCavage(r, p, goKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func (v *Verifier) mustKey(t testing.TB, pub *rsa.PublicKey) *PublicKey {
	t.Helper()
	k, err := v.Key(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
