package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openTest(t testing.TB, path string, clock *testClock) *Store {
	t.Helper()
	s, err := Open(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newTestStore(t testing.TB) (*Store, *testClock, string) {
	t.Helper()
	clock := newClock()
	path := filepath.Join(t.TempDir(), "crieur.db")
	return openTest(t, path, clock), clock, path
}

// checkInvariants verifies what every transaction must leave behind: the
// indexes agree with the records they index, counters agree with the jobs,
// and bbolt's own page structure is sound.
func checkInvariants(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("bbolt check: %w", err)
		}
		// Followers and their order index.
		followers := tx.Bucket(bucketFollowers)
		nf := 0
		if err := followers.ForEach(func(k, v []byte) error {
			var f Follower
			if err := decode(v, &f); err != nil {
				return fmt.Errorf("follower %q: %w", k, err)
			}
			if f.ActorID != string(k) {
				return fmt.Errorf("follower under %q has id %q", k, f.ActorID)
			}
			st := tx.Bucket(bucketFollowerOrder).Get(followerOrderKey(f))
			if FollowerStatus(st) != f.Status {
				return fmt.Errorf("follower %q: order index status %q, record %q", k, st, f.Status)
			}
			nf++
			return nil
		}); err != nil {
			return err
		}
		if n := tx.Bucket(bucketFollowerOrder).Stats().KeyN; n != nf {
			return fmt.Errorf("%d follower index entries for %d followers", n, nf)
		}
		// The delivery inbox index counts exactly the accepted followers.
		if err := checkDeliveryInboxes(tx); err != nil {
			return err
		}
		// Outbox entries name activities that are in the outbox.
		if err := tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var a Activity
			found, err := getJSON(tx.Bucket(bucketActivities), v, &a)
			if err != nil || !found || !a.InOutbox || !bytes.Equal(outboxKey(a), k) {
				return fmt.Errorf("outbox key %x names %q (found %v, err %v)", k, v, found, err)
			}
			return nil
		}); err != nil {
			return err
		}
		// Jobs: each pending job has exactly its two index entries.
		pending := map[string]int{}
		failed := map[string]int{}
		nj := 0
		if err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			j, err := decodeJob(v)
			if err != nil {
				return fmt.Errorf("job %x: %w", k, err)
			}
			if j.State != JobPending || !bytes.Equal(u64(j.ID), k) {
				return fmt.Errorf("job %x: state %q id %d", k, j.State, j.ID)
			}
			if p := tx.Bucket(bucketDue).Get(dueKey(j)); !bytes.Equal(p, chainPrefix(j)) {
				return fmt.Errorf("job %d: due index entry %x", j.ID, p)
			}
			if tx.Bucket(bucketChain).Get(append(chainPrefix(j), u64(j.ID)...)) == nil {
				return fmt.Errorf("job %d: no chain entry", j.ID)
			}
			if tx.Bucket(bucketActivities).Get([]byte(j.ActivityID)) == nil {
				return fmt.Errorf("job %d: activity %q missing", j.ID, j.ActivityID)
			}
			pending[j.ActivityID]++
			nj++
			return nil
		}); err != nil {
			return err
		}
		if n := tx.Bucket(bucketDue).Stats().KeyN; n != nj {
			return fmt.Errorf("%d due entries for %d jobs", n, nj)
		}
		if n := tx.Bucket(bucketChain).Stats().KeyN; n != nj {
			return fmt.Errorf("%d chain entries for %d jobs", n, nj)
		}
		if err := tx.Bucket(bucketFailed).ForEach(func(k, v []byte) error {
			j, err := decodeJob(v)
			if err != nil {
				return fmt.Errorf("failed job %x: %w", k, err)
			}
			if j.State != JobFailed {
				return fmt.Errorf("failed job %d in state %q", j.ID, j.State)
			}
			if tx.Bucket(bucketJobs).Get(k) != nil {
				return fmt.Errorf("job %d both pending and failed", j.ID)
			}
			// `crieur queue retry` resends the failed job's activity.
			if tx.Bucket(bucketActivities).Get([]byte(j.ActivityID)) == nil {
				return fmt.Errorf("failed job %d: activity %q missing", j.ID, j.ActivityID)
			}
			failed[j.ActivityID]++
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketCounters).ForEach(func(k, v []byte) error {
			var c DeliveryCounts
			if err := decode(v, &c); err != nil {
				return err
			}
			// Failed counts may exceed the failed records: PruneFailed
			// drops old records and keeps the counts.
			if c.Pending != pending[string(k)] || c.Failed < failed[string(k)] || c.Delivered < 0 {
				return fmt.Errorf("activity %q: counts %+v, pending jobs %d, failed jobs %d",
					k, c, pending[string(k)], failed[string(k)])
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("invariants: %v", err)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	_, _, path := newTestStore(t)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("database mode %v, want no group/other access", perm)
	}
}

func TestOpenLockedFileFails(t *testing.T) {
	_, clock, path := newTestStore(t)
	// bbolt's flock is per open file, so a second Open in this process
	// meets the same lock another crieur would.
	s2, err := Open(path, Options{Timeout: 100 * time.Millisecond, Now: clock.Now})
	if err == nil {
		_ = s2.Close()
		t.Fatal("second Open of a locked database succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v does not wrap ErrLocked", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing", "dir", "crieur.db"), Options{})
	if err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	clock := newClock()
	path := filepath.Join(t.TempDir(), "crieur.db")
	s, err := Open(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := Follower{ActorID: "https://a.example/users/ann", Inbox: "https://a.example/users/ann/inbox", Status: FollowerAccepted}
	if err := s.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	entry := LedgerEntry{Key: "hello/en", NoteID: "https://b.example/posts/hello/en", Hash: "h1", Published: clock.Now(), Pushed: true}
	act := Activity{ID: "https://b.example/activities/1", Type: "Create", ObjectID: entry.NoteID, Published: clock.Now(), InOutbox: true, JSON: []byte(`{"type":"Create"}`)}
	if _, err := s.Publish(entry, act, []Job{{Inbox: f.Inbox}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRemoteKey(RemoteKey{KeyID: f.ActorID + "#main-key", Owner: f.ActorID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, clock)
	gotF, err := s.Follower(f.ActorID)
	if err != nil || gotF.Inbox != f.Inbox {
		t.Errorf("follower after reopen: %+v, %v", gotF, err)
	}
	gotE, err := s.LedgerEntry(entry.Key)
	if err != nil || gotE.Hash != "h1" || !gotE.Published.Equal(entry.Published) {
		t.Errorf("ledger after reopen: %+v, %v", gotE, err)
	}
	gotA, err := s.Activity(act.ID)
	if err != nil || !bytes.Equal(gotA.JSON, act.JSON) {
		t.Errorf("activity after reopen: %+v, %v", gotA, err)
	}
	jobs, err := s.PendingJobs()
	if err != nil || len(jobs) != 1 || jobs[0].Inbox != f.Inbox || jobs[0].ActivityID != act.ID {
		t.Errorf("jobs after reopen: %+v, %v", jobs, err)
	}
	if _, err := s.RemoteKey(f.ActorID + "#main-key"); err != nil {
		t.Errorf("remote key after reopen: %v", err)
	}
	// Sequence numbers go on after reopen: ids are never reused.
	if err := s.Enqueue(act, []Job{{Inbox: "https://c.example/inbox"}}); err != nil {
		t.Fatal(err)
	}
	jobs, _ = s.PendingJobs()
	if len(jobs) != 2 || jobs[1].ID <= jobs[0].ID {
		t.Errorf("job ids after reopen: %+v", jobs)
	}
	checkInvariants(t, s)
}

func TestRemoteKeys(t *testing.T) {
	s, clock, _ := newTestStore(t)
	k := RemoteKey{KeyID: "https://a.example/users/ann#main-key", Owner: "https://a.example/users/ann",
		PublicKeyPEM: "-----BEGIN PUBLIC KEY-----\n...", Inbox: "https://a.example/users/ann/inbox", FetchedAt: clock.Now()}
	if _, err := s.RemoteKey(k.KeyID); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
	if err := s.PutRemoteKey(k); err != nil {
		t.Fatal(err)
	}
	got, err := s.RemoteKey(k.KeyID)
	if err != nil || got.Owner != k.Owner || got.PublicKeyPEM != k.PublicKeyPEM || !got.FetchedAt.Equal(k.FetchedAt) {
		t.Errorf("RemoteKey = %+v, %v", got, err)
	}
	k.PublicKeyPEM = "rotated"
	if err := s.PutRemoteKey(k); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.RemoteKey(k.KeyID); got.PublicKeyPEM != "rotated" {
		t.Errorf("after replace: %q", got.PublicKeyPEM)
	}
	if err := s.DeleteRemoteKey(k.KeyID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoteKey(k.KeyID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted key: %v", err)
	}
	if err := s.DeleteRemoteKey(k.KeyID); err != nil {
		t.Errorf("deleting an unknown key: %v", err)
	}
	if err := s.PutRemoteKey(RemoteKey{}); err == nil {
		t.Error("PutRemoteKey without KeyID succeeded")
	}
}
