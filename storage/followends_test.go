package storage

import (
	"testing"
	"time"
)

// EndFollow removes the follower and remembers the latest end, which
// survives a reopen; an older end never replaces a newer one; the prune
// forgets ends older than its cut.
func TestEndFollow(t *testing.T) {
	s, _, path := newTestStore(t)
	const actor = "https://remote.example/users/alice"
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if err := s.PutFollower(Follower{ActorID: actor, Inbox: actor + "/inbox", SignedAt: t0}); err != nil {
		t.Fatal(err)
	}
	removed, err := s.EndFollow(actor, t0.Add(time.Minute))
	if err != nil || !removed {
		t.Fatalf("EndFollow: %v, removed %v", err, removed)
	}
	if _, err := s.EndFollow(actor, t0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, path, newClock())
	if n, _ := s.CountFollowers(); n != 0 {
		t.Fatalf("%d followers after EndFollow", n)
	}
	if got, err := s.FollowEndedAt(actor); err != nil || !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("FollowEndedAt = %v, %v; want the later end", got, err)
	}
	if n, err := s.PruneFollowEnds(t0); err != nil || n != 0 {
		t.Fatalf("prune before the end: %d, %v", n, err)
	}
	if n, err := s.PruneFollowEnds(t0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("prune after the end: %d, %v", n, err)
	}
	if got, _ := s.FollowEndedAt(actor); !got.IsZero() {
		t.Fatalf("end kept after the prune: %v", got)
	}
}
