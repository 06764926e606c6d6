package storage

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"go.etcd.io/bbolt"
)

// checkDeliveryInboxes compares the delivery inbox index with counts
// recomputed from the follower records.
func checkDeliveryInboxes(tx *bbolt.Tx) error {
	want := map[string]int64{}
	if err := tx.Bucket(bucketFollowers).ForEach(func(k, v []byte) error {
		var f Follower
		if err := decode(v, &f); err != nil {
			return fmt.Errorf("follower %q: %w", k, err)
		}
		if in := indexedInbox(f); in != "" {
			want[in]++
		}
		return nil
	}); err != nil {
		return err
	}
	got := map[string]int64{}
	if err := tx.Bucket(bucketDeliveryInboxes).ForEach(func(k, v []byte) error {
		n, err := inboxCount(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("delivery inbox %q: count %x (%v)", k, v, err)
		}
		got[string(k)] = n
		return nil
	}); err != nil {
		return err
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("delivery inbox index %v, followers give %v", got, want)
	}
	return nil
}

// dropDeliveryInboxIndex makes s look like a file written before the index
// existed: no bucket, schema "1".
func dropDeliveryInboxIndex(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketDeliveryInboxes); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(schemaKey, []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inboxCountOf reads the raw count of one inbox (0 when absent).
func inboxCountOf(t testing.TB, s *Store, inbox string) int64 {
	t.Helper()
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = inboxCount(tx.Bucket(bucketDeliveryInboxes).Get([]byte(inbox)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// expectedInboxes is what the publisher computed before the index: the
// distinct DeliveryInbox of accepted followers, sorted.
func expectedInboxes(t testing.TB, s *Store) []string {
	t.Helper()
	fs, err := s.Followers(FollowerAccepted)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		if in := f.DeliveryInbox(); in != "" {
			out = append(out, in)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func assertInboxes(t testing.TB, s *Store, want ...string) {
	t.Helper()
	got, err := s.DeliveryInboxes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DeliveryInboxes = %q\nwant %q", got, want)
	}
}

func TestDeliveryInboxesFollowPutFollower(t *testing.T) {
	s, _, _ := newTestStore(t)
	assertInboxes(t, s)

	a := follower(1, FollowerAccepted)
	if err := s.PutFollower(a); err != nil {
		t.Fatal(err)
	}
	assertInboxes(t, s, a.Inbox)

	// Pending followers are not delivered to.
	p := follower(2, FollowerPending)
	if err := s.PutFollower(p); err != nil {
		t.Fatal(err)
	}
	assertInboxes(t, s, a.Inbox)
	p.Status = FollowerAccepted
	if err := s.AcceptFollower(p, Activity{ID: "https://b.example/activities/accept"}, nil); err != nil {
		t.Fatal(err)
	}
	assertInboxes(t, s, a.Inbox, p.Inbox)

	// The remote server gains a shared inbox: the personal one leaves.
	a.SharedInbox = "https://h1.example/inbox"
	if err := s.PutFollower(a); err != nil {
		t.Fatal(err)
	}
	assertInboxes(t, s, a.SharedInbox, p.Inbox)
	// And moves it.
	a.SharedInbox = "https://h1.example/shared"
	if err := s.PutFollower(a); err != nil {
		t.Fatal(err)
	}
	assertInboxes(t, s, a.SharedInbox, p.Inbox)
	// Re-putting an unchanged follower changes nothing.
	if err := s.PutFollower(a); err != nil {
		t.Fatal(err)
	}
	if n := inboxCountOf(t, s, a.SharedInbox); n != 1 {
		t.Errorf("count after re-put = %d, want 1", n)
	}
	// Back to pending (an approval withdrawn): no longer delivered to.
	p.Status = FollowerPending
	if err := s.PutFollower(p); err != nil {
		t.Fatal(err)
	}
	assertInboxes(t, s, a.SharedInbox)
	checkInvariants(t, s)

	if _, err := s.DeleteFollower(a.ActorID); err != nil {
		t.Fatal(err)
	}
	assertInboxes(t, s)
	checkInvariants(t, s)
}

func TestDeliveryInboxesSharedInboxCounted(t *testing.T) {
	s, _, _ := newTestStore(t)
	const shared = "https://h1.example/inbox"
	x := follower(1, FollowerAccepted)
	x.SharedInbox = shared
	y := follower(4, FollowerAccepted) // same host h1
	y.SharedInbox = shared
	lone := follower(2, FollowerAccepted)
	for _, f := range []Follower{x, y, lone} {
		if err := s.PutFollower(f); err != nil {
			t.Fatal(err)
		}
	}
	assertInboxes(t, s, shared, lone.Inbox)
	if n := inboxCountOf(t, s, shared); n != 2 {
		t.Errorf("shared inbox count = %d, want 2", n)
	}

	if ok, err := s.DeleteFollower(x.ActorID); err != nil || !ok {
		t.Fatalf("DeleteFollower = %v, %v", ok, err)
	}
	assertInboxes(t, s, shared, lone.Inbox)
	if n := inboxCountOf(t, s, shared); n != 1 {
		t.Errorf("shared inbox count after one delete = %d, want 1", n)
	}
	// Deleting an unknown follower leaves the counts alone.
	if ok, err := s.DeleteFollower(x.ActorID); err != nil || ok {
		t.Fatalf("second DeleteFollower = %v, %v", ok, err)
	}

	// A 410 from y's personal inbox removes y, and with it the shared inbox.
	if n, err := s.DeleteFollowersByInbox(y.Inbox); err != nil || n != 1 {
		t.Fatalf("DeleteFollowersByInbox = %d, %v", n, err)
	}
	assertInboxes(t, s, lone.Inbox)
	if n := inboxCountOf(t, s, shared); n != 0 {
		t.Errorf("shared inbox count after both deletes = %d, want 0", n)
	}
	if n, err := s.DeleteFollowersByInbox(lone.Inbox); err != nil || n != 1 {
		t.Fatalf("DeleteFollowersByInbox = %d, %v", n, err)
	}
	assertInboxes(t, s)
	checkInvariants(t, s)
}

func TestOpenBuildsMissingDeliveryInboxIndex(t *testing.T) {
	s, clock, path := newTestStore(t)
	x := follower(1, FollowerAccepted)
	x.SharedInbox = "https://h1.example/inbox"
	y := follower(4, FollowerAccepted)
	y.SharedInbox = x.SharedInbox
	for _, f := range []Follower{x, y, follower(2, FollowerAccepted), follower(5, FollowerPending)} {
		if err := s.PutFollower(f); err != nil {
			t.Fatal(err)
		}
	}
	want := expectedInboxes(t, s)
	dropDeliveryInboxIndex(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, clock)
	assertInboxes(t, s, want...)
	if n := inboxCountOf(t, s, x.SharedInbox); n != 2 {
		t.Errorf("rebuilt shared inbox count = %d, want 2", n)
	}
	if v, ok, err := s.Meta(string(schemaKey)); err != nil || !ok || v != strconv.Itoa(schemaVersion) {
		t.Errorf("schema after migration = %q, %v, %v; want %d", v, ok, err, schemaVersion)
	}
	checkInvariants(t, s)
	// The rebuilt index goes on being maintained.
	if _, err := s.DeleteFollower(x.ActorID); err != nil {
		t.Fatal(err)
	}
	if n := inboxCountOf(t, s, x.SharedInbox); n != 1 {
		t.Errorf("shared inbox count after delete = %d, want 1", n)
	}
	checkInvariants(t, s)
}

// TestOpenRepairsStaleDeliveryInboxIndex: a crieur older than the index
// writes followers without touching it (a downgrade); the next Open notices
// the counts no longer add up and rebuilds.
func TestOpenRepairsStaleDeliveryInboxIndex(t *testing.T) {
	s, clock, path := newTestStore(t)
	if err := s.PutFollower(follower(1, FollowerAccepted)); err != nil {
		t.Fatal(err)
	}
	stale := follower(2, FollowerAccepted)
	stale.CreatedAt = clock.Now()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketFollowers), []byte(stale.ActorID), stale); err != nil {
			return err
		}
		return tx.Bucket(bucketFollowerOrder).Put(followerOrderKey(stale), []byte(stale.Status))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, clock)
	assertInboxes(t, s, expectedInboxes(t, s)...)
	checkInvariants(t, s)
}

// TestDeliveryInboxesRandomOps: after any sequence of follower changes the
// index lists what decoding every accepted follower would give.
func TestDeliveryInboxesRandomOps(t *testing.T) {
	s, clock, path := newTestStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	inbox := func(host, user int) string {
		return fmt.Sprintf("https://h%d.example/users/u%d/inbox", host, user)
	}
	for step := range 300 {
		host, user := rng.IntN(4), rng.IntN(6)
		actor := fmt.Sprintf("https://h%d.example/users/u%d", host, user)
		var op string
		switch r := rng.IntN(10); {
		case r < 6:
			f := Follower{ActorID: actor, Inbox: inbox(host, user), Status: FollowerAccepted}
			if rng.IntN(4) == 0 {
				f.Status = FollowerPending
			}
			switch rng.IntN(3) {
			case 0: // no shared inbox
			case 1:
				f.SharedInbox = fmt.Sprintf("https://h%d.example/inbox", host)
			case 2:
				f.SharedInbox = fmt.Sprintf("https://relay%d.example/inbox", rng.IntN(2))
			}
			if rng.IntN(8) == 0 {
				f.Inbox = inbox(host, user+10) // account moved
			}
			op = fmt.Sprintf("put %+v", f)
			if err := s.PutFollower(f); err != nil {
				t.Fatal(err)
			}
		case r < 9:
			op = "delete " + actor
			if _, err := s.DeleteFollower(actor); err != nil {
				t.Fatal(err)
			}
		default:
			op = "delete by inbox " + inbox(host, user)
			if _, err := s.DeleteFollowersByInbox(inbox(host, user)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.DeliveryInboxes()
		if err != nil {
			t.Fatal(err)
		}
		if want := expectedInboxes(t, s); !slices.Equal(got, want) {
			t.Fatalf("step %d (%s): DeliveryInboxes = %q\nwant %q", step, op, got, want)
		}
	}
	checkInvariants(t, s)
	want := expectedInboxes(t, s)
	if len(want) < 2 {
		t.Fatalf("random walk left %d inboxes; the test checks too little", len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, clock)
	assertInboxes(t, s, want...)
}
