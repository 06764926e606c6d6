package web

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// aliceKey is a remote sender's key, cached in the store by trustAlice, so
// that signed requests verify without any fetch.
var aliceKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

const (
	aliceActor = "https://remote.example/users/alice"
	aliceKeyID = aliceActor + "#main-key"
)

// trustAlice caches alice's key with her inboxes, as a first fetch would.
func (e *testEnv) trustAlice(t *testing.T) {
	t.Helper()
	pemText, err := signature.PublicKeyPEM(&aliceKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutRemoteKey(storage.RemoteKey{KeyID: aliceKeyID, Owner: aliceActor, PublicKeyPEM: pemText,
		Inbox: aliceActor + "/inbox", SharedInbox: "https://remote.example/inbox", Handle: "alice@remote.example",
		FetchedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// signedInboxRequest is a POST of body to path, signed by alice at the
// given offset from the test clock (distinct offsets, distinct signatures).
func (e *testEnv) signedInboxRequest(t *testing.T, path string, body []byte, ahead time.Duration) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/activity+json")
	s, err := signature.NewSigner(aliceKeyID, aliceKey(), func() time.Time { return testNow.Add(ahead) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SignRequest(req, body); err != nil {
		t.Fatal(err)
	}
	return req
}

func aliceFollow(n int) []byte {
	return fmt.Appendf(nil, `{"@context":"https://www.w3.org/ns/activitystreams","id":"https://remote.example/follows/%d",`+
		`"type":"Follow","actor":%q,"object":"https://crieur.example/@reports"}`, n, aliceActor)
}

func send(t *testing.T, req *http.Request) (int, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// rawPost writes a POST's head and the first part of its body on a new
// connection, and leaves the rest unsent.
func (e *testEnv) rawPost(t *testing.T, head http.Header, length int, part string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST /inbox HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", strings.TrimPrefix(e.url, "http://"), length)
	_ = head.Write(&b)
	b.WriteString("\r\n" + part)
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	return conn
}

// answer reads the status of the response on conn, waiting at most d: the
// bound only stops a broken test.
func answer(t *testing.T, conn net.Conn, d time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", d, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// An unsigned request is refused from its headers: the server answers
// without waiting for a body it will never read, so a flood of unsigned
// 1 MiB bodies costs it no memory.
func TestInboxRefusesUnsignedBeforeTheBody(t *testing.T) {
	e := newTestEnv(t)
	h := http.Header{"Content-Type": {"application/activity+json"}}
	conn := e.rawPost(t, h, 1<<20-1, `{"type":"Follow",`)
	if st := answer(t, conn, 10*time.Second); st != http.StatusUnauthorized {
		t.Fatalf("unsigned POST with its body unsent: %d, want 401", st)
	}
}

// Senders that trickle their bodies hold no slot: a real signed Follow is
// accepted while they wait, and they are cut off at the read deadline.
func TestInboxSlowSendersCostOnlyThemselves(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.InboxReadTimeout = 500 * time.Millisecond })
	e.trustAlice(t)
	// Forged but well-formed: the headers pass, the body never comes.
	var stalled []net.Conn
	for i := range 20 {
		req := e.signedInboxRequest(t, "/inbox", aliceFollow(100+i), time.Duration(i)*time.Second)
		stalled = append(stalled, e.rawPost(t, req.Header, len(aliceFollow(100+i)), "{"))
	}
	status, _ := send(t, e.signedInboxRequest(t, "/inbox", aliceFollow(1), time.Minute))
	if status != http.StatusAccepted {
		t.Fatalf("real Follow while 20 senders stall: %d, want 202", status)
	}
	if _, err := e.store.Follower(aliceActor); err != nil {
		t.Fatalf("follower not stored: %v", err)
	}
	for _, conn := range stalled {
		if st := answer(t, conn, 10*time.Second); st != http.StatusBadRequest {
			t.Errorf("stalled sender answered %d after the read deadline, want 400", st)
		}
	}
}

// Bodies being read never hold more than the budget: beyond it a request
// is answered 503 with Retry-After and changes nothing.
func TestInboxBodyBudget(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.InboxBodyBudget = 16 << 10 })
	e.trustAlice(t)
	pad := `,"summary":"` + strings.Repeat("x", 40<<10) + `"}`
	big := append(bytes.TrimSuffix(aliceFollow(1), []byte("}")), pad...)
	status, h := send(t, e.signedInboxRequest(t, "/inbox", big, 0))
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("body over the budget: %d, Retry-After %q; want 503 with Retry-After", status, h.Get("Retry-After"))
	}
	if _, err := e.store.Follower(aliceActor); err == nil {
		t.Fatal("a follower was stored from a refused request")
	}
	if status, _ := send(t, e.signedInboxRequest(t, "/inbox", aliceFollow(2), time.Second)); status != http.StatusAccepted {
		t.Fatalf("small Follow after: %d", status)
	}
}

// A signed request sent again is a replay: refused, nothing changes.
func TestInboxRefusesReplay(t *testing.T) {
	e := newTestEnv(t)
	e.trustAlice(t)
	req := e.signedInboxRequest(t, "/inbox", aliceFollow(1), 0)
	if status, _ := send(t, req); status != http.StatusAccepted {
		t.Fatalf("Follow: %d\n%s", status, e.logs)
	}
	jobs, _ := e.store.PendingJobs()
	replay, err := http.NewRequest(http.MethodPost, req.URL.String(), bytes.NewReader(aliceFollow(1)))
	if err != nil {
		t.Fatal(err)
	}
	replay.Header = req.Header.Clone()
	if status, _ := send(t, replay); status != http.StatusUnauthorized {
		t.Fatalf("replayed Follow: %d, want 401", status)
	}
	if after, _ := e.store.PendingJobs(); len(after) != len(jobs) {
		t.Fatalf("replay queued %d more jobs", len(after)-len(jobs))
	}
}
