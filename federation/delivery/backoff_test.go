package delivery

import (
	"testing"
	"time"
)

func TestBackoffWindowGrowsAndCaps(t *testing.T) {
	b := DefaultBackoff()
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute}
	for i, w := range want {
		if got := b.Window(i + 1); got != w {
			t.Errorf("window after %d failures: %s, want %s", i+1, got, w)
		}
	}
	if got := b.Window(11); got != 6*time.Hour {
		t.Errorf("window after 11 failures: %s, want the 6 h cap", got)
	}
	if got := b.Window(1000); got != 6*time.Hour {
		t.Errorf("window after 1000 failures: %s", got)
	}
	// Zero fields fall back to the defaults.
	if got := (Backoff{}).Window(2); got != time.Minute {
		t.Errorf("zero Backoff: %s", got)
	}
}

func TestBackoffDelayStaysInWindow(t *testing.T) {
	b := DefaultBackoff()
	for attempts := 1; attempts <= 14; attempts++ {
		w := b.Window(attempts)
		for range 200 {
			d := b.Delay(attempts)
			if d < minRetryDelay || d > w {
				t.Fatalf("delay %s outside [%s, %s] after %d failures", d, minRetryDelay, w, attempts)
			}
		}
	}
	b.Jitter = func(time.Duration) time.Duration { return 0 }
	if d := b.Delay(1); d != minRetryDelay {
		t.Fatalf("zero jitter: %s, want the %s floor", d, minRetryDelay)
	}
}

func TestBackoffRetriesForTwoDays(t *testing.T) {
	// Even with the shortest delays the window allows, 48 h of retries
	// take a bounded number of attempts (the queue stays small), and with
	// the longest ones a job is tried at least a dozen times.
	b := DefaultBackoff()
	b.Jitter = func(w time.Duration) time.Duration { return w }
	var total time.Duration
	n := 0
	for total < DefaultMaxAge {
		n++
		total += b.Delay(n)
	}
	if n < 12 || n > 30 {
		t.Fatalf("%d attempts in 48 h with full windows", n)
	}
}

func TestClampRetryAfter(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0:                minRetryAfter,
		time.Millisecond: minRetryAfter,
		2 * time.Minute:  2 * time.Minute,
		48 * time.Hour:   maxRetryAfter,
	} {
		if got := clampRetryAfter(in); got != want {
			t.Errorf("clamp(%s) = %s, want %s", in, got, want)
		}
	}
}
