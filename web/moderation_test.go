package web

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/crieur/crieur/storage"
)

// What the admin hides, or blocks, leaves the article's page and the Note's
// collections at once; the rest stays.
func TestModerationLeavesPageAndCollections(t *testing.T) {
	e := newTestEnv(t)
	if _, err := e.store.Publish(ledgerEntry("hello/en", testNow), activityFor("hello/en"), nil); err != nil {
		t.Fatal(err)
	}
	note := testBase + "/posts/hello/en"
	kept := storage.Interaction{ID: "https://good.example/notes/1", Kind: storage.KindReply, NoteID: note, InReplyTo: note,
		Actor: storage.RemoteActor{ID: "https://good.example/users/ann", Name: "Ann", Handle: "ann@good.example"}, Content: "<p>A kind word</p>", Published: testNow}
	hidden := storage.Interaction{ID: "https://good.example/notes/2", Kind: storage.KindReply, NoteID: note, InReplyTo: note,
		Actor: storage.RemoteActor{ID: "https://good.example/users/ben", Name: "Ben", Handle: "ben@good.example"}, Content: "<p>An unkind word</p>", Published: testNow}
	spam := storage.Interaction{ID: "https://spam.example/notes/3", Kind: storage.KindReply, NoteID: note, InReplyTo: note,
		Actor: storage.RemoteActor{ID: "https://spam.example/users/x", Name: "Spammer", Handle: "x@spam.example"}, Content: "<p>Buy now</p>", Published: testNow}
	spamLike := storage.Interaction{ID: "https://spam.example/likes/1", Kind: storage.KindLike, NoteID: note,
		Actor: storage.RemoteActor{ID: "https://sub.spam.example/users/y"}, Published: testNow}
	for _, i := range []storage.Interaction{kept, hidden, spam, spamLike} {
		if _, err := e.store.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}
	totals := func() (replies, likes float64) {
		t.Helper()
		for _, name := range []string{"replies", "likes"} {
			r := e.get(t, "/posts/hello/en/"+name, "Accept", "application/activity+json")
			expect(t, r, http.StatusOK, "application/activity+json")
			var c map[string]any
			if err := json.Unmarshal([]byte(r.body), &c); err != nil {
				t.Fatal(err)
			}
			n, _ := c["totalItems"].(float64)
			if name == "replies" {
				replies = n
			} else {
				likes = n
			}
		}
		return replies, likes
	}
	page := e.get(t, "/posts/hello/en", "Accept", browserAccept)
	contains(t, page, "A kind word", "An unkind word", "Buy now")
	if r, l := totals(); r != 3 || l != 1 {
		t.Fatalf("before: replies %v, likes %v", r, l)
	}

	if _, err := e.store.SetModeration(hidden.ID, storage.ModerationHidden); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.PutBlock(storage.Block{Kind: storage.BlockDomain, Value: "spam.example"}); err != nil {
		t.Fatal(err)
	}
	page = e.get(t, "/posts/hello/en", "Accept", browserAccept)
	contains(t, page, "A kind word")
	lacks(t, page, "An unkind word", "Buy now", "Spammer")
	if r, l := totals(); r != 1 || l != 0 {
		t.Fatalf("after hiding one and blocking spam.example: replies %v, likes %v; want 1 and 0", r, l)
	}
	if _, err := e.store.Interaction(hidden.ID); err != nil {
		t.Fatalf("the hidden reply is no longer recorded: %v", err)
	}
}
