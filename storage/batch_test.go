package storage

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

var errTestFn = errors.New("test function failed")

// TestGroupCommitIsolatesFailures: 200 concurrent calls, every fifth of
// which writes and then fails. The failing ones get their error and leave
// nothing; all others are committed, whatever batch they shared.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s, _, _ := newTestStore(t)
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.group.do(s.db, func(tx *bbolt.Tx) error {
				if err := tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
					return err
				}
				if i%5 == 0 {
					return errTestFn
				}
				return nil
			}, i%2 == 0)
		})
	}
	wg.Wait()
	err := s.db.View(func(tx *bbolt.Tx) error {
		for i := range n {
			got := tx.Bucket(bucketMeta).Get(fmt.Appendf(nil, "k%03d", i))
			fails := i%5 == 0
			if fails != errors.Is(errs[i], errTestFn) || (errs[i] != nil && !fails) {
				t.Errorf("call %d: error %v", i, errs[i])
			}
			if (got != nil) == fails {
				t.Errorf("call %d (fails %v): value %q", i, fails, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The group is idle again: a lone call goes straight through.
	if err := s.group.do(s.db, func(*bbolt.Tx) error { return nil }, false); err != nil {
		t.Fatal(err)
	}
	if s.group.busy || len(s.group.queue) != 0 {
		t.Errorf("group left busy=%v with %d queued", s.group.busy, len(s.group.queue))
	}
}

// TestGroupCommitClosedDatabase: when the commit itself cannot happen,
// every call of the batch reports it.
func TestGroupCommitClosedDatabase(t *testing.T) {
	s, _, _ := newTestStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(1); err == nil {
		t.Error("CompleteJob on a closed store succeeded")
	}
	if err := s.RetryJob(1, s.now(), 0, "", false); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("RetryJob on a closed store: %v", err)
	}
}

// TestGroupCommitBatchesAStream: calls arriving one per millisecond, like
// the completions of a fan-out, share commits (each commit waits
// groupWindow for company) instead of paying two fsyncs each.
func TestGroupCommitBatchesAStream(t *testing.T) {
	s, _, _ := newTestStore(t)
	const n = 300
	ids := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		time.Sleep(time.Millisecond)
		wg.Go(func() {
			err := s.group.do(s.db, func(tx *bbolt.Tx) error {
				ids[i] = tx.ID()
				return tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "k%03d", i), []byte("v"))
			}, true)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	commits := map[int]bool{}
	for _, id := range ids {
		commits[id] = true
	}
	// 300 calls over at least 300 ms: about one commit per groupWindow.
	if len(commits) > n/5 {
		t.Errorf("%d calls in a stream made %d commits, want at most %d", n, len(commits), n/5)
	}
}

// TestGroupCommitDoesNotLingerForALoop: calls that do not linger (the
// followers' and keys' writes) never wait for company, so a caller writing
// in a loop (an import, an admin command) commits each call at once, while
// a lingering stream does wait.
func TestGroupCommitDoesNotLingerForALoop(t *testing.T) {
	s, _, _ := newTestStore(t)
	var sleeps atomic.Int32
	s.group.sleep = func(time.Duration) { sleeps.Add(1) }
	for i := range 20 {
		if err := s.PutFollower(follower(i, FollowerAccepted)); err != nil {
			t.Fatal(err)
		}
	}
	if n := sleeps.Load(); n != 0 {
		t.Errorf("20 PutFollower calls in a loop waited for company %d times, want 0", n)
	}
	for i := range 5 {
		if err := s.group.do(s.db, func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
		}, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := sleeps.Load(); n < 4 {
		t.Errorf("5 lingering calls in a row waited %d times, want at least 4", n)
	}
}

// TestRefusalKeepsTheBatch: calls refused before writing (another actor's
// like, or its Undo, on purpose) get their error while the calls they share
// a commit with stay in that one commit, instead of rolling it back and
// rerunning each of them in a commit (two fsyncs) of its own.
func TestRefusalKeepsTheBatch(t *testing.T) {
	s, clock, _ := newTestStore(t)
	mine := Interaction{ID: "https://a.example/likes/1", Kind: KindLike, NoteID: "https://crieur.example/posts/hello/en",
		Actor: RemoteActor{ID: "https://a.example/users/a"}, ReceivedAt: clock.Now()}
	if _, err := s.PutInteraction(mine); err != nil {
		t.Fatal(err)
	}

	// A leader holds the commit open until the others have queued: they
	// then share the next one.
	release := make(chan struct{})
	leaderDone := make(chan error, 1)
	go func() {
		leaderDone <- s.group.do(s.db, func(*bbolt.Tx) error { <-release; return nil }, false)
	}()
	waitQueue := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.group.mu.Lock()
			busy, queued := s.group.busy, len(s.group.queue)
			s.group.mu.Unlock()
			if busy && queued >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d calls queued, want %d", queued, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitQueue(0)

	const others = 6
	var wg sync.WaitGroup
	txIDs := make([]int, others)
	errs := make([]error, others)
	var refused, refusedDelete error
	for i := range others {
		wg.Go(func() {
			errs[i] = s.group.do(s.db, func(tx *bbolt.Tx) error {
				txIDs[i] = tx.ID()
				return tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "other%d", i), []byte("v"))
			}, false)
		})
	}
	waitQueue(others)
	wg.Go(func() {
		// Another actor sends a Like with an id already kept for a.
		_, refused = s.PutInteraction(Interaction{ID: mine.ID, Kind: KindLike, NoteID: mine.NoteID,
			Actor: RemoteActor{ID: "https://a.example/users/b"}})
	})
	waitQueue(others + 1)
	wg.Go(func() {
		// And an Undo of a's like by b.
		_, _, refusedDelete = s.DeleteInteraction(mine.ID, "https://a.example/users/b")
	})
	waitQueue(others + 2)
	close(release)
	wg.Wait()
	if err := <-leaderDone; err != nil {
		t.Fatal(err)
	}

	if !errors.Is(refused, ErrNotOwner) {
		t.Fatalf("the other actor's Like: %v, want ErrNotOwner", refused)
	}
	if !errors.Is(refusedDelete, ErrNotOwner) {
		t.Fatalf("the other actor's Undo: %v, want ErrNotOwner", refusedDelete)
	}
	for i := range others {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if txIDs[i] != txIDs[0] {
			t.Fatalf("calls ran in transactions %v: the refusal split their commit", txIDs)
		}
	}
	got, err := s.Interaction(mine.ID)
	if err != nil || got.Actor.ID != mine.Actor.ID {
		t.Fatalf("the kept like: %+v, %v", got, err)
	}
	checkInvariants(t, s)
}
