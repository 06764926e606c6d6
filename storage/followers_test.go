package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func follower(i int, status FollowerStatus) Follower {
	return Follower{
		ActorID:  fmt.Sprintf("https://h%d.example/users/u%d", i%3, i),
		Inbox:    fmt.Sprintf("https://h%d.example/users/u%d/inbox", i%3, i),
		FollowID: fmt.Sprintf("https://h%d.example/follows/%d", i%3, i),
		Host:     fmt.Sprintf("h%d.example", i%3),
		Status:   status,
	}
}

func actorIDs(fs []Follower) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ActorID)
	}
	return ids
}

func TestFollowerPutGetDelete(t *testing.T) {
	s, clock, _ := newTestStore(t)
	f := follower(1, FollowerAccepted)
	f.SharedInbox = "https://h1.example/inbox"
	f.Handle = "u1@h1.example"

	if _, err := s.Follower(f.ActorID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown follower: %v, want ErrNotFound", err)
	}
	if err := s.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	got, err := s.Follower(f.ActorID)
	if err != nil {
		t.Fatal(err)
	}
	want := f
	want.CreatedAt = clock.Now()
	if got != want {
		t.Errorf("Follower = %+v\nwant %+v", got, want)
	}

	// Re-putting (a repeated Follow) keeps the original CreatedAt.
	clock.Advance(time.Hour)
	f.FollowID = "https://h1.example/follows/again"
	if err := s.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Follower(f.ActorID)
	if !got.CreatedAt.Equal(want.CreatedAt) || got.FollowID != f.FollowID {
		t.Errorf("after re-put: %+v", got)
	}
	checkInvariants(t, s)

	ok, err := s.DeleteFollower(f.ActorID)
	if err != nil || !ok {
		t.Fatalf("DeleteFollower = %v, %v", ok, err)
	}
	ok, err = s.DeleteFollower(f.ActorID)
	if err != nil || ok {
		t.Fatalf("second DeleteFollower = %v, %v; want false, nil", ok, err)
	}
	if _, err := s.Follower(f.ActorID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted follower: %v", err)
	}
	if n, _ := s.CountFollowers(); n != 0 {
		t.Errorf("CountFollowers after delete = %d", n)
	}
	checkInvariants(t, s)

	if err := s.PutFollower(Follower{}); err == nil {
		t.Error("PutFollower without ActorID succeeded")
	}
}

func TestFollowerStatusChange(t *testing.T) {
	s, _, _ := newTestStore(t)
	f := follower(1, FollowerPending)
	if err := s.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountFollowers(); n != 0 {
		t.Errorf("pending follower counted: %d", n)
	}
	f.Status = FollowerAccepted
	if err := s.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountFollowers(); n != 1 {
		t.Errorf("CountFollowers after approval = %d, want 1", n)
	}
	pending, _ := s.Followers(FollowerPending)
	if len(pending) != 0 {
		t.Errorf("still pending: %v", actorIDs(pending))
	}
	checkInvariants(t, s)
}

func TestFollowersListingAndPages(t *testing.T) {
	s, clock, _ := newTestStore(t)
	var accepted, pending []string
	for i := range 12 {
		st := FollowerAccepted
		if i%4 == 3 {
			st = FollowerPending
		}
		f := follower(i, st)
		// Pairs share a CreatedAt, so the ActorID tie-break matters.
		if i%2 == 0 {
			clock.Advance(time.Minute)
		}
		if err := s.PutFollower(f); err != nil {
			t.Fatal(err)
		}
		if st == FollowerAccepted {
			accepted = append(accepted, f.ActorID)
		} else {
			pending = append(pending, f.ActorID)
		}
	}
	// Put them again in another order: order must not depend on writes.
	for i := 11; i >= 0; i-- {
		st := FollowerAccepted
		if i%4 == 3 {
			st = FollowerPending
		}
		if err := s.PutFollower(follower(i, st)); err != nil {
			t.Fatal(err)
		}
	}

	n, err := s.CountFollowers()
	if err != nil || n != len(accepted) {
		t.Fatalf("CountFollowers = %d, %v; want %d", n, err, len(accepted))
	}
	all, err := s.Followers("")
	if err != nil || len(all) != 12 {
		t.Fatalf("Followers(all) = %d, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.CreatedAt.After(b.CreatedAt) || (a.CreatedAt.Equal(b.CreatedAt) && a.ActorID >= b.ActorID) {
			t.Errorf("Followers order: %s (%v) before %s (%v)", a.ActorID, a.CreatedAt, b.ActorID, b.CreatedAt)
		}
	}
	gotPending, _ := s.Followers(FollowerPending)
	if fmt.Sprint(actorIDs(gotPending)) != fmt.Sprint(pending) {
		t.Errorf("Followers(pending) = %v, want %v", actorIDs(gotPending), pending)
	}
	gotAccepted, _ := s.Followers(FollowerAccepted)
	if len(gotAccepted) != len(accepted) {
		t.Errorf("Followers(accepted) = %d, want %d", len(gotAccepted), len(accepted))
	}

	// Pages of 4 cover the accepted list once, in the same order.
	var paged []string
	for off := 0; ; off += 4 {
		page, total, err := s.FollowersPage(off, 4)
		if err != nil {
			t.Fatal(err)
		}
		if total != len(accepted) {
			t.Errorf("page at %d: total %d, want %d", off, total, len(accepted))
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 4 {
			t.Fatalf("page of %d", len(page))
		}
		for _, f := range page {
			if f.Status != FollowerAccepted {
				t.Errorf("pending follower %s in page", f.ActorID)
			}
		}
		paged = append(paged, actorIDs(page)...)
	}
	if fmt.Sprint(paged) != fmt.Sprint(actorIDs(gotAccepted)) {
		t.Errorf("pages %v\nwant   %v", paged, actorIDs(gotAccepted))
	}
	page, total, err := s.FollowersPage(100, 4)
	if err != nil || len(page) != 0 || total != len(accepted) {
		t.Errorf("page past the end: %d items, total %d, %v", len(page), total, err)
	}
	checkInvariants(t, s)
}

func TestDeleteFollowersByInbox(t *testing.T) {
	s, _, _ := newTestStore(t)
	gone := follower(1, FollowerAccepted)
	gone.SharedInbox = "https://h1.example/inbox"
	neighbour := follower(4, FollowerAccepted) // same host h1
	neighbour.SharedInbox = "https://h1.example/inbox"
	other := follower(2, FollowerPending)
	for _, f := range []Follower{gone, neighbour, other} {
		if err := s.PutFollower(f); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteFollowersByInbox(gone.Inbox)
	if err != nil || n != 1 {
		t.Fatalf("DeleteFollowersByInbox = %d, %v; want 1", n, err)
	}
	if _, err := s.Follower(gone.ActorID); !errors.Is(err, ErrNotFound) {
		t.Errorf("follower with that inbox still there: %v", err)
	}
	// A shared inbox is not a personal one: nobody else goes.
	n, err = s.DeleteFollowersByInbox("https://h1.example/inbox")
	if err != nil || n != 0 {
		t.Errorf("DeleteFollowersByInbox(shared) = %d, %v; want 0", n, err)
	}
	for _, f := range []Follower{neighbour, other} {
		if _, err := s.Follower(f.ActorID); err != nil {
			t.Errorf("%s: %v", f.ActorID, err)
		}
	}
	checkInvariants(t, s)
}

func TestDeliveryInbox(t *testing.T) {
	f := Follower{Inbox: "https://a.example/users/ann/inbox"}
	if got := f.DeliveryInbox(); got != f.Inbox {
		t.Errorf("without shared inbox: %q", got)
	}
	f.SharedInbox = "https://a.example/inbox"
	if got := f.DeliveryInbox(); got != f.SharedInbox {
		t.Errorf("with shared inbox: %q", got)
	}
}
