// Package fedtest is the delivery harness the federation rooms' tests
// share: a real Deliverer over real storage and the real guarded client,
// every outcome reported on a channel, and loopback inboxes that verify
// crieur's signatures and record what they received. Only tests import it;
// a room's own internal tests use testkit instead, since this package
// imports the rooms.
package fedtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// Harness is a Deliverer over real storage and a real client, with every
// outcome reported on Results.
type Harness struct {
	T       *testing.T
	Clock   *testkit.Clock
	Store   *storage.Store
	Docs    *documents.Builder
	Signer  *signature.Signer
	Client  *transport.Client
	D       *delivery.Deliverer
	Lib     atomic.Pointer[articles.Library] // what Docs sees as the posts folder
	Results chan delivery.Result
	cancel  context.CancelFunc
	done    chan error
}

// maxWindow makes the backoff deterministic: always the whole window.
func maxWindow(w time.Duration) time.Duration { return w }

// Options adjust a Harness beyond the Deliverer's options.
type Options struct {
	// NoLoopback keeps the client's production guard: loopback refused.
	NoLoopback bool
	// Client, when set, replaces the one the harness builds (dial gate
	// and hooks under test).
	Client transport.ClientConfig
}

// NewHarness builds the harness; opts.Backoff.Jitter defaults to
// maxWindow, and loopback is allowed unless ho.NoLoopback.
func NewHarness(t *testing.T, opts delivery.Options, ho Options) *Harness {
	t.Helper()
	h := &Harness{T: t, Clock: testkit.NewClock(), Results: make(chan delivery.Result, 1024)}
	store, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Now: h.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h.Store = store
	cc := ho.Client
	if cc.UserAgent == "" {
		cc.UserAgent = "crieur-test"
	}
	if cc.Timeout == 0 {
		cc.Timeout = 10 * time.Second
	}
	if !ho.NoLoopback {
		cc.AllowPrefixes = testkit.Loopback()
	}
	h.Client = transport.NewClient(cc)
	t.Cleanup(h.Client.CloseIdleConnections)
	key := testkit.Key(t, 0)
	h.Docs, err = documents.New(documents.Config{BaseURL: "https://crieur.example", Handle: "reports"}, documents.Deps{
		Store: store, Key: &key.PublicKey, Now: h.Clock.Now, Posts: h.Lib.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Signer, err = signature.NewSigner(h.Docs.Config().KeyID(), key, h.Clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Backoff.Jitter == nil {
		opts.Backoff.Jitter = maxWindow
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	opts.Now = h.Clock.Now
	opts.OnDone = func(r delivery.Result) { h.Results <- r }
	h.D = delivery.NewDeliverer(store, h.Client, h.Signer, opts)
	return h
}

// Start runs the Deliverer until the test ends (or Stop).
func (h *Harness) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.D.Run(ctx) }()
	h.T.Cleanup(h.Stop)
}

// Stop ends Run and checks it returned no error.
func (h *Harness) Stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.T.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

// Enqueue stores an activity of type typ about object and one job per inbox.
func (h *Harness) Enqueue(typ, object string, inboxes ...string) storage.Activity {
	h.T.Helper()
	act := storage.Activity{
		ID: h.Docs.NewActivityID(), Type: typ, ObjectID: object, Published: h.Clock.Now(),
	}
	act.JSON, _ = json.Marshal(map[string]any{"id": act.ID, "type": typ, "object": object})
	var jobs []storage.Job
	for _, in := range inboxes {
		jobs = append(jobs, storage.Job{Inbox: in, Topic: object})
	}
	if err := h.Store.Enqueue(act, jobs); err != nil {
		h.T.Fatal(err)
	}
	h.D.Wake()
	return act
}

// Next waits for the next outcome. The deadline only stops a broken test
// from hanging; nothing here measures speed.
func (h *Harness) Next() delivery.Result {
	h.T.Helper()
	select {
	case r := <-h.Results:
		return r
	case <-time.After(20 * time.Second):
		h.T.Fatal("no delivery outcome")
		return delivery.Result{}
	}
}

// NextN collects n outcomes.
func (h *Harness) NextN(n int) []delivery.Result {
	h.T.Helper()
	out := make([]delivery.Result, 0, n)
	for range n {
		out = append(out, h.Next())
	}
	return out
}

// Quiet asserts that no outcome is reported while the Deliverer is given a
// chance to work (a wake-up and a short wait).
func (h *Harness) Quiet() {
	h.T.Helper()
	h.D.Wake()
	select {
	case r := <-h.Results:
		h.T.Fatalf("unexpected outcome %s for %s", r.Outcome, r.Job.Inbox)
	case <-time.After(100 * time.Millisecond):
	}
}

// Advance moves the clock and wakes the Deliverer.
func (h *Harness) Advance(d time.Duration) {
	h.Clock.Advance(d)
	h.D.Wake()
}

// Pending lists the jobs still queued.
func (h *Harness) Pending() []storage.Job {
	h.T.Helper()
	jobs, err := h.Store.PendingJobs()
	if err != nil {
		h.T.Fatal(err)
	}
	return jobs
}

// Failed lists the jobs given up.
func (h *Harness) Failed() []storage.Job {
	h.T.Helper()
	jobs, err := h.Store.FailedJobs()
	if err != nil {
		h.T.Fatal(err)
	}
	return jobs
}

// Inbox is a loopback inbox server that verifies every delivery (signature
// by the harness's key, Digest, Date), records what it received, and
// answers what the test's respond function says.
type Inbox struct {
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

// NewInbox starts an Inbox for h's deliveries; respond nil answers 202.
func NewInbox(t *testing.T, h *Harness, respond func(w http.ResponseWriter, r *http.Request, n int)) *Inbox {
	t.Helper()
	in := &Inbox{got: map[string][]string{}, ids: map[string][]string{}, bodies: map[string][][]byte{}, respond: respond}
	keyID, pub := h.Docs.Config().KeyID(), &testkit.Key(t, 0).PublicKey
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		err = signature.VerifyKnown(r, body, keyID, pub, h.Clock.Now())
		if ct := r.Header.Get("Content-Type"); err == nil && ct != "application/activity+json" {
			err = &mediaTypeError{ct}
		}
		if err != nil {
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

type mediaTypeError struct{ ct string }

func (e *mediaTypeError) Error() string { return "content type " + e.ct }

// URL is the address of path on this server.
func (in *Inbox) URL(path string) string { return in.srv.URL + path }

// Received lists the activity types delivered to path, in order.
func (in *Inbox) Received(path string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.got[path])
}

// IDs lists the ids of the activities delivered to path, in order.
func (in *Inbox) IDs(path string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.ids[path])
}

// Bodies lists the documents delivered to path, in order.
func (in *Inbox) Bodies(path string) [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.bodies[path])
}

// Total counts every verified delivery.
func (in *Inbox) Total() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, v := range in.got {
		n += len(v)
	}
	return n
}

// Counts is how many deliveries each path received.
func (in *Inbox) Counts() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := map[string]int{}
	for p, types := range in.got {
		out[p] = len(types)
	}
	return out
}

// Active is how many requests are being handled now.
func (in *Inbox) Active() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.active
}

// Peak is the most requests handled at once so far.
func (in *Inbox) Peak() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.peak
}
