package inbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// inboxFixture loads testdata/<name> with the placeholders filled in.
func inboxFixture(t testing.TB, name, peerActor, us, usBase string) map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("{{PEER}}", peerActor, "{{US}}", us, "{{US_BASE}}", usBase).Replace(string(data))
	var doc map[string]any
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

func (c *protoCrieur) fixture(name string, p *protoPeer) map[string]any {
	return inboxFixture(c.t, name, p.ActorID(), c.ActorID(), c.svc.cfg.BaseURL)
}

var activityIDPattern = regexp.MustCompile(`^http://127\.0\.0\.1:\d+/activities/[0-9a-f]{32}$`)

// checkAcceptJob asserts that job delivers a well-formed Accept of followID
// to the peer's personal inbox, and returns the activity.
func checkAcceptJob(t *testing.T, c *protoCrieur, p *protoPeer, job storage.Job, followID string) storage.Activity {
	t.Helper()
	if job.Inbox != p.Inbox() {
		t.Errorf("Accept goes to %s, want the personal inbox %s (not the shared one)", job.Inbox, p.Inbox())
	}
	if job.Topic != followID {
		t.Errorf("job topic %q, want the Follow id %q", job.Topic, followID)
	}
	if job.Host != strings.TrimPrefix(p.srv.URL, "http://") {
		t.Errorf("job host %q", job.Host)
	}
	act, err := c.store.Activity(job.ActivityID)
	if err != nil {
		t.Fatal(err)
	}
	if act.Type != "Accept" || act.ID != job.ActivityID || act.InOutbox {
		t.Errorf("activity record %+v", act)
	}
	var doc map[string]any
	if err := json.Unmarshal(act.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if !activityIDPattern.MatchString(jsonString(doc["id"])) || !strings.HasPrefix(jsonString(doc["id"]), c.svc.cfg.BaseURL+"/activities/") {
		t.Errorf("Accept id %q is not BASE/activities/<32 hex>", doc["id"])
	}
	obj, _ := doc["object"].(map[string]any)
	if jsonString(obj["id"]) != followID {
		t.Errorf("Accept object id %v, want the Follow id %s", obj["id"], followID)
	}
	doc["id"] = "{{ID}}"
	got, _ := json.MarshalIndent(doc, "", "  ")
	got = []byte(strings.NewReplacer(`"`+followID+`"`, `"{{FOLLOW}}"`, p.ActorID(), "{{PEER}}", c.ActorID(), "{{US}}").Replace(string(got)))
	want, err := os.ReadFile("testdata/inbox_accept.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("Accept JSON:\n%s\nwant (testdata/inbox_accept.golden.json):\n%s", got, want)
	}
	return act
}

func TestInboxFollowAcceptUndo(t *testing.T) {
	for _, style := range []struct {
		name  string
		style keyStyle
	}{{"mastodon key in actor", keyInActor}, {"gotosocial stub", keyStub}, {"bare key doc", keyBare}, {"key array", keyArray}} {
		t.Run(style.name, func(t *testing.T) {
			c := newProtoCrieur(t, protoOptions{})
			p := newProtoPeer(t, "alice", style.style, testkit.Key(t, 1), &c.key.PublicKey)

			follow := c.fixture("inbox_follow.json", p)
			status, err := c.send(p, follow)
			if status != http.StatusAccepted || err != nil {
				t.Fatalf("Follow: status %d, err %v", status, err)
			}
			f, err := c.store.Follower(p.ActorID())
			if err != nil {
				t.Fatalf("follower not stored: %v", err)
			}
			want := storage.Follower{
				ActorID: p.ActorID(), Inbox: p.Inbox(), SharedInbox: p.SharedInbox(),
				FollowID: jsonString(follow["id"]), Handle: "alice@127.0.0.1",
				Host: strings.TrimPrefix(p.srv.URL, "http://"), Status: storage.FollowerAccepted,
			}
			if f.SignedAt.IsZero() {
				t.Error("follower stored without the Follow's signed time")
			}
			f.CreatedAt, f.SignedAt = time.Time{}, time.Time{}
			if f != want {
				t.Errorf("follower\n got %+v\nwant %+v", f, want)
			}
			if n := c.followCount(); n != 1 {
				t.Errorf("followers count %d, want 1", n)
			}
			key, err := c.store.RemoteKey(p.KeyID())
			if err != nil || key.Owner != p.ActorID() || key.Inbox != p.Inbox() || key.SharedInbox != p.SharedInbox() || key.Handle != "alice@127.0.0.1" {
				t.Errorf("cached key %+v, err %v", key, err)
			}
			jobs, err := c.store.PendingJobs()
			if err != nil || len(jobs) != 1 {
				t.Fatalf("jobs %v, err %v; want one Accept", jobs, err)
			}
			act := checkAcceptJob(t, c, p, jobs[0], jsonString(follow["id"]))

			// Deliver the Accept the way the workers will, and let the
			// peer check crieur's signature with go-fed's verifier.
			resp, err := c.svc.client.Post(testkit.Context(t), jobs[0].Inbox, act.JSON, c.svc.signer)
			if err != nil || resp.Status != http.StatusAccepted {
				t.Fatalf("deliver Accept: %v %v", resp, err)
			}
			var posted *peerRequest
			for _, r := range p.Requests() {
				if r.Method == http.MethodPost {
					posted = &r
				}
				if r.Method == http.MethodGet && !r.SignedByCrieur {
					t.Errorf("crieur fetched %s without a valid signature", r.Path)
				}
			}
			if posted == nil || !posted.SignedByCrieur || !bytes.Equal(posted.Body, act.JSON) {
				t.Fatalf("peer did not receive a correctly signed Accept: %+v", posted)
			}
			if ct := posted.Header.Get("Content-Type"); ct != "application/activity+json" {
				t.Errorf("Accept content type %q", ct)
			}

			// A second signed request uses the cached key: no new fetch.
			before := len(p.Requests())
			status, err = c.send(p, c.fixture("inbox_undo_follow.json", p))
			if status != http.StatusAccepted || err != nil {
				t.Fatalf("Undo: status %d, err %v", status, err)
			}
			if after := len(p.Requests()); after != before {
				t.Errorf("Undo made %d requests to the peer, want 0 (cached key)", after-before)
			}
			if _, err := c.store.Follower(p.ActorID()); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("follower still there after Undo: %v", err)
			}
			if n := c.followCount(); n != 0 {
				t.Errorf("followers count %d after Undo, want 0", n)
			}
		})
	}
}

func TestInboxRepeatedFollowResendsAccept(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	first := followDoc(p, c.ActorID(), p.ActorID()+"#follows/1")
	second := followDoc(p, c.ActorID(), p.ActorID()+"#follows/2")
	for _, f := range []map[string]any{first, second} {
		if status, err := c.send(p, f); status != http.StatusAccepted {
			t.Fatalf("Follow: %d %v", status, err)
		}
	}
	jobs, _ := c.store.PendingJobs()
	if len(jobs) != 2 {
		t.Fatalf("%d jobs, want two Accepts", len(jobs))
	}
	checkAcceptJob(t, c, p, jobs[1], jsonString(second["id"]))
	f, _ := c.store.Follower(p.ActorID())
	if f.FollowID != jsonString(second["id"]) {
		t.Errorf("stored Follow id %q, want the latest", f.FollowID)
	}
	if n := c.followCount(); n != 1 {
		t.Errorf("count %d, want 1", n)
	}
	// Undo of the first Follow by id no longer matches the stored one.
	undo := c.fixture("inbox_undo_follow_by_id.json", p)
	if status, _ := c.send(p, undo); status != http.StatusAccepted {
		t.Fatalf("Undo: %d", status)
	}
	if c.followCount() != 1 {
		t.Error("Undo of a superseded Follow id removed the follower")
	}
	undo["object"] = second["id"]
	if status, _ := c.send(p, undo); status != http.StatusAccepted {
		t.Fatalf("Undo: %d", status)
	}
	if c.followCount() != 0 {
		t.Error("Undo by Follow id did not remove the follower")
	}
}

func TestInboxIgnoredActivitiesChangeNothing(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	if status, _ := c.send(p, c.fixture("inbox_follow.json", p)); status != http.StatusAccepted {
		t.Fatal("Follow refused")
	}
	other := followDoc(p, "https://elsewhere.example/users/bob", p.ActorID()+"#follows/x")
	noID := followDoc(p, c.ActorID(), "")
	delete(noID, "id")
	block := c.fixture("inbox_block.json", p)
	block["object"] = "https://elsewhere.example/users/bob"
	undoOther := c.fixture("inbox_undo_follow.json", p)
	undoOther["object"].(map[string]any)["object"] = "https://elsewhere.example/users/bob"
	deleteNote := c.fixture("inbox_delete_actor.json", p)
	deleteNote["object"] = p.ActorID() + "/statuses/1"
	cases := map[string]map[string]any{
		"Like":                       c.fixture("inbox_like.json", p),
		"Create reply":               c.fixture("inbox_create_reply.json", p),
		"Undo Like by id":            c.fixture("inbox_undo_like_by_id.json", p),
		"Follow of another actor":    other,
		"Follow without id":          noID,
		"Block of another actor":     block,
		"Undo Follow of another":     undoOther,
		"Delete of a note":           deleteNote,
		"Announce":                   {"id": p.ActorID() + "#a", "type": "Announce", "actor": p.ActorID(), "object": c.ActorID()},
		"type is an array (JSON-LD)": {"id": p.ActorID() + "#x", "type": []any{"Follow"}, "actor": p.ActorID(), "object": c.ActorID()},
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			before := c.snapshot(p.KeyID())
			status, err := c.send(p, doc)
			want := http.StatusAccepted
			if name == "type is an array (JSON-LD)" {
				want = http.StatusBadRequest
			}
			if status != want {
				t.Fatalf("status %d (err %v), want %d", status, err, want)
			}
			if after := c.snapshot(p.KeyID()); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed:\n%+v\n%+v", before, after)
			}
		})
	}
}

func TestInboxBlockRemovesFollower(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	c.send(p, c.fixture("inbox_follow.json", p))
	if c.followCount() != 1 {
		t.Fatal("Follow did not store the follower")
	}
	if status, err := c.send(p, c.fixture("inbox_block.json", p)); status != http.StatusAccepted {
		t.Fatalf("Block: %d %v", status, err)
	}
	if c.followCount() != 0 {
		t.Fatal("Block did not remove the follower")
	}
}

func TestInboxDeleteActor(t *testing.T) {
	t.Run("key cached, signature verifies", func(t *testing.T) {
		c := newProtoCrieur(t, protoOptions{})
		p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
		c.send(p, c.fixture("inbox_follow.json", p))
		p.setGone(http.StatusGone)
		if status, err := c.send(p, c.fixture("inbox_delete_actor.json", p)); status != http.StatusAccepted {
			t.Fatalf("Delete: %d %v", status, err)
		}
		if c.followCount() != 0 {
			t.Error("follower kept")
		}
		if _, err := c.store.RemoteKey(p.KeyID()); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("cached key kept: %v", err)
		}
	})
	for _, gone := range []int{http.StatusGone, http.StatusNotFound} {
		t.Run("key gone "+http.StatusText(gone), func(t *testing.T) {
			c := newProtoCrieur(t, protoOptions{})
			p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
			c.send(p, c.fixture("inbox_follow.json", p))
			// The account is deleted and crieur forgot its key.
			if err := c.store.DeleteRemoteKey(p.KeyID()); err != nil {
				t.Fatal(err)
			}
			p.setGone(gone)
			if status, err := c.send(p, c.fixture("inbox_delete_actor.json", p)); status != http.StatusAccepted {
				t.Fatalf("Delete: %d %v", status, err)
			}
			if c.followCount() != 0 {
				t.Error("follower of a deleted account kept")
			}
		})
	}
	t.Run("key gone but actor alive", func(t *testing.T) {
		c := newProtoCrieur(t, protoOptions{})
		p := newProtoPeer(t, "alice", keyStub, testkit.Key(t, 1), &c.key.PublicKey)
		c.send(p, c.fixture("inbox_follow.json", p))
		c.store.DeleteRemoteKey(p.KeyID())
		p.setKeyStatus(http.StatusGone) // only the key URL; the actor answers
		before := c.snapshot()
		status, err := c.send(p, c.fixture("inbox_delete_actor.json", p))
		if status != http.StatusUnauthorized || !errors.Is(err, federation.ErrUnauthorized) {
			t.Fatalf("status %d, err %v; want 401", status, err)
		}
		if after := c.snapshot(); !reflect.DeepEqual(before, after) {
			t.Error("state changed")
		}
	})
	t.Run("key gone, not a follower", func(t *testing.T) {
		c := newProtoCrieur(t, protoOptions{})
		p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
		p.setGone(http.StatusGone)
		before := c.snapshot(p.KeyID())
		if status, err := c.send(p, c.fixture("inbox_delete_actor.json", p)); status != http.StatusAccepted {
			t.Fatalf("status %d, err %v; want 202 (nothing to forget)", status, err)
		}
		if after := c.snapshot(p.KeyID()); !reflect.DeepEqual(before, after) {
			t.Error("state changed")
		}
	})
	t.Run("forged Delete with another host's gone key", func(t *testing.T) {
		c := newProtoCrieur(t, protoOptions{})
		alice := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
		mallory := newProtoPeer(t, "mallory", keyInActor, testkit.Key(t, 2), &c.key.PublicKey)
		c.send(alice, c.fixture("inbox_follow.json", alice))
		c.store.DeleteRemoteKey(alice.KeyID())
		mallory.setGone(http.StatusGone)
		alice.setGone(http.StatusGone)
		before := c.snapshot()
		status, err := c.post(mallory.signer(nil), mustJSON(t, c.fixture("inbox_delete_actor.json", alice)), nil, "")
		if status != http.StatusUnauthorized || !errors.Is(err, federation.ErrUnauthorized) {
			t.Fatalf("status %d, err %v; want 401", status, err)
		}
		if after := c.snapshot(); !reflect.DeepEqual(before, after) {
			t.Error("state changed")
		}
	})
}

func TestInboxKeyRotation(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	c.send(p, c.fixture("inbox_follow.json", p))
	fetches := p.count(http.MethodGet, "/users/alice")
	p.setKey(testkit.Key(t, 3))
	// Signed with the new key: the cached key fails, one refetch.
	if status, err := c.send(p, c.fixture("inbox_undo_follow.json", p)); status != http.StatusAccepted {
		t.Fatalf("Undo after rotation: %d %v", status, err)
	}
	if got := p.count(http.MethodGet, "/users/alice") - fetches; got != 1 {
		t.Errorf("%d key fetches after rotation, want exactly 1", got)
	}
	if c.followCount() != 0 {
		t.Error("Undo after rotation not applied")
	}
	k, _ := c.store.RemoteKey(p.KeyID())
	if pub, err := signature.ParsePublicKeyPEM(k.PublicKeyPEM); err != nil || !pub.Equal(&testkit.Key(t, 3).PublicKey) {
		t.Error("cache does not hold the new key")
	}
	// A request signed with a key the actor does not publish is refused
	// after exactly one more refetch.
	fetches = p.count(http.MethodGet, "/users/alice")
	bad, _ := signature.NewSigner(p.KeyID(), testkit.Key(t, 4), nil)
	status, err := c.post(bad, mustJSON(t, c.fixture("inbox_follow.json", p)), nil, "")
	if status != http.StatusUnauthorized || !errors.Is(err, federation.ErrUnauthorized) {
		t.Fatalf("wrong key: %d %v", status, err)
	}
	if got := p.count(http.MethodGet, "/users/alice") - fetches; got != 1 {
		t.Errorf("%d fetches for a bad signature, want 1", got)
	}
	if c.followCount() != 0 {
		t.Error("follower stored from a bad signature")
	}
}

func TestInboxManualApproval(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{manual: true})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	follow := c.fixture("inbox_follow.json", p)
	if status, err := c.send(p, follow); status != http.StatusAccepted {
		t.Fatalf("Follow: %d %v", status, err)
	}
	pending, err := c.svc.PendingFollowers()
	if err != nil || len(pending) != 1 || pending[0].ActorID != p.ActorID() || pending[0].Status != storage.FollowerPending {
		t.Fatalf("pending %+v, err %v", pending, err)
	}
	if c.followCount() != 0 {
		t.Error("pending follower counted")
	}
	if jobs, _ := c.store.PendingJobs(); len(jobs) != 0 {
		t.Fatalf("Accept sent before approval: %+v", jobs)
	}
	if err := c.svc.ApproveFollower(testkit.Context(t), p.ActorID()); err != nil {
		t.Fatal(err)
	}
	if c.followCount() != 1 {
		t.Error("approved follower not counted")
	}
	jobs, _ := c.store.PendingJobs()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs after approval, want the Accept", len(jobs))
	}
	checkAcceptJob(t, c, p, jobs[0], jsonString(follow["id"]))
	// A repeated Follow of an approved follower is accepted at once.
	c.send(p, follow)
	if jobs, _ := c.store.PendingJobs(); len(jobs) != 2 {
		t.Errorf("%d jobs after a repeated Follow, want 2", len(jobs))
	}
	if err := c.svc.ApproveFollower(testkit.Context(t), "https://nobody.example/u"); !errors.Is(err, federation.ErrNotFound) {
		t.Errorf("approve unknown: %v", err)
	}
}

func TestRejectFollower(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{manual: true})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	follow := c.fixture("inbox_follow.json", p)
	c.send(p, follow)
	if err := c.svc.RejectFollower(testkit.Context(t), p.ActorID()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.Follower(p.ActorID()); !errors.Is(err, storage.ErrNotFound) {
		t.Error("rejected follower kept")
	}
	jobs, _ := c.store.PendingJobs()
	if len(jobs) != 1 || jobs[0].Inbox != p.Inbox() {
		t.Fatalf("jobs %+v, want one Reject to the personal inbox", jobs)
	}
	act, err := c.store.Activity(jobs[0].ActivityID)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(act.JSON, &doc)
	obj, _ := doc["object"].(map[string]any)
	if doc["type"] != "Reject" || doc["actor"] != c.ActorID() || obj["id"] != follow["id"] || obj["actor"] != p.ActorID() {
		t.Errorf("Reject JSON %s", act.JSON)
	}
	if err := c.svc.RejectFollower(testkit.Context(t), p.ActorID()); !errors.Is(err, federation.ErrNotFound) {
		t.Errorf("reject twice: %v", err)
	}
}

// TestInboxRefusals: each bad request gets its sentinel and status and
// changes nothing.
func TestInboxRefusals(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	alice := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	mallory := newProtoPeer(t, "mallory", keyInActor, testkit.Key(t, 2), &c.key.PublicKey)
	follow := mustJSON(t, c.fixture("inbox_follow.json", alice))
	old := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	future := func() time.Time { return time.Now().Add(2 * time.Hour) }
	changed := bytes.Replace(follow, []byte(`"type":"Follow"`), []byte(`"type":"Block"`), 1)
	big := append(append([]byte(`{"type":"Follow","actor":"x","pad":"`), bytes.Repeat([]byte("a"), InboxMaxBody)...), `"}`...)

	cases := []struct {
		name     string
		signer   *signature.Signer
		body     []byte
		sent     []byte
		ct       string
		sentinel error
		status   int
	}{
		{"unsigned", nil, follow, nil, "", federation.ErrUnauthorized, 401},
		{"signed by another actor", mallory.signer(nil), follow, nil, "", federation.ErrForbidden, 403},
		{"body changed after signing", alice.signer(nil), follow, changed, "", federation.ErrUnauthorized, 401},
		{"Date two hours old", alice.signer(old), follow, nil, "", federation.ErrUnauthorized, 401},
		{"Date two hours ahead", alice.signer(future), follow, nil, "", federation.ErrUnauthorized, 401},
		{"body over the limit", alice.signer(nil), big, nil, "", federation.ErrTooLarge, 413},
		{"wrong content type", alice.signer(nil), follow, nil, "text/plain", federation.ErrUnsupportedMediaType, 415},
		{"form content type", alice.signer(nil), follow, nil, "application/x-www-form-urlencoded", federation.ErrUnsupportedMediaType, 415},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := c.snapshot(alice.KeyID())
			status, err := c.post(tc.signer, tc.body, tc.sent, tc.ct)
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("err %v, want %v", err, tc.sentinel)
			}
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			if after := c.snapshot(alice.KeyID()); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed:\n%+v\n%+v", before, after)
			}
		})
	}
	if n := alice.count(http.MethodGet, "/users/alice"); n != 0 {
		t.Errorf("alice's key fetched %d times: a refused request reached key resolution", n)
	}

	// Bodies that are not one activity are decoded only once the
	// signature holds (the cheap checks come first), and are refused then.
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"malformed JSON", []byte(`{"type":"Follow",`)},
		{"trailing data", append(append([]byte{}, follow...), []byte(` {}`)...)},
		{"JSON array", []byte(`[` + string(follow) + `]`)},
		{"no actor", []byte(`{"type":"Follow","object":"x"}`)},
		{"nested too deep", []byte(strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40))},
		{"too many values", []byte(`{"type":"Follow","actor":"x","a":[` + strings.Repeat(`1,`, 30_000) + `1]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.snapshot()
			status, err := c.post(alice.signer(nil), tc.body, nil, "")
			if !errors.Is(err, federation.ErrBadRequest) || status != http.StatusBadRequest {
				t.Errorf("status %d, err %v; want 400", status, err)
			}
			if after := c.snapshot(); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed:\n%+v\n%+v", before, after)
			}
		})
	}
}

func TestInboxAcceptedMediaTypes(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	like := mustJSON(t, c.fixture("inbox_like.json", p))
	for _, ct := range []string{
		"application/activity+json",
		"application/activity+json; charset=utf-8",
		`application/ld+json; profile="https://www.w3.org/ns/activitystreams"`,
		`application/ld+json;profile=https://www.w3.org/ns/activitystreams`,
		"application/json",
		"Application/Activity+JSON",
	} {
		if status, err := c.post(p.signer(nil), like, nil, ct); status != http.StatusAccepted {
			t.Errorf("%q: %d %v", ct, status, err)
		}
	}
}

// TestInboxPrivateKeyID: a keyId on a private address is refused by the
// guard before any connection (production config: nothing allowed).
func TestInboxPrivateKeyID(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{noAllow: true})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), nil)
	port := p.srv.URL[strings.LastIndexByte(p.srv.URL, ':'):]
	for _, keyID := range []string{
		"http://10.0.0.1/users/alice#main-key",              // refused as an IP literal, nothing dialled
		"http://localhost" + port + "/users/alice#main-key", // resolves to loopback: refused at Control
		"http://[::1]" + port + "/users/alice#main-key",
		"file:///etc/passwd#main-key",
	} {
		t.Run(keyID, func(t *testing.T) {
			actor := strings.TrimSuffix(keyID, "#main-key")
			signer, _ := signature.NewSigner(keyID, testkit.Key(t, 1), nil)
			doc := map[string]any{"id": actor + "#f", "type": "Follow", "actor": actor, "object": c.ActorID()}
			before := c.snapshot(keyID)
			status, err := c.post(signer, mustJSON(t, doc), nil, "")
			if status != http.StatusUnauthorized || !errors.Is(err, federation.ErrUnauthorized) {
				t.Fatalf("status %d, err %v; want 401", status, err)
			}
			if strings.HasPrefix(keyID, "http") && !transport.IsRefused(err) {
				t.Errorf("err %v is not a guard refusal", err)
			}
			if after := c.snapshot(keyID); !reflect.DeepEqual(before, after) {
				t.Error("state changed")
			}
		})
	}
	if n := len(p.Requests()); n != 0 {
		t.Errorf("the guard let %d requests reach loopback", n)
	}
}

// FuzzInbox feeds arbitrary bodies, correctly signed by a peer whose key is
// cached (no network), to Inbox: it must never panic, must answer with a
// sentinel or nil, and may only change state for the peer's own actor.
func FuzzInbox(f *testing.F) {
	const peer = "https://192.0.2.10/users/alice"
	const us = "https://crieur.example/@reports"
	for _, name := range []string{"inbox_follow.json", "inbox_undo_follow.json", "inbox_undo_follow_by_id.json",
		"inbox_delete_actor.json", "inbox_block.json", "inbox_like.json", "inbox_create_reply.json", "inbox_undo_like_by_id.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.NewReplacer("{{PEER}}", peer, "{{US}}", us, "{{US_BASE}}", "https://crieur.example").Replace(string(data)), "application/activity+json")
	}
	// The interactions' fixtures, about a Note in the ledger below.
	talk, _ := filepath.Glob("testdata/*_*.json")
	for _, name := range talk {
		base := filepath.Base(name)
		if !strings.HasPrefix(base, "mastodon_") && !strings.HasPrefix(base, "gts_") && !strings.HasPrefix(base, "misskey_") && !strings.HasPrefix(base, "akkoma_") {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.NewReplacer("{{PEER}}", peer, "{{PEER_BASE}}", "https://192.0.2.10", "{{PEER_HOST}}", "192.0.2.10", "{{US}}", us,
			"{{US_BASE}}", "https://crieur.example", "{{NOTE}}", "https://crieur.example/posts/hello/en").Replace(string(data)), "application/activity+json")
	}
	f.Add(`{"type":"Follow","actor":{"id":"`+peer+`"},"object":{"id":"`+us+`"},"id":"x"}`, "application/ld+json")
	f.Add(`nul`, "application/json")

	st, svc, signer := fuzzInbox(f, peer)
	f.Fuzz(func(t *testing.T, body, ct string) {
		if len(body) > 4096 {
			return
		}
		req, _ := http.NewRequest(http.MethodPost, "https://crieur.example/inbox", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if err := signer.SignRequest(req, []byte(body)); err != nil {
			t.Fatal(err)
		}
		err := svc.Receive(req.Context(), req, []byte(body))
		checkSentinel(t, err)
		all, _ := st.Followers(storage.FollowerAccepted)
		for _, fl := range all {
			if fl.ActorID != peer {
				t.Fatalf("follower %s stored from a request signed by %s", fl.ActorID, peer)
			}
		}
		kept, _ := st.RecentInteractions(1000)
		for _, i := range kept {
			if i.Actor.ID != peer || !strings.EqualFold(urlHost(i.ID), "192.0.2.10") || strings.Contains(i.Content, "<script") {
				t.Fatalf("interaction %+v stored from a request signed by %s", i, peer)
			}
		}
	})
}

// checkSentinel fails the test for an inbox error that wraps none of the
// sentinels web maps to a status: it would be answered 500.
func checkSentinel(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []error{federation.ErrBadRequest, federation.ErrUnauthorized, federation.ErrForbidden,
		federation.ErrTooLarge, federation.ErrUnsupportedMediaType, federation.ErrRateLimited, federation.ErrBusy, federation.ErrGone} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error without sentinel: %v", err)
}

// FuzzInboxRequest fuzzes the whole request, headers and body together, as
// web hands it over: Precheck, then Receive. Each header the fuzzer gives
// replaces the one a real signature made (sign) or stands alone. Nothing
// may panic, every refusal wraps a sentinel, and no follower is stored but
// the one peer whose key is known.
func FuzzInboxRequest(f *testing.F) {
	const peer = "https://192.0.2.10/users/alice"
	follow := `{"@context":"https://www.w3.org/ns/activitystreams","id":"` + peer + `#follows/1","type":"Follow","actor":"` + peer + `","object":"https://crieur.example/@reports"}`
	f.Add(follow, "application/activity+json", "", "", "", "", true)
	f.Add(follow, "application/activity+json", "", "", "", "", false)
	f.Add(follow, "application/ld+json", `keyId="`+peer+`#main-key",algorithm="rsa-sha256",headers="(request-target) host date digest",signature="AAAA"`, "", "", "", false)
	f.Add(follow, "application/activity+json", "wp=:AAAA:", `wp=("@method" "@target-uri" "content-digest");created=1;keyid="`+peer+`#main-key"`, "", "", false)
	f.Add(`[`+follow+`]`, "application/json", "", "", "", "SHA-256=AAAA", true)
	f.Add(strings.Repeat(`{"a":`, 40)+`1`+strings.Repeat(`}`, 40), "application/activity+json", "", "", "", "", true)

	st, svc, signer := fuzzInbox(f, peer)
	svc.unverified, svc.verified = newHostLimiter(1e9, 1<<30), newHostLimiter(1e9, 1<<30)
	f.Fuzz(func(t *testing.T, body, ct, sig, sigInput, date, digest string, sign bool) {
		if len(body) > 8192 {
			return
		}
		req, err := http.NewRequest(http.MethodPost, "https://crieur.example/inbox", strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", ct)
		if sign {
			if err := signer.SignRequest(req, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		for name, v := range map[string]string{"Signature": sig, "Signature-Input": sigInput, "Date": date, "Digest": digest} {
			if v != "" {
				req.Header.Set(name, v)
			}
		}
		err = svc.Precheck(req)
		if err == nil {
			err = svc.Receive(req.Context(), req, []byte(body))
		}
		checkSentinel(t, err)
		all, _ := st.Followers(storage.FollowerAccepted)
		for _, fl := range all {
			if fl.ActorID != peer {
				t.Fatalf("follower %s stored from a request signed by %s", fl.ActorID, peer)
			}
		}
	})
}

// fuzzInbox is the fuzz targets' crieur: a store that knows peer's key and
// one published Note (hello/en), an Inbox whose client may fetch nothing
// (a fetch the fuzzer provokes is refused), and a signer for peer.
func fuzzInbox(f *testing.F, peer string) (*storage.Store, *Inbox, *signature.Signer) {
	st, err := storage.Open(f.TempDir()+"/fuzz.db", storage.Options{Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	key := testkit.Key(f, 1)
	pemText, _ := signature.PublicKeyPEM(&key.PublicKey)
	keyID := peer + "#main-key"
	if err := st.PutRemoteKey(storage.RemoteKey{KeyID: keyID, Owner: peer, PublicKeyPEM: pemText,
		Inbox: peer + "/inbox", Handle: "alice@192.0.2.10"}); err != nil {
		f.Fatal(err)
	}
	if _, err := st.Publish(storage.LedgerEntry{Key: "hello/en", NoteID: "https://crieur.example/posts/hello/en"},
		storage.Activity{ID: "https://crieur.example/activities/1", Type: "Create", JSON: []byte(`{}`)}, nil); err != nil {
		f.Fatal(err)
	}
	svc := newInbox(f, st, transport.NewClient(transport.ClientConfig{Timeout: time.Second}), nil)
	signer, err := signature.NewSigner(keyID, key, nil)
	if err != nil {
		f.Fatal(err)
	}
	return st, svc, signer
}
