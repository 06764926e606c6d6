package signature

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/go-fed/httpsig"
)

// TestSignerVerifiedByGoFed: what Signer produces passes go-fed's own
// verifier on a real server, for POST (with Digest) and GET.
func TestSignerVerifiedByGoFed(t *testing.T) {
	key := testkit.Key(t, 0)
	type result struct {
		method string
		err    error
	}
	results := make(chan result, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		results <- result{r.Method, testkit.CheckSignature(r, body, &key.PublicKey)}
	}))
	defer srv.Close()
	signer, err := NewSigner("https://crieur.example/@reports#main-key", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"Create"}`)
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		var req *http.Request
		if method == http.MethodPost {
			req, _ = http.NewRequest(method, srv.URL+"/inbox?x=1", bytes.NewReader(body))
			err = signer.SignRequest(req, body)
		} else {
			req, _ = http.NewRequest(method, srv.URL+"/users/a?page=2", nil)
			err = signer.SignRequest(req, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(req.Header.Get("Signature"), `keyId="https://crieur.example/@reports#main-key"`) {
			t.Errorf("Signature header %q", req.Header.Get("Signature"))
		}
		if req.Header.Get("Host") != strings.TrimPrefix(srv.URL, "http://") {
			t.Errorf("Host header %q", req.Header.Get("Host"))
		}
		if _, err := time.Parse(http.TimeFormat, req.Header.Get("Date")); err != nil || !strings.HasSuffix(req.Header.Get("Date"), " GMT") {
			t.Errorf("Date %q is not IMF-fixdate GMT", req.Header.Get("Date"))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if r := <-results; r.err != nil {
			t.Errorf("%s: go-fed verification: %v", r.method, r.err)
		}
	}
}

// TestSignerResign: a retry signs the same request again with a fresh Date,
// one Digest and one Signature.
func TestSignerResign(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	signer, _ := NewSigner("https://crieur.example/@reports#main-key", testkit.Key(t, 0), func() time.Time { return clock })
	body := []byte(`{}`)
	req, _ := http.NewRequest(http.MethodPost, "https://remote.example/inbox", bytes.NewReader(body))
	if err := signer.SignRequest(req, body); err != nil {
		t.Fatal(err)
	}
	first := req.Header.Get("Signature")
	clock = clock.Add(10 * time.Minute)
	if err := signer.SignRequest(req, body); err != nil {
		t.Fatalf("re-signing: %v", err)
	}
	if len(req.Header.Values("Signature")) != 1 || len(req.Header.Values("Digest")) != 1 || len(req.Header.Values("Date")) != 1 {
		t.Errorf("headers after re-signing: %v", req.Header)
	}
	if req.Header.Get("Date") != "Sun, 01 Mar 2026 12:10:00 GMT" {
		t.Errorf("Date %q, want the new time", req.Header.Get("Date"))
	}
	if req.Header.Get("Signature") == first {
		t.Error("signature not renewed")
	}
}

// TestSignerConcurrent: one Signer used by many goroutines (the delivery
// workers); run with -race.
func TestSignerConcurrent(t *testing.T) {
	key := testkit.Key(t, 0)
	signer, _ := NewSigner("https://crieur.example/@reports#main-key", key, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte(fmt.Sprintf(`{"n":%d}`, i))
			req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("https://h%d.example/inbox", i), bytes.NewReader(body))
			req.Header.Del("Host")
			if err := signer.SignRequest(req, body); err != nil {
				errs <- err
				return
			}
			errs <- testkit.CheckSignature(req, body, &key.PublicKey)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestParseSignatureHeader(t *testing.T) {
	files, _ := filepath.Glob("testdata/sig_*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata/sig_*.txt")
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		p, err := ParseHeader(strings.TrimSpace(string(data)))
		if err != nil || p.KeyID == "" || p.Signature != "c2lnbmF0dXJl" || len(p.Headers) < 4 {
			t.Errorf("%s: %+v %v", f, p, err)
		}
	}
	p, err := ParseHeader(`keyId="k",signature="s"`)
	if err != nil || p.Algorithm != "hs2019" || strings.Join(p.Headers, " ") != "date" {
		t.Errorf("defaults: %+v %v", p, err)
	}
	bad := []string{
		``, `keyId="k"`, `signature="s"`, `keyId="k",signature="s",keyId="j"`,
		`keyId="k",,signature="s"`, `keyId="k",signature="s",`, `keyId="a,b",signature="s"`,
		`keyId="k\"x",signature="s"`, `keyId="k",signature="s",headers="date  host"`,
		`keyId="k",signature="s",created=abc`, `keyId`, `=x`,
		`keyId="k",signature="` + strings.Repeat("a", sigHeaderMax) + `"`,
	}
	for _, h := range bad {
		if p, err := ParseHeader(h); err == nil {
			t.Errorf("%q accepted: %+v", h, p)
		}
	}
}

// verifyFixture checks requests that must be signed by one peer key, as
// the inbox does once it has resolved the key.
type verifyFixture struct {
	key   *rsa.PrivateKey
	keyID string
	now   time.Time
}

func newVerifyFixture(t testing.TB) *verifyFixture {
	return &verifyFixture{key: testkit.Key(t, 1), keyID: "https://192.0.2.10/users/alice#main-key",
		now: time.Now().UTC().Truncate(time.Second)}
}

// verify is every check of an incoming signature with the peer's key.
func (fx *verifyFixture) verify(r *http.Request, body []byte) error {
	return VerifyKnown(r, body, fx.keyID, &fx.key.PublicKey, fx.now)
}

// request builds a server-side request signed at date with go-fed over
// headers, the way a remote server would.
func (fx *verifyFixture) request(t *testing.T, method, target string, body []byte, date time.Time, headers []string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	r.Header.Set("Date", date.UTC().Format(http.TimeFormat))
	r.Header.Set("Content-Type", "application/activity+json")
	r.Header.Set("Host", r.Host)
	s, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256, headers, httpsig.Signature, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if method == http.MethodPost {
		b = body
	}
	if err := s.SignRequest(fx.key, fx.keyID, r, b); err != nil {
		t.Fatal(err)
	}
	r.Header.Del("Host") // a server sees it in r.Host
	return r
}

func TestVerify(t *testing.T) {
	fx := newVerifyFixture(t)
	body := []byte(`{"type":"Like"}`)
	post := []string{httpsig.RequestTarget, "host", "date", "digest"}
	mastodon := []string{"host", "date", "content-type", "digest", httpsig.RequestTarget}
	get := []string{httpsig.RequestTarget, "host", "date"}
	type tc struct {
		name     string
		req      func() *http.Request
		body     []byte
		sentinel error // nil: must verify
	}
	at := func(d time.Duration) time.Time { return fx.now.Add(d) }
	cases := []tc{
		{"POST", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(0), post) }, body, nil},
		{"Mastodon header order", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(0), mastodon) }, body, nil},
		{"algorithm rsa-sha256", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), `algorithm="hs2019"`, `algorithm="rsa-sha256"`, 1))
			return r
		}, body, nil},
		{"algorithm rsa-sha512", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), `algorithm="hs2019"`, `algorithm="rsa-sha512"`, 1))
			return r
		}, body, federation.ErrUnauthorized},
		{"GET", func() *http.Request { return fx.request(t, "GET", "/@reports/outbox?page=1", nil, at(0), get) }, nil, nil},
		{"signed without the query", func() *http.Request {
			r := fx.request(t, "GET", "/@reports/outbox", nil, at(0), get)
			r.URL.RawQuery = "page=1"
			return r
		}, nil, nil},
		{"Date 64 minutes old", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(-64*time.Minute), post) }, body, nil},
		{"Date 66 minutes old", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(-66*time.Minute), post) }, body, federation.ErrUnauthorized},
		{"Date 59 minutes ahead", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(59*time.Minute), post) }, body, nil},
		{"Date 61 minutes ahead", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(61*time.Minute), post) }, body, federation.ErrUnauthorized},
		{"Date not GMT", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Set("Date", fx.now.Format(time.RFC3339))
			return r
		}, body, federation.ErrUnauthorized},
		{"digest not signed", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(0), get) }, body, federation.ErrUnauthorized},
		{"host not signed", func() *http.Request {
			return fx.request(t, "POST", "/inbox", body, at(0), []string{httpsig.RequestTarget, "date", "digest"})
		}, body, federation.ErrUnauthorized},
		{"request-target not signed", func() *http.Request {
			return fx.request(t, "POST", "/inbox", body, at(0), []string{"host", "date", "digest"})
		}, body, federation.ErrUnauthorized},
		{"date not signed", func() *http.Request {
			return fx.request(t, "POST", "/inbox", body, at(0), []string{httpsig.RequestTarget, "host", "digest"})
		}, body, federation.ErrUnauthorized},
		{"no Digest header", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Del("Digest")
			return r
		}, body, federation.ErrBadRequest},
		{"SHA-512 digest only", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Set("Digest", "SHA-512=abc")
			return r
		}, body, federation.ErrUnauthorized},
		{"body changed", func() *http.Request { return fx.request(t, "POST", "/inbox", body, at(0), post) }, []byte(`{"type":"Follow"}`), federation.ErrUnauthorized},
		{"path changed", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.URL.Path = "/@reports/inbox"
			return r
		}, body, federation.ErrUnauthorized},
		{"host changed", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Host = "other.example"
			return r
		}, body, federation.ErrUnauthorized},
		{"no signature", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Del("Signature")
			return r
		}, body, federation.ErrUnauthorized},
		{"two Signature headers", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Add("Signature", r.Header.Get("Signature"))
			return r
		}, body, federation.ErrUnauthorized},
		{"RFC 9421 signature", func() *http.Request {
			r := fx.request(t, "POST", "/inbox", body, at(0), post)
			r.Header.Set("Signature-Input", `sig1=("@method" "@target-uri");keyid="k";created=1`)
			r.Header.Set("Signature", "sig1=:c2ln:")
			return r
		}, body, federation.ErrUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := fx.verify(c.req(), c.body)
			if c.sentinel == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, c.sentinel) {
				t.Fatalf("err %v, want %v", err, c.sentinel)
			}
		})
	}
}

// FuzzVerifySignatureHeader: any Signature header is either refused with
// federation.ErrUnauthorized/federation.ErrBadRequest or verified; whenever our parser accepts a
// header, go-fed reads the same keyId from it.
func FuzzVerifySignatureHeader(f *testing.F) {
	files, _ := filepath.Glob("testdata/sig_*.txt")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.TrimSpace(string(data)))
	}
	f.Add(`keyId="https://192.0.2.10/users/alice#main-key",headers="(request-target) host date digest",signature="AAAA"`)
	f.Add(`keyId="k",signature="s",keyId="j"`)
	seeds, err := os.ReadFile("testdata/delivery_signature_headers.txt")
	if err != nil {
		f.Fatal(err)
	}
	for line := range strings.Lines(string(seeds)) {
		f.Add(strings.TrimSpace(line))
	}
	fx := newVerifyFixture(f)
	body := []byte(`{}`)
	f.Fuzz(func(t *testing.T, header string) {
		p, perr := ParseHeader(header)
		if perr == nil {
			if p.KeyID == "" || p.Signature == "" || len(p.Headers) == 0 {
				t.Fatalf("accepted without keyId/signature/headers: %+v", p)
			}
			r := httptest.NewRequest(http.MethodPost, "/inbox", nil)
			r.Header.Set("Signature", header)
			if !strings.Contains(header, "created=") && !strings.Contains(header, "expires=") {
				v, err := httpsig.NewVerifier(r)
				if err != nil {
					t.Fatalf("we accept %q, go-fed refuses it: %v", header, err)
				}
				if v.KeyId() != p.KeyID {
					t.Fatalf("keyId: ours %q, go-fed %q", p.KeyID, v.KeyId())
				}
			}
		}
		r := httptest.NewRequest(http.MethodPost, "/inbox", bytes.NewReader(body))
		r.Header.Set("Signature", header)
		r.Header.Set("Date", fx.now.Format(http.TimeFormat))
		r.Header.Set("Digest", "SHA-256=RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=")
		err := fx.verify(r, body)
		if err == nil {
			t.Fatalf("fuzzed header %q verified", header)
		}
		if !errors.Is(err, federation.ErrUnauthorized) && !errors.Is(err, federation.ErrBadRequest) {
			t.Fatalf("error without sentinel: %v", err)
		}
	})
}

// TestSignRequestDigestIsVerified checks the fan-out's signing path: a
// digest computed once per activity gives the same header SignRequest
// would, a strict verifier accepts it, and it does not match another body.
func TestSignRequestDigestIsVerified(t *testing.T) {
	clock := testkit.NewClock()
	s, err := NewSigner("https://crieur.example/@news#main-key", testkit.Key(t, 0), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"Create","id":"https://crieur.example/activities/1"}`)
	digest := BodyDigest(body)
	newReq := func() *http.Request {
		req, err := http.NewRequest(http.MethodPost, "https://inbox.example/inbox", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/activity+json")
		return req
	}
	viaBody := newReq()
	if err := s.SignRequest(viaBody, body); err != nil {
		t.Fatal(err)
	}
	req := newReq()
	if err := s.SignRequestDigest(req, digest); err != nil {
		t.Fatal(err)
	}
	if got, want := req.Header.Get("Digest"), viaBody.Header.Get("Digest"); got != want {
		t.Fatalf("digest %q, SignRequest gives %q", got, want)
	}
	pub := &testkit.Key(t, 0).PublicKey
	if err := VerifyKnown(req, body, s.KeyID(), pub, clock.Now()); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := VerifyKnown(req, []byte(`{"type":"Delete"}`), s.KeyID(), pub, clock.Now()); err == nil {
		t.Fatal("a signature over another body's digest verified")
	}
	// A retry signs the same request again: one Digest, a fresh Date.
	first := req.Header.Get("Date")
	clock.Advance(time.Minute)
	if err := s.SignRequestDigest(req, digest); err != nil {
		t.Fatal(err)
	}
	if n := len(req.Header.Values("Digest")); n != 1 {
		t.Fatalf("%d Digest headers after a retry", n)
	}
	if req.Header.Get("Date") == first {
		t.Fatal("retry kept the old Date")
	}
	if err := VerifyKnown(req, body, s.KeyID(), pub, clock.Now()); err != nil {
		t.Fatalf("verify retry: %v", err)
	}
	if err := s.SignRequestDigest(req, ""); err == nil {
		t.Fatal("empty digest accepted")
	}
}

// BenchmarkSignRequest signs a delivery-sized POST on every core, the
// reference the fan-out is compared with.
func BenchmarkSignRequest(b *testing.B) {
	s, err := NewSigner("https://crieur.bench.invalid/@bench#main-key", testkit.Key(b, 0), nil)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 10_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/inbox", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			if err := s.SignRequest(req, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
