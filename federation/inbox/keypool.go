package inbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBusy marks a request that could not get its key fetched in time:
// every key-fetch slot was taken until its context ended, or it gave up
// waiting for a fetch of the same key. It is the server's state, not the
// sender's fault: web should answer 503 with a Retry-After (a 401 would make
// Mastodon drop the activity for good). It does not wrap
// federation.ErrUnauthorized.
var ErrBusy = errors.New("inbox: key fetches busy")

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
	FetchTimeout time.Duration
	RefetchEvery time.Duration
	Remembered   int
	Now          func() time.Time
}

// keyPool runs the inbox's key fetches: one at a time per key id (every
// request naming a key being fetched waits for that fetch), at most Slots
// at once in all, each bounded by FetchTimeout, and a cached key fetched
// again at most once per RefetchEvery (a refetch that finds a new key does
// not count: see rotated). A fetch runs apart from the request that
// started it, so that request leaving does not fail the others waiting;
// each request waits with its own context.
type keyPool struct {
	cfg   keyPoolConfig
	slots chan struct{}

	mu      sync.Mutex
	flights map[string]*keyFlight
	// refetched is when each key was last refetched (tried), for the
	// throttle; at most cfg.Remembered entries.
	refetched map[string]time.Time
	// noPurgeBefore spares a full scan of refetched while no entry can
	// have expired.
	noPurgeBefore time.Time
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
		// The slot is taken within the starting request's context: when
		// every slot stays busy that long, this request (and those that
		// joined it) fail with ErrBusy rather than queue without bound.
		select {
		case p.slots <- struct{}{}:
			go p.run(ctx, keyID, f, fetch)
		case <-ctx.Done():
			p.finish(keyID, f, resolvedKey{}, fmt.Errorf("%w: no key-fetch slot for %s: %w", ErrBusy, keyID, context.Cause(ctx)))
		}
	}
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return resolvedKey{}, fmt.Errorf("%w: waiting for key %s: %w", ErrBusy, keyID, context.Cause(ctx))
	}
}

// run is one fetch, holding a slot.
func (p *keyPool) run(ctx context.Context, keyID string, f *keyFlight, fetch func(context.Context) (resolvedKey, error)) {
	defer func() { <-p.slots }()
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
