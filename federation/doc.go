// Package federation is crieur's ActivityPub side, in rooms, each a package
// with one job; data flows down this list, never up:
//
//   - inbox: verifies and handles what other servers send to the bot
//     (Follow, Undo, Delete, Block) and the admin's follow approvals.
//   - publish: turns changes of the articles into Create, Update and Delete
//     activities, queued for every follower.
//   - delivery: the queue-driven Deliverer: sends queued jobs under
//     per-host limits, with a circuit breaker, backoff and retry.
//   - documents: the JSON-LD documents crieur serves and sends (actor,
//     Notes, collections, activities) and the instance's Config.
//   - transport: the one guarded outgoing HTTP client (SSRF guard, limits,
//     connection pool for deliveries).
//   - signature: the bot's key, HTTP signatures made and checked, the
//     OpenSSL signer.
//
// This package itself holds only the sentinel errors every room wraps, so
// that web maps them to HTTP status codes in one place. It imports nothing.
// docs/architecture.md draws the whole map.
package federation

import (
	"errors"
	"time"
)

// Sentinel errors; web maps them to HTTP status codes in one place.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrGone         = errors.New("gone")
	ErrTooLarge     = errors.New("too large")
	// ErrUnsupportedMediaType: a body that is not ActivityStreams JSON.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrRateLimited: the sender's host sent more than its share; it
	// should come back after the RetryError's delay (429).
	ErrRateLimited = errors.New("rate limited")
	// ErrBusy: crieur has no room for the request now (503).
	ErrBusy = errors.New("busy")
)

// RetryError tells the sender when to try again (Retry-After). It wraps
// ErrRateLimited or ErrBusy.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() + ", retry after " + e.After.String() }

func (e *RetryError) Unwrap() error { return e.Err }
