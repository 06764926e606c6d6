package inbox

import (
	"net/http"
	"testing"

	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/storage"
)

// With -replies followers, a follower's reply shows at once and a
// stranger's waits; with -replies approval, every reply waits. Waiting
// replies are kept, neither listed nor counted.
func TestRepliesPolicyAtArrival(t *testing.T) {
	for _, tc := range []struct {
		policy                    string
		followerShown, otherShown bool
	}{
		{RepliesEveryone, true, true},
		{RepliesFollowers, true, false},
		{RepliesApproval, false, false},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			c := newProtoCrieur(t, protoOptions{})
			c.svc.replies = tc.policy
			note := c.publishNote("a", "en")
			friend := newProtoPeer(t, "friend", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
			stranger := newProtoPeer(t, "stranger", keyInActor, testkit.Key(t, 2), &c.key.PublicKey)
			c.must(friend, c.fixture("inbox_follow.json", friend), http.StatusAccepted)
			for _, p := range []*protoPeer{friend, stranger} {
				c.must(p, c.talk("mastodon_create_reply.json", p, note), http.StatusAccepted)
			}
			replies, total, err := c.store.NoteInteractions(note, storage.KindReply, 0, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			shown := map[string]bool{}
			for _, r := range replies {
				shown[r.Actor.ID] = true
			}
			if shown[friend.ActorID()] != tc.followerShown || shown[stranger.ActorID()] != tc.otherShown || total != len(replies) {
				t.Fatalf("shown %v (total %d), want follower %v, stranger %v", shown, total, tc.followerShown, tc.otherShown)
			}
			recent, _ := c.store.RecentInteractions(10)
			if len(recent) != 2 {
				t.Fatalf("kept %d replies, want both", len(recent))
			}
		})
	}
}

// A report about our content is kept for the admin; one about nothing of
// ours is not; the same Flag twice is one report.
func TestFlagRecorded(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	note := c.publishNote("a", "en")
	p := newProtoPeer(t, "mod", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	flag := map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": p.ActorID() + "#flags/1", "type": "Flag",
		"actor": p.ActorID(), "object": []any{c.ActorID(), note}, "content": "<p>Spam <b>here</b></p>"}
	c.must(p, flag, http.StatusAccepted)
	c.must(p, flag, http.StatusAccepted)
	other := map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": p.ActorID() + "#flags/2", "type": "Flag",
		"actor": p.ActorID(), "object": "https://elsewhere.example/notes/1"}
	c.must(p, other, http.StatusAccepted)
	reports, err := c.store.Reports()
	if err != nil || len(reports) != 1 || len(reports[0].Objects) != 2 || reports[0].Content != "Spam here" || reports[0].ActorID != p.ActorID() {
		t.Fatalf("reports: %+v %v", reports, err)
	}
}
