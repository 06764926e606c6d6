package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

const (
	noteA = "https://crieur.example/posts/a/en"
	noteB = "https://crieur.example/posts/b/en"
)

func actor(n string) RemoteActor {
	return RemoteActor{ID: "https://remote.example/users/" + n, Name: n, Handle: n + "@remote.example"}
}

// checkInteractionIndexes: every record is in each index once, every index
// entry names a record, and the counters equal what the note index holds.
func checkInteractionIndexes(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		records := map[string]Interaction{}
		err := tx.Bucket(bucketInteractions).ForEach(func(k, v []byte) error {
			var i Interaction
			if err := decode(v, &i); err != nil {
				return err
			}
			records[string(k)] = i
			return nil
		})
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for _, i := range records {
			for _, c := range []struct {
				b   []byte
				key []byte
			}{{bucketInteractionNote, interactionNoteKey(i)}, {bucketInteractionActor, interactionActorKey(i)}, {bucketInteractionRecent, interactionRecentKey(i)}} {
				if tx.Bucket(c.b).Get(c.key) == nil {
					return fmt.Errorf("%s missing from %s", i.ID, c.b)
				}
			}
			counts[string(countKey(i.NoteID, indexKind(i)))]++
		}
		for _, b := range [][]byte{bucketInteractionNote, bucketInteractionActor, bucketInteractionRecent} {
			if n := tx.Bucket(b).Stats().KeyN; n != len(records) {
				return fmt.Errorf("%s has %d entries for %d records", b, n, len(records))
			}
		}
		return tx.Bucket(bucketInteractionCounts).ForEach(func(k, v []byte) error {
			if got, want := int(binary.BigEndian.Uint64(v)), counts[string(k)]; got != want {
				return fmt.Errorf("count %q = %d, records say %d", bytes.ReplaceAll(k, []byte{0}, []byte("|")), got, want)
			}
			delete(counts, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInteractionsStoredListedCountedAndKept(t *testing.T) {
	s, clock, path := newTestStore(t)
	t0 := clock.Now()
	reply := Interaction{ID: "https://remote.example/notes/1", Kind: KindReply, NoteID: noteA, InReplyTo: noteA,
		Actor: actor("alice"), Content: "<p>Thanks</p>", Published: t0}
	if created, err := s.PutInteraction(reply); err != nil || !created {
		t.Fatalf("put reply: %v %v", created, err)
	}
	nested := Interaction{ID: "https://other.example/notes/9", Kind: KindReply, NoteID: noteA, InReplyTo: reply.ID,
		Actor: actor("bob"), Content: "<p>Agreed</p>", Published: t0.Add(time.Minute)}
	like := Interaction{ID: "https://remote.example/likes/1", Kind: KindLike, NoteID: noteA, Actor: actor("bob"), Published: t0}
	boost := Interaction{ID: "https://remote.example/boosts/1", Kind: KindAnnounce, NoteID: noteB, Actor: actor("alice"), Published: t0}
	for _, i := range []Interaction{nested, like, boost} {
		if _, err := s.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}
	// The same reply again (a repeated Create) and an edit: one record.
	reply.Content, reply.Updated = "<p>Thanks a lot</p>", t0.Add(time.Hour)
	if created, err := s.PutInteraction(reply); err != nil || created {
		t.Fatalf("edit: created %v, %v", created, err)
	}
	// A second Like by bob with another activity id replaces the first.
	like2 := like
	like2.ID = "https://remote.example/likes/2"
	if _, err := s.PutInteraction(like2); err != nil {
		t.Fatal(err)
	}
	checkInteractionIndexes(t, s)
	s.Close()
	s = openTest(t, path, clock)

	counts, err := s.InteractionCounts(noteA)
	if err != nil || counts[KindReply] != 2 || counts[KindLike] != 1 || counts[KindAnnounce] != 0 {
		t.Fatalf("counts of a: %v %v", counts, err)
	}
	replies, total, err := s.NoteInteractions(noteA, KindReply, 0, 0, false)
	if err != nil || total != 2 || len(replies) != 2 || replies[0].ID != reply.ID || replies[1].ID != nested.ID {
		t.Fatalf("replies oldest first: %v total %d %v", replies, total, err)
	}
	if replies[0].Content != "<p>Thanks a lot</p>" || !replies[0].Updated.Equal(t0.Add(time.Hour)) {
		t.Errorf("edit not kept: %+v", replies[0])
	}
	newest, _, _ := s.NoteInteractions(noteA, KindReply, 0, 1, true)
	if len(newest) != 1 || newest[0].ID != nested.ID {
		t.Errorf("newest first, one: %v", newest)
	}
	page2, _, _ := s.NoteInteractions(noteA, KindReply, 1, 1, false)
	if len(page2) != 1 || page2[0].ID != nested.ID {
		t.Errorf("second page: %v", page2)
	}
	if _, err := s.Interaction(like.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the replaced Like is still there: %v", err)
	}
	recent, _ := s.RecentInteractions(10)
	if len(recent) != 4 {
		t.Errorf("recent: %d, want 4", len(recent))
	}
}

// Only its author removes an interaction; an account deletion removes all
// of the account's.
func TestInteractionsRemovedByTheirAuthorOnly(t *testing.T) {
	s, _, _ := newTestStore(t)
	reply := Interaction{ID: "https://remote.example/notes/1", Kind: KindReply, NoteID: noteA, Actor: actor("alice")}
	like := Interaction{ID: "https://remote.example/likes/1", Kind: KindLike, NoteID: noteB, Actor: actor("alice")}
	other := Interaction{ID: "https://remote.example/likes/2", Kind: KindLike, NoteID: noteA, Actor: actor("bob")}
	for _, i := range []Interaction{reply, like, other} {
		if _, err := s.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.DeleteInteraction(reply.ID, actor("mallory").ID); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("delete by another actor: %v", err)
	}
	hijack := reply
	hijack.Actor, hijack.Content = actor("mallory"), "<p>spam</p>"
	if _, err := s.PutInteraction(hijack); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("update by another actor: %v", err)
	}
	if got, err := s.Interaction(reply.ID); err != nil || got.Actor.ID != actor("alice").ID {
		t.Fatalf("reply after refused changes: %+v %v", got, err)
	}
	// "alice" must not match "al": the actor index separates ids.
	for name, want := range map[string]bool{"alice": true, "al": false, "mallory": false} {
		if has, err := s.HasInteractionsOf(actor(name).ID); err != nil || has != want {
			t.Errorf("HasInteractionsOf(%s) = %v %v, want %v", name, has, err, want)
		}
	}
	if n, err := s.DeleteInteractionsOf(actor("alice").ID); err != nil || n != 2 {
		t.Fatalf("delete alice's: %d %v", n, err)
	}
	if has, _ := s.HasInteractionsOf(actor("alice").ID); has {
		t.Error("HasInteractionsOf after the account deletion")
	}
	if counts, _ := s.InteractionCounts(noteA); counts[KindReply] != 0 || counts[KindLike] != 1 {
		t.Errorf("counts after the account deletion: %v", counts)
	}
	if _, found, err := s.DeleteInteraction(other.ID, actor("bob").ID); err != nil || !found {
		t.Fatalf("delete by its author: %v %v", found, err)
	}
	checkInteractionIndexes(t, s)
}

// Counts stay equal to the records under concurrent arrivals and removals.
func TestInteractionCountsUnderConcurrency(t *testing.T) {
	s, _, _ := newTestStore(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				a := actor(fmt.Sprintf("u%d-%d", w, i%10))
				kind := []InteractionKind{KindLike, KindAnnounce}[i%2]
				id := fmt.Sprintf("https://remote.example/%d/%d", w, i)
				if _, err := s.PutInteraction(Interaction{ID: id, Kind: kind, NoteID: noteA, Actor: a}); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if _, _, err := s.DeleteInteraction(id, a.ID); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	checkInteractionIndexes(t, s)
}

// A hidden or pending reply is kept but neither listed nor counted; an edit
// keeps the admin's decision; showing it brings it back.
func TestInteractionModeration(t *testing.T) {
	s, _, _ := newTestStore(t)
	shown := Interaction{ID: "https://remote.example/notes/1", Kind: KindReply, NoteID: noteA, Actor: actor("alice")}
	waiting := Interaction{ID: "https://remote.example/notes/2", Kind: KindReply, NoteID: noteA, Actor: actor("bob"), Moderation: ModerationPending}
	for _, i := range []Interaction{shown, waiting} {
		if _, err := s.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetModeration(shown.ID, ModerationHidden); err != nil {
		t.Fatal(err)
	}
	shown.Content = "<p>edited</p>"
	if _, err := s.PutInteraction(shown); err != nil {
		t.Fatal(err)
	}
	if list, total, _ := s.NoteInteractions(noteA, KindReply, 0, 0, false); total != 0 || len(list) != 0 {
		t.Fatalf("hidden and pending replies listed: %d %v", total, list)
	}
	if got, _ := s.Interaction(shown.ID); got.Moderation != ModerationHidden || got.Content != "<p>edited</p>" {
		t.Fatalf("after an edit: %+v", got)
	}
	if _, err := s.SetModeration(waiting.ID, ""); err != nil {
		t.Fatal(err)
	}
	if list, total, _ := s.NoteInteractions(noteA, KindReply, 0, 0, false); total != 1 || len(list) != 1 || list[0].ID != waiting.ID {
		t.Fatalf("approved reply: %d %v", total, list)
	}
	if _, err := s.SetModeration("https://nowhere.example/x", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	checkInteractionIndexes(t, s)
}
