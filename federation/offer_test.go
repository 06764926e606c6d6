package federation

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// publish queues a Create about object for inboxes the way the Publisher
// does (storage.Store.Publish) and returns the jobs it says are ready. It
// does not wake the Deliverer.
func (h *dlHarness) publish(object string, inboxes ...string) []storage.Job {
	h.t.Helper()
	act := storage.Activity{ID: h.svc.NewActivityID(), Type: "Create", ObjectID: object, Published: h.clock.Now()}
	act.JSON, _ = json.Marshal(map[string]any{"id": act.ID, "type": act.Type, "object": object})
	var jobs []storage.Job
	for _, in := range inboxes {
		jobs = append(jobs, storage.Job{Inbox: in, Topic: object})
	}
	entry := storage.LedgerEntry{Key: fmt.Sprintf("k%d", time.Now().UnixNano()), NoteID: object, Hash: "h", Published: h.clock.Now(), Pushed: true}
	ready, err := h.store.Publish(entry, act, jobs)
	if err != nil {
		h.t.Fatal(err)
	}
	return ready
}

// settle lets Run's first scan of the (empty) queue happen: after it, Run
// waits for a wake-up and nothing else reads the queue.
func (h *dlHarness) settle() {
	time.Sleep(50 * time.Millisecond)
}

// TestOfferStartsJobsWithoutReadingTheQueue: jobs handed over after they
// are queued are delivered although nobody wakes the Deliverer, whose
// loop then sleeps until a wake-up (an empty queue has no due time).
func TestOfferStartsJobsWithoutReadingTheQueue(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	in := newDLInbox(t, h, nil)
	h.start()
	h.settle()

	offer := h.d.beginOffer()
	ready := h.publish("https://crieur.example/posts/a/en", in.url("/a"), in.url("/b"), in.url("/c"))
	if len(ready) != 3 {
		t.Fatalf("%d ready jobs, want 3", len(ready))
	}
	offer(ready)
	for _, r := range h.nextN(3) {
		if r.Outcome != OutcomeDelivered {
			t.Errorf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
		}
	}
	h.quiet()
	for _, p := range []string{"/a", "/b", "/c"} {
		if got := in.received(p); len(got) != 1 || got[0] != "Create" {
			t.Errorf("%s received %v, want one Create", p, got)
		}
	}
	if p := h.pending(); len(p) != 0 {
		t.Errorf("%d jobs left pending", len(p))
	}
}

// TestOfferSkipsWhatAScanAlreadyDelivered is the race the offer's log
// closes: between the commit of the jobs and their hand-over, a scan (a
// wake-up for other work, a retry coming due) may read them from storage
// and deliver them. Handed over afterwards, they must not go out again.
func TestOfferSkipsWhatAScanAlreadyDelivered(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	in := newDLInbox(t, h, nil)
	h.start()
	h.settle()

	offer := h.d.beginOffer()
	ready := h.publish("https://crieur.example/posts/b/en", in.url("/a"), in.url("/b"))
	h.d.Wake() // a scan takes both jobs first
	for _, r := range h.nextN(2) {
		if r.Outcome != OutcomeDelivered {
			t.Fatalf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
		}
	}
	offer(ready)
	h.quiet()
	if n := in.total(); n != 2 {
		t.Errorf("the inboxes received %d deliveries, want 2 (one each)", n)
	}
}

// TestOfferBeyondTheQueueLimit: what does not fit in memory stays queued
// and is read as deliveries finish; every job goes out once.
func TestOfferBeyondTheQueueLimit(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{QueueLimit: 2}, false)
	in := newDLInbox(t, h, nil)
	h.start()
	h.settle()

	paths := []string{"/1", "/2", "/3", "/4", "/5"}
	var inboxes []string
	for _, p := range paths {
		inboxes = append(inboxes, in.url(p))
	}
	offer := h.d.beginOffer()
	offer(h.publish("https://crieur.example/posts/c/en", inboxes...))
	for _, r := range h.nextN(len(paths)) {
		if r.Outcome != OutcomeDelivered {
			t.Errorf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
		}
	}
	h.quiet()
	for _, p := range paths {
		if got := in.received(p); len(got) != 1 {
			t.Errorf("%s received %v, want one Create", p, got)
		}
	}
}

// TestOfferBeforeRun: jobs handed over before the Deliverer runs wait in
// storage and go out once it starts.
func TestOfferBeforeRun(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	in := newDLInbox(t, h, nil)
	offer := h.d.beginOffer()
	offer(h.publish("https://crieur.example/posts/d/en", in.url("/a")))
	h.start()
	if r := h.next(); r.Outcome != OutcomeDelivered {
		t.Fatalf("%s: %s (%s)", r.Job.Inbox, r.Outcome, r.Err)
	}
	h.quiet()
	if got := in.received("/a"); len(got) != 1 {
		t.Errorf("/a received %v, want one Create", got)
	}
}

// TestOfferToAnOpenHostDefers: a job handed over for a host whose circuit
// is open is moved to the end of the cool-down, not tried, as a scan
// would do.
func TestOfferToAnOpenHostDefers(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{PerHost: 1}, false)
	in := newDLInbox(t, h, status(http.StatusInternalServerError))
	h.start()
	t0 := h.clock.Now()
	var first []string
	for i := range DefaultBreakerThreshold {
		first = append(first, in.url(fmt.Sprintf("/users/%d/inbox", i)))
	}
	h.enqueue("Create", "https://crieur.example/posts/e/en", first...)
	for _, r := range h.nextN(len(first)) {
		if r.Outcome != OutcomeRetry {
			t.Fatalf("%s: %s, want a retry", r.Job.Inbox, r.Outcome)
		}
	}
	// The circuit is open now.
	offer := h.d.beginOffer()
	offer(h.publish("https://crieur.example/posts/f/en", in.url("/users/late/inbox")))
	r := h.next()
	if r.Outcome != OutcomeDeferred || !r.NextAttempt.Equal(t0.Add(DefaultBreakerCooldown)) {
		t.Fatalf("offered job to an open host: %s until +%s, want deferred to the cool-down", r.Outcome, r.NextAttempt.Sub(t0))
	}
	if n := in.total(); n != DefaultBreakerThreshold {
		t.Errorf("the open host got %d requests, want %d", n, DefaultBreakerThreshold)
	}
}
