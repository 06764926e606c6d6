// Package inbox owns what other servers send to the bot: it checks every
// request, cheapest first (the headers before the body, the HTTP signature
// with keys resolved through signed fetches under the origin rule, replays,
// per-host rates, the key owner against the activity's actor) before
// anything changes, then handles Follow, Undo, Delete and Block; the
// interactions with our Notes (replies, mentions, quotes, likes and emoji
// reactions, boosts, and their Undo, Update and Delete by their author);
// the consent requests (QuoteRequest, Like/Reply/AnnounceRequest) with
// their authorizations; reports (Flag); and the admin's approvals of
// pending follow requests. It ties documents, signature and transport to
// storage; nothing in federation imports it.
package inbox

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// Deps are what the Inbox works with, built once in cmd/crieur.
type Deps struct {
	Docs   *documents.Builder
	Store  *storage.Store
	Signer *signature.Signer // signs key fetches and follow replies' deliveries
	// Verifier prepares remote keys for verifying signatures; nil:
	// signature.NewVerifier(signature.RSAAuto), as NewSigner's default.
	Verifier *signature.Verifier
	Client   *transport.Client // fetches keys and actors
	Logger   *slog.Logger      // nil: discard
	Now      func() time.Time  // nil: time.Now
	// Queued is called after the inbox or an admin action queued a
	// delivery (an Accept, a Reject), so the Deliverer sends it now rather
	// than at its next wake-up. Optional.
	Queued func()
	// Replies says whose replies and quotes show at once: RepliesEveryone
	// (default), RepliesFollowers, or RepliesApproval (each waits for the
	// admin's approval).
	Replies string
	// Blocked says whether the admin blocked an actor (by itself or its
	// domain); BlockedHost whether a host is. Both optional.
	Blocked     func(actorID string) bool
	BlockedHost func(host string) bool
	// Concurrency and Wait bound the requests verified and handled at
	// once (DefaultConcurrency, DefaultWait); HostRate and HostBurst
	// bound one remote host (DefaultHostRate, DefaultHostBurst).
	Concurrency int
	Wait        time.Duration
	HostRate    float64
	HostBurst   int
}

// Inbox handles POSTs to the actor's and the shared inbox.
type Inbox struct {
	cfg    documents.Config
	docs   *documents.Builder
	store  *storage.Store
	signer *signature.Signer
	verify *signature.Verifier
	ready  *readyKeys // keys parsed and imported for verification
	client *transport.Client
	log    *slog.Logger
	now    func() time.Time
	queued func()
	keys   *keyPool // key fetches: one per key id, bounded, throttled

	// unverified is charged by the keyId's host before any key is
	// fetched; verified by the signer's host once the signature holds.
	unverified, verified *hostLimiter
	seen                 *seenSignatures
	replies              string
	blocked              func(actorID string) bool
	blockedHost          func(host string) bool
	slots                chan struct{}
	wait                 time.Duration
}

// New builds the Inbox; Docs, Store, Signer and Client are required.
func New(deps Deps) (*Inbox, error) {
	if deps.Docs == nil || deps.Store == nil || deps.Signer == nil || deps.Client == nil {
		return nil, errors.New("inbox: new: documents, store, signer and client are required")
	}
	s := &Inbox{
		cfg:    deps.Docs.Config(),
		docs:   deps.Docs,
		store:  deps.Store,
		signer: deps.Signer,
		verify: deps.Verifier,
		client: deps.Client,
		log:    deps.Logger,
		now:    deps.Now,
		queued: deps.Queued,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.verify == nil {
		v, err := signature.NewVerifier(signature.RSAAuto)
		if err != nil {
			return nil, fmt.Errorf("inbox: new: %w", err)
		}
		s.verify = v
	}
	if s.queued == nil {
		s.queued = func() {}
	}
	s.keys = newKeyPool(keyPoolConfig{Now: s.now})
	s.ready = newReadyKeys(readyKeysMax)
	if deps.Concurrency <= 0 {
		deps.Concurrency = DefaultConcurrency
	}
	if s.wait = deps.Wait; s.wait <= 0 {
		s.wait = DefaultWait
	}
	if deps.HostRate <= 0 {
		deps.HostRate = DefaultHostRate
	}
	if deps.HostBurst <= 0 {
		deps.HostBurst = DefaultHostBurst
	}
	s.unverified = newHostLimiter(deps.HostRate, deps.HostBurst)
	s.verified = newHostLimiter(deps.HostRate, deps.HostBurst)
	s.seen = newSeenSignatures()
	s.blocked, s.blockedHost = deps.Blocked, deps.BlockedHost
	if s.replies = deps.Replies; s.replies == "" {
		s.replies = RepliesEveryone
	}
	if s.blocked == nil {
		s.blocked = func(string) bool { return false }
	}
	if s.blockedHost == nil {
		s.blockedHost = func(string) bool { return false }
	}
	s.slots = make(chan struct{}, deps.Concurrency)
	return s, nil
}
