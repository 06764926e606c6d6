package storage

import (
	"errors"
	"runtime"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// groupCommit coalesces small write transactions from many goroutines into
// few commits (few fsyncs): while one commit is being written, calls queue
// up; as soon as it is done, the first queued caller leads the next commit
// with everything that queued meanwhile. A lone call commits at once; a
// lingering call (see do) that comes within groupWindow of the last commit
// waits groupWindow for others first. db.Batch instead waits MaxBatchDelay
// before every commit, lone calls included.
//
// Functions may run twice (alone, after a batch failed because of another
// function), so they must reset any state they report. A function that
// refuses its caller before writing anything returns refuse(err): the
// batch goes on without it.
type groupCommit struct {
	mu    sync.Mutex
	queue []*groupCall
	busy  bool // a leader is committing
	// last is when the last commit ended: a lingering call arriving soon
	// after it is part of a stream (a fan-out's completions) and waits
	// groupWindow for company; a lone call commits at once.
	last time.Time
	// sleep waits out groupWindow; tests count its calls (nil: time.Sleep).
	sleep func(time.Duration)
}

// groupWindow is how long a commit waits for more calls while calls keep
// coming. A fan-out completes its deliveries one by one and evenly spread;
// committing each as it comes costs two fsyncs per delivery, during which
// the committing thread keeps its CPU slot without using the CPU (an
// fsync is too short for Go to hand the slot to another thread): 1,400
// fsyncs, a tenth of a 2,000-inbox fan-out's CPU time, idle. A 20 ms
// window brought that to about 130 commits, whose kernel work (page
// writes, the journal, the virtual disk's notifications) was still 1.5%
// of crieur's CPU in a fan-out; 50 ms makes it about 50 commits. A
// completion that is not durable yet costs nothing but a possible second
// delivery after a crash, which at-least-once delivery allows; lone calls
// do not wait.
const groupWindow = 50 * time.Millisecond

type groupCall struct {
	fn   func(*bbolt.Tx) error
	err  error
	wake chan bool // true: you lead the next commit; false: your call is done
}

// do runs fn in a write transaction shared with concurrent calls and
// returns once that transaction is durable (or failed). A linger call that
// leads a commit in a stream waits groupWindow for company: the queue
// updates of a fan-out, which come one by one from many workers. Other
// calls only share the commits that form by themselves (calls queued while
// a commit is being written): a burst of inbox requests batches that way,
// and a caller writing in a loop pays no wait.
func (g *groupCommit) do(db *bbolt.DB, fn func(*bbolt.Tx) error, linger bool) error {
	c := &groupCall{fn: fn, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead && !<-c.wake {
		return c.err
	}

	// Leader: our own call is still queued, so it is in this batch. In a
	// stream of calls, wait for more; otherwise still let the goroutines
	// that are runnable right now queue their calls first.
	g.mu.Lock()
	streaming := linger && !g.last.IsZero() && time.Since(g.last) < groupWindow
	g.mu.Unlock()
	if streaming {
		if g.sleep != nil {
			g.sleep(groupWindow)
		} else {
			time.Sleep(groupWindow)
		}
	} else {
		runtime.Gosched()
	}
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()

	commitBatch(db, batch)

	g.mu.Lock()
	g.last = time.Now()
	var next *groupCall
	if len(g.queue) > 0 {
		next = g.queue[0]
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	for _, b := range batch {
		if b != c {
			b.wake <- false
		}
	}
	if next != nil {
		next.wake <- true
	}
	return c.err
}

// refusal is an error a function returns before its first write: the
// caller is refused (an interaction of another actor, say) and the batch
// goes on. Any other error rolls the whole batch back and reruns its
// functions one by one, a commit each: were refusals to do that, one
// verified sender refused on purpose again and again would turn every
// commit it shares into dozens (see TestRefusalKeepsTheBatch).
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse marks err as a refusal: return it only before writing anything.
func refuse(err error) error { return &refusal{err: err} }

// callResult is what a function's error means for its caller: a refusal
// is its own error, unwrapped.
func callResult(err error) error {
	var r *refusal
	if errors.As(err, &r) {
		return r.err
	}
	return err
}

// errInBatch marks which function of a batch failed.
type errInBatch struct {
	call *groupCall
	err  error
}

func (e *errInBatch) Error() string { return e.err.Error() }

func commitBatch(db *bbolt.DB, batch []*groupCall) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, c := range batch {
			c.err = nil
			if err := c.fn(tx); err != nil {
				var r *refusal
				if errors.As(err, &r) {
					c.err = r.err
					continue
				}
				return &errInBatch{call: c, err: err}
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	var failed *errInBatch
	if !errors.As(err, &failed) || len(batch) == 1 {
		// The commit itself failed (disk full, closed database): every
		// call shares the error.
		if failed != nil {
			err = failed.err
		}
		for _, c := range batch {
			if c.err == nil {
				c.err = err
			}
		}
		return
	}
	// One function failed and rolled the others back: run each alone so
	// only the faulty one reports an error.
	for _, c := range batch {
		c.err = callResult(db.Update(c.fn))
	}
}
