package inbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
)

// stuckHost is a key host that never answers until released: every GET
// waits for release (or for the client to hang up), then answers 503.
type stuckHost struct {
	srv      *httptest.Server
	release  chan struct{}
	arrived  chan struct{} // one value per request
	hits     atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	once     sync.Once
}

func newStuckHost(t *testing.T) *stuckHost {
	h := &stuckHost{release: make(chan struct{}), arrived: make(chan struct{}, 1000)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		n := h.inFlight.Add(1)
		defer h.inFlight.Add(-1)
		for {
			m := h.maxIn.Load()
			if n <= m || h.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		h.arrived <- struct{}{}
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	// Cleanups run last first: release the handlers before Close waits
	// for them.
	t.Cleanup(h.srv.Close)
	t.Cleanup(h.free)
	return h
}

func (h *stuckHost) free()         { h.once.Do(func() { close(h.release) }) }
func (h *stuckHost) KeyID() string { return h.srv.URL + "/users/slow#main-key" }

// waitFor polls cond until it holds or the test's context ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testkit.Context(t)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestKeyFetchOnePerKey: a key host that never answers, and many signed
// requests naming its key: one fetch at a time for that key, every request
// waits for it, and a Follow from another server is served meanwhile. When
// the fetch fails, every waiting request gets 401 from that one fetch.
func TestKeyFetchOnePerKey(t *testing.T) {
	const requests = 40
	c := newProtoCrieur(t, protoOptions{})
	slow := newStuckHost(t)
	good := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	signer, err := signature.NewSigner(slow.KeyID(), testkit.Key(t, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	follow := mustJSON(t, map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": slow.srv.URL + "/follows/1",
		"type": "Follow", "actor": slow.srv.URL + "/users/slow", "object": c.ActorID()})
	statuses := make(chan int, requests)
	for range requests {
		go func() {
			status, _ := c.post(signer, follow, nil, "")
			statuses <- status
		}()
	}
	waitFor(t, "every request to wait for the one fetch", func() bool {
		// A second fetch fails the test at once, below.
		return c.svc.keys.waiting(slow.KeyID()) == requests && slow.hits.Load() == 1 || slow.hits.Load() > 1
	})
	if n := slow.hits.Load(); n != 1 {
		t.Fatalf("%d fetches of one key for %d requests, want 1", n, requests)
	}

	// Another server's Follow gets through while the fetch hangs.
	if status, err := c.send(good, followDoc(good, c.ActorID(), good.ActorID()+"/follows/1")); status != http.StatusAccepted {
		t.Fatalf("a good Follow during the hung fetch: %d %v", status, err)
	}
	if slow.inFlight.Load() != 1 || c.followCount() != 1 {
		t.Fatalf("the good Follow was not served while the fetch hung (in flight %d, followers %d)", slow.inFlight.Load(), c.followCount())
	}

	slow.free()
	for range requests {
		if status := <-statuses; status != http.StatusUnauthorized {
			t.Errorf("a request waiting for the failed fetch: status %d, want 401", status)
		}
	}
	if n, m := slow.hits.Load(), slow.maxIn.Load(); n != 1 || m != 1 {
		t.Errorf("%d fetches (at most %d at once) for %d requests, want 1", n, m, requests)
	}
	if c.followCount() != 1 {
		t.Error("a follower was stored from the unverifiable requests")
	}
}

// TestKeyFetchBounds: with every slot held by a hung fetch, a request for
// another key fails with federation.ErrBusy (not 401) once its own context ends,
// without fetching; a request waiting for the hung fetch gives up with its
// own context while the fetch goes on; the fetch itself ends at
// FetchTimeout.
func TestKeyFetchBounds(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	const timeout = 2 * time.Second
	c.svc.keys = newKeyPool(keyPoolConfig{Slots: 1, FetchTimeout: timeout})
	slow := newStuckHost(t)
	good := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)

	first := make(chan error, 1)
	started := time.Now()
	go func() {
		_, err := c.svc.resolveKey(context.Background(), slow.KeyID(), false)
		first <- err
	}()
	<-slow.arrived

	ctx, cancel := context.WithTimeout(testkit.Context(t), 50*time.Millisecond)
	defer cancel()
	_, err := c.svc.resolveKey(ctx, good.KeyID(), false)
	if !errors.Is(err, federation.ErrBusy) || errors.Is(err, federation.ErrUnauthorized) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no slot: %v, want federation.ErrBusy with the context's error", err)
	}
	if n := good.count(http.MethodGet, "/users/alice"); n != 0 {
		t.Errorf("%d fetches without a slot", n)
	}

	ctx2, cancel2 := context.WithTimeout(testkit.Context(t), 50*time.Millisecond)
	defer cancel2()
	if _, err := c.svc.resolveKey(ctx2, slow.KeyID(), false); !errors.Is(err, federation.ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a waiter whose context ends: %v, want federation.ErrBusy", err)
	}
	if slow.inFlight.Load() != 1 || slow.hits.Load() != 1 {
		t.Errorf("the waiter leaving changed the fetch (in flight %d, fetches %d)", slow.inFlight.Load(), slow.hits.Load())
	}

	// Nobody releases the host: the fetch ends at its own deadline.
	err = <-first
	if !errors.Is(err, federation.ErrUnauthorized) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung fetch: %v, want ErrUnauthorized after the fetch deadline", err)
	}
	if d := time.Since(started); d < timeout {
		t.Errorf("the fetch ended after %v, before its %v deadline", d, timeout)
	}
	// The slot is back: the good key resolves.
	if _, err := c.svc.resolveKey(testkit.Context(t), good.KeyID(), false); err != nil {
		t.Errorf("after the slot came back: %v", err)
	}
}

// TestKeyFetchPerHost: a host that never answers, named by many key ids,
// holds at most PerHost fetches; the others wait for its slots, not for
// everyone's, and a key on another host is fetched meanwhile.
func TestKeyFetchPerHost(t *testing.T) {
	const keys, perHost = 10, 2
	c := newProtoCrieur(t, protoOptions{})
	c.svc.keys = newKeyPool(keyPoolConfig{PerHost: perHost})
	slow := newStuckHost(t)
	good := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	errs := make(chan error, keys)
	for i := range keys {
		go func() {
			_, err := c.svc.resolveKey(testkit.Context(t), fmt.Sprintf("%s/users/slow%d#main-key", slow.srv.URL, i), false)
			errs <- err
		}()
	}
	host := strings.TrimPrefix(slow.srv.URL, "http://")
	waitFor(t, "every fetch to hold or await the host's slots", func() bool {
		// More fetches than slots fails the test at once, below.
		return c.svc.keys.hostUsers(host) == keys && slow.hits.Load() == perHost || slow.hits.Load() > perHost
	})
	if n := slow.hits.Load(); n != perHost {
		t.Fatalf("%d fetches at once on one host, want %d", n, perHost)
	}
	if _, err := c.svc.resolveKey(testkit.Context(t), good.KeyID(), false); err != nil {
		t.Fatalf("a key on another host while one host hangs: %v", err)
	}
	slow.free()
	for range keys {
		if err := <-errs; !errors.Is(err, federation.ErrUnauthorized) {
			t.Errorf("a key on the hung host: %v, want ErrUnauthorized", err)
		}
	}
	if m := slow.maxIn.Load(); m > perHost {
		t.Errorf("%d fetches at once on one host, want at most %d", m, perHost)
	}
	// The last fetch gives its slots back just after publishing.
	waitFor(t, "the host to be forgotten", func() bool { return c.svc.keys.hostUsers(host) == 0 })
}

// TestKeyRefetchThrottle: forged signatures naming a cached key make
// crieur refetch it at most once per keyRefetchEvery, each refused with
// 401 and nothing changed; after that time one more refetch is allowed.
func TestKeyRefetchThrottle(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	clock := testkit.NewClock()
	c.svc.keys = newKeyPool(keyPoolConfig{Now: clock.Now})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	if status, err := c.send(p, c.fixture("inbox_follow.json", p)); status != http.StatusAccepted {
		t.Fatalf("Follow: %d %v", status, err)
	}
	fetches := p.count(http.MethodGet, "/users/alice")
	before := c.snapshot(p.KeyID())
	forger, _ := signature.NewSigner(p.KeyID(), testkit.Key(t, 4), nil)
	forge := func(n int) {
		t.Helper()
		for range n {
			status, err := c.post(forger, mustJSON(t, c.fixture("inbox_undo_follow.json", p)), nil, "")
			if status != http.StatusUnauthorized || !errors.Is(err, federation.ErrUnauthorized) {
				t.Fatalf("forged Undo: %d %v, want 401", status, err)
			}
		}
	}
	forge(20)
	if got := p.count(http.MethodGet, "/users/alice") - fetches; got != 1 {
		t.Errorf("%d refetches for 20 forged signatures, want 1", got)
	}
	clock.Advance(keyRefetchEvery - time.Second)
	forge(5)
	if got := p.count(http.MethodGet, "/users/alice") - fetches; got != 1 {
		t.Errorf("%d refetches before %v passed, want 1", got, keyRefetchEvery)
	}
	clock.Advance(time.Second)
	forge(5)
	if got := p.count(http.MethodGet, "/users/alice") - fetches; got != 2 {
		t.Errorf("%d refetches once %v passed, want 2", got, keyRefetchEvery)
	}
	if after := c.snapshot(p.KeyID()); after.Keys[p.KeyID()] != before.Keys[p.KeyID()] || len(after.Followers) != len(before.Followers) || c.followCount() != 1 {
		t.Errorf("state changed: before %+v after %+v", before, after)
	}
}

// TestKeyRefetchMemoryBound: the memory of refetches is bounded; when it
// is full of recent ones, a refetch of another key is refused rather than
// let an old entry go, and room comes back as entries age.
func TestKeyRefetchMemoryBound(t *testing.T) {
	clock := testkit.NewClock()
	p := newKeyPool(keyPoolConfig{Remembered: 3, Now: clock.Now})
	var fetches atomic.Int64
	fetch := func(context.Context) (resolvedKey, error) { fetches.Add(1); return resolvedKey{}, nil }
	for _, k := range []string{"a", "b", "c"} {
		if _, err := p.fetch(testkit.Context(t), k, true, fetch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.fetch(testkit.Context(t), "d", true, fetch); !errors.Is(err, errRefetchThrottled) {
		t.Errorf("refetch with the memory full: %v, want throttled", err)
	}
	if _, err := p.fetch(testkit.Context(t), "d", false, fetch); err != nil {
		t.Errorf("a first fetch is never throttled: %v", err)
	}
	clock.Advance(keyRefetchEvery)
	if _, err := p.fetch(testkit.Context(t), "d", true, fetch); err != nil {
		t.Errorf("refetch once the memory aged: %v", err)
	}
	if len(p.refetched) > 3 {
		t.Errorf("%d entries remembered, bound 3", len(p.refetched))
	}
	if fetches.Load() != 5 {
		t.Errorf("%d fetches, want 5", fetches.Load())
	}
}
