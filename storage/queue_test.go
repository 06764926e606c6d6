package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func jobIDs(js []Job) []uint64 {
	var ids []uint64
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return ids
}

func TestEnqueueDefaults(t *testing.T) {
	s, clock, _ := newTestStore(t)
	a := activity(1, clock.Now(), true)
	later := clock.Now().Add(time.Hour)
	jobs := []Job{
		{Inbox: "https://a.example:8443/inbox"},
		{Inbox: "https://b.example/inbox", Topic: "custom", Host: "given", NextAttempt: later, ActivityID: a.ID},
		{Inbox: "https://c.example/inbox", ID: 999, State: JobFailed, CreatedAt: later}, // storage decides these
	}
	if err := s.Enqueue(a, jobs); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingJobs()
	if err != nil || len(got) != 3 {
		t.Fatalf("PendingJobs = %d, %v", len(got), err)
	}
	now := clock.Now()
	for i, j := range got {
		if i > 0 && j.ID <= got[i-1].ID {
			t.Errorf("ids not increasing: %v", jobIDs(got))
		}
		if j.ID == 0 || j.ID == 999 || j.State != JobPending || !j.CreatedAt.Equal(now) || j.ActivityID != a.ID {
			t.Errorf("job %d: %+v", i, j)
		}
	}
	if got[0].Host != "a.example:8443" || got[0].Topic != a.ObjectID || !got[0].NextAttempt.Equal(now) {
		t.Errorf("defaults: %+v", got[0])
	}
	if got[1].Host != "given" || got[1].Topic != "custom" || !got[1].NextAttempt.Equal(later) {
		t.Errorf("given values not kept: %+v", got[1])
	}
	if _, err := s.Activity(a.ID); err != nil {
		t.Errorf("activity not stored: %v", err)
	}
	c, _ := s.DeliveryCounts(a.ID)
	if c != (DeliveryCounts{Pending: 3}) {
		t.Errorf("counts %+v", c)
	}

	// Jobs for an activity already stored: act.ID empty, ActivityID set.
	if err := s.Enqueue(Activity{}, []Job{{ActivityID: a.ID, Inbox: "https://d.example/inbox"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(Activity{}, []Job{{Inbox: "https://d.example/inbox"}}); err == nil {
		t.Error("job without activity id accepted")
	}
	c, _ = s.DeliveryCounts(a.ID)
	if c.Pending != 4 {
		t.Errorf("counts after second enqueue %+v", c)
	}
	checkInvariants(t, s)
}

func TestDueJobsTimeOrderAndLimit(t *testing.T) {
	s, clock, _ := newTestStore(t)
	now := clock.Now()
	a := activity(1, now, true)
	// Each job its own chain (different inboxes); due times out of id order.
	offsets := []time.Duration{3 * time.Minute, -time.Minute, 0, time.Hour, -2 * time.Minute}
	var jobs []Job
	for i, d := range offsets {
		jobs = append(jobs, Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", i), NextAttempt: now.Add(d)})
	}
	if err := s.Enqueue(a, jobs); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueJobs(now, 0)
	if err != nil {
		t.Fatal(err)
	}
	var inboxes []string
	for _, j := range due {
		inboxes = append(inboxes, j.Inbox)
		if j.NextAttempt.After(now) {
			t.Errorf("job %d not due yet returned", j.ID)
		}
	}
	want := "[https://h4.example/inbox https://h1.example/inbox https://h2.example/inbox]"
	if fmt.Sprint(inboxes) != want {
		t.Errorf("DueJobs = %v, want %s", inboxes, want)
	}
	if due, _ := s.DueJobs(now, 2); len(due) != 2 || due[0].Inbox != "https://h4.example/inbox" {
		t.Errorf("DueJobs limit 2 = %+v", due)
	}
	next, ok, err := s.NextDue()
	if err != nil || !ok || !next.Equal(now.Add(-2*time.Minute)) {
		t.Errorf("NextDue = %v, %v, %v", next, ok, err)
	}
	if due, _ := s.DueJobs(now.Add(2*time.Hour), 0); len(due) != 5 {
		t.Errorf("all due later: %d", len(due))
	}
}

func TestNextDueEmpty(t *testing.T) {
	s, _, _ := newTestStore(t)
	if _, ok, err := s.NextDue(); ok || err != nil {
		t.Errorf("NextDue on empty queue = %v, %v", ok, err)
	}
	if due, err := s.DueJobs(time.Now(), 10); len(due) != 0 || err != nil {
		t.Errorf("DueJobs on empty queue = %v, %v", due, err)
	}
}

// TestChainOrderAcrossRetries: Create, Update, Delete of one Note to one
// inbox go one at a time, in that order, whatever the retry schedule.
func TestChainOrderAcrossRetries(t *testing.T) {
	s, clock, _ := newTestStore(t)
	inbox := "https://m.example/inbox"
	note := "https://b.example/posts/p/en"
	var ids []uint64
	for i, typ := range []string{"Create", "Update", "Delete"} {
		a := activity(i, clock.Now(), true)
		a.Type, a.ObjectID = typ, note
		if err := s.Enqueue(a, []Job{{Inbox: inbox}}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	// Another Note to the same inbox is a different chain.
	other := activity(9, clock.Now(), true)
	if err := s.Enqueue(other, []Job{{Inbox: inbox}}); err != nil {
		t.Fatal(err)
	}
	all, _ := s.PendingJobs()
	for _, j := range all {
		ids = append(ids, j.ID)
	}
	create, update, del, otherJob := ids[0], ids[1], ids[2], ids[3]

	due, _ := s.DueJobs(clock.Now(), 0)
	if fmt.Sprint(jobIDs(due)) != fmt.Sprint([]uint64{create, otherJob}) {
		t.Fatalf("DueJobs = %v, want [%d %d]", jobIDs(due), create, otherJob)
	}

	// The Create fails and is pushed an hour away, far past the Update's
	// NextAttempt: the Update must still wait.
	retryAt := clock.Now().Add(time.Hour)
	if err := s.RetryJob(create, retryAt, 503, "unavailable", true); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(otherJob); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	if due, _ := s.DueJobs(clock.Now(), 0); len(due) != 0 {
		t.Fatalf("DueJobs while the chain head waits = %v", jobIDs(due))
	}
	next, ok, _ := s.NextDue()
	if !ok || !next.Equal(retryAt) {
		t.Errorf("NextDue = %v, %v; want the head's %v", next, ok, retryAt)
	}
	// The breaker defers without counting an attempt.
	if err := s.RetryJob(create, retryAt.Add(time.Minute), 0, "circuit open", false); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	due, _ = s.DueJobs(clock.Now(), 0)
	if fmt.Sprint(jobIDs(due)) != fmt.Sprint([]uint64{create}) {
		t.Fatalf("DueJobs after retry time = %v, want [%d]", jobIDs(due), create)
	}
	if j := due[0]; j.Attempts != 1 || j.LastStatus != 0 || j.LastError != "circuit open" {
		t.Errorf("head after retries: %+v", j)
	}
	if err := s.CompleteJob(create); err != nil {
		t.Fatal(err)
	}
	due, _ = s.DueJobs(clock.Now(), 0)
	if fmt.Sprint(jobIDs(due)) != fmt.Sprint([]uint64{update}) {
		t.Fatalf("after Create delivered: %v, want [%d]", jobIDs(due), update)
	}
	// A failed Update does not block the Delete.
	if err := s.FailJob(update, 400, "bad request"); err != nil {
		t.Fatal(err)
	}
	due, _ = s.DueJobs(clock.Now(), 0)
	if fmt.Sprint(jobIDs(due)) != fmt.Sprint([]uint64{del}) {
		t.Fatalf("after Update failed: %v, want [%d]", jobIDs(due), del)
	}
	checkInvariants(t, s)
}

func TestCompleteRetryFailAndCounts(t *testing.T) {
	s, clock, _ := newTestStore(t)
	a := activity(1, clock.Now(), true)
	var jobs []Job
	for i := range 4 {
		jobs = append(jobs, Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", i%2)})
	}
	// Different topics so all four are heads.
	for i := range jobs {
		jobs[i].Topic = fmt.Sprintf("t%d", i)
	}
	if err := s.Enqueue(a, jobs); err != nil {
		t.Fatal(err)
	}
	all, _ := s.PendingJobs()
	if err := s.CompleteJob(all[0].ID); err != nil {
		t.Fatal(err)
	}
	// Completing twice (at-least-once after a crash) and unknown ids: no
	// error, no double count.
	if err := s.CompleteJob(all[0].ID); err != nil {
		t.Errorf("second CompleteJob: %v", err)
	}
	if err := s.CompleteJob(123456); err != nil {
		t.Errorf("CompleteJob(unknown): %v", err)
	}
	next := clock.Now().Add(5 * time.Minute)
	if err := s.RetryJob(all[1].ID, next, 502, "bad gateway", true); err != nil {
		t.Fatal(err)
	}
	if err := s.FailJob(all[2].ID, 403, "forbidden"); err != nil {
		t.Fatal(err)
	}
	if err := s.RetryJob(all[2].ID, next, 500, "x", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("RetryJob of a failed job: %v, want ErrNotFound", err)
	}
	if err := s.FailJob(all[2].ID, 500, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FailJob twice: %v, want ErrNotFound", err)
	}
	if err := s.RetryJob(99999, next, 500, "x", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("RetryJob(unknown): %v", err)
	}

	c, err := s.DeliveryCounts(a.ID)
	if err != nil || c != (DeliveryCounts{Delivered: 1, Pending: 2, Failed: 1}) {
		t.Errorf("DeliveryCounts = %+v, %v", c, err)
	}
	if c, _ := s.DeliveryCounts("https://b.example/activities/none"); c != (DeliveryCounts{}) {
		t.Errorf("counts of unknown activity %+v", c)
	}

	pending, _ := s.PendingJobs()
	if fmt.Sprint(jobIDs(pending)) != fmt.Sprint([]uint64{all[1].ID, all[3].ID}) {
		t.Errorf("PendingJobs = %v", jobIDs(pending))
	}
	r := pending[0]
	if r.Attempts != 1 || r.LastStatus != 502 || r.LastError != "bad gateway" || !r.NextAttempt.Equal(next) {
		t.Errorf("retried job %+v", r)
	}
	failed, _ := s.FailedJobs()
	if len(failed) != 1 || failed[0].ID != all[2].ID || failed[0].State != JobFailed ||
		failed[0].LastStatus != 403 || failed[0].LastError != "forbidden" || failed[0].Attempts != 1 {
		t.Errorf("FailedJobs = %+v", failed)
	}

	st, err := s.QueueStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 1 || st.Retrying != 1 || st.Failed != 1 {
		t.Errorf("QueueStats = %+v", st)
	}
	h0, h1 := st.PerHost["h0.example"], st.PerHost["h1.example"]
	// h0: job 0 delivered, job 2 failed. h1: job 1 retrying, job 3 pending.
	if h0 != (HostStats{Failed: 1, LastError: "forbidden"}) {
		t.Errorf("h0 stats %+v", h0)
	}
	// h1's pending job is due now, before its retry; the retried one was
	// queued with the others.
	if h1 != (HostStats{Pending: 1, Retrying: 1, LastError: "bad gateway", NextAttempt: all[3].NextAttempt, RetryingSince: all[1].CreatedAt}) {
		t.Errorf("h1 stats %+v", h1)
	}
	if due, _ := s.DueJobs(clock.Now(), 0); fmt.Sprint(jobIDs(due)) != fmt.Sprint([]uint64{all[3].ID}) {
		t.Errorf("DueJobs = %v", jobIDs(due))
	}
	checkInvariants(t, s)
}

func TestAcceptFollower(t *testing.T) {
	s, clock, _ := newTestStore(t)
	f := follower(1, FollowerAccepted)
	acc := Activity{ID: "https://b.example/activities/acc", Type: "Accept", ObjectID: f.FollowID, Published: clock.Now()}
	if err := s.AcceptFollower(f, acc, []Job{{Inbox: f.Inbox}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Follower(f.ActorID); err != nil {
		t.Error(err)
	}
	if _, err := s.Activity(acc.ID); err != nil {
		t.Error(err)
	}
	if _, total, _ := s.Outbox(0, 10); total != 0 {
		t.Errorf("Accept listed in outbox")
	}
	due, _ := s.DueJobs(clock.Now(), 0)
	if len(due) != 1 || due[0].ActivityID != acc.ID || due[0].Topic != f.FollowID {
		t.Errorf("Accept job: %+v", due)
	}
	if err := s.AcceptFollower(Follower{}, acc, nil); err == nil {
		t.Error("AcceptFollower without actor id succeeded")
	}
	checkInvariants(t, s)
}

// TestCompleteJobConcurrent: 50 workers complete 1,000 jobs, some twice,
// through db.Batch; every job is counted delivered exactly once.
func TestCompleteJobConcurrent(t *testing.T) {
	s, clock, _ := newTestStore(t)
	const n, workers = 1000, 50
	a := activity(1, clock.Now(), true)
	var jobs []Job
	for i := range n {
		jobs = append(jobs, Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", i)})
	}
	if err := s.Enqueue(a, jobs); err != nil {
		t.Fatal(err)
	}
	all, _ := s.PendingJobs()
	ids := make(chan uint64)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for id := range ids {
				if err := s.CompleteJob(id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i, j := range all {
		ids <- j.ID
		if i%10 == 0 {
			ids <- j.ID // a duplicate completion
		}
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left, _ := s.PendingJobs(); len(left) != 0 {
		t.Errorf("%d jobs left", len(left))
	}
	c, _ := s.DeliveryCounts(a.ID)
	if c != (DeliveryCounts{Delivered: n}) {
		t.Errorf("counts %+v, want %d delivered", c, n)
	}
	checkInvariants(t, s)
}

// TestQueueConcurrentMix mixes retries, failures and completions from many
// goroutines on one store.
func TestQueueConcurrentMix(t *testing.T) {
	s, clock, _ := newTestStore(t)
	const n = 600
	a := activity(1, clock.Now(), true)
	var jobs []Job
	for i := range n {
		jobs = append(jobs, Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", i%40), Topic: fmt.Sprint(i)})
	}
	if err := s.Enqueue(a, jobs); err != nil {
		t.Fatal(err)
	}
	all, _ := s.PendingJobs()
	var wg sync.WaitGroup
	for w := range 30 {
		wg.Go(func() {
			for i := w; i < n; i += 30 {
				id := all[i].ID
				var err error
				switch i % 3 {
				case 0:
					err = s.CompleteJob(id)
				case 1:
					err = s.RetryJob(id, clock.Now().Add(time.Duration(i)*time.Second), 500, "boom", true)
				case 2:
					err = s.FailJob(id, 404, "gone")
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	c, _ := s.DeliveryCounts(a.ID)
	if c != (DeliveryCounts{Delivered: n / 3, Pending: n / 3, Failed: n / 3}) {
		t.Errorf("counts %+v", c)
	}
	checkInvariants(t, s)
}

func TestRequeueFailed(t *testing.T) {
	s, clock, _ := newTestStore(t)
	old := activity(1, clock.Now(), true)
	if err := s.Enqueue(old, []Job{{Inbox: "https://a.example/inbox"}, {Inbox: "https://b.example/inbox"}, {Inbox: "https://c.example/inbox"}}); err != nil {
		t.Fatal(err)
	}
	jobs, _ := s.PendingJobs()
	for _, j := range jobs[:2] {
		if err := s.FailJob(j.ID, 503, "down"); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh activity replaces the failed deliveries to a and b.
	fresh := activity(2, clock.Now(), false)
	var again []Job
	for _, j := range jobs[:2] {
		again = append(again, Job{Inbox: j.Inbox, Topic: j.Topic})
	}
	if err := s.RequeueFailed([]uint64{jobs[0].ID, jobs[1].ID}, fresh, again); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FailedJobs(); len(f) != 0 {
		t.Errorf("failed after requeue: %+v", f)
	}
	pending, _ := s.PendingJobs()
	if len(pending) != 3 || pending[1].ActivityID != fresh.ID || pending[2].ActivityID != fresh.ID ||
		pending[1].ID <= jobs[2].ID || pending[1].Attempts != 0 || pending[1].State != JobPending {
		t.Errorf("pending after requeue: %+v", pending)
	}
	if c, _ := s.DeliveryCounts(old.ID); c != (DeliveryCounts{Pending: 1}) {
		t.Errorf("old activity counts %+v", c)
	}
	if c, _ := s.DeliveryCounts(fresh.ID); c != (DeliveryCounts{Pending: 2}) {
		t.Errorf("fresh activity counts %+v", c)
	}
	checkInvariants(t, s)

	// The same activity again (empty act), and an id that is not failed:
	// nothing changes.
	if err := s.FailJob(jobs[2].ID, 400, "bad request"); err != nil {
		t.Fatal(err)
	}
	err := s.RequeueFailed([]uint64{jobs[2].ID, jobs[0].ID}, Activity{}, []Job{{ActivityID: old.ID, Inbox: jobs[2].Inbox, Topic: jobs[2].Topic}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("requeue with a job that is not failed: %v", err)
	}
	if f, _ := s.FailedJobs(); len(f) != 1 || f[0].ID != jobs[2].ID {
		t.Errorf("failed after a refused requeue: %+v", f)
	}
	if err := s.RequeueFailed([]uint64{jobs[2].ID}, Activity{}, []Job{{ActivityID: old.ID, Inbox: jobs[2].Inbox, Topic: jobs[2].Topic}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.DeliveryCounts(old.ID); c != (DeliveryCounts{Pending: 1}) {
		t.Errorf("old activity counts after its own requeue %+v", c)
	}
	checkInvariants(t, s)
}

// TestFollowBurstSharesCommits: a burst of Follows from many servers, each
// caching the sender's key then storing the follower with its Accept,
// shares commits instead of paying an fsync per call, and every follower,
// key and Accept job is there after a reopen.
func TestFollowBurstSharesCommits(t *testing.T) {
	s, clock, path := newTestStore(t)
	const n = 100
	txid := func() int {
		var id int
		_ = s.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	before := txid()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			f := follower(i, FollowerAccepted)
			if err := s.PutRemoteKey(RemoteKey{KeyID: f.ActorID + "#main-key", Owner: f.ActorID, PublicKeyPEM: "pem"}); err != nil {
				t.Error(err)
			}
			acc := Activity{ID: fmt.Sprintf("https://b.example/activities/acc%d", i), Type: "Accept", ObjectID: f.FollowID, Published: clock.Now()}
			if err := s.AcceptFollower(f, acc, []Job{{Inbox: f.Inbox}}); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if commits := txid() - before; commits > n {
		t.Errorf("%d calls made %d commits, want at most %d", 2*n, commits, n)
	}
	checkInvariants(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, clock)
	if got, _ := s.CountFollowers(); got != n {
		t.Errorf("%d followers after reopen, want %d", got, n)
	}
	if due, _ := s.DueJobs(clock.Now(), 0); len(due) != n {
		t.Errorf("%d Accept jobs after reopen, want %d", len(due), n)
	}
	for i := range n {
		if _, err := s.RemoteKey(follower(i, FollowerAccepted).ActorID + "#main-key"); err != nil {
			t.Errorf("key %d after reopen: %v", i, err)
		}
	}
}
