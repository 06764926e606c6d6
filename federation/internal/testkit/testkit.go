// Package testkit holds the small things every federation room's tests
// share: test keys, a settable clock, a log the tests can read, the
// loopback allowance and a canned answer. It imports nothing of ours, so
// any room's internal tests may use it. Only tests import it.
package testkit

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-fed/httpsig"
)

// keys are generated once per test binary, each on first use: RSA-2048
// generation is slow and the machine is shared.
var keys = func() [6]func() *rsa.PrivateKey {
	var ks [6]func() *rsa.PrivateKey
	for i := range ks {
		ks[i] = sync.OnceValue(func() *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			return k
		})
	}
	return ks
}()

// Key returns test key i, 0 to 5 (by convention 0 is crieur's, the others
// peers').
func Key(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	return keys[i]()
}

// Loopback lets the guarded client reach the tests' servers.
func Loopback() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

// Clock is a settable clock shared by storage and the rooms, so that tests
// move time instead of sleeping through backoffs.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	real bool
}

// NewClock starts at a fixed instant.
func NewClock() *Clock {
	return &Clock{t: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
}

// Now is the clock's time, or the wall clock's after FollowWallClock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now()
	}
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// FollowWallClock makes Now the wall clock's (tests of real timers).
func (c *Clock) FollowWallClock() {
	c.mu.Lock()
	c.real = true
	c.mu.Unlock()
}

// Log is a logger at debug level that tests can read while the code under
// test writes to it.
type Log struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Logger writes text records at debug level to l.
func (l *Log) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Status answers every request with code.
func Status(code int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(code) }
}

// CheckSignature verifies a request crieur sent with go-fed's own verifier,
// plus what go-fed leaves out: the exact signed header list and, for a
// POST, the Digest of body. It reads the header list itself rather than
// with crieur's parser, so the check is independent of the code under test.
func CheckSignature(r *http.Request, body []byte, pub *rsa.PublicKey) error {
	v, err := httpsig.NewVerifier(r)
	if err != nil {
		return err
	}
	if err := v.Verify(pub, httpsig.RSA_SHA256); err != nil {
		return err
	}
	want := "(request-target) host date"
	if r.Method == http.MethodPost {
		want += " digest"
		sum := sha256.Sum256(body)
		if got := r.Header.Get("Digest"); got != "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]) {
			return fmt.Errorf("digest %q does not match the body", got)
		}
	}
	var signed string
	for part := range strings.SplitSeq(r.Header.Get("Signature"), ",") {
		if k, v, ok := strings.Cut(part, "="); ok && k == "headers" {
			signed = strings.Trim(v, `"`)
		}
	}
	if signed != want {
		return fmt.Errorf("signed headers %q, want %q", signed, want)
	}
	return nil
}

// Context ends with the test, or after 30 s: a broken test fails instead
// of hanging on the network.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// SignRFC9421 signs r for target the way WordPress's ActivityPub plugin
// does (label wp; @method @target-uri @authority content-digest;
// created, keyid, alg rsa-v1_5-sha256), with a Content-Digest of body.
func SignRFC9421(t testing.TB, r *http.Request, target string, body []byte, keyID string, key *rsa.PrivateKey, created time.Time) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	r.Header.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
	params := fmt.Sprintf(`("@method" "@target-uri" "@authority" "content-digest");created=%d;keyid=%q;alg="rsa-v1_5-sha256"`,
		created.Unix(), keyID)
	base := fmt.Sprintf("\"@method\": %s\n\"@target-uri\": %s\n\"@authority\": %s\n\"content-digest\": %s\n\"@signature-params\": %s",
		r.Method, target, u.Host, r.Header.Get("Content-Digest"), params)
	h := sha256.Sum256([]byte(base))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Signature-Input", "wp="+params)
	r.Header.Set("Signature", "wp=:"+base64.StdEncoding.EncodeToString(sig)+":")
}
