package signature

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/internal/testkit"
)

// busyPool fills every goroutine of p with a call that blocks until the
// returned function is called.
func busyPool(t *testing.T, p *signPool) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	var started sync.WaitGroup
	for range p.max {
		started.Add(1)
		go func() {
			_ = p.do(context.Background(), func() error { <-gate; return nil }, started.Done)
		}()
	}
	started.Wait()
	return func() { close(gate) }
}

// TestSignWaitEndsWithContext: a delivery waiting for a signing goroutine
// at shutdown gives up instead of signing a request nobody will send.
func TestSignWaitEndsWithContext(t *testing.T) {
	signer, _ := NewSigner("https://crieur.example/@reports#main-key", testkit.Key(t, 0), nil)
	release := busyPool(t, signer.pool) // every CPU busy signing
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequest(http.MethodPost, "https://m.example/inbox", nil)
	started := false
	err := signer.SignDigestContext(ctx, req, BodyDigest([]byte(`{}`)), func() { started = true })
	if !errors.Is(err, context.Canceled) || started || req.Header.Get("Signature") != "" {
		t.Errorf("cancelled wait: err %v, started %v, signature %q", err, started, req.Header.Get("Signature"))
	}
	release()
	if err := signer.SignDigestContext(context.Background(), req, BodyDigest([]byte(`{}`)), nil); err != nil || req.Header.Get("Signature") == "" {
		t.Errorf("free goroutine: %v", err)
	}
	// An already ended context signs nothing, even with goroutines free.
	req2, _ := http.NewRequest(http.MethodPost, "https://m.example/inbox", nil)
	if err := signer.SignDigestContext(ctx, req2, BodyDigest([]byte(`{}`)), nil); !errors.Is(err, context.Canceled) || req2.Header.Get("Signature") != "" {
		t.Errorf("ended context: %v, signature %q", err, req2.Header.Get("Signature"))
	}
}

// TestSignPoolBoundsAndReuse: never more signatures at once than the pool
// has goroutines, every call runs exactly once, errors come back to their
// caller, and idle goroutines exit, even when calls keep arriving around
// the moment they time out.
func TestSignPoolBoundsAndReuse(t *testing.T) {
	p := newSignPool(3)
	p.idle = time.Millisecond
	var now, peak, ran atomic.Int64
	errOdd := errors.New("odd")
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%40 == 0 {
				time.Sleep(time.Duration(i/40) * time.Millisecond) // some arrive as loops go idle
			}
			var startedCalls int
			err := p.do(context.Background(), func() error {
				n := now.Add(1)
				for {
					m := peak.Load()
					if n <= m || peak.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(50 * time.Microsecond)
				now.Add(-1)
				ran.Add(1)
				if i%2 == 1 {
					return errOdd
				}
				return nil
			}, func() { startedCalls++ })
			if (i%2 == 1) != errors.Is(err, errOdd) || startedCalls != 1 {
				t.Errorf("call %d: err %v, started %d times", i, err, startedCalls)
			}
		}()
	}
	wg.Wait()
	if ran.Load() != 400 || peak.Load() > 3 {
		t.Errorf("ran %d calls (want 400), at most %d at once (want <= 3)", ran.Load(), peak.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		running, waiting := p.running, p.waiting
		p.mu.Unlock()
		if running == 0 && waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d signing goroutines still running, %d callers waiting, long after the last call", running, waiting)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A pool whose goroutines all left starts new ones.
	if err := p.do(context.Background(), func() error { return nil }, nil); err != nil {
		t.Fatal(err)
	}
}
