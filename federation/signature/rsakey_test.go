package signature

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/go-fed/httpsig"
)

// requireOpenSSL skips a test that needs OpenSSL where libcrypto.so.3 is
// missing, unless CRIEUR_REQUIRE_OPENSSL is set (.ci/run sets it, so CI
// fails instead of skipping when the engine crieur runs with is broken).
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	version, err := openssl()
	if err != nil {
		if os.Getenv("CRIEUR_REQUIRE_OPENSSL") != "" {
			t.Fatalf("OpenSSL required (CRIEUR_REQUIRE_OPENSSL) but not available: %v", err)
		}
		t.Skipf("OpenSSL not available: %v", err)
	}
	return version
}

// TestOpenSSLSignsLikeGo: PKCS#1 v1.5 is deterministic, so OpenSSL must
// produce Go's bytes exactly, for every key size crieur may load.
func TestOpenSSLSignsLikeGo(t *testing.T) {
	requireOpenSSL(t)
	// A 3072-bit key too: a key file made by another tool may be larger,
	// and the signature buffer follows the key's size.
	big, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	keys := []*rsa.PrivateKey{testkit.Key(t, 0), testkit.Key(t, 1), testkit.Key(t, 2), big}
	for ki, key := range keys {
		o, err := newOpenSSLKey(key)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			sum := sha256.Sum256([]byte(fmt.Sprintf("message %d of key %d", i, ki)))
			want, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.signSHA256(sum[:])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("key %d message %d: OpenSSL's signature differs from Go's", ki, i)
			}
		}
	}
}

// TestOpenSSLRefusesBadDigest: anything but a SHA-256 digest is refused
// before it reaches C.
func TestOpenSSLRefusesBadDigest(t *testing.T) {
	requireOpenSSL(t)
	o, err := newOpenSSLKey(testkit.Key(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range [][]byte{nil, make([]byte, 20), make([]byte, 64)} {
		if _, err := o.signSHA256(d); err == nil {
			t.Errorf("digest of %d bytes signed", len(d))
		}
	}
}

// TestOpenSSLConcurrent: one key signing on many goroutines at once, as the
// signing pool does; run with -race.
func TestOpenSSLConcurrent(t *testing.T) {
	requireOpenSSL(t)
	key := testkit.Key(t, 0)
	o, err := newOpenSSLKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*10)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", g, i)))
				sig, err := o.signSHA256(sum[:])
				if err == nil {
					err = rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRSAEngineChoice: what each setting signs with, and what happens
// where OpenSSL is missing (a build without cgo, a machine without
// libcrypto.so.3): auto falls back and says why, openssl refuses to start.
func TestRSAEngineChoice(t *testing.T) {
	key := testkit.Key(t, 0)
	g, err := newRSAKey(key, RSAGo)
	if err != nil || g.Engine() != "Go crypto/rsa" || g.fallback != "" {
		t.Fatalf("go: %v %q %q", err, g.Engine(), g.fallback)
	}
	version, loadErr := openssl()
	auto, err := newRSAKey(key, RSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	o, oErr := newRSAKey(key, RSAOpenSSL)
	if loadErr == nil {
		if auto.Engine() != version || !strings.HasPrefix(version, "OpenSSL 3") || auto.fallback != "" {
			t.Errorf("auto with OpenSSL available: engine %q, fallback %q", auto.Engine(), auto.fallback)
		}
		if oErr != nil || o.Engine() != version {
			t.Errorf("openssl: %v", oErr)
		}
	} else {
		if auto.Engine() != "Go crypto/rsa" || auto.fallback != loadErr.Error() {
			t.Errorf("auto without OpenSSL: engine %q, fallback %q, want Go and %q", auto.Engine(), auto.fallback, loadErr)
		}
		if oErr == nil || !strings.Contains(oErr.Error(), loadErr.Error()) {
			t.Errorf("openssl without OpenSSL: %v, want an error saying %q", oErr, loadErr)
		}
	}
	for _, bad := range []string{"OpenSSL", "boring", " go"} {
		if _, err := ParseRSAEngine(bad); err == nil {
			t.Errorf("ParseRSAEngine(%q) accepted", bad)
		}
	}
	if e, err := ParseRSAEngine(""); err != nil || e != RSAAuto {
		t.Errorf(`ParseRSAEngine("") = %q, %v`, e, err)
	}
	if _, err := newRSAKey(key, "boring"); err == nil {
		t.Error("unknown engine accepted")
	}
}

// TestSignerEnginesAgree: the Signature header is the same byte for byte
// whichever engine signs, and the same as go-fed's own RSA path makes with
// crypto/rsa (what crieur sent before OpenSSL): a peer cannot tell them
// apart. The request verifies with VerifyKnown.
func TestSignerEnginesAgree(t *testing.T) {
	key := testkit.Key(t, 0)
	clock := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	const keyID = "https://crieur.example/@reports#main-key"
	body := []byte(`{"type":"Create","id":"https://crieur.example/activities/1"}`)
	newReq := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "https://remote.example:8443/users/a/inbox?x=1", bytes.NewReader(body))
		return req
	}
	// go-fed alone, with the key in Go.
	ref := newReq()
	ref.Header.Set("Host", ref.URL.Host)
	ref.Header.Set("Date", clock.Format(http.TimeFormat))
	gf, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256, postSignedHeaders, httpsig.Signature, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := gf.SignRequest(key, keyID, ref, body); err != nil {
		t.Fatal(err)
	}
	engines := []RSAEngine{RSAGo, RSAAuto}
	if _, err := openssl(); err == nil {
		engines = append(engines, RSAOpenSSL)
	}
	for _, e := range engines {
		s, err := NewSignerEngine(keyID, key, now, e)
		if err != nil {
			t.Fatal(err)
		}
		req := newReq()
		if err := s.SignRequest(req, body); err != nil {
			t.Fatal(err)
		}
		if got, want := req.Header.Get("Signature"), ref.Header.Get("Signature"); got != want {
			t.Errorf("%s: Signature\n%s\nwant go-fed's\n%s", e, got, want)
		}
		if got, want := req.Header.Get("Digest"), ref.Header.Get("Digest"); got != want {
			t.Errorf("%s: Digest %q, want %q", e, got, want)
		}
		if err := VerifyKnown(req, body, keyID, &key.PublicKey, clock); err != nil {
			t.Errorf("%s: %v", e, err)
		}
	}
}
