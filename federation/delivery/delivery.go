// Package delivery owns the queue-driven Deliverer: it takes due jobs from
// storage, posts each one through transport, signed at send time, under a
// global and a per-host limit, and records the outcome (done, retry later
// with backoff, failed, follower gone). A per-host circuit breaker keeps a
// dead server from costing the others. It imports storage, transport and
// signature; the publisher and the inbox only queue jobs and wake it.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// Delivery defaults. Each is a bound on what one slow or dead remote server
// can cost the others.
const (
	// DefaultPerHost is how many requests one host gets at once: enough to
	// drain a big instance's personal inboxes, few enough not to look like
	// an attack. The transport keeps as many idle connections per host.
	DefaultPerHost = transport.PerHost
	// DefaultDeliveryTimeout bounds one request, like Mastodon's own 30 s.
	DefaultDeliveryTimeout = 30 * time.Second
	// DefaultMaxAge is how long a job is retried before it is given up:
	// Mastodon's window is about two days, ours is at least that.
	DefaultMaxAge = 48 * time.Hour
	// DefaultKeepFailed is how long failed jobs stay listed and retryable.
	DefaultKeepFailed = 30 * 24 * time.Hour
	// DefaultGrace is how long Run lets in-flight requests finish after
	// its context ends; whatever is still running then stays queued.
	DefaultGrace = 10 * time.Second
	// DefaultQueueLimit is how many jobs the Deliverer holds in memory
	// (running or waiting for a host slot). A Job is a few hundred bytes.
	DefaultQueueLimit = 8192
	// DefaultWorkers is the default number of requests in flight. Signing
	// is the only CPU-heavy step, and the Signer admits one signature per
	// CPU at a time; the rest of a delivery is waiting for a remote
	// server, which costs a goroutine, a socket and a few buffers. So the
	// limit is not tied to the CPUs: it must exceed the number of servers
	// that may hang at once, since each holds its slot until the timeout.
	// With 512 slots, 600 hanging servers out of 4,000 held every slot
	// for 20 s and the healthy ones waited (fan-out 5x slower); with
	// 4,096 the same run was not slowed. Memory: about 50 MiB more at the
	// peak of a 2,000-server fan-out.
	DefaultWorkers = 4096
	// pollInterval bounds how long due work can wait when the queue cannot
	// say when it is due (its earliest head is a job already in flight).
	pollInterval = time.Second
	// pruneEvery is how often the store is trimmed (see prune).
	pruneEvery = time.Hour
	// keepAnswers is how long an Accept or Reject is kept once nothing is
	// left to send: servers never fetch them again, and a week lets an
	// admin see what a follower was answered.
	keepAnswers = 7 * 24 * time.Hour
	// keepStrangerKeys is how long the key of an actor who is not a
	// follower stays cached: anyone may sign a request to the inbox, and
	// without a limit every signer would stay in the data file for good.
	// One who comes back costs one fetch.
	keepStrangerKeys = 30 * 24 * time.Hour
	// keepFollowEnds is how long the inbox remembers when a follow ended
	// (storage.Store.EndFollow): longer than any signed Date window (65
	// minutes back, 60 ahead), after which no older Follow can pass.
	keepFollowEnds = 3 * time.Hour
	// startPerCPU is how many requests per CPU a burst of deliveries
	// starts with, from idle; it may run all Workers after startRamp,
	// growing every startStep. Started all at once, the 2,000 goroutines
	// of a fan-out each ran up to the dial gate before Go looked at the
	// network again, and the first connection made waited 10–25 ms for
	// them before its signature could start. A remote server takes longer
	// than startRamp to answer a connection anyway.
	startPerCPU = 8
	startRamp   = 20 * time.Millisecond
	startStep   = time.Millisecond
	// minScanGap coalesces the queue scans triggered by completions.
	minScanGap = 10 * time.Millisecond
	// errorPause is how long the loop waits after a storage error.
	errorPause = 5 * time.Second
	// workerIdle is how long a delivery goroutine waits for the next job
	// before it exits. Reusing goroutines across a fan-out spares each
	// delivery a fresh stack grown again through the RSA and HTTP code.
	workerIdle = 10 * time.Second
	// maxCachedBodies bounds the activity documents kept in memory; one
	// fan-out shares one document.
	maxCachedBodies = 256
)

// Options configure a Deliverer. Zero values get the defaults.
type Options struct {
	// Workers is the global number of requests in flight (DefaultWorkers).
	Workers int
	// PerHost is the number of requests in flight per host (default 4).
	PerHost int
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
	// MaxAge is how long after its creation a job is retried before it is
	// given up (default 48 h).
	MaxAge time.Duration
	// KeepFailed is how long a given-up job is kept after its last
	// attempt, for `crieur queue retry` (default 30 days). Followers on
	// dead servers stay followers, so without a limit their failures
	// would pile up with every article.
	KeepFailed time.Duration
	// Grace is how long in-flight requests may finish at shutdown (10 s).
	Grace time.Duration
	// QueueLimit is how many jobs are held in memory at once (8192).
	QueueLimit int
	// Backoff is the retry schedule (default 30 s doubling to 6 h, full
	// jitter).
	Backoff Backoff
	// Breaker settings: consecutive failures that open a host (5), first
	// cool-down (1 min) and longest cool-down (1 h).
	BreakerThreshold   int
	BreakerCooldown    time.Duration
	BreakerMaxCooldown time.Duration
	Logger             *slog.Logger
	Now                func() time.Time
	// OnDone, when set, is called after each job's outcome is stored (tests
	// and the benchmark count with it, cmd/crieur's metrics too). It must
	// not block for long.
	OnDone func(Result)
}

// Outcome names what happened to a job after one pass.
type Outcome string

const (
	OutcomeDelivered Outcome = "delivered" // 2xx
	OutcomeGone      Outcome = "gone"      // 410: the follower of that personal inbox removed
	OutcomeFailed    Outcome = "failed"    // permanent error or given up
	OutcomeRetry     Outcome = "retry"     // rescheduled after an attempt
	OutcomeDeferred  Outcome = "deferred"  // host circuit open: moved, not tried
)

// Result reports one job's pass through the Deliverer.
type Result struct {
	Job         storage.Job
	Outcome     Outcome
	Status      int       // HTTP status, 0 when there was no answer
	Err         string    // what went wrong, empty on success
	NextAttempt time.Time // for OutcomeRetry and OutcomeDeferred
	// Elapsed is how long the attempt took, signing and the request
	// included; zero when nothing was tried (OutcomeDeferred).
	Elapsed time.Duration
}

// Deliverer sends queued jobs: it takes due jobs from storage, signs each
// one at send time and posts it, under a global and a per-host concurrency
// limit, and records the outcome (done, retry later, failed). It never
// drops a job it cannot send: what is not finished stays in storage.
type Deliverer struct {
	store   *storage.Store
	client  *transport.Client
	signer  *signature.Signer
	log     *slog.Logger
	now     func() time.Time
	opts    Options
	backoff Backoff
	onDone  func(Result)

	wake    chan struct{}     // new jobs were queued
	refill  chan struct{}     // slots freed: scan the queue again
	tasks   chan deliveryTask // hands a job to an idle worker (unbuffered)
	quit    chan struct{}     // closed at shutdown: idle workers exit
	workers sync.WaitGroup    // worker goroutines, busy or idle
	started atomic.Bool
	bodies  bodyCache

	mu       sync.Mutex
	inflight map[uint64]struct{}   // taken from storage, outcome not stored yet
	hosts    map[string]*hostQueue // hosts with jobs waiting or running
	ready    []*hostQueue          // hosts that may start a request, round robin
	running  int                   // requests in flight
	// waiting counts the running requests not yet admitted by the client
	// (transport.PostOptions.Admitted): connecting, or waiting for the dial gate or
	// a signature. At most the gate's size wait: a fan-out to 2,000
	// servers otherwise started 2,000 goroutines at once, nearly all to
	// park at the gate, and each grew a fresh stack when its turn came (a
	// tenth of the first 100 ms's CPU, and a garbage collection). Held
	// back, they stay jobs in the ready list, and the goroutines of
	// finished requests take them.
	waiting int
	// burstSince is when requests last started from idle (real time: the
	// ramp is about CPUs, not the queue's clock); ramp is set while
	// requests wait for it to grow.
	burstSince time.Time
	ramp       *time.Timer
	br         *breaker
	live       bool // Run has set reqCtx: an offer may start requests
	stopping   bool
	reqCtx     context.Context // requests' parent: outlives Run's ctx by Grace
	// Refill accounting: a scan is worth doing once half of what the
	// last one saw in flight has finished.
	doneSinceScan  int
	inflightAtScan int
	// finishedDuringScan collects the jobs whose outcome was stored while
	// a scan was reading the queue: its snapshot may still show them as
	// due, and taking them again would deliver them twice.
	finishedDuringScan map[uint64]struct{}
	// offers collect the same for hand-overs being prepared (BeginOffer).
	offers []*offerLog
	wg     sync.WaitGroup // deliveries and deferral writers
}

// deliveryTask is one attempt handed to a worker goroutine.
type deliveryTask struct {
	ctx context.Context
	hq  *hostQueue
	job storage.Job
	// last: no other job of this host was waiting when it started, so
	// its connection is not worth keeping.
	last bool
}

// hostQueue holds one host's jobs waiting for a slot.
type hostQueue struct {
	name    string
	queue   []storage.Job
	active  int
	inReady bool
}

// NewDeliverer builds a Deliverer sending store's queue through client,
// each attempt signed by signer.
func NewDeliverer(store *storage.Store, client *transport.Client, signer *signature.Signer, opts Options) *Deliverer {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.PerHost <= 0 {
		opts.PerHost = DefaultPerHost
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultDeliveryTimeout
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.KeepFailed <= 0 {
		opts.KeepFailed = DefaultKeepFailed
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = DefaultQueueLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Deliverer{
		store:    store,
		client:   client,
		signer:   signer,
		log:      opts.Logger,
		now:      opts.Now,
		opts:     opts,
		backoff:  opts.Backoff,
		onDone:   opts.OnDone,
		wake:     make(chan struct{}, 1),
		refill:   make(chan struct{}, 1),
		tasks:    make(chan deliveryTask),
		quit:     make(chan struct{}),
		inflight: map[uint64]struct{}{},
		hosts:    map[string]*hostQueue{},
		br:       newBreaker(opts.BreakerThreshold, opts.BreakerCooldown, opts.BreakerMaxCooldown),
		reqCtx:   context.Background(),
	}
	d.bodies.m = map[string]*cachedBody{}
	return d
}

// Wake tells the Deliverer that jobs were queued. It never blocks.
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Deliverer) signalRefill() {
	select {
	case d.refill <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. It then stops taking jobs, lets requests in
// flight finish for up to Grace, and leaves everything else queued for the
// next start. It returns nil after a shutdown; it can run only once.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("delivery: deliverer: Run called twice")
	}
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	d.mu.Lock()
	d.reqCtx = reqCtx
	d.live = true
	d.mu.Unlock()
	defer d.shutdown(cancelReqs)

	d.prune()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var lastScan time.Time
	for {
		if gap := time.Since(lastScan); gap < minScanGap {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(minScanGap - gap):
			}
		}
		lastScan = time.Now()
		wait, err := d.scan()
		if err != nil {
			d.log.Error("delivery: reading the queue", "err", err)
			wait = errorPause
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-d.wake:
		case <-d.refill:
		case <-tick:
		case <-prune.C:
			d.prune()
		}
		timer.Stop() // Go 1.23+ timers: no stale expiry survives Stop
	}
}

// prune drops what the store no longer needs: failed jobs older than
// KeepFailed, answers to Follows that nothing will send again after
// keepAnswers, strangers' keys after keepStrangerKeys, and the inbox's
// records of ended follows after keepFollowEnds. A failure is
// logged: it only delays the cleanup. The Deliverer's loop is crieur's one
// long-running timer, so it trims the inbox's key cache as well.
func (d *Deliverer) prune() {
	now := d.now()
	for _, p := range []struct {
		what  string
		keep  time.Duration
		prune func(time.Time) (int, error)
	}{
		{"failed deliveries", d.opts.KeepFailed, d.store.PruneFailed},
		{"answers to follows", keepAnswers, d.store.PruneAnswers},
		{"keys of non-followers", keepStrangerKeys, d.store.PruneRemoteKeys},
		{"ends of follows", keepFollowEnds, d.store.PruneFollowEnds},
	} {
		n, err := p.prune(now.Add(-p.keep))
		switch {
		case err != nil:
			d.log.Warn("delivery: dropping old "+p.what, "err", err)
		case n > 0:
			d.log.Info("delivery: dropped old "+p.what, "count", n, "older_than", p.keep)
		}
	}
}

// scan takes due jobs into memory and starts what it can. It returns how
// long the loop may sleep when nothing else happens (0: until a wake-up or
// a completion).
func (d *Deliverer) scan() (time.Duration, error) {
	now := d.now()
	d.mu.Lock()
	room := d.opts.QueueLimit - len(d.inflight)
	if room > 0 {
		d.finishedDuringScan = map[uint64]struct{}{}
	}
	d.mu.Unlock()
	if room <= 0 {
		// Full: completions will call for the next scan.
		return 0, nil
	}
	// The jobs in flight are still pending in storage and come back first
	// (they are the oldest): ask for enough to see past them.
	limit := d.opts.QueueLimit
	jobs, err := d.store.DueJobs(now, limit)
	var deferred []storage.Job
	d.mu.Lock()
	recent := d.finishedDuringScan
	d.finishedDuringScan = nil
	if err != nil {
		d.mu.Unlock()
		return 0, err
	}
	if d.stopping {
		d.mu.Unlock()
		return 0, nil
	}
	full := len(jobs) >= limit
	for _, j := range jobs {
		if _, ok := recent[j.ID]; ok {
			continue // done while the queue was read: stale
		}
		if !d.takeLocked(j, now, &deferred) {
			full = true
			break
		}
	}
	d.doneSinceScan = 0
	d.inflightAtScan = len(d.inflight)
	d.br.forget(now)
	d.deferLocked(deferred, now)
	d.scheduleLocked(now)
	busy := len(d.inflight) > 0
	d.mu.Unlock()
	if full {
		return 0, nil
	}
	next, ok, err := d.store.NextDue()
	if err != nil {
		return 0, err
	}
	switch {
	case !ok:
		return 0, nil // empty queue: Wake will come
	case next.After(now):
		return next.Sub(now), nil
	case busy:
		// The earliest head is a job in flight: the queue cannot tell
		// when the next one is due. Completions trigger scans; polling
		// covers retries coming due while requests hang.
		return pollInterval, nil
	default:
		// Due work that this scan did not take (shutting down, or the
		// store changed since): look again soon.
		return pollInterval, nil
	}
}

// takeLocked takes a due job into memory: onto its host's queue, or into
// deferred when the host's circuit is open. A job already in flight is
// skipped; false means the Deliverer is full and j was not taken.
func (d *Deliverer) takeLocked(j storage.Job, now time.Time, deferred *[]storage.Job) bool {
	if _, ok := d.inflight[j.ID]; ok {
		return true
	}
	if len(d.inflight) >= d.opts.QueueLimit {
		return false
	}
	d.inflight[j.ID] = struct{}{}
	if st, _ := d.br.state(j.Host, now); st == hostOpen {
		*deferred = append(*deferred, j)
		return true
	}
	hq := d.hosts[j.Host]
	if hq == nil {
		hq = &hostQueue{name: j.Host}
		d.hosts[j.Host] = hq
	}
	hq.queue = append(hq.queue, j)
	d.markReadyLocked(hq)
	return true
}

// BeginOffer prepares the hand-over of jobs about to be queued, so that the
// Deliverer does not read them back from the queue: for a fan-out to 2,000
// inboxes that read decoded again the 2,000 jobs just written, about 5 ms
// before the first request could start. Queue the jobs, then pass those
// that may start at once (storage.Store.Publish returns them) to offer,
// exactly once. Until then the Deliverer remembers the jobs it finishes:
// a scan may have taken a new job from storage meanwhile and delivered
// it, and taking it again would deliver it twice. What does not fit
// (QueueLimit) stays queued and is read as room frees up. Before Run or
// after it, offer only wakes the Deliverer: the jobs are in storage either
// way. offer never blocks on a request.
func (d *Deliverer) BeginOffer() (offer func([]storage.Job)) {
	log := &offerLog{finished: map[uint64]struct{}{}}
	d.mu.Lock()
	d.offers = append(d.offers, log)
	d.mu.Unlock()
	return func(jobs []storage.Job) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if i := slices.Index(d.offers, log); i >= 0 {
			d.offers = slices.Delete(d.offers, i, i+1)
		}
		if len(jobs) == 0 {
			return
		}
		if !d.live || d.stopping {
			d.Wake()
			return
		}
		now := d.now()
		var deferred []storage.Job
		for _, j := range jobs {
			if _, ok := log.finished[j.ID]; ok {
				continue
			}
			if !d.takeLocked(j, now, &deferred) {
				break // completions call for scans, which read the rest
			}
		}
		// As after a scan: the next is worth it once half of these are done.
		d.doneSinceScan = 0
		d.inflightAtScan = len(d.inflight)
		d.deferLocked(deferred, now)
		d.scheduleLocked(now)
	}
}

// offerLog collects the jobs finished while an offer is being prepared.
type offerLog struct {
	finished map[uint64]struct{}
}

func (d *Deliverer) markReadyLocked(hq *hostQueue) {
	if !hq.inReady {
		hq.inReady = true
		d.ready = append(d.ready, hq)
	}
}

func (d *Deliverer) dropIfIdleLocked(hq *hostQueue) {
	if len(hq.queue) == 0 && hq.active == 0 && !hq.inReady {
		delete(d.hosts, hq.name)
	}
}

// scheduleLocked starts requests while global slots are free, one job per
// host per round so a host with thousands of jobs does not delay the others.
// A host at its limit is skipped (it is readied again when one of its
// requests ends), so a hanging host holds at most PerHost slots.
func (d *Deliverer) scheduleLocked(now time.Time) {
	if d.running == 0 {
		d.burstSince = time.Now()
	}
	slots := d.slotsLocked()
	for d.running < slots && d.waiting < d.client.DialSlots() && len(d.ready) > 0 && !d.stopping {
		hq := d.ready[0]
		d.ready[0] = nil
		d.ready = d.ready[1:]
		hq.inReady = false
		if len(hq.queue) == 0 {
			d.dropIfIdleLocked(hq)
			continue
		}
		limit := d.opts.PerHost
		switch st, _ := d.br.state(hq.name, now); st {
		case hostOpen:
			d.deferLocked(hq.queue, now)
			hq.queue = nil
			d.dropIfIdleLocked(hq)
			continue
		case hostHalfOpen:
			// The cool-down is over: one probe request; the rest wait
			// for its answer.
			limit = 1
		}
		if hq.active >= limit {
			continue
		}
		job := hq.queue[0]
		hq.queue[0] = storage.Job{}
		hq.queue = hq.queue[1:]
		hq.active++
		d.running++
		d.waiting++
		d.wg.Add(1)
		d.startLocked(deliveryTask{ctx: d.reqCtx, hq: hq, job: job, last: len(hq.queue) == 0})
		if len(hq.queue) > 0 && hq.active < limit {
			d.markReadyLocked(hq)
		}
	}
	if len(d.ready) > 0 && d.running >= slots && slots < d.opts.Workers && d.ramp == nil && !d.stopping {
		d.ramp = time.AfterFunc(startStep, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.ramp = nil
			d.scheduleLocked(d.now())
		})
	}
}

// slotsLocked is how many requests may run now: Workers, or fewer in the
// first startRamp of a burst.
func (d *Deliverer) slotsLocked() int {
	return transport.RampUp(startPerCPU*runtime.GOMAXPROCS(0), d.opts.Workers, time.Since(d.burstSince), startRamp)
}

// startLocked gives t to an idle worker, or to a new one when all are
// busy (the global limit is enforced by the caller, so there are never
// more busy workers than Workers).
func (d *Deliverer) startLocked(t deliveryTask) {
	select {
	case d.tasks <- t:
	default:
		d.workers.Add(1)
		go d.worker(t)
	}
}

// worker delivers t, then whatever it is handed next, until it has been
// idle for workerIdle or the Deliverer stops.
func (d *Deliverer) worker(t deliveryTask) {
	defer d.workers.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		d.deliver(t)
		idle.Reset(workerIdle)
		select {
		case t = <-d.tasks:
		case <-idle.C:
			return
		case <-d.quit:
			return
		}
	}
}

// deferLocked moves jobs of an open host to the end of its cool-down
// without counting an attempt (or gives them up when they are too old).
func (d *Deliverer) deferLocked(jobs []storage.Job, now time.Time) {
	if len(jobs) == 0 {
		return
	}
	jobs = append([]storage.Job(nil), jobs...)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for _, j := range jobs {
			d.mu.Lock()
			_, until := d.br.state(j.Host, now)
			lastErr := d.br.lastError(j.Host)
			d.mu.Unlock()
			if until.IsZero() {
				until = now
			}
			res := Result{Job: j, Outcome: OutcomeDeferred, Status: j.LastStatus, NextAttempt: until,
				Err: fmt.Sprintf("host %s unavailable until %s: %s", j.Host, until.UTC().Format(time.RFC3339), lastErr)}
			if now.Sub(j.CreatedAt) >= d.opts.MaxAge {
				res.Outcome = OutcomeFailed
				res.NextAttempt = time.Time{}
				res.Err = fmt.Sprintf("gave up after %s: host %s unavailable: %s", d.opts.MaxAge, j.Host, lastErr)
			}
			d.record(res)
			d.finish(j.ID)
			d.report(res)
		}
	}()
}
