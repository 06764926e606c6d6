package documents

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// seedInteraction stores one interaction of kind about noteID, published
// n minutes after vocabNow minus a day, as the inbox handlers would.
func seedInteraction(t testing.TB, s *Builder, kind storage.InteractionKind, noteID, id string, n int) {
	t.Helper()
	actor := fmt.Sprintf("https://remote.example/users/u%d", n)
	_, err := s.store.PutInteraction(storage.Interaction{
		ID: id, Kind: kind, NoteID: noteID, InReplyTo: noteID,
		Actor:     storage.RemoteActor{ID: actor, Name: "U", Handle: fmt.Sprintf("u%d@remote.example", n)},
		Content:   "<p>hello</p>",
		Published: vocabNow.Add(-24*time.Hour + time.Duration(n)*time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNoteCollectionsGolden: a Note with 21 replies (one page and one
// more), a mention, 2 likes and a boost carries replies (first page inline,
// mentions left out), likes and shares with their counts; each collection
// and page dereferences at its own id.
func TestNoteCollectionsGolden(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	note := s.cfg.NoteID("sample", "en")
	for i := range 21 {
		seedInteraction(t, s, storage.KindReply, note, fmt.Sprintf("https://remote.example/notes/%02d", i), i)
	}
	seedInteraction(t, s, storage.KindMention, note, "https://remote.example/notes/private", 30)
	seedInteraction(t, s, storage.KindLike, note, "https://remote.example/likes/1", 1)
	seedInteraction(t, s, storage.KindLike, note, "https://remote.example/likes/2", 2)
	seedInteraction(t, s, storage.KindAnnounce, note, "https://remote.example/boosts/1", 3)
	seedInteraction(t, s, storage.KindQuote, note, "https://remote.example/notes/quote", 4)

	b, err := s.NoteJSON("sample", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := decodeJSON(t, b)
	replies := n["replies"].(map[string]any)
	if replies["id"] != note+"/replies" || replies["totalItems"] != float64(21) {
		t.Errorf("note replies = %v", replies)
	}
	first := replies["first"].(map[string]any)
	if items := first["orderedItems"].([]any); len(items) != 20 || items[0] != "https://remote.example/notes/00" {
		t.Errorf("first page items = %v", items)
	}
	if first["next"] != note+"/replies?page=2" {
		t.Errorf("first page next = %v", first["next"])
	}
	if l := n["likes"].(map[string]any); l["totalItems"] != float64(2) || l["id"] != note+"/likes" {
		t.Errorf("likes = %v", l)
	}
	if sh := n["shares"].(map[string]any); sh["totalItems"] != float64(1) || sh["id"] != note+"/shares" {
		t.Errorf("shares = %v", sh)
	}

	for _, tc := range []struct {
		golden string
		build  func() ([]byte, error)
	}{
		{"golden_replies.json", func() ([]byte, error) { return s.RepliesJSON("sample", "en", 0) }},
		{"golden_replies_page2.json", func() ([]byte, error) { return s.RepliesJSON("sample", "en", 2) }},
		{"golden_likes.json", func() ([]byte, error) { return s.LikesJSON("sample", "en") }},
		{"golden_shares.json", func() ([]byte, error) { return s.SharesJSON("sample", "en") }},
	} {
		b, err := tc.build()
		if err != nil {
			t.Fatalf("%s: %v", tc.golden, err)
		}
		checkContext(t, tc.golden, b)
		checkGoldenJSON(t, tc.golden, b)
		if got := string(b); strings.Contains(got, "private") {
			t.Errorf("%s lists the mention: %s", tc.golden, got)
		}
	}
}

// TestNoteCollectionsMissing: the collections of an unknown Note are not
// found, those of a deleted one gone, like the Note.
func TestNoteCollectionsMissing(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	if _, err := s.RepliesJSON("nope", "en", 0); !errors.Is(err, federation.ErrNotFound) {
		t.Errorf("replies of unknown note: %v", err)
	}
	if _, err := s.LikesJSON("nope", "en"); !errors.Is(err, federation.ErrNotFound) {
		t.Errorf("likes of unknown note: %v", err)
	}
	entry := storage.LedgerEntry{
		Key: "sample/en", NoteID: s.cfg.NoteID("sample", "en"), Hash: "h", Pushed: true,
		Published: vocabNow.Add(-time.Hour), Deleted: vocabNow,
	}
	act, _, err := s.BuildActivity("Delete", s.cfg.NoteID("sample", "en"), []string{Public}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Publish(entry, act, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SharesJSON("sample", "en"); !errors.Is(err, federation.ErrGone) {
		t.Errorf("shares of deleted note: %v", err)
	}
	if _, err := s.RepliesJSON("sample", "en", 1); !errors.Is(err, federation.ErrGone) {
		t.Errorf("replies page of deleted note: %v", err)
	}
}

// TestRepliesConsistentUnderConcurrentPuts reads the replies collection
// while replies, likes and boosts arrive from several goroutines: every
// read is one snapshot (totalItems agrees with the inline page: its items
// are min(total, 20) and next is there exactly when total > 20), counts
// never go down, and the end state counts every arrival once.
func TestRepliesConsistentUnderConcurrentPuts(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	note := s.cfg.NoteID("sample", "en")
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := w*each + i
				for _, kind := range []storage.InteractionKind{storage.KindReply, storage.KindLike} {
					_, err := s.store.PutInteraction(storage.Interaction{
						ID: fmt.Sprintf("https://remote.example/%s/%d", kind, n), Kind: kind, NoteID: note, InReplyTo: note,
						Actor:     storage.RemoteActor{ID: fmt.Sprintf("https://remote.example/users/%d", n)},
						Published: vocabNow.Add(time.Duration(n) * time.Second),
					})
					if err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	last := 0
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		b, err := s.RepliesJSON("sample", "en", 0)
		if err != nil {
			t.Fatal(err)
		}
		c := decodeJSON(t, b)
		total := int(c["totalItems"].(float64))
		first := c["first"].(map[string]any)
		items := first["orderedItems"].([]any)
		_, hasNext := first["next"]
		if len(items) != min(total, 20) || hasNext != (total > 20) {
			t.Fatalf("torn read: totalItems %d, %d items, next %v", total, len(items), hasNext)
		}
		if total < last {
			t.Fatalf("count went down: %d after %d", total, last)
		}
		last = total
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, err := s.NoteJSON("sample", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := decodeJSON(t, b)
	if got := n["replies"].(map[string]any)["totalItems"]; got != float64(writers*each) {
		t.Errorf("replies totalItems = %v, want %d", got, writers*each)
	}
	if got := n["likes"].(map[string]any)["totalItems"]; got != float64(writers*each) {
		t.Errorf("likes totalItems = %v, want %d", got, writers*each)
	}
}
