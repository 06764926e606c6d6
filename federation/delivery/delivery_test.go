package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/internal/fedtest"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

func TestDeliverySignedAndCompleted(t *testing.T) {
	logs := &testkit.Log{}
	h := fedtest.NewHarness(t, delivery.Options{Logger: logs.Logger()}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, nil)
	h.Start()
	act := h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/inbox"))
	r := h.Next()
	if r.Outcome != delivery.OutcomeDelivered || r.Status != http.StatusAccepted {
		t.Fatalf("outcome %s status %d err %s", r.Outcome, r.Status, r.Err)
	}
	if got := in.Received("/inbox"); !slices.Equal(got, []string{"Create"}) {
		t.Fatalf("received %v", got)
	}
	if p := h.Pending(); len(p) != 0 {
		t.Fatalf("pending after success: %+v", p)
	}
	c, err := h.Store.DeliveryCounts(act.ID)
	if err != nil || c != (storage.DeliveryCounts{Delivered: 1}) {
		t.Fatalf("counts %+v %v", c, err)
	}
	// An admin who runs crieur at -log-level debug sees each delivery.
	want := `msg="delivery: delivered" inbox=` + in.URL("/inbox") + " activity=" + act.ID + " status=202 attempt=1"
	if !strings.Contains(logs.String(), want) {
		t.Errorf("debug log lacks %q:\n%s", want, logs.String())
	}
}

func TestDeliveryRetriesAfter500ThenSucceeds(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h.Start()
	t0 := h.Clock.Now()
	h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/inbox"))

	r := h.Next()
	if r.Outcome != delivery.OutcomeRetry || r.Status != 500 {
		t.Fatalf("first: %s %d %s", r.Outcome, r.Status, r.Err)
	}
	// First retry: the 30 s window (the test's jitter takes all of it).
	p := h.Pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second)) || p[0].Attempts != 1 || p[0].LastStatus != 500 {
		t.Fatalf("after first failure: %+v", p)
	}
	h.Quiet() // not due yet: nothing happens

	h.Advance(30 * time.Second)
	if r := h.Next(); r.Outcome != delivery.OutcomeRetry {
		t.Fatalf("second: %s", r.Outcome)
	}
	p = h.Pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second+60*time.Second)) || p[0].Attempts != 2 {
		t.Fatalf("after second failure (window doubles): %+v", p)
	}
	h.Advance(60 * time.Second)
	if r := h.Next(); r.Outcome != delivery.OutcomeDelivered {
		t.Fatalf("third: %s %s", r.Outcome, r.Err)
	}
	if p := h.Pending(); len(p) != 0 {
		t.Fatalf("pending: %+v", p)
	}
	if got := in.Received("/inbox"); len(got) != 3 {
		t.Fatalf("server saw %d attempts, want 3", len(got))
	}
}

func TestDeliveryOrderPerInboxAcrossRetries(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	// Server A fails the first request (the Create), server B never does.
	a := fedtest.NewInbox(t, h, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	b := fedtest.NewInbox(t, h, nil)
	note := "https://crieur.example/posts/a/en"
	inboxes := []string{a.URL("/inbox"), b.URL("/inbox")}
	// All three are queued before the Deliverer starts, like after a
	// quick edit and removal.
	h.Enqueue("Create", note, inboxes...)
	h.Enqueue("Update", note, inboxes...)
	h.Enqueue("Delete", note, inboxes...)
	h.Start()

	// B gets all three; A's Create fails and blocks its chain.
	h.NextN(4)
	if got := b.Received("/inbox"); !slices.Equal(got, []string{"Create", "Update", "Delete"}) {
		t.Fatalf("B received %v", got)
	}
	if got := a.Received("/inbox"); !slices.Equal(got, []string{"Create"}) {
		t.Fatalf("A received %v before the retry", got)
	}
	h.Quiet()
	h.Advance(30 * time.Second)
	h.NextN(3)
	if got := a.Received("/inbox"); !slices.Equal(got, []string{"Create", "Create", "Update", "Delete"}) {
		t.Fatalf("A received %v", got)
	}
	if p := h.Pending(); len(p) != 0 {
		t.Fatalf("pending: %+v", p)
	}
}

func TestDelivery410RemovesOnlyTheFollowerWhoseInboxIsGone(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	gone := fedtest.NewInbox(t, h, testkit.Status(http.StatusGone))
	other := fedtest.NewInbox(t, h, nil)
	followers := []storage.Follower{
		{ActorID: gone.URL("/users/a"), Inbox: gone.URL("/users/a/inbox")},
		{ActorID: gone.URL("/users/b"), Inbox: gone.URL("/users/b/inbox"), SharedInbox: gone.URL("/inbox")},
		{ActorID: gone.URL("/users/d"), Inbox: gone.URL("/users/d/inbox"), SharedInbox: gone.URL("/inbox")},
		{ActorID: other.URL("/users/c"), Inbox: other.URL("/users/c/inbox")},
	}
	for _, f := range followers {
		f.Status = storage.FollowerAccepted
		if err := h.Store.PutFollower(f); err != nil {
			t.Fatal(err)
		}
	}
	h.Start()
	left := func() map[string]bool {
		fs, err := h.Store.Followers(storage.FollowerAccepted)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, f := range fs {
			m[f.ActorID] = true
		}
		return m
	}
	// A personal inbox answering 410: that account is gone.
	h.Enqueue("Create", "https://crieur.example/posts/a/en", gone.URL("/users/a/inbox"))
	if r := h.Next(); r.Outcome != delivery.OutcomeGone || r.Status != 410 {
		t.Fatalf("outcome %s %d", r.Outcome, r.Status)
	}
	if m := left(); m[gone.URL("/users/a")] || len(m) != 3 {
		t.Fatalf("after a personal inbox's 410: %v", m)
	}
	// A shared inbox answering 410 names no account: nobody is removed,
	// and the job is finished rather than retried.
	h.Enqueue("Create", "https://crieur.example/posts/b/en", gone.URL("/inbox"))
	if r := h.Next(); r.Outcome != delivery.OutcomeGone {
		t.Fatalf("outcome %s %d", r.Outcome, r.Status)
	}
	if m := left(); len(m) != 3 || !m[gone.URL("/users/b")] || !m[gone.URL("/users/d")] {
		t.Fatalf("a shared inbox's 410 removed followers: %v", m)
	}
	if p, f := h.Pending(), h.Failed(); len(p) != 0 || len(f) != 0 {
		t.Fatalf("410 must finish the job: pending %d failed %d", len(p), len(f))
	}
}

func TestDelivery429HonoursRetryAfterAndPausesHost(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{PerHost: 1}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h.Start()
	t0 := h.Clock.Now()
	h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/users/a/inbox"))
	if r := h.Next(); r.Outcome != delivery.OutcomeRetry || r.Status != 429 {
		t.Fatalf("outcome %s %d", r.Outcome, r.Status)
	}
	p := h.Pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(120*time.Second)) || p[0].Attempts != 1 {
		t.Fatalf("after 429: %+v", p)
	}
	// Another job for the same host waits for the end of the pause
	// without being tried or counted.
	h.Enqueue("Create", "https://crieur.example/posts/b/en", in.URL("/users/b/inbox"))
	r := h.Next()
	if r.Outcome != delivery.OutcomeDeferred || !r.NextAttempt.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("second job: %s at %s", r.Outcome, r.NextAttempt)
	}
	if in.Total() != 1 {
		t.Fatalf("paused host got %d requests", in.Total())
	}
	for _, j := range h.Pending() {
		if j.Inbox == in.URL("/users/b/inbox") && j.Attempts != 0 {
			t.Fatalf("deferred job counted an attempt: %+v", j)
		}
	}
	h.Advance(120 * time.Second)
	for _, r := range h.NextN(2) {
		if r.Outcome != delivery.OutcomeDelivered {
			t.Fatalf("after the pause: %s %s", r.Outcome, r.Err)
		}
	}
}

func TestDeliveryRetryAfterIsClamped(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"0", 30 * time.Second},           // no usable value: the backoff schedule
		{"86400", delivery.MaxRetryAfter}, // a day: six hours at most
		{"1", delivery.MinRetryAfter},     // honoured down to a second
		{"not a number", 30 * time.Second},
	} {
		t.Run(tc.header, func(t *testing.T) {
			h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
			in := fedtest.NewInbox(t, h, func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Retry-After", tc.header)
				w.WriteHeader(http.StatusTooManyRequests)
			})
			h.Start()
			t0 := h.Clock.Now()
			h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/inbox"))
			r := h.Next()
			if r.Outcome != delivery.OutcomeRetry || !r.NextAttempt.Equal(t0.Add(tc.want)) {
				t.Fatalf("Retry-After %q: %s at +%s, want +%s", tc.header, r.Outcome, r.NextAttempt.Sub(t0), tc.want)
			}
		})
	}
}

func TestDeliveryHangingServerTimesOutAndIsRetried(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{Timeout: 200 * time.Millisecond}, fedtest.Options{})
	release := make(chan struct{})
	in := fedtest.NewInbox(t, h, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	defer close(release)
	h.Start()
	t0 := h.Clock.Now()
	h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/inbox"))
	r := h.Next()
	if r.Outcome != delivery.OutcomeRetry || r.Status != 0 || !strings.Contains(r.Err, "timed out") {
		t.Fatalf("outcome %s status %d err %q", r.Outcome, r.Status, r.Err)
	}
	p := h.Pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second)) || p[0].Attempts != 1 || p[0].LastError == "" {
		t.Fatalf("after timeout: %+v", p)
	}
	h.Advance(30 * time.Second)
	if r := h.Next(); r.Outcome != delivery.OutcomeDelivered {
		t.Fatalf("retry: %s %s", r.Outcome, r.Err)
	}
}

func TestDeliveryConnectionRefusedIsRetried(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h.Start()
	t0 := h.Clock.Now()
	h.Enqueue("Create", "https://crieur.example/posts/a/en", "http://"+addr+"/inbox")
	r := h.Next()
	if r.Outcome != delivery.OutcomeRetry || !strings.Contains(r.Err, "refused") {
		t.Fatalf("outcome %s err %q", r.Outcome, r.Err)
	}
	p := h.Pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second)) || p[0].Attempts != 1 {
		t.Fatalf("after refusal: %+v", p)
	}
}

func TestDeliveryGivesUpAfterMaxAgeAndKeepsFollowers(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	in := fedtest.NewInbox(t, h, testkit.Status(http.StatusServiceUnavailable))
	f := storage.Follower{ActorID: in.URL("/users/a"), Inbox: in.URL("/users/a/inbox"), Status: storage.FollowerAccepted}
	if err := h.Store.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	h.Start()
	act := h.Enqueue("Create", "https://crieur.example/posts/a/en", f.Inbox)
	if r := h.Next(); r.Outcome != delivery.OutcomeRetry {
		t.Fatalf("first: %s", r.Outcome)
	}
	// Two days later the job is still being retried up to the limit.
	h.Advance(delivery.DefaultMaxAge - time.Minute)
	if r := h.Next(); r.Outcome != delivery.OutcomeRetry {
		t.Fatalf("before 48h: %s", r.Outcome)
	}
	h.Advance(6 * time.Hour)
	r := h.Next()
	if r.Outcome != delivery.OutcomeFailed || !strings.Contains(r.Err, "gave up after 48h") {
		t.Fatalf("after 48h: %s %q", r.Outcome, r.Err)
	}
	failed := h.Failed()
	if len(failed) != 1 || failed[0].LastStatus != 503 || failed[0].State != storage.JobFailed {
		t.Fatalf("failed jobs: %+v", failed)
	}
	if n, err := h.Store.CountFollowers(); err != nil || n != 1 {
		t.Fatalf("followers after giving up: %d %v (never removed for errors)", n, err)
	}
	c, _ := h.Store.DeliveryCounts(act.ID)
	if c != (storage.DeliveryCounts{Failed: 1}) {
		t.Fatalf("counts %+v", c)
	}
}

func TestDeliveryPermanentAndRetryableStatuses(t *testing.T) {
	for _, tc := range []struct {
		code int
		want delivery.Outcome
	}{
		{http.StatusBadRequest, delivery.OutcomeFailed},
		{http.StatusForbidden, delivery.OutcomeFailed},
		{http.StatusNotFound, delivery.OutcomeFailed},
		{http.StatusUnprocessableEntity, delivery.OutcomeFailed},
		{http.StatusNotImplemented, delivery.OutcomeFailed},
		{http.StatusUnauthorized, delivery.OutcomeRetry}, // Mastodon retries 401
		{http.StatusRequestTimeout, delivery.OutcomeRetry},
		{http.StatusBadGateway, delivery.OutcomeRetry},
		{http.StatusOK, delivery.OutcomeDelivered},
		{http.StatusNoContent, delivery.OutcomeDelivered},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
			in := fedtest.NewInbox(t, h, testkit.Status(tc.code))
			h.Start()
			h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/inbox"))
			r := h.Next()
			if r.Outcome != tc.want || r.Status != tc.code {
				t.Fatalf("%d: %s (%d), want %s", tc.code, r.Outcome, r.Status, tc.want)
			}
			switch tc.want {
			case delivery.OutcomeFailed:
				if f := h.Failed(); len(f) != 1 || f[0].LastStatus != tc.code || f[0].Attempts != 1 {
					t.Fatalf("failed: %+v", f)
				}
			case delivery.OutcomeRetry:
				if p := h.Pending(); len(p) != 1 || p[0].Attempts != 1 {
					t.Fatalf("pending: %+v", p)
				}
			}
		})
	}
}

func TestDeliveryRefusedAddressFailsAtOnce(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{NoLoopback: true}) // the SSRF guard is on
	in := fedtest.NewInbox(t, h, nil)
	h.Start()
	h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/inbox"))
	r := h.Next()
	if r.Outcome != delivery.OutcomeFailed || !strings.Contains(r.Err, "refused") {
		t.Fatalf("outcome %s err %q", r.Outcome, r.Err)
	}
	if in.Total() != 0 {
		t.Fatal("a refused address was contacted")
	}
}

func TestDeliveryBreakerOpensDefersAndProbes(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{PerHost: 1}, fedtest.Options{})
	var mu sync.Mutex
	healthy := false
	in := fedtest.NewInbox(t, h, func(w http.ResponseWriter, _ *http.Request, _ int) {
		mu.Lock()
		defer mu.Unlock()
		if healthy {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	h.Start()
	t0 := h.Clock.Now()
	var inboxes []string
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		inboxes = append(inboxes, in.URL("/users/"+u+"/inbox"))
	}
	h.Enqueue("Create", "https://crieur.example/posts/a/en", inboxes...)
	var retried, deferred int
	for _, r := range h.NextN(len(inboxes)) {
		switch r.Outcome {
		case delivery.OutcomeRetry:
			retried++
		case delivery.OutcomeDeferred:
			deferred++
			if !r.NextAttempt.Equal(t0.Add(delivery.DefaultBreakerCooldown)) {
				t.Errorf("deferred to +%s, want the cool-down", r.NextAttempt.Sub(t0))
			}
		default:
			t.Fatalf("unexpected %s", r.Outcome)
		}
	}
	if retried != delivery.DefaultBreakerThreshold || deferred != len(inboxes)-delivery.DefaultBreakerThreshold {
		t.Fatalf("retried %d deferred %d", retried, deferred)
	}
	if in.Total() != delivery.DefaultBreakerThreshold {
		t.Fatalf("open host got %d requests, want %d", in.Total(), delivery.DefaultBreakerThreshold)
	}
	for _, j := range h.Pending() {
		if j.Attempts == 0 && !j.NextAttempt.Equal(t0.Add(delivery.DefaultBreakerCooldown)) {
			t.Fatalf("deferred job: %+v", j)
		}
	}
	// After the cool-down one probe goes out; it fails, the breaker
	// reopens for twice as long and the others are deferred again. Every
	// job due by then reports exactly one outcome: count them instead of
	// waiting for quiet, which a busy machine can outlast.
	due := 0
	for _, j := range h.Pending() {
		if !j.NextAttempt.After(t0.Add(delivery.DefaultBreakerCooldown)) {
			due++
		}
	}
	h.Advance(delivery.DefaultBreakerCooldown)
	before := in.Total()
	probes := 0
	for range due {
		switch r := h.Next(); {
		case r.Outcome == delivery.OutcomeRetry:
			probes++
		case r.Outcome != delivery.OutcomeDeferred:
			t.Fatalf("while probing: %s", r.Outcome)
		case probes > 0 && !r.NextAttempt.Equal(t0.Add(3*delivery.DefaultBreakerCooldown)):
			t.Fatalf("after a failed probe: deferred to +%s", r.NextAttempt.Sub(t0))
		case !r.NextAttempt.After(t0.Add(delivery.DefaultBreakerCooldown)):
			t.Fatalf("while probing: deferred to +%s", r.NextAttempt.Sub(t0))
		}
	}
	if probes != 1 || in.Total() != before+1 {
		t.Fatalf("half-open host got %d requests (%d probes), want 1", in.Total()-before, probes)
	}
	// The host recovers: the next probe succeeds and everything goes.
	mu.Lock()
	healthy = true
	mu.Unlock()
	h.Advance(6 * time.Hour) // past every retry and cool-down
	delivered := 0
	for delivered < len(inboxes) {
		r := h.Next()
		if r.Outcome == delivery.OutcomeDelivered {
			delivered++
			continue
		}
		t.Fatalf("after recovery: %s %s", r.Outcome, r.Err)
	}
	if p := h.Pending(); len(p) != 0 {
		t.Fatalf("pending: %+v", p)
	}
}

func TestDeliveryHangingHostHoldsOnlyItsSlots(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{Workers: 4, PerHost: 2, Timeout: 30 * time.Second}, fedtest.Options{})
	release := make(chan struct{})
	slow := fedtest.NewInbox(t, h, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	fast := fedtest.NewInbox(t, h, nil)
	var slowInboxes, fastInboxes []string
	for _, u := range []string{"a", "b", "c", "d", "e", "f"} {
		slowInboxes = append(slowInboxes, slow.URL("/users/"+u+"/inbox"))
		fastInboxes = append(fastInboxes, fast.URL("/users/"+u+"/inbox"))
	}
	// The slow host's jobs are older: they are taken first.
	h.Enqueue("Create", "https://crieur.example/posts/a/en", slowInboxes...)
	h.Enqueue("Create", "https://crieur.example/posts/b/en", fastInboxes...)
	h.Start()
	for range fastInboxes {
		r := h.Next()
		if r.Outcome != delivery.OutcomeDelivered || !strings.HasPrefix(r.Job.Inbox, fast.URL("")) {
			t.Fatalf("while the slow host hangs: %s for %s", r.Outcome, r.Job.Inbox)
		}
	}
	if peak := slow.Peak(); peak > 2 {
		t.Fatalf("slow host had %d requests at once, limit 2", slow.Peak())
	}
	close(release)
	h.NextN(len(slowInboxes))
}

func TestDeliveryShutdownLeavesJobsQueued(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{Grace: 50 * time.Millisecond}, fedtest.Options{})
	arrived := make(chan struct{}, 1)
	in := fedtest.NewInbox(t, h, func(w http.ResponseWriter, r *http.Request, _ int) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	h.Start()
	h.Enqueue("Create", "https://crieur.example/posts/a/en", in.URL("/inbox"))
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("request never arrived")
	}
	h.Stop()
	p := h.Pending()
	if len(p) != 1 || p[0].Attempts != 0 || p[0].LastError != "" {
		t.Fatalf("after shutdown the job must be untouched: %+v", p)
	}
	select {
	case r := <-h.Results:
		t.Fatalf("an interrupted request reported %s", r.Outcome)
	default:
	}
}

func TestDeliveryRunTwiceIsAnError(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.D.Run(ctx); err != nil {
		t.Fatalf("first Run after its context ended: %v", err)
	}
	if err := h.D.Run(ctx); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("second Run: %v", err)
	}
}

// TestDeliveryStartRamps: a burst starts a few requests per CPU and grows
// to Workers with time alone, even when none of them ends.
func TestDeliveryStartRamps(t *testing.T) {
	const workers = 100
	h := fedtest.NewHarness(t, delivery.Options{Workers: workers, PerHost: workers, Timeout: 30 * time.Second}, fedtest.Options{})
	release := make(chan struct{})
	all := make(chan struct{})
	var once sync.Once
	var in *fedtest.Inbox
	in = fedtest.NewInbox(t, h, func(w http.ResponseWriter, r *http.Request, _ int) {
		if in.Active() == workers {
			once.Do(func() { close(all) })
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	var inboxes []string
	for i := range workers {
		inboxes = append(inboxes, in.URL(fmt.Sprintf("/users/u%d/inbox", i)))
	}
	h.Enqueue("Create", "https://crieur.example/posts/a/en", inboxes...)
	h.Start()
	// Without its own timer the ramp would grow only at the queue's next
	// poll (PollInterval), as nothing ends; with it, in StartRamp.
	select {
	case <-all:
	case <-time.After(delivery.PollInterval * 3 / 4):
		peak := in.Peak()
		t.Fatalf("at most %d of %d hanging requests in flight: the start did not grow", peak, workers)
	}
	close(release)
	h.NextN(workers)
}

// A fan-out starts no more requests than the dial gate admits: the others
// wait as jobs in the ready list, not as goroutines parked at the gate.
func TestDeliveryHoldsBackWhatTheGateWouldPark(t *testing.T) {
	const jobs, gate = 300, 4
	release := make(chan struct{})
	var dialing atomic.Int32
	h := fedtest.NewHarness(t, delivery.Options{Workers: 4096, PerHost: jobs, Timeout: 30 * time.Second}, fedtest.Options{
		Client: transport.ClientConfig{DialGate: gate, BeforeDial: func(string) {
			dialing.Add(1)
			<-release
		}},
	})
	in := fedtest.NewInbox(t, h, nil)
	var inboxes []string
	for i := range jobs {
		inboxes = append(inboxes, in.URL(fmt.Sprintf("/users/u%d/inbox", i)))
	}
	h.Enqueue("Create", "https://crieur.example/posts/a/en", inboxes...)
	before := runtime.NumGoroutine()
	h.Start()
	// Runs before the harness stops (cleanups run last first), so that a
	// failing test does not wait for the hung attempts forever.
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	for deadline := time.Now().Add(5 * time.Second); dialing.Load() < gate; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections attempted, want %d", dialing.Load(), gate)
		}
	}
	// Past the start ramp, well before the gate's hold gives slots back.
	time.Sleep(2 * delivery.StartRamp)
	if n := runtime.NumGoroutine() - before; n > gate+16 {
		t.Errorf("%d more goroutines while %d connections hang, want at most about %d: requests were started to wait at the gate", n, gate, gate)
	}
	if n := dialing.Load(); n != gate {
		t.Errorf("%d connection attempts, want the gate's %d", n, gate)
	}
	// Attempts that hang for the gate's hold (300 ms) give their turn
	// away, so hosts that never answer cannot stall a fan-out.
	for deadline := time.Now().Add(10 * time.Second); dialing.Load() < 2*gate; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection attempts 10 s after the first ones hung, want %d", dialing.Load(), 2*gate)
		}
	}
	unblock()
	h.NextN(jobs)
}

// TestDelivererTrimsTheStore: when the Deliverer starts (and every
// pruneEvery after), answers to Follows that nothing will send again are
// dropped after keepAnswers and strangers' cached keys after
// delivery.KeepStrangerKeys; an answer still queued, a recent one, and a follower's
// key stay.
func TestDelivererTrimsTheStore(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	start := h.Clock.Now()
	answer := func(n int) storage.Activity {
		a := storage.Activity{ID: h.Docs.NewActivityID(), Type: "Accept", ObjectID: fmt.Sprintf("https://h.example/follows/%d", n), Published: h.Clock.Now()}
		a.JSON, _ = json.Marshal(map[string]any{"id": a.ID, "type": a.Type, "object": a.ObjectID})
		return a
	}
	sent := answer(1)
	if err := h.Store.PutActivity(sent); err != nil {
		t.Fatal(err)
	}
	// Still queued: its server is down and the next try is tomorrow.
	queued := answer(2)
	if err := h.Store.Enqueue(queued, []storage.Job{{Inbox: "https://down.example/inbox", NextAttempt: start.Add(delivery.KeepStrangerKeys + 24*time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	fol := storage.Follower{ActorID: "https://h.example/users/a", Inbox: "https://h.example/users/a/inbox", Status: storage.FollowerAccepted}
	if err := h.Store.PutFollower(fol); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{
		"follower": fol.ActorID,
		"stranger": "https://elsewhere.example/users/b",
	}
	for _, owner := range keys {
		if err := h.Store.PutRemoteKey(storage.RemoteKey{KeyID: owner + "#main-key", Owner: owner, PublicKeyPEM: "pem", FetchedAt: start}); err != nil {
			t.Fatal(err)
		}
	}
	h.Clock.Advance(delivery.KeepStrangerKeys + time.Hour)
	recent := answer(3)
	if err := h.Store.PutActivity(recent); err != nil {
		t.Fatal(err)
	}

	h.Start()
	// The prune runs its steps one after the other: wait for the effect of
	// each one, not for the first alone, on however busy a machine.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, errAnswer := h.Store.Activity(sent.ID)
		_, errKey := h.Store.RemoteKey(keys["stranger"] + "#main-key")
		if errors.Is(errAnswer, storage.ErrNotFound) && errors.Is(errKey, storage.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after start, the delivered Accept (%v) or a stranger's key fetched %s ago (%v) is still there",
				errAnswer, delivery.KeepStrangerKeys+time.Hour, errKey)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, a := range []storage.Activity{queued, recent} {
		if _, err := h.Store.Activity(a.ID); err != nil {
			t.Errorf("Accept %s dropped: %v", a.ObjectID, err)
		}
	}
	if _, err := h.Store.RemoteKey(keys["follower"] + "#main-key"); err != nil {
		t.Errorf("the follower's key was dropped: %v", err)
	}
}
