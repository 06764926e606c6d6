package inbox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/crieur/crieur/federation"
)

// errRefetchThrottled marks a refetch refused because the key was
// refetched less than keyPoolConfig.RefetchEvery ago.
var errRefetchThrottled = errors.New("inbox: key refetched too recently")

// Defaults of the key pool. Each bounds what a slow or hostile key host,
// or a flood of forged signatures, can cost crieur.
const (
	// keyFetchSlots is how many key fetches run at once, whatever their
	// hosts: each holds a connection and a goroutine for up to
	// keyFetchTimeout.
	keyFetchSlots = 32
	// keyFetchesPerHost is how many of them one host may hold: a host
	// that never answers, named by many key ids, then costs itself and
	// not every other sender.
	keyFetchesPerHost = 4
	// keyFetchTimeout bounds one key resolution (the key document and
	// its owner's), far below the transport's 30 s whole-request limit:
	// senders wait for our answer meanwhile.
	keyFetchTimeout = 10 * time.Second
	// keyRefetchEvery is how often one cached key may be fetched again: each
	// forged signature naming a cached key would otherwise make crieur
	// fetch it again (issue 19, item 5).
	keyRefetchEvery = 5 * time.Minute
	// keyRefetchRemembered bounds the memory of recent refetches.
	keyRefetchRemembered = 10000
)

// keyPoolConfig sizes a keyPool; zero fields get the defaults.
type keyPoolConfig struct {
	Slots        int
	PerHost      int
	FetchTimeout time.Duration
	RefetchEvery time.Duration
	Remembered   int
	Now          func() time.Time
}

// keyPool runs the inbox's key fetches: one at a time per key id (every
// request naming a key being fetched waits for that fetch), at most
// PerHost at once per host and Slots in all, each bounded by FetchTimeout, and a cached key fetched
// again at most once per RefetchEvery (a refetch that finds a new key does
// not count: see rotated). A fetch runs apart from the request that
// started it, so that request leaving does not fail the others waiting;
// each request waits with its own context.
type keyPool struct {
	cfg   keyPoolConfig
	slots chan struct{}

	mu      sync.Mutex
	flights map[string]*keyFlight
	// hosts holds the per-host slots of hosts with fetches running or
	// waiting; a host leaves when its last one is done.
	hosts map[string]*hostSlots
	// refetched is when each key was last refetched (tried), for the
	// throttle; at most cfg.Remembered entries.
	refetched map[string]time.Time
	// noPurgeBefore spares a full scan of refetched while no entry can
	// have expired.
	noPurgeBefore time.Time
}

// hostSlots are one host's fetch slots and how many fetches use or await
// them.
type hostSlots struct {
	slots chan struct{}
	users int
}

// keyFlight is one fetch of a key, shared by every request that needs it.
type keyFlight struct {
	done    chan struct{}
	waiting int // requests waiting, for tests
	res     resolvedKey
	err     error
}

func newKeyPool(cfg keyPoolConfig) *keyPool {
	if cfg.Slots <= 0 {
		cfg.Slots = keyFetchSlots
	}
	if cfg.PerHost <= 0 {
		cfg.PerHost = keyFetchesPerHost
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = keyFetchTimeout
	}
	if cfg.RefetchEvery <= 0 {
		cfg.RefetchEvery = keyRefetchEvery
	}
	if cfg.Remembered <= 0 {
		cfg.Remembered = keyRefetchRemembered
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &keyPool{
		cfg:       cfg,
		slots:     make(chan struct{}, cfg.Slots),
		flights:   map[string]*keyFlight{},
		hosts:     map[string]*hostSlots{},
		refetched: map[string]time.Time{},
	}
}

// fetch returns the result of fetch(keyID), run once for every request
// that asks while it runs. refetch says the key is cached and failed:
// then a key refetched less than RefetchEvery ago is not fetched again
// (errRefetchThrottled), unless a fetch is running, which it joins. fetch
// gets a context bounded by FetchTimeout, detached from ctx's
// cancellation.
func (p *keyPool) fetch(ctx context.Context, keyID string, refetch bool, fetch func(context.Context) (resolvedKey, error)) (resolvedKey, error) {
	p.mu.Lock()
	f, running := p.flights[keyID]
	if !running {
		if refetch {
			now := p.cfg.Now()
			if !p.mayRefetchLocked(keyID, now) {
				p.mu.Unlock()
				return resolvedKey{}, fmt.Errorf("%w: key %s", errRefetchThrottled, keyID)
			}
			p.refetched[keyID] = now
		}
		f = &keyFlight{done: make(chan struct{})}
		p.flights[keyID] = f
	}
	f.waiting++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		f.waiting--
		p.mu.Unlock()
	}()

	if !running {
		// The slots (the host's, then a global one) are taken within
		// the starting request's context: when they stay busy that long,
		// this request (and those that joined it) fail with federation.ErrBusy
		// rather than queue without bound.
		host := keyHost(keyID)
		if h, err := p.acquire(ctx, host); err != nil {
			p.finish(keyID, f, resolvedKey{}, busy(fmt.Errorf("%w: no key-fetch slot for %s: %w", federation.ErrBusy, keyID, err)))
		} else {
			go p.run(ctx, keyID, f, fetch, host, h)
		}
	}
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return resolvedKey{}, busy(fmt.Errorf("%w: waiting for key %s: %w", federation.ErrBusy, keyID, context.Cause(ctx)))
	}
}

// acquire takes a slot of host, then a global one, within ctx.
func (p *keyPool) acquire(ctx context.Context, host string) (*hostSlots, error) {
	p.mu.Lock()
	h, ok := p.hosts[host]
	if !ok {
		h = &hostSlots{slots: make(chan struct{}, p.cfg.PerHost)}
		p.hosts[host] = h
	}
	h.users++
	p.mu.Unlock()
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		p.leaveHost(host, h)
		return nil, context.Cause(ctx)
	}
	select {
	case p.slots <- struct{}{}:
		return h, nil
	case <-ctx.Done():
		<-h.slots
		p.leaveHost(host, h)
		return nil, context.Cause(ctx)
	}
}

// release gives back what acquire took.
func (p *keyPool) release(host string, h *hostSlots) {
	<-p.slots
	<-h.slots
	p.leaveHost(host, h)
}

// leaveHost forgets host once nothing uses or awaits its slots.
func (p *keyPool) leaveHost(host string, h *hostSlots) {
	p.mu.Lock()
	h.users--
	if h.users == 0 {
		delete(p.hosts, host)
	}
	p.mu.Unlock()
}

// keyHost is the host a key is fetched from, "" when keyID is no URL
// (its fetch fails at once).
func keyHost(keyID string) string {
	u, err := url.Parse(keyID)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// run is one fetch, holding its slots.
func (p *keyPool) run(ctx context.Context, keyID string, f *keyFlight, fetch func(context.Context) (resolvedKey, error), host string, h *hostSlots) {
	defer p.release(host, h)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.FetchTimeout)
	defer cancel()
	res, err := fetch(fctx)
	p.finish(keyID, f, res, err)
}

// finish publishes a flight's result and lets the next request for the
// key start a new one.
func (p *keyPool) finish(keyID string, f *keyFlight, res resolvedKey, err error) {
	p.mu.Lock()
	f.res, f.err = res, err
	delete(p.flights, keyID)
	p.mu.Unlock()
	close(f.done)
}

// mayRefetchLocked reports whether keyID may be refetched at now: not
// refetched in the last RefetchEvery. With the memory full of recent
// refetches, it says no: the bound holds even against many keys, at the
// price of a late rotation being picked up RefetchEvery later.
func (p *keyPool) mayRefetchLocked(keyID string, now time.Time) bool {
	if t, ok := p.refetched[keyID]; ok {
		return now.Sub(t) >= p.cfg.RefetchEvery
	}
	p.purgeLocked(now)
	return len(p.refetched) < p.cfg.Remembered
}

// rotated forgets keyID's last refetch: it found a new key, a real
// rotation, which a forger cannot cause on a host it does not control,
// so it does not use up the key's allowance (the next failing signature
// may still check once that the key did not change again).
func (p *keyPool) rotated(keyID string) {
	p.mu.Lock()
	delete(p.refetched, keyID)
	p.mu.Unlock()
}

// purgeLocked forgets refetches older than RefetchEvery when the memory is
// full, at most one scan per RefetchEvery that frees nothing.
func (p *keyPool) purgeLocked(now time.Time) {
	if len(p.refetched) < p.cfg.Remembered || now.Before(p.noPurgeBefore) {
		return
	}
	oldest := now
	for k, t := range p.refetched {
		if now.Sub(t) >= p.cfg.RefetchEvery {
			delete(p.refetched, k)
		} else if t.Before(oldest) {
			oldest = t
		}
	}
	p.noPurgeBefore = oldest.Add(p.cfg.RefetchEvery)
}

// waiting is how many requests wait for a fetch of keyID (tests).
func (p *keyPool) waiting(keyID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.flights[keyID]; ok {
		return f.waiting
	}
	return 0
}

// hostUsers is how many fetches use or await host's slots (tests).
func (p *keyPool) hostUsers(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h, ok := p.hosts[host]; ok {
		return h.users
	}
	return 0
}

// busy wraps err (which wraps federation.ErrBusy) with the delay after
// which the sender should try again: web answers 503 with Retry-After, so
// the activity is retried, not dropped as a 401 would make it.
func busy(err error) error {
	return &federation.RetryError{Err: err, After: busyRetryAfter}
}
