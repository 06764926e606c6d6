package delivery_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/internal/fedtest"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/storage"
)

// publishJobs queues a Create about object for inboxes the way the Publisher
// does (storage.Store.Publish) and returns the jobs it says are ready. It
// does not wake the Deliverer.
func publishJobs(h *fedtest.Harness, object string, inboxes ...string) []storage.Job {
	h.T.Helper()
	act := storage.Activity{ID: h.Docs.NewActivityID(), Type: "Create", ObjectID: object, Published: h.Clock.Now()}
	act.JSON, _ = json.Marshal(map[string]any{"id": act.ID, "type": act.Type, "object": object})
	var jobs []storage.Job
	for _, in := range inboxes {
		jobs = append(jobs, storage.Job{Inbox: in, Topic: object})
	}
	entry := storage.LedgerEntry{Key: fmt.Sprintf("k%d", time.Now().UnixNano()), NoteID: object, Hash: "h", Published: h.Clock.Now(), Pushed: true}
	ready, err := h.Store.Publish(entry, act, jobs)
	if err != nil {
		h.T.Fatal(err)
	}
	return ready
}

// settle lets Run's first scan of the (empty) queue happen: after it, Run
// waits for a wake-up and nothing else reads the queue.
func settle(h *fedtest.Harness) {
	time.Sleep(50 * time.Millisecond)
}

// TestOfferStartsJobsWithoutReadingTheQueue: jobs handed over after they
// are queued are delivered although nobody wakes the Deliverer, whose
// loop then sleeps until a wake-up (an empty queue has no due time).
func TestOfferStartsJobsWithoutReadingTheQueue(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, nil)
	h.Start()
	settle(h)

	offer := h.D.BeginOffer()
	ready := publishJobs(h, "https://crieur.example/posts/a/en", in.URL("/a"), in.URL("/b"), in.URL("/c"))
	if len(ready) != 3 {
		t.Fatalf("%d ready jobs, want 3", len(ready))
	}
	offer(ready)
	for _, r := range h.NextN(3) {
		if r.Outcome != delivery.OutcomeDelivered {
			t.Errorf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
		}
	}
	h.Quiet()
	for _, p := range []string{"/a", "/b", "/c"} {
		if got := in.Received(p); len(got) != 1 || got[0] != "Create" {
			t.Errorf("%s received %v, want one Create", p, got)
		}
	}
	if p := h.Pending(); len(p) != 0 {
		t.Errorf("%d jobs left pending", len(p))
	}
}

// TestOfferSkipsWhatAScanAlreadyDelivered is the race the offer's log
// closes: between the commit of the jobs and their hand-over, a scan (a
// wake-up for other work, a retry coming due) may read them from storage
// and deliver them. Handed over afterwards, they must not go out again.
func TestOfferSkipsWhatAScanAlreadyDelivered(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, nil)
	h.Start()
	settle(h)

	offer := h.D.BeginOffer()
	ready := publishJobs(h, "https://crieur.example/posts/b/en", in.URL("/a"), in.URL("/b"))
	h.D.Wake() // a scan takes both jobs first
	for _, r := range h.NextN(2) {
		if r.Outcome != delivery.OutcomeDelivered {
			t.Fatalf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
		}
	}
	offer(ready)
	h.Quiet()
	if n := in.Total(); n != 2 {
		t.Errorf("the inboxes received %d deliveries, want 2 (one each)", n)
	}
}

// TestOfferBeyondTheQueueLimit: what does not fit in memory stays queued
// and is read as deliveries finish; every job goes out once.
func TestOfferBeyondTheQueueLimit(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{QueueLimit: 2}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, nil)
	h.Start()
	settle(h)

	paths := []string{"/1", "/2", "/3", "/4", "/5"}
	var inboxes []string
	for _, p := range paths {
		inboxes = append(inboxes, in.URL(p))
	}
	offer := h.D.BeginOffer()
	offer(publishJobs(h, "https://crieur.example/posts/c/en", inboxes...))
	for _, r := range h.NextN(len(paths)) {
		if r.Outcome != delivery.OutcomeDelivered {
			t.Errorf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
		}
	}
	h.Quiet()
	for _, p := range paths {
		if got := in.Received(p); len(got) != 1 {
			t.Errorf("%s received %v, want one Create", p, got)
		}
	}
}

// TestOfferBeforeRun: jobs handed over before the Deliverer runs wait in
// storage and go out once it starts.
func TestOfferBeforeRun(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, nil)
	offer := h.D.BeginOffer()
	offer(publishJobs(h, "https://crieur.example/posts/d/en", in.URL("/a")))
	h.Start()
	if r := h.Next(); r.Outcome != delivery.OutcomeDelivered {
		t.Fatalf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
	}
	h.Quiet()
	if got := in.Received("/a"); len(got) != 1 {
		t.Errorf("/a received %v, want one Create", got)
	}
}

// TestOfferToAnOpenHostDefers: a job handed over for a host whose circuit
// is open is moved to the end of the cool-down, not tried, as a scan
// would do.
func TestOfferToAnOpenHostDefers(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{PerHost: 1}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, testkit.Status(http.StatusInternalServerError))
	h.Start()
	t0 := h.Clock.Now()
	var first []string
	for i := range delivery.DefaultBreakerThreshold {
		first = append(first, in.URL(fmt.Sprintf("/users/%d/inbox", i)))
	}
	h.Enqueue("Create", "https://crieur.example/posts/e/en", first...)
	for _, r := range h.NextN(len(first)) {
		if r.Outcome != delivery.OutcomeRetry {
			t.Fatalf("%s: %s, want a retry", r.Job.Inbox, r.Outcome)
		}
	}
	// The circuit is open now.
	offer := h.D.BeginOffer()
	offer(publishJobs(h, "https://crieur.example/posts/f/en", in.URL("/users/late/inbox")))
	r := h.Next()
	if r.Outcome != delivery.OutcomeDeferred || !r.NextAttempt.Equal(t0.Add(delivery.DefaultBreakerCooldown)) {
		t.Fatalf("offered job to an open host: %s until +%s, want deferred to the cool-down", r.Outcome, r.NextAttempt.Sub(t0))
	}
	if n := in.Total(); n != delivery.DefaultBreakerThreshold {
		t.Errorf("the open host got %d requests, want %d", n, delivery.DefaultBreakerThreshold)
	}
}
