package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// updateAdminGolden rewrites this file's golden files: go test -run
// 'Inbox|StatusCounts' ./cmd/crieur/ -args -update-admin
var updateAdminGolden = flag.Bool("update-admin", false, "rewrite testdata/inbox*.golden and status_counts.golden")

func checkAdminGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *updateAdminGolden {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n%s\nwant:\n%s", file, got, want)
	}
}

// interactionsApp is an app over a real store with two announced
// articles and what the fediverse sent about them, hostile strings
// included (terminal escapes in a name, a newline in a handle, a bidi
// override in a link, HTML in a reply).
func interactionsApp(t *testing.T) *app {
	t.Helper()
	clock := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	st, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i, key := range []string{"a/en", "b/fr"} {
		note := "https://crieur.example/posts/" + key
		_, err := st.Publish(storage.LedgerEntry{Key: key, NoteID: note, Hash: "h", Published: clock, Pushed: true},
			storage.Activity{ID: "https://crieur.example/activities/" + key[:1], Type: "Create", ObjectID: note,
				Published: clock.Add(time.Duration(i) * time.Minute), InOutbox: true, JSON: []byte(`{}`)}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	a := "https://crieur.example/posts/a/en"
	b := "https://crieur.example/posts/b/fr"
	put := func(minutes int, i storage.Interaction) {
		t.Helper()
		i.ReceivedAt = clock.Add(time.Duration(minutes) * time.Minute)
		if _, err := st.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}
	alice := storage.RemoteActor{ID: "https://social.example/users/alice", Name: "Alice", Handle: "alice@social.example"}
	mallory := storage.RemoteActor{ID: "https://evil.example/users/m", Name: "Mal\x1b[31mlory", Handle: "m@evil.example\nFAKE ROW"}
	put(1, storage.Interaction{ID: "https://social.example/notes/1", Kind: storage.KindReply, NoteID: a, InReplyTo: a,
		Actor: alice, URL: "https://social.example/@alice/1", Content: "<p>Thanks for the <strong>report</strong>!</p><p>Second paragraph.</p>"})
	put(2, storage.Interaction{ID: "https://social.example/likes/1", Kind: storage.KindLike, NoteID: a, Actor: alice})
	put(3, storage.Interaction{ID: "https://evil.example/notes/2", Kind: storage.KindReply, NoteID: a, InReplyTo: a,
		Actor: mallory, URL: "https://evil.example/\u202enote", Content: "<script>alert(1)</script><p>hi\x1b]0;title\x07</p>",
		Updated: clock.Add(time.Hour), Published: clock})
	put(4, storage.Interaction{ID: "https://evil.example/boosts/1", Kind: storage.KindAnnounce, NoteID: a, Actor: mallory})
	put(5, storage.Interaction{ID: "https://social.example/notes/3", Kind: storage.KindMention, NoteID: b, InReplyTo: b,
		Actor: alice, Summary: "Private", Content: "<p>Just between us</p>"})
	put(6, storage.Interaction{ID: "https://social.example/notes/4", Kind: storage.KindQuote, NoteID: b,
		Actor: alice, Content: "<p>" + strings.Repeat("long quote ", 20) + "</p>"})
	put(7, storage.Interaction{ID: "https://misskey.example/likes/9", Kind: storage.KindLike, NoteID: b, Emoji: "🎉",
		Actor: storage.RemoteActor{ID: "https://misskey.example/users/9", Handle: "nine@misskey.example"}})
	return &app{store: st}
}

// TestInboxListsWhatArrived: crieur inbox groups the latest interactions
// per article, newest first, with links and excerpts, every remote string
// made safe for the terminal (testdata/inbox.golden); with SLUG/LANG, one
// article (testdata/inbox_one.golden).
func TestInboxListsWhatArrived(t *testing.T) {
	a := interactionsApp(t)
	var out strings.Builder
	if err := opInbox(context.Background(), a, []string{"50"}, &out); err != nil {
		t.Fatal(err)
	}
	checkAdminGolden(t, "inbox.golden", out.String())
	if strings.ContainsAny(out.String(), "\x1b\x07\u202e") || strings.Contains(out.String(), "<script") {
		t.Errorf("raw control characters or markup reached the terminal:\n%q", out.String())
	}
	out.Reset()
	if err := opInbox(context.Background(), a, []string{"2", "a/en"}, &out); err != nil {
		t.Fatal(err)
	}
	checkAdminGolden(t, "inbox_one.golden", out.String())
	if err := opInbox(context.Background(), a, []string{"5", "nope/en"}, &out); err == nil {
		t.Errorf("inbox of an unknown article succeeded")
	}
	empty := &app{store: func() *storage.Store {
		st, err := storage.Open(filepath.Join(t.TempDir(), "e.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}()}
	out.Reset()
	if err := opInbox(context.Background(), empty, nil, &out); err != nil || out.String() != "nothing received yet\n" {
		t.Errorf("empty inbox: %q, %v", out.String(), err)
	}
}

// TestStatusCountsInteractions: crieur status shows each article's
// replies, likes, boosts, quotes and mentions beside its deliveries
// (testdata/status_counts.golden).
func TestStatusCountsInteractions(t *testing.T) {
	a := interactionsApp(t)
	var out strings.Builder
	if err := opStatus(context.Background(), a, nil, &out); err != nil {
		t.Fatal(err)
	}
	checkAdminGolden(t, "status_counts.golden", out.String())
}
