package storage

import (
	"errors"
	"runtime"
	"sync"

	"go.etcd.io/bbolt"
)

// groupCommit coalesces small write transactions from many goroutines into
// few commits (few fsyncs), like bbolt's db.Batch but without its timer:
// while one commit is being written, calls queue up; as soon as it is done,
// the first queued caller commits everything that queued meanwhile. A lone
// call commits at once, and under load batches grow to whatever arrives
// during one fsync. db.Batch instead waits MaxBatchDelay before every
// commit, so each worker blocks delay+fsync per job; with 16 workers and the
// default 10 ms that capped completions near 1,300/s (see
// BenchmarkCompleteJobParallel).
//
// Functions may run twice (alone, after a batch failed because of another
// function), so they must reset any state they report.
type groupCommit struct {
	mu    sync.Mutex
	queue []*groupCall
	busy  bool // a leader is committing
}

type groupCall struct {
	fn   func(*bbolt.Tx) error
	err  error
	wake chan bool // true: you lead the next commit; false: your call is done
}

// do runs fn in a write transaction shared with concurrent calls and
// returns once that transaction is durable (or failed).
func (g *groupCommit) do(db *bbolt.DB, fn func(*bbolt.Tx) error) error {
	c := &groupCall{fn: fn, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead && !<-c.wake {
		return c.err
	}

	// Leader: our own call is still queued, so it is in this batch. Let
	// the goroutines that are runnable right now (deliveries whose answer
	// just arrived) queue their calls first: an fsync is too short for Go
	// to hand the CPU to them meanwhile, so without this yield batches
	// stay near one call and each delivery costs its own fsyncs.
	runtime.Gosched()
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()

	commitBatch(db, batch)

	g.mu.Lock()
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

// errInBatch marks which function of a batch failed.
type errInBatch struct {
	call *groupCall
	err  error
}

func (e *errInBatch) Error() string { return e.err.Error() }

func commitBatch(db *bbolt.DB, batch []*groupCall) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, c := range batch {
			if err := c.fn(tx); err != nil {
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
			c.err = err
		}
		return
	}
	// One function failed and rolled the others back: run each alone so
	// only the faulty one reports an error.
	for _, c := range batch {
		c.err = db.Update(c.fn)
	}
}
