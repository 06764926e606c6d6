package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func activity(i int, at time.Time, inOutbox bool) Activity {
	return Activity{
		ID:        fmt.Sprintf("https://b.example/activities/%02d", i),
		Type:      "Create",
		ObjectID:  fmt.Sprintf("https://b.example/posts/p%d/en", i),
		Published: at,
		InOutbox:  inOutbox,
		JSON:      fmt.Appendf(nil, `{"id":"https://b.example/activities/%02d"}`, i),
	}
}

func activityIDs(as []Activity) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

func TestActivityPutGet(t *testing.T) {
	s, clock, _ := newTestStore(t)
	a := activity(1, clock.Now(), true)
	if _, err := s.Activity(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown activity: %v", err)
	}
	if err := s.PutActivity(a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Activity(a.ID)
	if err != nil || got.Type != a.Type || got.ObjectID != a.ObjectID || string(got.JSON) != string(a.JSON) ||
		!got.Published.Equal(a.Published) || !got.InOutbox {
		t.Errorf("Activity = %+v, %v", got, err)
	}
	if err := s.PutActivity(Activity{}); err == nil {
		t.Error("PutActivity without id succeeded")
	}
}

func TestOutbox(t *testing.T) {
	s, clock, _ := newTestStore(t)
	base := clock.Now()
	var want []string // newest first
	for i := range 7 {
		// Accepts are stored but not listed.
		in := i != 3
		a := activity(i, base.Add(time.Duration(i)*time.Hour), in)
		if !in {
			a.Type = "Accept"
		}
		if err := s.PutActivity(a); err != nil {
			t.Fatal(err)
		}
		if in {
			want = append([]string{a.ID}, want...)
		}
	}
	got, total, err := s.Outbox(0, 100)
	if err != nil || total != len(want) {
		t.Fatalf("Outbox total %d, %v; want %d", total, err, len(want))
	}
	if fmt.Sprint(activityIDs(got)) != fmt.Sprint(want) {
		t.Errorf("Outbox = %v\nwant %v", activityIDs(got), want)
	}
	page, total, _ := s.Outbox(2, 2)
	if fmt.Sprint(activityIDs(page)) != fmt.Sprint(want[2:4]) || total != len(want) {
		t.Errorf("Outbox(2,2) = %v (total %d), want %v", activityIDs(page), total, want[2:4])
	}

	// Re-putting with a new date moves it; clearing InOutbox drops it.
	moved := activity(0, base.Add(100*time.Hour), true)
	if err := s.PutActivity(moved); err != nil {
		t.Fatal(err)
	}
	dropped := activity(6, base.Add(6*time.Hour), false)
	if err := s.PutActivity(dropped); err != nil {
		t.Fatal(err)
	}
	got, total, _ = s.Outbox(0, 100)
	if total != len(want)-1 || len(got) != total || got[0].ID != moved.ID {
		t.Errorf("after move/drop: %v (total %d)", activityIDs(got), total)
	}
	for _, a := range got {
		if a.ID == dropped.ID {
			t.Errorf("%s still listed", a.ID)
		}
	}
	checkInvariants(t, s)
}

func TestLedgerAndPublish(t *testing.T) {
	s, clock, _ := newTestStore(t)
	if _, err := s.LedgerEntry("a/en"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown ledger entry: %v", err)
	}
	keys := []string{"b/fr", "a/en", "c/de"}
	for i, k := range keys {
		e := LedgerEntry{Key: k, NoteID: "https://b.example/posts/" + k, Hash: "h" + k, Published: clock.Now(), Pushed: i > 0}
		a := activity(i, clock.Now(), true)
		a.ObjectID = e.NoteID
		var jobs []Job
		if e.Pushed {
			jobs = []Job{{Inbox: "https://x.example/inbox"}, {Inbox: "https://y.example/inbox"}}
		}
		if _, err := s.Publish(e, a, jobs); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Ledger()
	if err != nil || len(all) != 3 || all[0].Key != "a/en" || all[1].Key != "b/fr" || all[2].Key != "c/de" {
		t.Fatalf("Ledger = %+v, %v", all, err)
	}
	e, err := s.LedgerEntry("b/fr")
	if err != nil || e.Hash != "hb/fr" || e.Pushed {
		t.Errorf("LedgerEntry = %+v, %v", e, err)
	}
	jobs, _ := s.PendingJobs()
	if len(jobs) != 4 {
		t.Errorf("%d jobs, want 4", len(jobs))
	}
	for _, j := range jobs {
		a, err := s.Activity(j.ActivityID)
		if err != nil {
			t.Errorf("job %d: %v", j.ID, err)
		}
		if j.Topic != a.ObjectID {
			t.Errorf("job %d topic %q, want the object id %q", j.ID, j.Topic, a.ObjectID)
		}
	}
	// An edit replaces the entry.
	e.Hash, e.Updated = "h2", clock.Now().Add(time.Hour)
	upd := activity(9, e.Updated, false)
	upd.Type, upd.ObjectID = "Update", e.NoteID
	if _, err := s.Publish(e, upd, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LedgerEntry("b/fr"); got.Hash != "h2" || !got.Updated.Equal(e.Updated) || got.ActivityID != upd.ID {
		t.Errorf("after update: %+v (want the Update %s as the last activity)", got, upd.ID)
	}
	checkInvariants(t, s)

	if _, err := s.Publish(LedgerEntry{}, activity(20, clock.Now(), true), nil); err == nil {
		t.Error("Publish without a ledger key succeeded")
	}
}

// TestPublishReturnsReadyJobs: Publish returns the jobs a Deliverer may
// start at once, the same ones DueJobs would give it: a job queued behind
// an earlier one of its (inbox, object) chain, or due later, is left out.
func TestPublishReturnsReadyJobs(t *testing.T) {
	s, clock, _ := newTestStore(t)
	note := "https://b.example/posts/r/en"
	e := LedgerEntry{Key: "r/en", NoteID: note, Hash: "h1", Published: clock.Now(), Pushed: true}
	create := activity(1, clock.Now(), true)
	create.ObjectID = note
	inboxes := []string{"https://x.example/inbox", "https://y.example/inbox", "https://z.example/inbox"}
	var jobs []Job
	for _, in := range inboxes {
		jobs = append(jobs, Job{Inbox: in})
	}
	ready, err := s.Publish(e, create, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready) != 3 {
		t.Fatalf("a new Note: %d ready jobs, want 3", len(ready))
	}
	for i, j := range ready {
		if j.ID == 0 || j.Inbox != inboxes[i] || j.Host != strings.TrimSuffix(strings.TrimPrefix(inboxes[i], "https://"), "/inbox") ||
			j.Topic != note || j.ActivityID != create.ID || j.State != JobPending || !j.NextAttempt.Equal(clock.Now()) {
			t.Errorf("ready job %d = %+v, want it as stored", i, j)
		}
	}
	due, err := s.DueJobs(clock.Now(), 0)
	if err != nil || !sameJobIDs(due, ready) {
		t.Errorf("DueJobs = %v, %v; Publish said %v", due, err, ready)
	}

	// x.example got the Create; y and z have not yet. The Update is ready
	// only for x, and a job due later is not ready either.
	if err := s.CompleteJob(ready[0].ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	e.Hash, e.Updated = "h2", clock.Now()
	update := activity(2, clock.Now(), false)
	update.Type, update.ObjectID = "Update", note
	jobs = []Job{{Inbox: inboxes[0]}, {Inbox: inboxes[1]}, {Inbox: inboxes[2]}, {Inbox: "https://w.example/inbox", NextAttempt: clock.Now().Add(time.Hour)}}
	ready2, err := s.Publish(e, update, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready2) != 1 || ready2[0].Inbox != inboxes[0] || ready2[0].ActivityID != update.ID {
		t.Fatalf("Update behind pending Creates: ready %+v, want only the job for %s", ready2, inboxes[0])
	}
	due, err = s.DueJobs(clock.Now(), 0)
	if err != nil || !sameJobIDs(due, append(ready[1:], ready2...)) {
		t.Errorf("DueJobs = %v, %v; want the two Creates left and the one ready Update", due, err)
	}
	checkInvariants(t, s)
}

// sameJobIDs tells whether a and b hold the same jobs, in any order.
func sameJobIDs(a, b []Job) bool {
	ids := func(js []Job) []uint64 {
		var out []uint64
		for _, j := range js {
			out = append(out, j.ID)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

// TestPublishAllOrNothing makes the last job of a Publish invalid: the
// transaction must roll back the ledger entry, the activity and the jobs
// written before it, in this process and in the file.
func TestPublishAllOrNothing(t *testing.T) {
	clock := newClock()
	path := filepath.Join(t.TempDir(), "crieur.db")
	s, err := Open(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := LedgerEntry{Key: "x/en", NoteID: "https://b.example/posts/x/en", Hash: "h"}
	a := activity(1, clock.Now(), true)
	jobs := []Job{{Inbox: "https://a.example/inbox"}, {Inbox: "https://b.example/inbox"}, {Inbox: ""}}
	if _, err := s.Publish(e, a, jobs); err == nil {
		t.Fatal("Publish with a job without inbox succeeded")
	}
	follower := follower(1, FollowerAccepted)
	if err := s.AcceptFollower(follower, activity(2, clock.Now(), false), []Job{{Inbox: follower.Inbox}, {}}); err == nil {
		t.Fatal("AcceptFollower with a bad job succeeded")
	}
	if err := s.Enqueue(activity(3, clock.Now(), false), []Job{{Inbox: "https://a.example/inbox"}, {}}); err == nil {
		t.Fatal("Enqueue with a bad job succeeded")
	}
	assertEmpty := func(s *Store) {
		t.Helper()
		if _, err := s.LedgerEntry(e.Key); !errors.Is(err, ErrNotFound) {
			t.Errorf("ledger entry visible: %v", err)
		}
		for i := 1; i <= 3; i++ {
			if _, err := s.Activity(activity(i, time.Time{}, false).ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("activity %d visible: %v", i, err)
			}
		}
		if _, err := s.Follower(follower.ActorID); !errors.Is(err, ErrNotFound) {
			t.Errorf("follower visible: %v", err)
		}
		if jobs, _ := s.PendingJobs(); len(jobs) != 0 {
			t.Errorf("%d jobs visible", len(jobs))
		}
		if _, total, _ := s.Outbox(0, 10); total != 0 {
			t.Errorf("outbox has %d", total)
		}
		if c, _ := s.DeliveryCounts(a.ID); c != (DeliveryCounts{}) {
			t.Errorf("counts %+v", c)
		}
		checkInvariants(t, s)
	}
	assertEmpty(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, clock)
	assertEmpty(s)
}

// TestRejectFollowerIsOneTransaction: the follow request leaves and the
// Reject is queued together; a second reject finds nothing and queues
// nothing; a bad job stores nothing and keeps the request.
func TestRejectFollowerIsOneTransaction(t *testing.T) {
	s, clock, _ := newTestStore(t)
	f := follower(1, FollowerPending)
	if err := s.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	reject := activity(1, clock.Now(), false)
	if err := s.RejectFollower(f.ActorID, reject, []Job{{Inbox: f.Inbox}, {}}); err == nil {
		t.Fatal("RejectFollower with a bad job succeeded")
	}
	if _, err := s.Follower(f.ActorID); err != nil {
		t.Fatalf("a failed reject removed the request: %v", err)
	}
	if _, err := s.Activity(reject.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed reject stored its activity: %v", err)
	}
	if err := s.RejectFollower(f.ActorID, reject, []Job{{Inbox: f.Inbox}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Follower(f.ActorID); !errors.Is(err, ErrNotFound) {
		t.Errorf("rejected request still there: %v", err)
	}
	jobs, _ := s.PendingJobs()
	if len(jobs) != 1 || jobs[0].ActivityID != reject.ID || jobs[0].Inbox != f.Inbox {
		t.Errorf("jobs after reject: %+v", jobs)
	}
	again := activity(2, clock.Now(), false)
	if err := s.RejectFollower(f.ActorID, again, []Job{{Inbox: f.Inbox}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("second reject: %v, want ErrNotFound", err)
	}
	if jobs, _ := s.PendingJobs(); len(jobs) != 1 {
		t.Errorf("second reject queued a job: %d pending", len(jobs))
	}
}
