package storage

import (
	"testing"
)

func TestTotals(t *testing.T) {
	s, clock, _ := newTestStore(t)
	empty, err := s.Totals()
	if err != nil || empty.PendingJobs != 0 || empty.FailedJobs != 0 || empty.Articles != 0 ||
		len(empty.Followers) != 0 || len(empty.Interactions) != 0 {
		t.Fatalf("empty store: %+v, %v", empty, err)
	}
	for i := range 5 {
		st := FollowerAccepted
		if i == 4 {
			st = FollowerPending
		}
		if err := s.PutFollower(follower(i, st)); err != nil {
			t.Fatal(err)
		}
	}
	// Two articles, one of them deleted later; three jobs for the first.
	for i, k := range []string{"a/en", "b/en"} {
		e := LedgerEntry{Key: k, NoteID: "https://b.example/posts/" + k, Published: clock.Now(), Pushed: true}
		a := activity(i, clock.Now(), true)
		a.ObjectID = e.NoteID
		var jobs []Job
		if i == 0 {
			jobs = []Job{{Inbox: "https://x.example/inbox"}, {Inbox: "https://y.example/inbox"}, {Inbox: "https://z.example/inbox"}}
		}
		if _, err := s.Publish(e, a, jobs); err != nil {
			t.Fatal(err)
		}
	}
	del := LedgerEntry{Key: "b/en", NoteID: "https://b.example/posts/b/en", Published: clock.Now(), Deleted: clock.Now(), Pushed: true}
	delAct := activity(9, clock.Now(), true)
	if _, err := s.Publish(del, delAct, nil); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.PendingJobs()
	if err != nil || len(jobs) != 3 {
		t.Fatalf("pending: %d %v", len(jobs), err)
	}
	if err := s.CompleteJob(jobs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.FailJob(jobs[1].ID, 500, "down"); err != nil {
		t.Fatal(err)
	}
	t0 := clock.Now()
	for _, i := range []Interaction{
		{ID: "https://r.example/notes/1", Kind: KindReply, NoteID: noteA, InReplyTo: noteA, Actor: actor("alice"), Published: t0},
		{ID: "https://r.example/notes/2", Kind: KindReply, NoteID: noteB, InReplyTo: noteB, Actor: actor("bob"), Published: t0},
		{ID: "https://r.example/notes/3", Kind: KindReply, NoteID: noteB, InReplyTo: noteB, Actor: actor("carol"), Published: t0, Moderation: ModerationPending},
		{ID: "https://r.example/likes/1", Kind: KindLike, NoteID: noteA, Actor: actor("bob"), Published: t0},
	} {
		if _, err := s.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}

	got, err := s.Totals()
	if err != nil {
		t.Fatal(err)
	}
	if got.Followers[FollowerAccepted] != 4 || got.Followers[FollowerPending] != 1 {
		t.Errorf("followers %v", got.Followers)
	}
	if got.PendingJobs != 1 || got.FailedJobs != 1 {
		t.Errorf("jobs: pending %d failed %d, want 1 and 1", got.PendingJobs, got.FailedJobs)
	}
	if got.Articles != 1 {
		t.Errorf("articles %d, want 1", got.Articles)
	}
	if r := got.Interactions[KindReply]; r[""] != 2 || r[ModerationPending] != 1 {
		t.Errorf("replies %v", r)
	}
	if l := got.Interactions[KindLike]; l[""] != 1 || len(got.Interactions) != 2 {
		t.Errorf("interactions %v", got.Interactions)
	}
}
