package delivery

import (
	"math/rand/v2"
	"time"
)

// Retry schedule for failed deliveries. The window is long on purpose:
// Mastodon retries for two to three days, and a publisher that gives up
// after an hour loses every follower whose server had a bad afternoon.
const (
	DefaultBackoffBase   = 30 * time.Second
	DefaultBackoffCap    = 6 * time.Hour
	DefaultBackoffFactor = 2.0
	// minRetryDelay keeps full jitter from retrying a failing server at once.
	minRetryDelay = time.Second
	// Retry-After from a 429 is honoured within these bounds: a server
	// asking for less than a second gets a second, one asking for days gets
	// six hours (the job's 48 h window still applies).
	minRetryAfter = time.Second
	maxRetryAfter = 6 * time.Hour
)

// Backoff computes retry delays: exponential growth with full jitter, so
// thousands of jobs failing together (a server that went down during a
// fan-out) come back spread over the whole window instead of all at once.
type Backoff struct {
	Base   time.Duration // delay window for the first retry
	Factor float64       // growth per attempt
	Cap    time.Duration // largest window
	// Jitter picks a delay in [0, window]; nil means uniform random. Tests
	// inject it to make the schedule exact.
	Jitter func(window time.Duration) time.Duration
}

// DefaultBackoff is the production schedule: 30 s doubling up to 6 h.
func DefaultBackoff() Backoff {
	return Backoff{Base: DefaultBackoffBase, Factor: DefaultBackoffFactor, Cap: DefaultBackoffCap}
}

// Window is the upper bound of the delay after the given number of failed
// attempts (1 for the first failure): Base·Factor^(attempts-1), capped.
func (b Backoff) Window(attempts int) time.Duration {
	base, factor, limit := b.Base, b.Factor, b.Cap
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if factor < 1 {
		factor = DefaultBackoffFactor
	}
	if limit <= 0 {
		limit = DefaultBackoffCap
	}
	w := float64(base)
	for i := 1; i < attempts && w < float64(limit); i++ {
		w *= factor
	}
	if w > float64(limit) {
		return limit
	}
	return time.Duration(w)
}

// Delay is how long to wait before the next attempt, given how many attempts
// have failed so far (including the one that just failed).
func (b Backoff) Delay(attempts int) time.Duration {
	w := b.Window(attempts)
	var d time.Duration
	if b.Jitter != nil {
		d = b.Jitter(w)
	} else {
		d = rand.N(w + 1)
	}
	return max(d, minRetryDelay)
}

// clampRetryAfter bounds a server's Retry-After request.
func clampRetryAfter(d time.Duration) time.Duration {
	return min(max(d, minRetryAfter), maxRetryAfter)
}
