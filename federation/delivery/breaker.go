package delivery

import "time"

// Circuit breaker settings. A host that fails five times in a row is left
// alone for a minute, then probed with one request; each failed probe
// doubles the pause, up to an hour. Jobs for an open host are deferred in
// the queue (without counting an attempt), never dropped: a dead instance
// costs one queue write per job per pause instead of one connection
// attempt per job, and gets everything once it is back.
const (
	DefaultBreakerThreshold   = 5
	DefaultBreakerCooldown    = time.Minute
	DefaultBreakerMaxCooldown = time.Hour
)

// breakerState is what the breaker allows for one host right now.
type breakerState int

const (
	hostClosed   breakerState = iota // healthy: up to PerHost requests
	hostHalfOpen                     // cool-down over: one probe request
	hostOpen                         // failing: defer until the returned time
)

// breakerHost is the breaker's memory of one host.
type breakerHost struct {
	failures  int           // consecutive failures
	cooldown  time.Duration // current pause; zero while closed
	openUntil time.Time     // end of the current pause
	lastErr   string        // last failure, shown on deferred jobs
	// pausedUntil is set by a 429 with Retry-After: the host is healthy
	// but asked everybody to come back later.
	pausedUntil time.Time
}

// breaker tracks host health for the Deliverer. It is not synchronised:
// the Deliverer calls it under its own lock.
type breaker struct {
	threshold   int
	cooldown    time.Duration
	maxCooldown time.Duration
	hosts       map[string]*breakerHost
}

func newBreaker(threshold int, cooldown, maxCooldown time.Duration) *breaker {
	if threshold <= 0 {
		threshold = DefaultBreakerThreshold
	}
	if cooldown <= 0 {
		cooldown = DefaultBreakerCooldown
	}
	if maxCooldown < cooldown {
		maxCooldown = max(cooldown, DefaultBreakerMaxCooldown)
	}
	return &breaker{threshold: threshold, cooldown: cooldown, maxCooldown: maxCooldown, hosts: map[string]*breakerHost{}}
}

// state tells what may be sent to host at now; until is meaningful for
// hostOpen (when to come back). For a half-open host the caller allows one
// request at a time: the first answer closes or reopens the breaker.
func (b *breaker) state(host string, now time.Time) (st breakerState, until time.Time) {
	h := b.hosts[host]
	if h == nil {
		return hostClosed, time.Time{}
	}
	if now.Before(h.pausedUntil) {
		return hostOpen, h.pausedUntil
	}
	if h.cooldown == 0 {
		return hostClosed, time.Time{}
	}
	if now.Before(h.openUntil) {
		return hostOpen, h.openUntil
	}
	return hostHalfOpen, time.Time{}
}

// success records an answer showing the host is up (any 2xx or 4xx): the
// breaker closes and forgets past failures.
func (b *breaker) success(host string) {
	h := b.hosts[host]
	if h == nil {
		return
	}
	if h.pausedUntil.IsZero() {
		delete(b.hosts, host)
		return
	}
	h.failures, h.cooldown, h.openUntil, h.lastErr = 0, 0, time.Time{}, ""
}

// failure records a network error, timeout or 5xx. It opens the breaker
// after threshold consecutive failures, and again (with a doubled
// cool-down) when a probe fails. It reports whether the host is now open.
func (b *breaker) failure(host string, now time.Time, errMsg string) bool {
	h := b.hosts[host]
	if h == nil {
		h = &breakerHost{}
		b.hosts[host] = h
	}
	h.failures++
	h.lastErr = errMsg
	switch {
	case h.cooldown > 0 && !now.Before(h.openUntil):
		// The half-open probe (or a request that started before the
		// breaker opened and ended after the pause) failed: pause longer.
		h.cooldown = min(2*h.cooldown, b.maxCooldown)
		h.openUntil = now.Add(h.cooldown)
	case h.cooldown == 0 && h.failures >= b.threshold:
		h.cooldown = b.cooldown
		h.openUntil = now.Add(h.cooldown)
	}
	return h.cooldown > 0
}

// lastError is the host's last failure, for messages.
func (b *breaker) lastError(host string) string {
	if h := b.hosts[host]; h != nil && h.lastErr != "" {
		return h.lastErr
	}
	return "asked to wait (429)"
}

// pause keeps every request to host back until until (429 Retry-After).
func (b *breaker) pause(host string, until time.Time) {
	h := b.hosts[host]
	if h == nil {
		h = &breakerHost{}
		b.hosts[host] = h
	}
	if until.After(h.pausedUntil) {
		h.pausedUntil = until
	}
}

// forget drops hosts whose state no longer matters, so the map does not
// grow with every host ever seen.
func (b *breaker) forget(now time.Time) {
	for name, h := range b.hosts {
		if h.cooldown == 0 && h.failures == 0 && !now.Before(h.pausedUntil) {
			delete(b.hosts, name)
		}
	}
}
