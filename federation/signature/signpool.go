package signature

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// signerIdle is how long a signing goroutine waits for work before it
// exits. A fan-out keeps them busy; between fan-outs none is left running.
const signerIdle = 10 * time.Second

// signPool runs RSA signatures on at most one long-lived goroutine per CPU.
//
// Why not sign on the caller's goroutine behind a semaphore: a fan-out
// starts one goroutine per inbox, and an RSA-2048 signature by Go's
// crypto/rsa (RSAGo, or where OpenSSL is missing) needs about 16 KiB of
// stack (its constant-time big-number code keeps its tables on the stack).
// Each fresh goroutine grew its stack from 2 KiB to 32 KiB, four copies,
// on every delivery: 1–1.5% of a fan-out's CPU, and 64 MiB of stacks at
// 2,000 inboxes. Signing goroutines grow theirs once. (OpenSSL runs on
// the thread's own stack; the reasons below hold for both engines.)
//
// Why one per CPU: if hundreds of deliveries signed at once, each signature
// would take hundreds of times longer, the first request would leave only
// when nearly all had been signed and the pipeline would start empty.
// Queued here, the first requests leave after one signature each.
type signPool struct {
	max  int
	idle time.Duration // signerIdle; shorter in tests
	work chan signCall // unbuffered: a send is a hand-over to a running loop

	mu      sync.Mutex
	running int // loops alive
	waiting int // callers blocked handing over a call
}

// signCall is one signature to make on a pool goroutine.
type signCall struct {
	sign    func() error
	started func() // may be nil
	done    chan error
}

func newSignPool(n int) *signPool {
	return &signPool{max: max(n, 1), idle: signerIdle, work: make(chan signCall)}
}

// do runs sign on a pool goroutine, calling started (when not nil) right
// before, and returns its error. It gives up waiting for a free goroutine
// when ctx ends, and then neither function is called.
func (p *signPool) do(ctx context.Context, sign func() error, started func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := signCall{sign: sign, started: started, done: make(chan error, 1)}
	p.mu.Lock()
	if p.running < p.max {
		p.running++
		p.mu.Unlock()
		go p.loop(c)
		return <-c.done
	}
	p.waiting++
	p.mu.Unlock()
	var err error
	select {
	case p.work <- c:
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	p.waiting--
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return <-c.done
}

// run makes the signature and reports it.
func (c signCall) run() {
	if c.started != nil {
		c.started()
	}
	c.done <- c.sign()
}

// loop runs calls until it has been idle for p.idle with nobody
// waiting to hand it one.
func (p *signPool) loop(c signCall) {
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		c.run()
		// Let whatever else is ready run before the next signature.
		// The next caller is handed this goroutine directly, ahead of
		// every goroutine already queued, so in a fan-out on one CPU
		// signatures would follow each other for as long as any are
		// owed: requests to crieur's own server (a remote server
		// fetching our key to verify the delivery it just got) waited
		// for the whole fan-out, 2 s for 2,000 inboxes.
		runtime.Gosched()
		idle.Reset(p.idle)
		for next := false; !next; {
			select {
			case c = <-p.work:
				next = true
			case <-idle.C:
				p.mu.Lock()
				if p.waiting == 0 {
					p.running--
					p.mu.Unlock()
					return
				}
				// A caller counted itself before sending: stay for it.
				p.mu.Unlock()
				idle.Reset(p.idle)
			}
		}
	}
}
