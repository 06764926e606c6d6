// Package moderation owns the admin's blocks: the list every room consults
// before it talks to a remote server (transport refuses to fetch from or
// deliver to a blocked host; the inbox answers 403 to one), kept in memory
// equal to storage so that a block takes effect at once on a running
// server; and the domain blocklists in Mastodon's CSV format. It imports
// storage and nothing else of ours.
package moderation

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"golang.org/x/net/idna"

	"github.com/crieur/crieur/storage"
)

// Blocklist is the admin's blocks, in memory, behind every check. Add and
// Remove write storage first, then swap the in-memory set.
type Blocklist struct {
	store *storage.Store
	own   string // crieur's own host[:port], which may not be blocked
	mu    sync.Mutex
	set   atomic.Pointer[blockSet]
}

type blockSet struct {
	domains map[string]bool
	actors  map[string]bool
}

// New loads the blocks of store; own is crieur's own host.
func New(store *storage.Store, own string) (*Blocklist, error) {
	l := &Blocklist{store: store, own: strings.ToLower(own)}
	if err := l.reload(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Blocklist) reload() error {
	blocks, err := l.store.Blocks()
	if err != nil {
		return fmt.Errorf("moderation: load blocks: %w", err)
	}
	s := &blockSet{domains: map[string]bool{}, actors: map[string]bool{}}
	for _, b := range blocks {
		if b.Kind == storage.BlockDomain {
			s.domains[b.Value] = true
		} else {
			s.actors[b.Value] = true
		}
	}
	l.set.Store(s)
	return nil
}

// Host reports whether host (a URL's hostname, with or without port) is
// blocked: itself or a parent domain is.
func (l *Blocklist) Host(host string) bool {
	s := l.set.Load()
	if len(s.domains) == 0 {
		return false
	}
	h := strings.TrimSuffix(strings.ToLower(hostOnly(host)), ".")
	if a, err := idna.Lookup.ToASCII(h); err == nil {
		h = a
	}
	for {
		if s.domains[h] {
			return true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return false
		}
		h = h[i+1:]
	}
}

// Actor reports whether actorID is blocked, by itself or by its domain.
func (l *Blocklist) Actor(actorID string) bool {
	if l.set.Load().actors[actorID] {
		return true
	}
	u, err := url.Parse(actorID)
	return err == nil && u.Host != "" && l.Host(u.Host)
}

// List returns the blocks as stored.
func (l *Blocklist) List() ([]storage.Block, error) { return l.store.Blocks() }

// Add blocks a domain (and its subdomains) or an actor (an http(s) URL),
// removes what it covers from storage, and applies at once.
func (l *Blocklist) Add(target, severity, comment string) (storage.Block, storage.Purged, error) {
	b, err := l.parse(target)
	if err != nil {
		return storage.Block{}, storage.Purged{}, err
	}
	b.Severity, b.Comment = severity, comment
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.store.PutBlock(b)
	if err != nil {
		return b, p, fmt.Errorf("moderation: %w", err)
	}
	return b, p, l.reload()
}

// Remove lifts a block; found is false when there was none.
func (l *Blocklist) Remove(target string) (storage.Block, bool, error) {
	b, err := l.parse(target)
	if err != nil {
		return storage.Block{}, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	found, err := l.store.DeleteBlock(b.Kind, b.Value)
	if err != nil {
		return b, false, fmt.Errorf("moderation: %w", err)
	}
	return b, found, l.reload()
}

// parse reads a block target: an actor's http(s) URL, or a domain.
func (l *Blocklist) parse(target string) (storage.Block, error) {
	target = strings.TrimSpace(target)
	if strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "http://") {
		u, err := url.Parse(target)
		if err != nil || u.Host == "" || u.User != nil {
			return storage.Block{}, fmt.Errorf("moderation: %q is not an actor URL", target)
		}
		if l.own != "" && strings.EqualFold(u.Host, l.own) {
			return storage.Block{}, fmt.Errorf("moderation: %q is crieur's own actor", target)
		}
		return storage.Block{Kind: storage.BlockActor, Value: target}, nil
	}
	d, err := NormalizeDomain(target, hostOnly(l.own))
	if err != nil {
		return storage.Block{}, err
	}
	return storage.Block{Kind: storage.BlockDomain, Value: d}, nil
}

// NormalizeDomain reads a domain as an admin or a blocklist writes it:
// lower case, ASCII (an internationalised name becomes its punycode, so a
// look-alike is blocked as what it is), no trailing dot. It refuses IP
// addresses, ports, paths, wildcards other than a leading "*." (which
// means the same as the domain: subdomains are always covered), and own,
// crieur's own host (or a parent of it).
func NormalizeDomain(s, own string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	d = strings.TrimPrefix(d, "*.")
	if d == "" {
		return "", errors.New("moderation: empty domain")
	}
	for _, r := range d {
		if unicode.IsSpace(r) || strings.ContainsRune("/:@?#*\\", r) {
			return "", fmt.Errorf("moderation: %q is not a domain (no scheme, port, path or wildcard)", s)
		}
	}
	if _, err := netip.ParseAddr(strings.Trim(d, "[]")); err == nil {
		return "", fmt.Errorf("moderation: %q is an IP address, not a domain", s)
	}
	a, err := idna.Registration.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("moderation: %q is not a domain: %v", s, err)
	}
	if !strings.Contains(a, ".") {
		return "", fmt.Errorf("moderation: %q is not a full domain name", s)
	}
	if own != "" && storage.DomainCovers(a, own) {
		return "", fmt.Errorf("moderation: %q would block crieur's own domain %s", s, own)
	}
	return a, nil
}

func hostOnly(h string) string {
	if host, _, ok := strings.Cut(h, ":"); ok && !strings.Contains(h, "]") {
		return host
	}
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
	}
	return h
}
