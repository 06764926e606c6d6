// Package federation owns the ActivityPub protocol: the actor document, the
// Post → Note mapping, collections, HTTP signatures both ways, inbox handling,
// the publisher that turns post changes into Create/Update/Delete, and the
// delivery workers. It never imports web; web calls it.
package federation

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/crieur/crieur/posts"
	"github.com/crieur/crieur/storage"
)

// Sentinel errors; web maps them to HTTP status codes in one place.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrGone         = errors.New("gone")
	ErrTooLarge     = errors.New("too large")
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

// Deps are the values the Service works with, built once in cmd/crieur.
type Deps struct {
	Store  *storage.Store
	Posts  func() *posts.Library // the current library snapshot
	Key    *rsa.PrivateKey
	Client *Client
	Logger *slog.Logger
	Now    func() time.Time
	// Queued is called after the inbox or an admin action queued a
	// delivery (an Accept, a Reject), so the Deliverer sends it now rather
	// than at its next wake-up. Optional.
	Queued func()
	// RSA chooses what makes the signatures; "" is RSAAuto.
	RSA RSAEngine
}

// Service answers protocol questions (documents, inbox) for web and the CLI.
type Service struct {
	cfg    Config
	store  *storage.Store
	posts  func() *posts.Library
	key    *rsa.PrivateKey
	signer *Signer
	client *Client
	log    *slog.Logger
	now    func() time.Time
	queued func()
	// actorJSON is the encoded actor document, made on first use.
	actorJSON func() ([]byte, error)
}

// ClientConfig configures the one guarded outgoing HTTP client.
type ClientConfig struct {
	UserAgent string
	// AllowPrefixes lets the client reach addresses that are otherwise
	// refused (loopback, private ranges): tests and local runs only.
	AllowPrefixes []netip.Prefix
	Timeout       time.Duration // whole request; default 30s
	MaxBody       int64         // response body cap; default 1 MiB
	MaxRedirects  int           // default 3
}

// New builds the Service. Store and Key are required; Client, Logger and Now
// get defaults when nil.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.BaseURL == "" || cfg.Handle == "" {
		return nil, errors.New("federation: new service: base URL and handle are required")
	}
	if deps.Store == nil {
		return nil, errors.New("federation: new service: nil store")
	}
	if deps.Key == nil {
		return nil, errors.New("federation: new service: nil key")
	}
	s := &Service{
		cfg:    cfg,
		store:  deps.Store,
		posts:  deps.Posts,
		key:    deps.Key,
		client: deps.Client,
		log:    deps.Logger,
		now:    deps.Now,
		queued: deps.Queued,
	}
	if s.queued == nil {
		s.queued = func() {}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = NewClient(ClientConfig{})
	}
	signer, err := newSigner(cfg.KeyID(), deps.Key, s.now, deps.RSA)
	if err != nil {
		return nil, fmt.Errorf("federation: new service: %w", err)
	}
	s.signer = signer
	s.actorJSON = sync.OnceValues(s.encodeActor)
	return s, nil
}

// Config returns the configuration the service was built with.
func (s *Service) Config() Config { return s.cfg }

// Signer returns the signer for outgoing requests (the delivery workers use it).
func (s *Service) Signer() *Signer { return s.signer }

// Client returns the guarded outgoing client.
func (s *Service) Client() *Client { return s.client }

// Store returns the storage the service works with.
func (s *Service) Store() *storage.Store { return s.store }

// Logger returns the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }

// Now returns the service's clock.
func (s *Service) Now() time.Time { return s.now() }
