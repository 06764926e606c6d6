package federation

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crieur/crieur/posts"
	"github.com/crieur/crieur/storage"
)

// dlKey is one RSA-2048 key for all delivery tests: generating one takes
// a noticeable fraction of a second.
var dlKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// dlClock is a settable clock shared by storage, the service and the
// Deliverer, so that tests move time instead of sleeping through backoffs.
type dlClock struct {
	mu   sync.Mutex
	t    time.Time
	real bool // follow the wall clock (tests of Run's own timers)
}

func newDLClock() *dlClock {
	return &dlClock{t: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
}

func (c *dlClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now()
	}
	return c.t
}

func (c *dlClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dlHarness is a Deliverer over real storage and a real client, with every
// outcome reported on a channel.
type dlHarness struct {
	t       *testing.T
	clock   *dlClock
	store   *storage.Store
	svc     *Service
	d       *Deliverer
	lib     atomic.Pointer[posts.Library] // what svc sees as the posts folder
	results chan DeliveryResult
	cancel  context.CancelFunc
	done    chan error
}

// maxWindow makes the backoff deterministic: always the whole window.
func maxWindow(w time.Duration) time.Duration { return w }

// newDLHarness builds the harness; opts.Backoff.Jitter defaults to
// maxWindow, and loopback is allowed unless noLoopback.
func newDLHarness(t *testing.T, opts DeliveryOptions, noLoopback bool) *dlHarness {
	t.Helper()
	h := &dlHarness{t: t, clock: newDLClock(), results: make(chan DeliveryResult, 1024)}
	store, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h.store = store
	cc := ClientConfig{UserAgent: "crieur-test", Timeout: 10 * time.Second}
	if !noLoopback {
		cc.AllowPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	client := NewClient(cc)
	t.Cleanup(client.CloseIdleConnections)
	svc, err := New(Config{BaseURL: "https://crieur.example", Handle: "reports"}, Deps{
		Store: store, Key: dlKey(), Client: client, Now: h.clock.Now, Posts: h.lib.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	if opts.Backoff.Jitter == nil {
		opts.Backoff.Jitter = maxWindow
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	opts.Now = h.clock.Now
	opts.OnDone = func(r DeliveryResult) { h.results <- r }
	h.d = NewDeliverer(svc, opts)
	return h
}

func (h *dlHarness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *dlHarness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

// enqueue stores an activity of type typ about object and one job per inbox.
func (h *dlHarness) enqueue(typ, object string, inboxes ...string) storage.Activity {
	h.t.Helper()
	act := storage.Activity{
		ID: h.svc.NewActivityID(), Type: typ, ObjectID: object, Published: h.clock.Now(),
	}
	act.JSON, _ = json.Marshal(map[string]any{"id": act.ID, "type": typ, "object": object})
	var jobs []storage.Job
	for _, in := range inboxes {
		jobs = append(jobs, storage.Job{Inbox: in, Topic: object})
	}
	if err := h.store.Enqueue(act, jobs); err != nil {
		h.t.Fatal(err)
	}
	h.d.Wake()
	return act
}

// next waits for the next outcome. The deadline only stops a broken test
// from hanging; nothing here measures speed.
func (h *dlHarness) next() DeliveryResult {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(20 * time.Second):
		h.t.Fatal("no delivery outcome")
		return DeliveryResult{}
	}
}

// nextN collects n outcomes.
func (h *dlHarness) nextN(n int) []DeliveryResult {
	h.t.Helper()
	out := make([]DeliveryResult, 0, n)
	for range n {
		out = append(out, h.next())
	}
	return out
}

// quiet asserts that no outcome is reported while the Deliverer is given a
// chance to work (a wake-up and a short wait).
func (h *dlHarness) quiet() {
	h.t.Helper()
	h.d.Wake()
	select {
	case r := <-h.results:
		h.t.Fatalf("unexpected outcome %s for %s", r.Outcome, r.Job.Inbox)
	case <-time.After(100 * time.Millisecond):
	}
}

// advance moves the clock and wakes the Deliverer.
func (h *dlHarness) advance(d time.Duration) {
	h.clock.Advance(d)
	h.d.Wake()
}

func (h *dlHarness) pending() []storage.Job {
	h.t.Helper()
	jobs, err := h.store.PendingJobs()
	if err != nil {
		h.t.Fatal(err)
	}
	return jobs
}

func (h *dlHarness) failed() []storage.Job {
	h.t.Helper()
	jobs, err := h.store.FailedJobs()
	if err != nil {
		h.t.Fatal(err)
	}
	return jobs
}

// dlInbox is a loopback inbox server that verifies every delivery with
// go-fed/httpsig and the Digest, records what it received, and answers
// what the test's respond function says.
type dlInbox struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	got     map[string][]string                                 // path → activity types received, in order
	ids     map[string][]string                                 // path → activity ids received
	bodies  map[string][][]byte                                 // path → documents received
	bad     []string                                            // verification failures
	active  int                                                 // requests being handled now
	peak    int                                                 // most requests handled at once
	n       int                                                 // verified requests so far
	respond func(w http.ResponseWriter, r *http.Request, n int) // n: this request's number
}

func newDLInbox(t *testing.T, h *dlHarness, respond func(w http.ResponseWriter, r *http.Request, n int)) *dlInbox {
	t.Helper()
	in := &dlInbox{t: t, got: map[string][]string{}, ids: map[string][]string{}, bodies: map[string][][]byte{}, respond: respond}
	v := &DeliveryVerifier{KeyID: h.svc.cfg.KeyID(), Key: &dlKey().PublicKey, Now: h.clock.Now}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if err := v.Verify(r, body); err != nil {
			in.mu.Lock()
			in.bad = append(in.bad, err.Error())
			in.mu.Unlock()
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var act struct{ ID, Type string }
		_ = json.Unmarshal(body, &act)
		in.mu.Lock()
		in.got[r.URL.Path] = append(in.got[r.URL.Path], act.Type)
		in.ids[r.URL.Path] = append(in.ids[r.URL.Path], act.ID)
		in.bodies[r.URL.Path] = append(in.bodies[r.URL.Path], body)
		in.n++
		n := in.n
		in.active++
		in.peak = max(in.peak, in.active)
		in.mu.Unlock()
		defer func() {
			in.mu.Lock()
			in.active--
			in.mu.Unlock()
		}()
		if in.respond == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		in.respond(w, r, n)
	}))
	t.Cleanup(func() {
		in.srv.Close()
		in.mu.Lock()
		defer in.mu.Unlock()
		if len(in.bad) > 0 {
			t.Errorf("inbox %s refused deliveries: %v", in.srv.URL, in.bad)
		}
	})
	return in
}

func (in *dlInbox) url(path string) string { return in.srv.URL + path }

func (in *dlInbox) received(path string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.got[path])
}

func (in *dlInbox) bodiesOf(path string) [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.bodies[path])
}

func (in *dlInbox) total() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, v := range in.got {
		n += len(v)
	}
	return n
}

func status(code int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(code) }
}

// debugLog is a logger at debug level that tests can read while the
// Deliverer writes to it.
type debugLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *debugLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *debugLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *debugLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestDeliverySignedAndCompleted(t *testing.T) {
	logs := &debugLog{}
	h := newDLHarness(t, DeliveryOptions{Logger: logs.logger()}, false)
	in := newDLInbox(t, h, nil)
	h.start()
	act := h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/inbox"))
	r := h.next()
	if r.Outcome != OutcomeDelivered || r.Status != http.StatusAccepted {
		t.Fatalf("outcome %s status %d err %s", r.Outcome, r.Status, r.Err)
	}
	if got := in.received("/inbox"); !slices.Equal(got, []string{"Create"}) {
		t.Fatalf("received %v", got)
	}
	if p := h.pending(); len(p) != 0 {
		t.Fatalf("pending after success: %+v", p)
	}
	c, err := h.store.DeliveryCounts(act.ID)
	if err != nil || c != (storage.DeliveryCounts{Delivered: 1}) {
		t.Fatalf("counts %+v %v", c, err)
	}
	// An admin who runs crieur at -log-level debug sees each delivery.
	want := `msg="delivery: delivered" inbox=` + in.url("/inbox") + " activity=" + act.ID + " status=202 attempt=1"
	if !strings.Contains(logs.String(), want) {
		t.Errorf("debug log lacks %q:\n%s", want, logs.String())
	}
}

func TestDeliveryRetriesAfter500ThenSucceeds(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	in := newDLInbox(t, h, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h.start()
	t0 := h.clock.Now()
	h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/inbox"))

	r := h.next()
	if r.Outcome != OutcomeRetry || r.Status != 500 {
		t.Fatalf("first: %s %d %s", r.Outcome, r.Status, r.Err)
	}
	// First retry: the 30 s window (the test's jitter takes all of it).
	p := h.pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second)) || p[0].Attempts != 1 || p[0].LastStatus != 500 {
		t.Fatalf("after first failure: %+v", p)
	}
	h.quiet() // not due yet: nothing happens

	h.advance(30 * time.Second)
	if r := h.next(); r.Outcome != OutcomeRetry {
		t.Fatalf("second: %s", r.Outcome)
	}
	p = h.pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second+60*time.Second)) || p[0].Attempts != 2 {
		t.Fatalf("after second failure (window doubles): %+v", p)
	}
	h.advance(60 * time.Second)
	if r := h.next(); r.Outcome != OutcomeDelivered {
		t.Fatalf("third: %s %s", r.Outcome, r.Err)
	}
	if p := h.pending(); len(p) != 0 {
		t.Fatalf("pending: %+v", p)
	}
	if got := in.received("/inbox"); len(got) != 3 {
		t.Fatalf("server saw %d attempts, want 3", len(got))
	}
}

func TestDeliveryOrderPerInboxAcrossRetries(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	// Server A fails the first request (the Create), server B never does.
	a := newDLInbox(t, h, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	b := newDLInbox(t, h, nil)
	note := "https://crieur.example/posts/a/en"
	inboxes := []string{a.url("/inbox"), b.url("/inbox")}
	// All three are queued before the Deliverer starts, like after a
	// quick edit and removal.
	h.enqueue("Create", note, inboxes...)
	h.enqueue("Update", note, inboxes...)
	h.enqueue("Delete", note, inboxes...)
	h.start()

	// B gets all three; A's Create fails and blocks its chain.
	h.nextN(4)
	if got := b.received("/inbox"); !slices.Equal(got, []string{"Create", "Update", "Delete"}) {
		t.Fatalf("B received %v", got)
	}
	if got := a.received("/inbox"); !slices.Equal(got, []string{"Create"}) {
		t.Fatalf("A received %v before the retry", got)
	}
	h.quiet()
	h.advance(30 * time.Second)
	h.nextN(3)
	if got := a.received("/inbox"); !slices.Equal(got, []string{"Create", "Create", "Update", "Delete"}) {
		t.Fatalf("A received %v", got)
	}
	if p := h.pending(); len(p) != 0 {
		t.Fatalf("pending: %+v", p)
	}
}

func TestDelivery410RemovesOnlyTheFollowerWhoseInboxIsGone(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	gone := newDLInbox(t, h, status(http.StatusGone))
	other := newDLInbox(t, h, nil)
	followers := []storage.Follower{
		{ActorID: gone.url("/users/a"), Inbox: gone.url("/users/a/inbox")},
		{ActorID: gone.url("/users/b"), Inbox: gone.url("/users/b/inbox"), SharedInbox: gone.url("/inbox")},
		{ActorID: gone.url("/users/d"), Inbox: gone.url("/users/d/inbox"), SharedInbox: gone.url("/inbox")},
		{ActorID: other.url("/users/c"), Inbox: other.url("/users/c/inbox")},
	}
	for _, f := range followers {
		f.Status = storage.FollowerAccepted
		if err := h.store.PutFollower(f); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	left := func() map[string]bool {
		fs, err := h.store.Followers(storage.FollowerAccepted)
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
	h.enqueue("Create", "https://crieur.example/posts/a/en", gone.url("/users/a/inbox"))
	if r := h.next(); r.Outcome != OutcomeGone || r.Status != 410 {
		t.Fatalf("outcome %s %d", r.Outcome, r.Status)
	}
	if m := left(); m[gone.url("/users/a")] || len(m) != 3 {
		t.Fatalf("after a personal inbox's 410: %v", m)
	}
	// A shared inbox answering 410 names no account: nobody is removed,
	// and the job is finished rather than retried.
	h.enqueue("Create", "https://crieur.example/posts/b/en", gone.url("/inbox"))
	if r := h.next(); r.Outcome != OutcomeGone {
		t.Fatalf("outcome %s %d", r.Outcome, r.Status)
	}
	if m := left(); len(m) != 3 || !m[gone.url("/users/b")] || !m[gone.url("/users/d")] {
		t.Fatalf("a shared inbox's 410 removed followers: %v", m)
	}
	if p, f := h.pending(), h.failed(); len(p) != 0 || len(f) != 0 {
		t.Fatalf("410 must finish the job: pending %d failed %d", len(p), len(f))
	}
}

func TestDelivery429HonoursRetryAfterAndPausesHost(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{PerHost: 1}, false)
	in := newDLInbox(t, h, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h.start()
	t0 := h.clock.Now()
	h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/users/a/inbox"))
	if r := h.next(); r.Outcome != OutcomeRetry || r.Status != 429 {
		t.Fatalf("outcome %s %d", r.Outcome, r.Status)
	}
	p := h.pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(120*time.Second)) || p[0].Attempts != 1 {
		t.Fatalf("after 429: %+v", p)
	}
	// Another job for the same host waits for the end of the pause
	// without being tried or counted.
	h.enqueue("Create", "https://crieur.example/posts/b/en", in.url("/users/b/inbox"))
	r := h.next()
	if r.Outcome != OutcomeDeferred || !r.NextAttempt.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("second job: %s at %s", r.Outcome, r.NextAttempt)
	}
	if in.total() != 1 {
		t.Fatalf("paused host got %d requests", in.total())
	}
	for _, j := range h.pending() {
		if j.Inbox == in.url("/users/b/inbox") && j.Attempts != 0 {
			t.Fatalf("deferred job counted an attempt: %+v", j)
		}
	}
	h.advance(120 * time.Second)
	for _, r := range h.nextN(2) {
		if r.Outcome != OutcomeDelivered {
			t.Fatalf("after the pause: %s %s", r.Outcome, r.Err)
		}
	}
}

func TestDeliveryRetryAfterIsClamped(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"0", 30 * time.Second},  // no usable value: the backoff schedule
		{"86400", maxRetryAfter}, // a day: six hours at most
		{"1", minRetryAfter},     // honoured down to a second
		{"not a number", 30 * time.Second},
	} {
		t.Run(tc.header, func(t *testing.T) {
			h := newDLHarness(t, DeliveryOptions{}, false)
			in := newDLInbox(t, h, func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Retry-After", tc.header)
				w.WriteHeader(http.StatusTooManyRequests)
			})
			h.start()
			t0 := h.clock.Now()
			h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/inbox"))
			r := h.next()
			if r.Outcome != OutcomeRetry || !r.NextAttempt.Equal(t0.Add(tc.want)) {
				t.Fatalf("Retry-After %q: %s at +%s, want +%s", tc.header, r.Outcome, r.NextAttempt.Sub(t0), tc.want)
			}
		})
	}
}

func TestDeliveryHangingServerTimesOutAndIsRetried(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{Timeout: 200 * time.Millisecond}, false)
	release := make(chan struct{})
	in := newDLInbox(t, h, func(w http.ResponseWriter, r *http.Request, n int) {
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
	h.start()
	t0 := h.clock.Now()
	h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/inbox"))
	r := h.next()
	if r.Outcome != OutcomeRetry || r.Status != 0 || !strings.Contains(r.Err, "timed out") {
		t.Fatalf("outcome %s status %d err %q", r.Outcome, r.Status, r.Err)
	}
	p := h.pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second)) || p[0].Attempts != 1 || p[0].LastError == "" {
		t.Fatalf("after timeout: %+v", p)
	}
	h.advance(30 * time.Second)
	if r := h.next(); r.Outcome != OutcomeDelivered {
		t.Fatalf("retry: %s %s", r.Outcome, r.Err)
	}
}

func TestDeliveryConnectionRefusedIsRetried(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h.start()
	t0 := h.clock.Now()
	h.enqueue("Create", "https://crieur.example/posts/a/en", "http://"+addr+"/inbox")
	r := h.next()
	if r.Outcome != OutcomeRetry || !strings.Contains(r.Err, "refused") {
		t.Fatalf("outcome %s err %q", r.Outcome, r.Err)
	}
	p := h.pending()
	if len(p) != 1 || !p[0].NextAttempt.Equal(t0.Add(30*time.Second)) || p[0].Attempts != 1 {
		t.Fatalf("after refusal: %+v", p)
	}
}

func TestDeliveryGivesUpAfterMaxAgeAndKeepsFollowers(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	in := newDLInbox(t, h, status(http.StatusServiceUnavailable))
	f := storage.Follower{ActorID: in.url("/users/a"), Inbox: in.url("/users/a/inbox"), Status: storage.FollowerAccepted}
	if err := h.store.PutFollower(f); err != nil {
		t.Fatal(err)
	}
	h.start()
	act := h.enqueue("Create", "https://crieur.example/posts/a/en", f.Inbox)
	if r := h.next(); r.Outcome != OutcomeRetry {
		t.Fatalf("first: %s", r.Outcome)
	}
	// Two days later the job is still being retried up to the limit.
	h.advance(DefaultMaxAge - time.Minute)
	if r := h.next(); r.Outcome != OutcomeRetry {
		t.Fatalf("before 48h: %s", r.Outcome)
	}
	h.advance(6 * time.Hour)
	r := h.next()
	if r.Outcome != OutcomeFailed || !strings.Contains(r.Err, "gave up after 48h") {
		t.Fatalf("after 48h: %s %q", r.Outcome, r.Err)
	}
	failed := h.failed()
	if len(failed) != 1 || failed[0].LastStatus != 503 || failed[0].State != storage.JobFailed {
		t.Fatalf("failed jobs: %+v", failed)
	}
	if n, err := h.store.CountFollowers(); err != nil || n != 1 {
		t.Fatalf("followers after giving up: %d %v (never removed for errors)", n, err)
	}
	c, _ := h.store.DeliveryCounts(act.ID)
	if c != (storage.DeliveryCounts{Failed: 1}) {
		t.Fatalf("counts %+v", c)
	}
}

func TestDeliveryPermanentAndRetryableStatuses(t *testing.T) {
	for _, tc := range []struct {
		code int
		want Outcome
	}{
		{http.StatusBadRequest, OutcomeFailed},
		{http.StatusForbidden, OutcomeFailed},
		{http.StatusNotFound, OutcomeFailed},
		{http.StatusUnprocessableEntity, OutcomeFailed},
		{http.StatusNotImplemented, OutcomeFailed},
		{http.StatusUnauthorized, OutcomeRetry}, // Mastodon retries 401
		{http.StatusRequestTimeout, OutcomeRetry},
		{http.StatusBadGateway, OutcomeRetry},
		{http.StatusOK, OutcomeDelivered},
		{http.StatusNoContent, OutcomeDelivered},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			h := newDLHarness(t, DeliveryOptions{}, false)
			in := newDLInbox(t, h, status(tc.code))
			h.start()
			h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/inbox"))
			r := h.next()
			if r.Outcome != tc.want || r.Status != tc.code {
				t.Fatalf("%d: %s (%d), want %s", tc.code, r.Outcome, r.Status, tc.want)
			}
			switch tc.want {
			case OutcomeFailed:
				if f := h.failed(); len(f) != 1 || f[0].LastStatus != tc.code || f[0].Attempts != 1 {
					t.Fatalf("failed: %+v", f)
				}
			case OutcomeRetry:
				if p := h.pending(); len(p) != 1 || p[0].Attempts != 1 {
					t.Fatalf("pending: %+v", p)
				}
			}
		})
	}
}

func TestDeliveryRefusedAddressFailsAtOnce(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, true) // the SSRF guard is on
	in := newDLInbox(t, h, nil)
	h.start()
	h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/inbox"))
	r := h.next()
	if r.Outcome != OutcomeFailed || !strings.Contains(r.Err, "refused") {
		t.Fatalf("outcome %s err %q", r.Outcome, r.Err)
	}
	if in.total() != 0 {
		t.Fatal("a refused address was contacted")
	}
}

func TestDeliveryBreakerOpensDefersAndProbes(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{PerHost: 1}, false)
	var mu sync.Mutex
	healthy := false
	in := newDLInbox(t, h, func(w http.ResponseWriter, _ *http.Request, _ int) {
		mu.Lock()
		defer mu.Unlock()
		if healthy {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	h.start()
	t0 := h.clock.Now()
	var inboxes []string
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		inboxes = append(inboxes, in.url("/users/"+u+"/inbox"))
	}
	h.enqueue("Create", "https://crieur.example/posts/a/en", inboxes...)
	var retried, deferred int
	for _, r := range h.nextN(len(inboxes)) {
		switch r.Outcome {
		case OutcomeRetry:
			retried++
		case OutcomeDeferred:
			deferred++
			if !r.NextAttempt.Equal(t0.Add(DefaultBreakerCooldown)) {
				t.Errorf("deferred to +%s, want the cool-down", r.NextAttempt.Sub(t0))
			}
		default:
			t.Fatalf("unexpected %s", r.Outcome)
		}
	}
	if retried != DefaultBreakerThreshold || deferred != len(inboxes)-DefaultBreakerThreshold {
		t.Fatalf("retried %d deferred %d", retried, deferred)
	}
	if in.total() != DefaultBreakerThreshold {
		t.Fatalf("open host got %d requests, want %d", in.total(), DefaultBreakerThreshold)
	}
	for _, j := range h.pending() {
		if j.Attempts == 0 && !j.NextAttempt.Equal(t0.Add(DefaultBreakerCooldown)) {
			t.Fatalf("deferred job: %+v", j)
		}
	}
	// After the cool-down one probe goes out; it fails, the breaker
	// reopens for twice as long and the others are deferred again.
	h.advance(DefaultBreakerCooldown)
	before := in.total()
	for {
		r := h.next()
		if r.Outcome == OutcomeRetry {
			break
		}
		if r.Outcome != OutcomeDeferred {
			t.Fatalf("while probing: %s", r.Outcome)
		}
	}
	if in.total() != before+1 {
		t.Fatalf("half-open host got %d requests, want 1", in.total()-before)
	}
	// Drain the deferrals of the others (jobs due at the cool-down).
	for {
		select {
		case r := <-h.results:
			if r.Outcome != OutcomeDeferred || !r.NextAttempt.Equal(t0.Add(3*DefaultBreakerCooldown)) {
				t.Fatalf("after a failed probe: %s to +%s", r.Outcome, r.NextAttempt.Sub(t0))
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	// The host recovers: the next probe succeeds and everything goes.
	mu.Lock()
	healthy = true
	mu.Unlock()
	h.advance(6 * time.Hour) // past every retry and cool-down
	delivered := 0
	for delivered < len(inboxes) {
		r := h.next()
		if r.Outcome == OutcomeDelivered {
			delivered++
			continue
		}
		t.Fatalf("after recovery: %s %s", r.Outcome, r.Err)
	}
	if p := h.pending(); len(p) != 0 {
		t.Fatalf("pending: %+v", p)
	}
}

func TestDeliveryHangingHostHoldsOnlyItsSlots(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{Workers: 4, PerHost: 2, Timeout: 30 * time.Second}, false)
	release := make(chan struct{})
	slow := newDLInbox(t, h, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	fast := newDLInbox(t, h, nil)
	var slowInboxes, fastInboxes []string
	for _, u := range []string{"a", "b", "c", "d", "e", "f"} {
		slowInboxes = append(slowInboxes, slow.url("/users/"+u+"/inbox"))
		fastInboxes = append(fastInboxes, fast.url("/users/"+u+"/inbox"))
	}
	// The slow host's jobs are older: they are taken first.
	h.enqueue("Create", "https://crieur.example/posts/a/en", slowInboxes...)
	h.enqueue("Create", "https://crieur.example/posts/b/en", fastInboxes...)
	h.start()
	for range fastInboxes {
		r := h.next()
		if r.Outcome != OutcomeDelivered || !strings.HasPrefix(r.Job.Inbox, fast.srv.URL) {
			t.Fatalf("while the slow host hangs: %s for %s", r.Outcome, r.Job.Inbox)
		}
	}
	slow.mu.Lock()
	peak := slow.peak
	slow.mu.Unlock()
	if peak > 2 {
		t.Fatalf("slow host had %d requests at once, limit 2", peak)
	}
	close(release)
	h.nextN(len(slowInboxes))
}

func TestDeliveryShutdownLeavesJobsQueued(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{Grace: 50 * time.Millisecond}, false)
	arrived := make(chan struct{}, 1)
	in := newDLInbox(t, h, func(w http.ResponseWriter, r *http.Request, _ int) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	h.start()
	h.enqueue("Create", "https://crieur.example/posts/a/en", in.url("/inbox"))
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("request never arrived")
	}
	h.stop()
	p := h.pending()
	if len(p) != 1 || p[0].Attempts != 0 || p[0].LastError != "" {
		t.Fatalf("after shutdown the job must be untouched: %+v", p)
	}
	select {
	case r := <-h.results:
		t.Fatalf("an interrupted request reported %s", r.Outcome)
	default:
	}
}

func TestDeliveryRunTwiceIsAnError(t *testing.T) {
	h := newDLHarness(t, DeliveryOptions{}, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.d.Run(ctx); err != nil {
		t.Fatalf("first Run after its context ended: %v", err)
	}
	if err := h.d.Run(ctx); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("second Run: %v", err)
	}
}

// TestSignRequestDigestIsVerified checks the fan-out's signing path: a
// digest computed once per activity gives the same header SignRequest
// would, a strict verifier accepts it, and it does not match another body.
func TestSignRequestDigestIsVerified(t *testing.T) {
	clock := newDLClock()
	s, err := NewSigner("https://crieur.example/@news#main-key", dlKey(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"Create","id":"https://crieur.example/activities/1"}`)
	digest := BodyDigest(body)
	newReq := func() *http.Request {
		req, err := http.NewRequest(http.MethodPost, "https://inbox.example/inbox", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		setPostHeaders(req.Header, "crieur-test")
		return req
	}
	viaBody := newReq()
	if err := s.SignRequest(viaBody, body); err != nil {
		t.Fatal(err)
	}
	req := newReq()
	if err := s.SignRequestDigest(req, digest); err != nil {
		t.Fatal(err)
	}
	if got, want := req.Header.Get("Digest"), viaBody.Header.Get("Digest"); got != want {
		t.Fatalf("digest %q, SignRequest gives %q", got, want)
	}
	v := &DeliveryVerifier{KeyID: s.KeyID(), Key: &dlKey().PublicKey, Now: clock.Now}
	if err := v.Verify(req, body); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := v.Verify(req, append([]byte(nil), `{"type":"Delete"}`...)); err == nil {
		t.Fatal("a signature over another body's digest verified")
	}
	// A retry signs the same request again: one Digest, a fresh Date.
	first := req.Header.Get("Date")
	clock.Advance(time.Minute)
	if err := s.SignRequestDigest(req, digest); err != nil {
		t.Fatal(err)
	}
	if n := len(req.Header.Values("Digest")); n != 1 {
		t.Fatalf("%d Digest headers after a retry", n)
	}
	if req.Header.Get("Date") == first {
		t.Fatal("retry kept the old Date")
	}
	if err := v.Verify(req, body); err != nil {
		t.Fatalf("verify retry: %v", err)
	}
	if err := s.SignRequestDigest(req, ""); err == nil {
		t.Fatal("empty digest accepted")
	}
}

// TestDeliveryStartRamps: a burst starts a few requests per CPU and grows
// to Workers with time alone, even when none of them ends.
func TestDeliveryStartRamps(t *testing.T) {
	const workers = 100
	d := &Deliverer{opts: DeliveryOptions{Workers: workers}}
	start := min(startPerCPU*runtime.GOMAXPROCS(0), workers)
	d.burstSince = time.Now()
	if got := d.slotsLocked(); got != start {
		t.Errorf("slots at the start of a burst = %d, want %d", got, start)
	}
	d.burstSince = time.Now().Add(-startRamp)
	if got := d.slotsLocked(); got != workers {
		t.Errorf("slots after the ramp = %d, want %d", got, workers)
	}

	h := newDLHarness(t, DeliveryOptions{Workers: workers, PerHost: workers, Timeout: 30 * time.Second}, false)
	release := make(chan struct{})
	all := make(chan struct{})
	var once sync.Once
	var in *dlInbox
	in = newDLInbox(t, h, func(w http.ResponseWriter, r *http.Request, _ int) {
		in.mu.Lock()
		active := in.active
		in.mu.Unlock()
		if active == workers {
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
		inboxes = append(inboxes, in.url(fmt.Sprintf("/users/u%d/inbox", i)))
	}
	h.enqueue("Create", "https://crieur.example/posts/a/en", inboxes...)
	h.start()
	// Without its own timer the ramp would grow only at the queue's next
	// poll (pollInterval), as nothing ends; with it, in startRamp.
	select {
	case <-all:
	case <-time.After(pollInterval * 3 / 4):
		in.mu.Lock()
		peak := in.peak
		in.mu.Unlock()
		t.Fatalf("at most %d of %d hanging requests in flight: the start did not grow", peak, workers)
	}
	close(release)
	h.nextN(workers)
}

// A fan-out starts no more requests than the dial gate admits: the others
// wait as jobs in the ready list, not as goroutines parked at the gate.
func TestDeliveryHoldsBackWhatTheGateWouldPark(t *testing.T) {
	const jobs, gate = 300, 4
	h := newDLHarness(t, DeliveryOptions{Workers: 4096, PerHost: jobs, Timeout: 30 * time.Second}, false)
	h.d.client.dials = &dialGate{start: gate, size: gate, now: time.Now}
	release := make(chan struct{})
	var dialing atomic.Int32
	guard := h.d.client.postDialer.Control
	h.d.client.postDialer.Control = func(network, address string, c syscall.RawConn) error {
		dialing.Add(1)
		<-release
		return guard(network, address, c)
	}
	in := newDLInbox(t, h, nil)
	var inboxes []string
	for i := range jobs {
		inboxes = append(inboxes, in.url(fmt.Sprintf("/users/u%d/inbox", i)))
	}
	h.enqueue("Create", "https://crieur.example/posts/a/en", inboxes...)
	before := runtime.NumGoroutine()
	h.start()
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
	time.Sleep(2 * startRamp)
	if n := runtime.NumGoroutine() - before; n > gate+16 {
		t.Errorf("%d more goroutines while %d connections hang, want at most about %d: requests were started to wait at the gate", n, gate, gate)
	}
	if n := dialing.Load(); n != gate {
		t.Errorf("%d connection attempts, want the gate's %d", n, gate)
	}
	// Attempts that hang for dialGateHold give their turn away, so hosts
	// that never answer cannot stall a fan-out.
	for deadline := time.Now().Add(10 * dialGateHold); dialing.Load() < 2*gate; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection attempts %s after the first ones hung, want %d", dialing.Load(), 10*dialGateHold, 2*gate)
		}
	}
	unblock()
	h.nextN(jobs)
}
