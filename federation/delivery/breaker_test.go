package delivery

import (
	"testing"
	"time"
)

func TestBreakerOpensAfterThresholdAndDoubles(t *testing.T) {
	b := newBreaker(3, time.Minute, 5*time.Minute)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2 {
		if b.failure("h", t0, "HTTP 502") {
			t.Fatalf("open after %d failures", i+1)
		}
		if st, _ := b.state("h", t0); st != hostClosed {
			t.Fatalf("state after %d failures: %v", i+1, st)
		}
	}
	if !b.failure("h", t0, "HTTP 502") {
		t.Fatal("not open after the threshold")
	}
	st, until := b.state("h", t0.Add(30*time.Second))
	if st != hostOpen || !until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("open: %v until %s", st, until)
	}
	if b.lastError("h") != "HTTP 502" {
		t.Fatalf("last error %q", b.lastError("h"))
	}
	// A request that started before the breaker opened and fails during
	// the cool-down changes nothing.
	b.failure("h", t0.Add(10*time.Second), "late")
	if _, until := b.state("h", t0.Add(20*time.Second)); !until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("late failure moved the pause to %s", until)
	}
	// Cool-down over: half open. A failed probe doubles the pause, up to
	// the maximum.
	now := t0.Add(time.Minute)
	for _, want := range []time.Duration{2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		if st, _ := b.state("h", now); st != hostHalfOpen {
			t.Fatalf("after the pause: %v", st)
		}
		b.failure("h", now, "HTTP 503")
		st, until := b.state("h", now)
		if st != hostOpen || until.Sub(now) != want {
			t.Fatalf("after a failed probe: %v for %s, want %s", st, until.Sub(now), want)
		}
		now = until
	}
	// A successful probe closes it and forgets everything.
	b.success("h")
	if st, _ := b.state("h", now); st != hostClosed {
		t.Fatalf("after success: %v", st)
	}
	if len(b.hosts) != 0 {
		t.Fatalf("healthy host still tracked: %+v", b.hosts)
	}
	// And the count starts again from zero.
	b.failure("h", now, "x")
	b.failure("h", now, "x")
	if st, _ := b.state("h", now); st != hostClosed {
		t.Fatalf("two failures after recovery opened it: %v", st)
	}
}

func TestBreakerSuccessResetsConsecutiveCount(t *testing.T) {
	b := newBreaker(3, time.Minute, time.Hour)
	now := time.Now()
	b.failure("h", now, "x")
	b.failure("h", now, "x")
	b.success("h")
	b.failure("h", now, "x")
	b.failure("h", now, "x")
	if st, _ := b.state("h", now); st != hostClosed {
		t.Fatalf("failures that are not consecutive opened the breaker: %v", st)
	}
}

func TestBreakerPauseFor429(t *testing.T) {
	b := newBreaker(0, 0, 0) // defaults
	if b.threshold != DefaultBreakerThreshold || b.cooldown != DefaultBreakerCooldown || b.maxCooldown != DefaultBreakerMaxCooldown {
		t.Fatalf("defaults: %+v", b)
	}
	now := time.Now()
	b.pause("h", now.Add(2*time.Minute))
	b.pause("h", now.Add(time.Minute)) // an earlier end does not shorten it
	st, until := b.state("h", now)
	if st != hostOpen || !until.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("paused: %v until %s", st, until)
	}
	b.success("h") // alive, but still asked to wait
	if st, _ := b.state("h", now); st != hostOpen {
		t.Fatalf("success lifted a 429 pause: %v", st)
	}
	if st, _ := b.state("h", now.Add(2*time.Minute)); st != hostClosed {
		t.Fatalf("after the pause: %v", st)
	}
	b.forget(now.Add(2 * time.Minute))
	if len(b.hosts) != 0 {
		t.Fatalf("forget kept %+v", b.hosts)
	}
}
