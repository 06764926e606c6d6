// Package documents owns the JSON-LD documents crieur serves and sends: the
// instance's Config (ids and URLs), the actor, the Post → Note mapping with
// Mastodon's HTML subset, the collections (outbox, followers, following,
// featured) and the activities wrapping them. It reads storage and the
// articles and signs nothing: the rooms above it (inbox, publish) send
// what it builds. It may import storage, articles and federation/signature
// (for the public key's PEM), nothing else of ours.
package documents

import (
	"crypto/rsa"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/storage"
)

// Field is a profile field shown on the actor (PropertyValue).
type Field struct {
	Name  string
	Value string // HTML allowed: links are kept by Mastodon
}

// Config is what the protocol needs to know about this instance.
type Config struct {
	BaseURL     string // scheme://host[:port], no trailing slash
	Handle      string // preferredUsername, e.g. "reports"
	DisplayName string
	Bio         string // plain text; rendered as HTML paragraphs
	AvatarURL   string // absolute URL of the avatar image
	AvatarType  string // its media type
	HeaderURL   string
	HeaderType  string
	Fields      []Field
	// ManuallyApprovesFollowers keeps follow requests pending until an
	// admin accepts or rejects them.
	ManuallyApprovesFollowers bool
	Discoverable              bool
	Indexable                 bool
	// ShowFollowers lists follower ids in the followers collection; the
	// count is always public.
	ShowFollowers bool
	// LedeOnly publishes the summary and a link instead of the full text.
	LedeOnly bool
	// Quotes says who may quote the Notes (QuotesAuto when empty): it is
	// written in each Note's interactionPolicy and applied to QuoteRequests.
	Quotes QuotePolicy
	// Created is when the actor first existed (actor "published").
	Created time.Time
	// Software name and version, for User-Agent and NodeInfo.
	Software string
	Version  string
}

// ActorID is the bot's ActivityPub id.
func (c Config) ActorID() string { return c.BaseURL + "/@" + c.Handle }

// KeyID is the id of the bot's public key.
func (c Config) KeyID() string { return c.ActorID() + "#main-key" }

// Host is the host[:port] part of BaseURL.
func (c Config) Host() string {
	h := strings.TrimPrefix(strings.TrimPrefix(c.BaseURL, "https://"), "http://")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	return h
}

// NoteID is the id (and url) of one post language version.
func (c Config) NoteID(slug, lang string) string {
	return c.BaseURL + "/posts/" + slug + "/" + lang
}

// Deps are the values the Builder works with, built once in cmd/crieur.
type Deps struct {
	Store  *storage.Store
	Posts  func() *articles.Library // the current library snapshot
	Key    *rsa.PublicKey           // the bot's public key, shown on the actor
	Logger *slog.Logger
	Now    func() time.Time
}

// Builder makes the documents: web serves them, inbox and publish send
// them.
type Builder struct {
	cfg   Config
	store *storage.Store
	posts func() *articles.Library
	key   *rsa.PublicKey
	log   *slog.Logger
	now   func() time.Time
	// actorJSON is the encoded actor document, made on first use.
	actorJSON func() ([]byte, error)
}

// New builds the Builder. Store and Key are required; Logger and Now get
// defaults when nil.
func New(cfg Config, deps Deps) (*Builder, error) {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.BaseURL == "" || cfg.Handle == "" {
		return nil, errors.New("documents: new builder: base URL and handle are required")
	}
	if deps.Store == nil {
		return nil, errors.New("documents: new builder: nil store")
	}
	if deps.Key == nil {
		return nil, errors.New("documents: new builder: nil key")
	}
	s := &Builder{
		cfg:   cfg,
		store: deps.Store,
		posts: deps.Posts,
		key:   deps.Key,
		log:   deps.Logger,
		now:   deps.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.actorJSON = sync.OnceValues(s.encodeActor)
	return s, nil
}

// Config returns the configuration the service was built with.
func (s *Builder) Config() Config { return s.cfg }

// Store returns the storage the service works with.
func (s *Builder) Store() *storage.Store { return s.store }

// Logger returns the service's logger.
func (s *Builder) Logger() *slog.Logger { return s.log }

// Now returns the service's clock.
func (s *Builder) Now() time.Time { return s.now() }

// Posts returns the current library snapshot (nil before the first load).
func (s *Builder) Posts() *articles.Library { return s.posts() }
