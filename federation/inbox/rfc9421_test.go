package inbox

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
)

// postRFC9421 sends body to crieur's inbox, signed by sign; sent, when not nil,
// replaces the body actually sent.
func (c *protoCrieur) postRFC9421(body, sent []byte, sign func(r *http.Request)) (int, error) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.InboxURL(), bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/activity+json")
	sign(req)
	if sent != nil {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(sent)), int64(len(sent))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return resp.StatusCode, c.lastErr
}

// A Follow signed with RFC 9421 (as WordPress's plugin sends first) is
// verified with the same key resolution and owner rule as draft-cavage;
// a wrong key, a tampered body or another actor's key change nothing.
func TestInboxAcceptsRFC9421(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	mallory := newProtoPeer(t, "mallory", keyInActor, testkit.Key(t, 2), &c.key.PublicKey)
	follow := mustJSON(t, c.fixture("inbox_follow.json", p))
	signAs := func(keyID string, i int) func(*http.Request) {
		return func(r *http.Request) {
			testkit.SignRFC9421(t, r, c.InboxURL(), follow, keyID, testkit.Key(t, i), time.Now())
		}
	}

	for _, tc := range []struct {
		name string
		sign func(*http.Request)
		sent []byte
		want error
	}{
		{"wrong key for the keyid", signAs(p.KeyID(), 3), nil, federation.ErrUnauthorized},
		{"body changed after signing", signAs(p.KeyID(), 1), bytes.Replace(follow, []byte("Follow"), []byte("Undo"), 1), federation.ErrUnauthorized},
		{"signed by another actor's key", signAs(mallory.KeyID(), 2), nil, federation.ErrForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, err := c.postRFC9421(follow, tc.sent, tc.sign)
			if status < 400 || !errors.Is(err, tc.want) {
				t.Fatalf("status %d, err %v; want a refusal wrapping %v", status, err, tc.want)
			}
			if n := c.followCount(); n != 0 {
				t.Fatalf("%d followers after a refused request", n)
			}
		})
	}

	status, err := c.postRFC9421(follow, nil, signAs(p.KeyID(), 1))
	if status != http.StatusAccepted || err != nil {
		t.Fatalf("RFC 9421 Follow: status %d, err %v", status, err)
	}
	if _, err := c.store.Follower(p.ActorID()); err != nil {
		t.Fatalf("follower not stored: %v", err)
	}
}
