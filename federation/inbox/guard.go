package inbox

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/crieur/crieur/federation"
)

// Limits of what the inbox spends on one sender before trusting it.
const (
	// DefaultHostRate and DefaultHostBurst bound the requests one remote
	// host may make: a burst for a fan-out (a popular post liked on a big
	// instance), then a steady rate. Beyond it: 429 with Retry-After,
	// which every server honours by queueing. The unverified bucket is
	// charged by the keyId's host before a key is fetched; the verified
	// one by the signer's host once the signature holds, so a forger
	// naming someone else's host empties only the first.
	DefaultHostRate  = 20.0 // requests per second
	DefaultHostBurst = 300
	// hostBuckets bounds the hosts remembered; beyond it the idle
	// (refilled) buckets are dropped first.
	hostBuckets = 20_000
	// DefaultConcurrency bounds the requests verified and handled at once:
	// decoding and bbolt writes are the work left there, and more at once
	// would not go faster.
	DefaultConcurrency = 64
	// DefaultWait is how long a verified request waits for a slot before
	// it is answered 503 with Retry-After (every server retries those).
	DefaultWait = 5 * time.Second
	// busyRetryAfter is the Retry-After of that 503.
	busyRetryAfter = 30 * time.Second
	// seenMax bounds the signatures remembered for replay detection: a
	// full set refuses nothing new, it forgets the oldest.
	seenMax = 200_000
)

// hostLimiter is a token bucket per remote host.
type hostLimiter struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	hosts map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newHostLimiter(rate float64, burst int) *hostLimiter {
	return &hostLimiter{rate: rate, burst: float64(burst), hosts: map[string]*bucket{}}
}

// allow takes one token from host's bucket, or says how long until one is
// there. The error wraps federation.ErrRateLimited in a RetryError.
func (l *hostLimiter) allow(host string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.hosts[host]
	if !ok {
		if len(l.hosts) >= hostBuckets {
			l.forgetFullLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.hosts[host] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return &federation.RetryError{
		Err:   fmt.Errorf("%w: inbox: %s is over %.0f requests per second", federation.ErrRateLimited, host, l.rate),
		After: wait,
	}
}

// forgetFullLocked drops the buckets that have refilled: forgetting them
// changes nothing. If none has, the whole map goes: a flood of distinct
// hosts must not grow memory.
func (l *hostLimiter) forgetFullLocked(now time.Time) {
	for h, b := range l.hosts {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.hosts, h)
		}
	}
	if len(l.hosts) >= hostBuckets {
		clear(l.hosts)
	}
}

// seenSignatures remembers verified signatures until their signed time
// leaves the window, so that a captured request sent again is refused
// (Mastodon keeps no such set; GoToSocial does not either: both rely on the
// Date window alone). Only verified signatures are added, so forgers cannot
// fill it.
type seenSignatures struct {
	mu    sync.Mutex
	until map[[32]byte]time.Time
	order []seenEntry // in insertion order, for expiry
}

type seenEntry struct {
	sum   [32]byte
	until time.Time
}

func newSeenSignatures() *seenSignatures {
	return &seenSignatures{until: map[[32]byte]time.Time{}}
}

// add records sig, good until until, and reports false when it was seen
// before (a replay).
func (s *seenSignatures) add(sig []byte, until, now time.Time) bool {
	sum := sha256.Sum256(sig)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) > 0 && (s.order[0].until.Before(now) || len(s.order) >= seenMax) {
		if s.until[s.order[0].sum] == s.order[0].until {
			delete(s.until, s.order[0].sum)
		}
		s.order = s.order[1:]
	}
	if t, ok := s.until[sum]; ok && !t.Before(now) {
		return false
	}
	s.until[sum] = until
	s.order = append(s.order, seenEntry{sum, until})
	return true
}
