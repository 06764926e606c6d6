package signature

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
)

// newNameParams is the parameter list of an @query-param identifier.
func newNameParams(name string) *httpsfv.Params {
	p := httpsfv.NewParams()
	if name != "" {
		p.Add("name", name)
	}
	return p
}

// ---- keys ----

func readPEM(t testing.TB, name string) *pem.Block {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	return b
}

// rfcPSSKey is the public part of RFC 9421 B.1.2 test-key-rsa-pss.
func rfcPSSKey(t testing.TB) *rsa.PublicKey {
	t.Helper()
	k, err := x509.ParsePKIXPublicKey(readPEM(t, "test-key-rsa-pss.pub.pem").Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}

// rfcRSAKey is RFC 9421 B.1.1 test-key-rsa, the signer's key in the tests.
func rfcRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := x509.ParsePKCS1PrivateKey(readPEM(t, "test-key-rsa.pem").Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKCS1PublicKey(readPEM(t, "test-key-rsa.pub.pem").Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&k.PublicKey) {
		t.Fatal("test-key-rsa: public and private PEM do not match")
	}
	return k
}

var (
	otherKeyOnce sync.Once
	otherKey     *rsa.PrivateKey
)

// anotherKey is a second key, not the one the key lookup knows.
func anotherKey(t testing.TB) *rsa.PrivateKey {
	otherKeyOnce.Do(func() {
		var err error
		if otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return otherKey
}

// ---- RFC 9421 test vectors ----

func readVector(t *testing.T, name string) (*http.Request, []byte, string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".http"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join("testdata", name+".base"))
	if err != nil {
		t.Fatal(err)
	}
	return r, body, string(base)
}

type vector struct {
	name, label, alg string
	key              func(testing.TB) *rsa.PublicKey
}

func vectors() []vector {
	pss := rfcPSSKey
	v15 := func(t testing.TB) *rsa.PublicKey { return &rfcRSAKey(t).PublicKey }
	return []vector{
		{"sec3-2", "sig1", AlgRSAPSSSHA512, pss},
		{"b21", "sig-b21", AlgRSAPSSSHA512, pss},
		{"b22", "sig-b22", AlgRSAPSSSHA512, pss},
		{"b23", "sig-b23", AlgRSAPSSSHA512, pss},
		{"sec4-3", "proxy_sig", AlgRSAv15SHA256, v15},
	}
}

// TestRFC9421Vectors rebuilds the signature base of each RFC example
// byte for byte and verifies the RFC's signature over it.
func TestRFC9421Vectors(t *testing.T) {
	for _, v := range vectors() {
		t.Run(v.name, func(t *testing.T) {
			r, _, want := readVector(t, v.name)
			entries, err := parseSignatures(r.Header)
			if err != nil {
				t.Fatal(err)
			}
			var e *entry
			for i := range entries {
				if entries[i].label == v.label {
					e = &entries[i]
				}
			}
			if e == nil || e.err != nil {
				t.Fatalf("label %s: %+v", v.label, e)
			}
			m, err := newMessage(r, "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := signatureBase(m, e.components, e.params)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("signature base\n got: %q\nwant: %q", got, want)
			}
			pub := testKey(t, v.key(t))
			if err := verifyBytes(v.alg, pub, []byte(got), e.sig); err != nil {
				t.Fatalf("RFC signature does not verify: %v", err)
			}
			tampered := []byte(got)
			tampered[len(tampered)/2] ^= 1
			if err := verifyBytes(v.alg, pub, tampered, e.sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered base: %v", err)
			}
		})
	}
}

// TestRFC9421VectorsEndToEnd runs the RFC examples through the whole
// verifier: those that cover what crieur requires verify, the others are
// refused for their coverage.
func TestRFC9421VectorsEndToEnd(t *testing.T) {
	keys := map[string]*PublicKey{
		"test-key-rsa-pss": testKey(t, rfcPSSKey(t)),
		"test-key-rsa":     testKey(t, &rfcRSAKey(t).PublicKey),
	}
	lookup := func(_ context.Context, id string) (*PublicKey, error) {
		if k, ok := keys[id]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown key %q", id)
	}
	at := func(sec int64) func() time.Time { return func() time.Time { return time.Unix(sec, 0) } }

	cases := []struct {
		name, label string
		defaultAlg  string
		now         int64
		wantErr     error
		wantKey     string
	}{
		// The RFC's verifier knows test-key-rsa-pss is a PSS key.
		{"sec3-2", "", AlgRSAPSSSHA512, 1618884473 + 30, nil, "test-key-rsa-pss"},
		{"b23", "", AlgRSAPSSSHA512, 1618884473 + 30, nil, "test-key-rsa-pss"},
		// crieur's default for a missing alg is rsa-v1_5-sha256, as
		// Mastodon's and WordPress's: a PSS signature then fails.
		{"sec3-2", "", AlgRSAv15SHA256, 1618884473 + 30, ErrBadSignature, ""},
		{"b21", "", AlgRSAPSSSHA512, 1618884473 + 30, ErrNotCovered, ""},
		{"b22", "", AlgRSAPSSSHA512, 1618884473 + 30, ErrNotCovered, ""},
		{"sec4-3", "proxy_sig", AlgRSAv15SHA256, 1618884480 + 10, nil, "test-key-rsa"},
		// Without a label, sig1 comes first and is usable as far as
		// can be told before a key lookup, whose key is not RSA.
		{"sec4-3", "", AlgRSAv15SHA256, 1618884480 + 10, ErrKey, ""},
		{"sec4-3", "proxy_sig", AlgRSAv15SHA256, 1618884540 + 3601, ErrExpired, ""},
		{"b23", "", AlgRSAPSSSHA512, 1618884473 + 66*60, ErrExpired, ""},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.label+"/"+c.defaultAlg, func(t *testing.T) {
			r, body, _ := readVector(t, c.name)
			res, err := verify(r, body, Options{Key: lookup, Now: at(c.now), Label: c.label}, c.defaultAlg)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.KeyID != c.wantKey {
				t.Fatalf("KeyID = %q, want %q", res.KeyID, c.wantKey)
			}
		})
	}
}

// TestFieldValues checks RFC 9421 §2.1's examples of field values:
// trimmed, obsolete folding replaced, repeated lines joined, empty kept.
func TestFieldValues(t *testing.T) {
	raw := "GET / HTTP/1.1\r\n" +
		"Host: www.example.com\r\n" +
		"Date: Tue, 20 Apr 2021 02:07:56 GMT\r\n" +
		"X-OWS-Header:   Leading and trailing whitespace.   \r\n" +
		"X-Obs-Fold-Header: Obsolete\r\n    line folding.\r\n" +
		"Cache-Control: max-age=60\r\n" +
		"Cache-Control:    must-revalidate\r\n" +
		"Example-Dict:  a=1,    b=2;x=1;y=2,   c=(a   b   c)\r\n" +
		"X-Empty-Header: \r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMessage(r, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"host":              "www.example.com",
		"date":              "Tue, 20 Apr 2021 02:07:56 GMT",
		"x-ows-header":      "Leading and trailing whitespace.",
		"x-obs-fold-header": "Obsolete line folding.",
		"cache-control":     "max-age=60, must-revalidate",
		"example-dict":      "a=1,    b=2;x=1;y=2,   c=(a   b   c)",
		"x-empty-header":    "",
	}
	for name, w := range want {
		got, err := m.componentValue(name, nil)
		if err != nil || got != w {
			t.Errorf("%s = %q, %v; want %q", name, got, err, w)
		}
	}
	if got := r.Header.Values("Cache-Control"); got[1] != "must-revalidate" {
		t.Errorf("the request's header was changed: %q", got)
	}
	if _, err := m.componentValue("x-absent", nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("absent field: %v", err)
	}
}

// TestDerivedComponents checks RFC 9421 §2.2's examples.
func TestDerivedComponents(t *testing.T) {
	req := func(line string) *http.Request {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(line + " HTTP/1.1\r\nHost: www.example.com\r\n\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		line, base, name, param, want string
	}{
		{"POST /path?param=value", "https://www.example.com", "@target-uri", "", "https://www.example.com/path?param=value"},
		{"POST /path?param=value", "", "@target-uri", "", "http://www.example.com/path?param=value"},
		{"POST /path?param=value", "HTTPS://WWW.Example.COM:443", "@target-uri", "", "https://www.example.com/path?param=value"},
		{"POST /path?param=value", "https://www.example.com:8443", "@authority", "", "www.example.com:8443"},
		{"POST /path?param=value", "", "@authority", "", "www.example.com"},
		{"POST /path?param=value", "", "@scheme", "", "http"},
		{"POST /path?param=value", "https://www.example.com", "@scheme", "", "https"},
		{"POST /path?param=value", "", "@method", "", "POST"},
		{"POST /path?param=value", "", "@request-target", "", "/path?param=value"},
		{"GET https://www.example.com/path?param=value", "", "@request-target", "", "https://www.example.com/path?param=value"},
		{"GET https://www.example.com/path?param=value", "", "@target-uri", "", "https://www.example.com/path?param=value"},
		{"GET https://www.example.com/path?param=value", "", "@path", "", "/path"},
		{"GET /path?param=value", "", "@path", "", "/path"},
		{"GET /p%61th/x?y", "", "@path", "", "/p%61th/x"},
		{"GET /path?param=value&foo=bar&baz=bat%2Dman", "", "@query", "", "?param=value&foo=bar&baz=bat%2Dman"},
		{"POST /path?queryString", "", "@query", "", "?queryString"},
		{"POST /path", "", "@query", "", "?"},
		{"GET /path?param=value&foo=bar&baz=batman&qux=", "", "@query-param", "baz", "batman"},
		{"GET /path?param=value&foo=bar&baz=batman&qux=", "", "@query-param", "qux", ""},
		{"GET /path?param=value&foo=bar&baz=batman&qux=", "", "@query-param", "param", "value"},
		{"GET /parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something", "", "@query-param", "var", "this%20is%20a%20big%0Amultiline%20value"},
		{"GET /parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something", "", "@query-param", "bar", "with%20plus%20whitespace"},
		{"GET /parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something", "", "@query-param", "fa%C3%A7ade%22%3A%20", "something"},
	}
	for _, c := range cases {
		m, err := newMessage(req(c.line), c.base)
		if err != nil {
			t.Fatal(err)
		}
		var p = newNameParams(c.param)
		got, err := m.componentValue(c.name, p)
		if err != nil || got != c.want {
			t.Errorf("%s %s (base %q): %q, %v; want %q", c.line, c.name, c.base, got, err, c.want)
		}
	}
	for _, line := range []string{"GET /path?a=1", "GET /path?a=1&b=2&a=3"} {
		m, _ := newMessage(req(line), "")
		if _, err := m.componentValue("@query-param", newNameParams("b")); line == "GET /path?a=1" && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: absent parameter: %v", line, err)
		}
		if _, err := m.componentValue("@query-param", newNameParams("a")); line != "GET /path?a=1" && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: repeated parameter: %v", line, err)
		}
	}
	if _, err := newMessage(req("GET /"), "ftp://example.com"); err == nil {
		t.Error("an ftp BaseURL was taken")
	}
}

// ---- a test signer, shaped like the senders crieur meets ----

const (
	testKeyID = "https://remote.example/users/alice#main-key"
	inboxURL  = "https://blog.example/inbox"
)

// testSigner signs a request the way a remote server does. It builds the
// signature base on its own, with plain string formatting, so that a
// mistake in the verifier's base is not mirrored here.
type testSigner struct {
	key        *rsa.PrivateKey
	keyID      string
	label      string   // "sig1" when empty
	components []string // covered component names, in order
	alg        string   // the alg parameter; omitted when empty
	signWith   string   // algorithm used to sign; alg, else rsa-v1_5-sha256
	created    time.Time
	expires    time.Time // omitted when zero
	nonce, tag string
	order      []string // parameter order; created, keyid, alg, expires, nonce, tag when nil
	digest     string   // "sha-256" when empty, "sha-512", "both", or "none"
}

// mastodon is shaped like Mastodon's RFC 9421 requests (Linzer's defaults:
// label sig1, created then keyid, no alg) and covers what Mastodon
// requires of a POST.
func mastodon(key *rsa.PrivateKey, now time.Time) testSigner {
	return testSigner{key: key, keyID: testKeyID, created: now,
		components: []string{"@method", "@target-uri", "content-digest"}}
}

// wordpress is shaped like the WordPress ActivityPub plugin's requests
// (Http_Message_Signature::sign): label wp, @method @target-uri
// @authority content-digest, created;keyid;alg="rsa-v1_5-sha256".
func wordpress(key *rsa.PrivateKey, now time.Time) testSigner {
	return testSigner{key: key, keyID: testKeyID, created: now, label: "wp", alg: AlgRSAv15SHA256,
		components: []string{"@method", "@target-uri", "@authority", "content-digest"}}
}

// fedify is shaped like Fedify's (signRequestRfc9421): label sig1,
// @method @target-uri @authority host date content-digest,
// alg;keyid;created.
func fedify(key *rsa.PrivateKey, now time.Time) testSigner {
	return testSigner{key: key, keyID: testKeyID, created: now, alg: AlgRSAv15SHA256,
		order:      []string{"alg", "keyid", "created"},
		components: []string{"@method", "@target-uri", "@authority", "host", "date", "content-digest"}}
}

// input is the Signature-Input member value (the inner list), canonical.
func (s testSigner) input() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range s.components {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(c))
	}
	b.WriteByte(')')
	order := s.order
	if order == nil {
		order = []string{"created", "keyid", "alg", "expires", "nonce", "tag"}
	}
	for _, p := range order {
		switch {
		case p == "created" && !s.created.IsZero():
			fmt.Fprintf(&b, ";created=%d", s.created.Unix())
		case p == "keyid" && s.keyID != "":
			fmt.Fprintf(&b, ";keyid=%q", s.keyID)
		case p == "alg" && s.alg != "":
			fmt.Fprintf(&b, ";alg=%q", s.alg)
		case p == "expires" && !s.expires.IsZero():
			fmt.Fprintf(&b, ";expires=%d", s.expires.Unix())
		case p == "nonce" && s.nonce != "":
			fmt.Fprintf(&b, ";nonce=%q", s.nonce)
		case p == "tag" && s.tag != "":
			fmt.Fprintf(&b, ";tag=%q", s.tag)
		}
	}
	return b.String()
}

// sign adds Content-Digest (unless digest is "none"), Signature-Input and
// Signature to r, which is sent to target.
func (s testSigner) sign(t testing.TB, r *http.Request, target string, body []byte) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	switch s.digest {
	case "", "sha-256":
		h := sha256.Sum256(body)
		r.Header.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(h[:])+":")
	case "sha-512":
		h := sha512.Sum512(body)
		r.Header.Set("Content-Digest", "sha-512=:"+base64.StdEncoding.EncodeToString(h[:])+":")
	case "both":
		h1, h2 := sha256.Sum256(body), sha512.Sum512(body)
		r.Header.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(h1[:])+":, sha-512=:"+base64.StdEncoding.EncodeToString(h2[:])+":")
	}
	var base strings.Builder
	for _, c := range s.components {
		var v string
		switch c {
		case "@method":
			v = r.Method
		case "@target-uri":
			v = target
		case "@authority":
			v = u.Host
		case "@path":
			v = u.EscapedPath()
		case "@query":
			v = "?" + u.RawQuery
		case "@request-target":
			v = u.RequestURI()
		case "host":
			v = u.Host
		default:
			v = r.Header.Get(c)
		}
		fmt.Fprintf(&base, "%q: %s\n", c, v)
	}
	input := s.input()
	fmt.Fprintf(&base, "\"@signature-params\": %s", input)

	var sig []byte
	alg := s.signWith
	if alg == "" {
		alg = s.alg
	}
	switch alg {
	case AlgRSAPSSSHA512:
		h := sha512.Sum512([]byte(base.String()))
		sig, err = rsa.SignPSS(rand.Reader, s.key, crypto.SHA512, h[:], &rsa.PSSOptions{SaltLength: 64, Hash: crypto.SHA512})
	default:
		h := sha256.Sum256([]byte(base.String()))
		sig, err = rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, h[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	label := s.label
	if label == "" {
		label = "sig1"
	}
	r.Header.Add("Signature-Input", label+"="+input)
	r.Header.Add("Signature", label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
}

// inboxPost is a POST to the inbox as crieur's server sees it: request
// line /inbox, Host blog.example, TLS terminated in front.
func inboxPost(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/inbox", bytes.NewReader(body))
	r.Host = "blog.example"
	r.Header.Set("Content-Type", "application/activity+json")
	r.Header.Set("Date", time.Unix(testNow, 0).UTC().Format(http.TimeFormat))
	return r
}

const testNow = 1765000000 // a fixed clock for the tests

var follow = []byte(`{"@context":"https://www.w3.org/ns/activitystreams","id":"https://remote.example/follows/1","type":"Follow","actor":"https://remote.example/users/alice","object":"https://blog.example/actor"}`)

type fixture struct {
	key  *rsa.PrivateKey
	now  time.Time
	opts Options
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{key: rfcRSAKey(t), now: time.Unix(testNow, 0)}
	f.opts = Options{
		Key: func(_ context.Context, id string) (*PublicKey, error) {
			if id != testKeyID {
				return nil, fmt.Errorf("no key %q", id)
			}
			return testKey(t, &f.key.PublicKey), nil
		},
		Now:     func() time.Time { return f.now },
		BaseURL: "https://blog.example",
	}
	return f
}

// TestAcceptsRealShapes signs requests as Mastodon, WordPress and Fedify
// do, and in the other forms the RFC allows, and verifies them.
func TestAcceptsRealShapes(t *testing.T) {
	f := newFixture(t)
	key, now := f.key, f.now
	withQuery := "https://blog.example/inbox?x=1&y=two"
	cases := []struct {
		name      string
		s         testSigner
		method    string
		target    string
		body      []byte
		wantLabel string
		wantAlg   string
	}{
		{"mastodon", mastodon(key, now), "POST", inboxURL, follow, "sig1", AlgRSAv15SHA256},
		{"wordpress", wordpress(key, now), "POST", inboxURL, follow, "wp", AlgRSAv15SHA256},
		{"fedify", fedify(key, now), "POST", inboxURL, follow, "sig1", AlgRSAv15SHA256},
		{"rsa-pss-sha512", func() testSigner {
			s := mastodon(key, now)
			s.alg, s.digest = AlgRSAPSSSHA512, "sha-512"
			return s
		}(), "POST", inboxURL, follow, "sig1", AlgRSAPSSSHA512},
		{"both digests", func() testSigner { s := wordpress(key, now); s.digest = "both"; return s }(), "POST", inboxURL, follow, "wp", AlgRSAv15SHA256},
		{"authority and path", func() testSigner {
			s := mastodon(key, now)
			s.components = []string{"@method", "@authority", "@path", "content-digest", "content-type"}
			return s
		}(), "POST", inboxURL, follow, "sig1", AlgRSAv15SHA256},
		{"authority and request-target", func() testSigner {
			s := mastodon(key, now)
			s.components = []string{"@method", "@authority", "@request-target", "content-digest"}
			return s
		}(), "POST", withQuery, follow, "sig1", AlgRSAv15SHA256},
		{"query covered", func() testSigner {
			s := mastodon(key, now)
			s.components = []string{"@method", "@target-uri", "@query", "content-digest"}
			return s
		}(), "POST", withQuery, follow, "sig1", AlgRSAv15SHA256},
		{"expires, nonce, tag", func() testSigner {
			s := mastodon(key, now.Add(-2*time.Minute))
			s.expires, s.nonce, s.tag = now.Add(3*time.Minute), "n-0123", "fediverse"
			return s
		}(), "POST", inboxURL, follow, "sig1", AlgRSAv15SHA256},
		{"GET without body", func() testSigner {
			s := mastodon(key, now)
			s.components, s.digest = []string{"@method", "@target-uri"}, "none"
			return s
		}(), "GET", "https://blog.example/actor", nil, "sig1", AlgRSAv15SHA256},
		{"empty POST body", mastodon(key, now), "POST", inboxURL, []byte{}, "sig1", AlgRSAv15SHA256},
		{"created 65 minutes ago", mastodon(key, now.Add(-65*time.Minute)), "POST", inboxURL, follow, "sig1", AlgRSAv15SHA256},
		{"created 60 minutes ahead", mastodon(key, now.Add(60*time.Minute)), "POST", inboxURL, follow, "sig1", AlgRSAv15SHA256},
		{"expired less than the skew ago", func() testSigner {
			s := mastodon(key, now.Add(-30*time.Minute))
			s.expires = now.Add(-25 * time.Minute)
			return s
		}(), "POST", inboxURL, follow, "sig1", AlgRSAv15SHA256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, _ := url.Parse(c.target)
			r := httptest.NewRequest(c.method, u.RequestURI(), bytes.NewReader(c.body))
			r.Host = "blog.example"
			r.Header.Set("Content-Type", "application/activity+json")
			r.Header.Set("Date", now.UTC().Format(http.TimeFormat))
			c.s.sign(t, r, c.target, c.body)
			res, err := VerifyRFC9421(r, c.body, f.opts)
			if err != nil {
				t.Fatalf("refused: %v\nSignature-Input: %s", err, r.Header.Get("Signature-Input"))
			}
			if res.KeyID != testKeyID || res.Label != c.wantLabel || res.Alg != c.wantAlg {
				t.Fatalf("result %+v", res)
			}
			if res.Created.Unix() != c.s.created.Unix() || res.Nonce != c.s.nonce || res.Tag != c.s.tag || len(res.Signature) != 256 {
				t.Fatalf("result %+v", res)
			}
			if c.s.expires.IsZero() != res.Expires.IsZero() {
				t.Fatalf("expires %v", res.Expires)
			}
		})
	}
}

// TestNonCanonicalInput: the header may have spaces and line breaks
// between members that the signer did not sign; the base uses the
// canonical serialisation.
func TestNonCanonicalInput(t *testing.T) {
	f := newFixture(t)
	r := inboxPost(follow)
	mastodon(f.key, f.now).sign(t, r, inboxURL, follow)
	in := r.Header.Get("Signature-Input")
	loose := strings.Replace(strings.Replace(in, "(", "(  ", 1), `" "`, `"   "`, -1)
	r.Header.Set("Signature-Input", loose)
	r.Header.Set("Signature", "  "+r.Header.Get("Signature"))
	if _, err := VerifyRFC9421(r, follow, f.opts); err != nil {
		t.Fatalf("%s: %v", loose, err)
	}
}

// TestMultipleSignatures: the first usable signature is the one verified,
// or the one Options.Label names.
func TestMultipleSignatures(t *testing.T) {
	f := newFixture(t)
	other := anotherKey(t)

	// An unusable signature first (hmac), the real one second.
	r := inboxPost(follow)
	bad := mastodon(f.key, f.now)
	bad.label, bad.alg = "proxy", "hmac-sha256"
	bad.sign(t, r, inboxURL, follow)
	good := wordpress(f.key, f.now)
	good.sign(t, r, inboxURL, follow)
	res, err := VerifyRFC9421(r, follow, f.opts)
	if err != nil || res.Label != "wp" {
		t.Fatalf("%+v, %v", res, err)
	}

	// Two usable ones, the first by a key that does not verify: refused,
	// one key lookup per request; the label picks the second.
	r = inboxPost(follow)
	first := mastodon(other, f.now)
	first.label = "a"
	first.sign(t, r, inboxURL, follow)
	wordpress(f.key, f.now).sign(t, r, inboxURL, follow)
	lookups := 0
	opts := f.opts
	opts.Key = func(ctx context.Context, id string) (*PublicKey, error) {
		lookups++
		return f.opts.Key(ctx, id)
	}
	if _, err := VerifyRFC9421(r, follow, opts); !errors.Is(err, ErrBadSignature) || lookups != 1 {
		t.Fatalf("err %v after %d lookups", err, lookups)
	}
	opts.Label = "wp"
	if res, err := VerifyRFC9421(r, follow, opts); err != nil || res.Label != "wp" {
		t.Fatalf("%+v, %v", res, err)
	}
	opts.Label = "nope"
	if _, err := VerifyRFC9421(r, follow, opts); !errors.Is(err, ErrNoSignature) {
		t.Fatalf("absent label: %v", err)
	}

	// None usable: the first one's error.
	r = inboxPost(follow)
	old := mastodon(f.key, f.now.Add(-2*time.Hour))
	old.sign(t, r, inboxURL, follow)
	noDigest := wordpress(f.key, f.now)
	noDigest.components = []string{"@method", "@target-uri"}
	noDigest.sign(t, r, inboxURL, follow)
	if _, err := VerifyRFC9421(r, follow, f.opts); !errors.Is(err, ErrExpired) {
		t.Fatalf("err %v", err)
	}
}

// TestRefetch: a key that fails is fetched once more (key rotation).
func TestRefetch(t *testing.T) {
	f := newFixture(t)
	r := inboxPost(follow)
	mastodon(f.key, f.now).sign(t, r, inboxURL, follow)
	opts := f.opts
	right := opts.Key
	opts.Key = func(context.Context, string) (*PublicKey, error) { return testKey(t, &anotherKey(t).PublicKey), nil }
	if _, err := VerifyRFC9421(r, follow, opts); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("stale key without refetch: %v", err)
	}
	refetched := 0
	opts.Refetch = func(ctx context.Context, id string) (*PublicKey, error) { refetched++; return right(ctx, id) }
	if _, err := VerifyRFC9421(r, follow, opts); err != nil || refetched != 1 {
		t.Fatalf("%v, %d refetches", err, refetched)
	}
	opts.Refetch = func(context.Context, string) (*PublicKey, error) { return nil, errors.New("gone") }
	if _, err := VerifyRFC9421(r, follow, opts); !errors.Is(err, ErrKey) {
		t.Fatalf("failed refetch: %v", err)
	}
}

// TestServerRoundTrip sends a signed request through a real server on
// loopback, where Go moves Host out of the header map and the request
// line is what the client sent.
func TestServerRoundTrip(t *testing.T) {
	f := newFixture(t)
	var gotErr error
	var got *Result
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		opts := f.opts
		opts.BaseURL = "http://" + r.Host
		got, gotErr = VerifyRFC9421(r, body, opts)
	}))
	defer srv.Close()
	target := srv.URL + "/inbox?page=1"
	req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(follow))
	s := fedify(f.key, f.now)
	s.components = append(s.components, "@query", "@path", "content-length")
	req.Header.Set("Date", f.now.UTC().Format(http.TimeFormat))
	req.Header.Set("Content-Length", strconv.Itoa(len(follow)))
	s.sign(t, req, target, follow)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotErr != nil || got.KeyID != testKeyID {
		t.Fatalf("%+v, %v", got, gotErr)
	}
}

// TestRefusals: every way a signature must be refused, with its cause.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	key, now := f.key, f.now
	other := anotherKey(t)
	sum := func(b []byte) string { h := sha256.Sum256(b); return base64.StdEncoding.EncodeToString(h[:]) }

	type tc struct {
		name   string
		signer testSigner
		// edit changes the signed request (and may return another body).
		edit func(r *http.Request, body []byte) []byte
		want error
	}
	m := func(edit func(*testSigner)) testSigner { s := mastodon(key, now); edit(&s); return s }
	setH := func(name, v string) func(*http.Request, []byte) []byte {
		return func(r *http.Request, b []byte) []byte { r.Header.Set(name, v); return b }
	}
	cases := []tc{
		{"tampered body", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			return bytes.Replace(b, []byte("Follow"), []byte("Undo"), 1)
		}, ErrDigest},
		{"tampered digest matching a tampered body", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			nb := bytes.Replace(b, []byte("Follow"), []byte("Undo"), 1)
			r.Header.Set("Content-Digest", "sha-256=:"+sum(nb)+":")
			return nb
		}, ErrBadSignature},
		{"digest of another body", mastodon(key, now), setH("Content-Digest", "sha-256=:"+sum([]byte("x"))+":"), ErrDigest},
		{"no Content-Digest header", mastodon(key, now), func(r *http.Request, b []byte) []byte { r.Header.Del("Content-Digest"); return b }, ErrDigest},
		{"Content-Digest without sha-256 or sha-512", mastodon(key, now), setH("Content-Digest", "md5=:"+base64.StdEncoding.EncodeToString(make([]byte, 16))+":"), ErrDigest},
		{"Content-Digest sha-256 too short", mastodon(key, now), setH("Content-Digest", "sha-256=:AAAA:"), ErrDigest},
		{"Content-Digest not a dictionary", mastodon(key, now), setH("Content-Digest", "SHA-256="+sum(follow)), ErrDigest},
		{"Content-Digest sha-256 not bytes", mastodon(key, now), setH("Content-Digest", `sha-256="`+sum(follow)+`"`), ErrDigest},
		{"Content-Digest good sha-256 bad sha-512", m(func(s *testSigner) { s.digest = "both" }), func(r *http.Request, b []byte) []byte {
			r.Header.Set("Content-Digest", "sha-256=:"+sum(b)+":, sha-512=:"+base64.StdEncoding.EncodeToString(make([]byte, 64))+":")
			return b
		}, ErrDigest},
		{"Content-Digest member twice", mastodon(key, now), setH("Content-Digest", "sha-256=:"+sum([]byte("x"))+":, sha-256=:"+sum(follow)+":"), ErrDigest},
		{"content-digest not covered", m(func(s *testSigner) { s.components = []string{"@method", "@target-uri"} }), nil, ErrNotCovered},
		{"@method not covered", m(func(s *testSigner) { s.components = []string{"@target-uri", "content-digest"} }), nil, ErrNotCovered},
		{"target not covered", m(func(s *testSigner) { s.components = []string{"@method", "@authority", "content-digest"} }), nil, ErrNotCovered},
		{"path without authority", m(func(s *testSigner) { s.components = []string{"@method", "@path", "content-digest"} }), nil, ErrNotCovered},
		{"no components", m(func(s *testSigner) { s.components = nil }), nil, ErrNotCovered},
		{"no created", m(func(s *testSigner) { s.created = time.Time{} }), nil, ErrNotCovered},
		{"no keyid", m(func(s *testSigner) { s.keyID = "" }), nil, ErrMalformed},
		{"wrong key", mastodon(other, now), nil, ErrBadSignature},
		{"unknown keyid", m(func(s *testSigner) { s.keyID = "https://evil.example/key" }), nil, ErrKey},
		{"expired", m(func(s *testSigner) {
			s.created, s.expires = now.Add(-64*time.Minute), now.Add(-62*time.Minute)
		}), nil, ErrExpired},
		{"created too old", mastodon(key, now.Add(-65*time.Minute-time.Second)), nil, ErrExpired},
		{"created in the future", mastodon(key, now.Add(60*time.Minute+time.Second)), nil, ErrFuture},
		{"expires before created", m(func(s *testSigner) { s.expires = now.Add(-time.Second) }), nil, ErrMalformed},
		{"unknown alg hmac", m(func(s *testSigner) { s.alg = "hmac-sha256" }), nil, ErrAlgorithm},
		{"unknown alg ed25519", m(func(s *testSigner) { s.alg = "ed25519" }), nil, ErrAlgorithm},
		{"unknown alg rsa-v1_5-sha512", m(func(s *testSigner) { s.alg = "rsa-v1_5-sha512" }), nil, ErrAlgorithm},
		{"alg says pss, signed v1.5", m(func(s *testSigner) { s.alg, s.signWith = AlgRSAPSSSHA512, AlgRSAv15SHA256 }), nil, ErrBadSignature},
		{"alg absent, signed pss", m(func(s *testSigner) { s.signWith = AlgRSAPSSSHA512 }), nil, ErrBadSignature},
		{"alg changed after signing", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			r.Header.Set("Signature-Input", r.Header.Get("Signature-Input")+`;alg="rsa-pss-sha512"`)
			return b
		}, ErrBadSignature},
		{"created changed after signing", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", strings.Replace(in, fmt.Sprint(now.Unix()), fmt.Sprint(now.Unix()+1), 1))
			return b
		}, ErrBadSignature},
		{"method changed", mastodon(key, now), func(r *http.Request, b []byte) []byte { r.Method = http.MethodPut; return b }, ErrBadSignature},
		{"sent to another path", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			r.RequestURI = "/users/bob/inbox"
			return b
		}, ErrBadSignature},
		{"covered header absent", m(func(s *testSigner) { s.components = append(s.components, "x-custom") }), nil, ErrMalformed},
		{"no Signature-Input", mastodon(key, now), func(r *http.Request, b []byte) []byte { r.Header.Del("Signature-Input"); return b }, ErrNoSignature},
		{"no Signature", mastodon(key, now), func(r *http.Request, b []byte) []byte { r.Header.Del("Signature"); return b }, ErrMalformed},
		{"Signature-Input not a dictionary", mastodon(key, now), setH("Signature-Input", `sig1=("@method"`), ErrMalformed},
		{"Signature-Input member not an inner list", mastodon(key, now), setH("Signature-Input", `sig1="@method";created=1;keyid="k"`), ErrMalformed},
		{"Signature-Input trailing comma", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			r.Header.Set("Signature-Input", r.Header.Get("Signature-Input")+",")
			return b
		}, ErrMalformed},
		{"Signature not a byte sequence", mastodon(key, now), setH("Signature", `sig1="abc"`), ErrMalformed},
		{"Signature empty byte sequence", mastodon(key, now), setH("Signature", `sig1=::`), ErrMalformed},
		{"Signature bad base64", mastodon(key, now), setH("Signature", `sig1=:!!:`), ErrMalformed},
		{"draft-cavage Signature beside Signature-Input", mastodon(key, now), setH("Signature", `keyId="`+testKeyID+`",algorithm="rsa-sha256",headers="(request-target) host date digest",signature="AAAA"`), ErrMalformed},
		{"label of Signature-Input missing from Signature", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), "sig1=", "sig2=", 1))
			return b
		}, ErrMalformed},
		{"duplicate label in Signature-Input", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", in+`, sig1=("@method");created=1;keyid="x"`)
			return b
		}, ErrMalformed},
		{"duplicate label in Signature", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			r.Header.Set("Signature", r.Header.Get("Signature")+", sig1=:AAAA:")
			return b
		}, ErrMalformed},
		{"duplicate label across header lines", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			r.Header.Add("Signature-Input", r.Header.Get("Signature-Input"))
			return b
		}, ErrMalformed},
		{"created not an integer", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", strings.Replace(in, fmt.Sprintf("created=%d", now.Unix()), fmt.Sprintf(`created="%d"`, now.Unix()), 1))
			return b
		}, ErrMalformed},
		{"created a decimal", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", strings.Replace(in, fmt.Sprintf("created=%d", now.Unix()), fmt.Sprintf(`created=%d.5`, now.Unix()), 1))
			return b
		}, ErrMalformed},
		{"keyid a token", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", strings.Replace(in, `keyid="`+testKeyID+`"`, "keyid=k1", 1))
			return b
		}, ErrMalformed},
		{"component a token", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", strings.Replace(in, `"content-digest"`, "content-digest", 1))
			return b
		}, ErrMalformed},
		{"component in upper case", m(func(s *testSigner) { s.components = []string{"@method", "@target-uri", "Content-Digest"} }), nil, ErrMalformed},
		{"unknown derived component", m(func(s *testSigner) { s.components = append(s.components, "@foo") }), nil, ErrMalformed},
		{"response-only component", m(func(s *testSigner) { s.components = append(s.components, "@status") }), nil, ErrMalformed},
		{"@signature-params covered", m(func(s *testSigner) { s.components = append(s.components, "@signature-params") }), nil, ErrMalformed},
		{"component covered twice", m(func(s *testSigner) { s.components = append(s.components, "@method") }), nil, ErrMalformed},
		{"component parameter sf", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", strings.Replace(in, `"content-digest"`, `"content-digest";sf`, 1))
			return b
		}, ErrMalformed},
		{"@query-param without name", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", strings.Replace(in, `"@method"`, `"@method" "@query-param"`, 1))
			return b
		}, ErrMalformed},
		{"too many components", m(func(s *testSigner) {
			for i := 0; i < maxComponents; i++ {
				s.components = append(s.components, fmt.Sprintf("x-h%d", i))
			}
		}), nil, ErrMalformed},
		{"too many signatures", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			for i := 0; i < maxSignatures; i++ {
				r.Header.Add("Signature-Input", fmt.Sprintf(`s%d=("@method");created=1;keyid="k"`, i))
				r.Header.Add("Signature", fmt.Sprintf(`s%d=:AAAA:`, i))
			}
			return b
		}, ErrMalformed},
		{"Signature-Input too long", mastodon(key, now), func(r *http.Request, b []byte) []byte {
			r.Header.Set("Signature-Input", r.Header.Get("Signature-Input")+`;x="`+strings.Repeat("a", maxFieldLen)+`"`)
			return b
		}, ErrMalformed},
		{"line break in a covered field", m(func(s *testSigner) { s.components = append(s.components, "x-nl") }), func(r *http.Request, b []byte) []byte {
			r.Header.Set("X-Nl", "a\nb")
			return b
		}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := inboxPost(follow)
			body := follow
			if c.name == "line break in a covered field" {
				r.Header.Set("X-Nl", "a")
			}
			c.signer.sign(t, r, inboxURL, body)
			if c.edit != nil {
				body = c.edit(r, append([]byte(nil), body...))
			}
			res, err := VerifyRFC9421(r, body, f.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v (%+v), want %v\nSignature-Input: %q", err, res, c.want, r.Header.Values("Signature-Input"))
			}
			if res != nil {
				t.Fatalf("a result with an error: %+v", res)
			}
		})
	}
}

func TestKeyLookupErrorIsWrapped(t *testing.T) {
	f := newFixture(t)
	r := inboxPost(follow)
	mastodon(f.key, f.now).sign(t, r, inboxURL, follow)
	cause := errors.New("host unreachable")
	opts := f.opts
	opts.Key = func(context.Context, string) (*PublicKey, error) { return nil, cause }
	if _, err := VerifyRFC9421(r, follow, opts); !errors.Is(err, ErrKey) || !errors.Is(err, cause) {
		t.Fatalf("err = %v", err)
	}
	opts.Key = func(context.Context, string) (*PublicKey, error) { return nil, nil }
	if _, err := VerifyRFC9421(r, follow, opts); !errors.Is(err, ErrKey) {
		t.Fatalf("nil key: %v", err)
	}
	opts.Key = nil
	if _, err := VerifyRFC9421(r, follow, opts); !errors.Is(err, ErrKey) {
		t.Fatalf("no lookup: %v", err)
	}
}

// TestNoKeyLookupBeforeCheapChecks: a request refused for its shape,
// window, coverage or digest never reaches the key lookup.
func TestNoKeyLookupBeforeCheapChecks(t *testing.T) {
	f := newFixture(t)
	opts := f.opts
	opts.Key = func(context.Context, string) (*PublicKey, error) {
		t.Error("key looked up")
		return nil, errors.New("no")
	}
	for _, s := range []testSigner{
		mastodon(f.key, f.now.Add(-3*time.Hour)),
		func() testSigner { s := mastodon(f.key, f.now); s.components = s.components[:2]; return s }(),
		func() testSigner { s := mastodon(f.key, f.now); s.alg = "ed25519"; return s }(),
	} {
		r := inboxPost(follow)
		s.sign(t, r, inboxURL, follow)
		if _, err := VerifyRFC9421(r, follow, opts); err == nil {
			t.Fatal("accepted")
		}
	}
	r := inboxPost(follow)
	mastodon(f.key, f.now).sign(t, r, inboxURL, follow)
	if _, err := VerifyRFC9421(r, []byte("other"), opts); !errors.Is(err, ErrDigest) {
		t.Fatal(err)
	}
}

func TestHasRFC9421(t *testing.T) {
	f := newFixture(t)
	r := inboxPost(follow)
	if HasRFC9421(r) {
		t.Fatal("unsigned request")
	}
	r.Header.Set("Signature", `keyId="k",signature="AAAA"`)
	if HasRFC9421(r) {
		t.Fatal("draft-cavage request")
	}
	r.Header.Del("Signature")
	mastodon(f.key, f.now).sign(t, r, inboxURL, follow)
	if !HasRFC9421(r) {
		t.Fatal("RFC 9421 request")
	}
}

func TestCountMembers(t *testing.T) {
	for s, want := range map[string]int{
		``:                              0,
		`a=1`:                           1,
		`a=1, b=2`:                      2,
		`a="x,y", b=("p" "q,r");k="s,"`: 2,
		`a="q\",", b`:                   2,
		`a=%"x,\", b=:YWJj:`:            2,
		`a=(1 2), b=(3), c`:             3,
	} {
		if got := countMembers(s); got != want {
			t.Errorf("countMembers(%q) = %d, want %d", s, got, want)
		}
	}
}
