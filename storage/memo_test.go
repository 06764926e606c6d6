package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Every write of a memoised record is seen by the next read: a key
// replaced, deleted, pruned or purged by a block; a ledger entry
// republished. A memo that kept an old key would verify signatures with a
// rotated key, or take replies to a deleted article.
func TestMemoisedRecordsFollowWrites(t *testing.T) {
	s, clock, _ := newTestStore(t)
	key := func(id, pem string) RemoteKey {
		return RemoteKey{KeyID: id, Owner: "https://a.example/users/u", PublicKeyPEM: pem, FetchedAt: clock.Now()}
	}
	const id = "https://a.example/users/u#main-key"
	if err := s.PutRemoteKey(key(id, "one")); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		k, err := s.RemoteKey(id)
		if errors.Is(err, ErrNotFound) {
			return "none"
		}
		if err != nil {
			t.Fatal(err)
		}
		return k.PublicKeyPEM
	}
	if got := read(); got != "one" {
		t.Fatalf("first read %q", got)
	}
	if err := s.PutRemoteKey(key(id, "two")); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "two" {
		t.Fatalf("after replacement %q, want two", got)
	}
	if err := s.DeleteRemoteKey(id); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "none" {
		t.Fatalf("after delete %q", got)
	}

	if err := s.PutRemoteKey(key(id, "three")); err != nil {
		t.Fatal(err)
	}
	read()
	clock.Advance(time.Hour)
	if n, err := s.PruneRemoteKeys(clock.Now()); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if got := read(); got != "none" {
		t.Fatalf("after prune %q", got)
	}

	if err := s.PutRemoteKey(key(id, "four")); err != nil {
		t.Fatal(err)
	}
	read()
	if _, err := s.PutBlock(Block{Kind: BlockDomain, Value: "a.example"}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "none" {
		t.Fatalf("after a block of its domain %q", got)
	}

	e := LedgerEntry{Key: "hello/en", NoteID: "https://crieur.example/posts/hello/en", Hash: "h1"}
	if _, err := s.Publish(e, Activity{ID: "https://crieur.example/a/1", Type: "Create"}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LedgerEntry("hello/en"); err != nil || got.Hash != "h1" {
		t.Fatalf("ledger: %+v, %v", got, err)
	}
	e.Deleted = clock.Now()
	if _, err := s.Publish(e, Activity{ID: "https://crieur.example/a/2", Type: "Delete"}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LedgerEntry("hello/en"); err != nil || got.Deleted.IsZero() {
		t.Fatalf("ledger after the Delete: %+v, %v", got, err)
	}
}

// Readers racing writers never leave an old value behind: after the last
// write, every key reads as written, however reads and writes interleaved.
func TestMemoNeverKeepsAnOldValue(t *testing.T) {
	s, clock, _ := newTestStore(t)
	const keys, rounds = 8, 40
	id := func(k int) string { return fmt.Sprintf("https://a.example/users/u%d#main-key", k) }
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			for r := range rounds {
				if err := s.PutRemoteKey(RemoteKey{KeyID: id(k), PublicKeyPEM: fmt.Sprint(r), FetchedAt: clock.Now()}); err != nil {
					t.Error(err)
					return
				}
			}
		})
		for range 3 {
			wg.Go(func() {
				for range rounds * 4 {
					_, _ = s.RemoteKey(id(k))
				}
			})
		}
	}
	wg.Wait()
	for k := range keys {
		got, err := s.RemoteKey(id(k))
		if err != nil || got.PublicKeyPEM != fmt.Sprint(rounds-1) {
			t.Errorf("key %d reads %q (%v), want the last write %d", k, got.PublicKeyPEM, err, rounds-1)
		}
	}
}

// A full memo drops some entries and keeps answering from bbolt.
func TestMemoBounded(t *testing.T) {
	m := newMemo[int](16)
	for i := range 100 {
		m.put(m.begin(), fmt.Sprint(i), i)
		if len(m.m) > 16 {
			t.Fatalf("%d entries, bound 16", len(m.m))
		}
	}
	if v, ok := m.get("99"); !ok || v != 99 {
		t.Fatalf("latest entry: %d, %v", v, ok)
	}
	g := m.begin()
	m.forget("99")
	m.put(g, "99", -1) // read before the forget: must not come back
	if _, ok := m.get("99"); ok {
		t.Fatal("a value read before a forget was kept")
	}
}
