package inbox

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
)

// signedRequest signs body as p at now+ahead and returns the headers, so a
// test can send the very same request several times (a captured one).
func (c *protoCrieur) signedRequest(p *protoPeer, body []byte, ahead time.Duration) http.Header {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.InboxURL(), bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/activity+json")
	if err := p.signer(func() time.Time { return time.Now().Add(ahead) }).SignRequest(req, body); err != nil {
		c.t.Fatal(err)
	}
	return req.Header
}

// sendRaw sends body with exactly the headers h.
func (c *protoCrieur) sendRaw(h http.Header, body []byte) int {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.InboxURL(), bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// restart replaces the Inbox with a new one over the same store, as a
// restart of crieur does: what was only in memory is gone.
func (c *protoCrieur) restart() {
	c.t.Helper()
	in, err := New(Deps{Docs: c.svc.docs, Store: c.store, Signer: c.svc.signer, Client: c.svc.client, Logger: c.svc.log, Now: c.svc.now})
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.svc = in
	c.mu.Unlock()
}

// A captured Follow sent again is refused as a replay; after a restart,
// when the set of seen signatures is gone, a Follow signed before the Undo
// that ended the follow still subscribes nobody again.
func TestInboxReplayedFollowDoesNotResubscribe(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	follow := mustJSON(t, c.fixture("inbox_follow.json", p))
	captured := c.signedRequest(p, follow, 0)
	if st := c.sendRaw(captured, follow); st != http.StatusAccepted || c.followCount() != 1 {
		t.Fatalf("Follow: %d, %d followers", st, c.followCount())
	}
	before := c.snapshot()
	if st := c.sendRaw(captured, follow); st != http.StatusUnauthorized {
		t.Fatalf("replayed Follow: %d, want 401", st)
	}
	if after := c.snapshot(); len(after.Jobs) != len(before.Jobs) {
		t.Fatalf("the replay queued %d more Accepts", len(after.Jobs)-len(before.Jobs))
	}

	undo := mustJSON(t, c.fixture("inbox_undo_follow.json", p))
	if st := c.sendRaw(c.signedRequest(p, undo, time.Second), undo); st != http.StatusAccepted || c.followCount() != 0 {
		t.Fatalf("Undo: %d, %d followers", st, c.followCount())
	}
	c.restart()
	if st := c.sendRaw(captured, follow); st != http.StatusAccepted {
		t.Fatalf("replayed Follow after a restart: %d, want 202 (ignored)", st)
	}
	if n := c.followCount(); n != 0 {
		t.Fatalf("a Follow signed before the Undo subscribed alice again (%d followers)", n)
	}
	// A new Follow, signed after the Undo, subscribes her again.
	if st := c.sendRaw(c.signedRequest(p, follow, 2*time.Second), follow); st != http.StatusAccepted || c.followCount() != 1 {
		t.Fatalf("new Follow: %d, %d followers", st, c.followCount())
	}
}

// An Undo signed before the Follow that made the follower (a late retry or
// a captured one) does not unsubscribe it.
func TestInboxOlderUndoDoesNotUndoANewerFollow(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	follow := mustJSON(t, c.fixture("inbox_follow.json", p))
	undo := mustJSON(t, c.fixture("inbox_undo_follow.json", p))
	oldUndo := c.signedRequest(p, undo, 0)
	if st := c.sendRaw(c.signedRequest(p, follow, 10*time.Second), follow); st != http.StatusAccepted || c.followCount() != 1 {
		t.Fatalf("Follow: %d", st)
	}
	if st := c.sendRaw(oldUndo, undo); st != http.StatusAccepted {
		t.Fatalf("older Undo: %d, want 202 (ignored)", st)
	}
	if n := c.followCount(); n != 1 {
		t.Fatal("an Undo signed before the Follow removed the follower")
	}
}

// A follower whose actor names an inbox on another host is refused:
// crieur would otherwise send the Accept and every article to a third
// party's server on the sender's word.
func TestInboxRefusesAnInboxOnAnotherHost(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	victim := newProtoPeer(t, "victim", keyInActor, testkit.Key(t, 2), &c.key.PublicKey)
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	p.inboxURL = strings.Replace(victim.Inbox(), "127.0.0.1", "localhost", 1)
	before := c.snapshot()
	status, err := c.send(p, c.fixture("inbox_follow.json", p))
	if status != http.StatusForbidden || !errors.Is(err, federation.ErrForbidden) {
		t.Fatalf("Follow naming another host's inbox: %d %v, want 403", status, err)
	}
	if after := c.snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("state changed:\n%+v\n%+v", before, after)
	}
}

// With every slot taken, a verified request waits, then is answered 503
// with a Retry-After and changes nothing; a freed slot serves the next.
func TestInboxBusyAnswersRetryLater(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	c.svc.wait = 50 * time.Millisecond
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	for range cap(c.svc.slots) {
		c.svc.slots <- struct{}{}
	}
	status, err := c.send(p, c.fixture("inbox_follow.json", p))
	var retry *federation.RetryError
	if status != http.StatusServiceUnavailable || !errors.As(err, &retry) || retry.After <= 0 {
		t.Fatalf("Follow with every slot taken: %d %v, want 503 with a delay", status, err)
	}
	if c.followCount() != 0 {
		t.Fatal("a follower was stored without a slot")
	}
	<-c.svc.slots
	if status, err := c.send(p, c.fixture("inbox_follow.json", p)); status != http.StatusAccepted {
		t.Fatalf("Follow once a slot is free: %d %v", status, err)
	}
}

// One host over its rate gets 429 with Retry-After; another host is served.
func TestInboxRateLimitsPerHost(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	c.svc.verified = newHostLimiter(1, 2)
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	like := c.fixture("inbox_like.json", p)
	for i := range 2 {
		if status, err := c.send(p, like); status != http.StatusAccepted {
			t.Fatalf("Like %d within the burst: %d %v", i, status, err)
		}
	}
	status, err := c.send(p, like)
	var retry *federation.RetryError
	if status != http.StatusTooManyRequests || !errors.As(err, &retry) || retry.After <= 0 {
		t.Fatalf("Like over the rate: %d %v, want 429 with a delay", status, err)
	}
	// bob's server listens on another port: another host to the limiter.
	bob := newProtoPeer(t, "bob", keyInActor, testkit.Key(t, 2), &c.key.PublicKey)
	if status, err := c.send(bob, c.fixture("inbox_like.json", bob)); status != http.StatusAccepted {
		t.Fatalf("Like from another host: %d %v", status, err)
	}
}
