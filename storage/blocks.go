package storage

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// BlockKind says what a block names.
type BlockKind string

const (
	BlockDomain BlockKind = "domain" // a host and all its subdomains
	BlockActor  BlockKind = "actor"  // one remote account, by its id
)

// Block is one entry of the admin's blocklist.
type Block struct {
	Kind      BlockKind
	Value     string // a lower-case ASCII domain, or an actor id
	Severity  string `json:",omitempty"` // as imported (Mastodon's suspend, silence)
	Comment   string `json:",omitempty"`
	CreatedAt time.Time
}

func blockKey(kind BlockKind, value string) []byte { return []byte(string(kind) + " " + value) }

// Purged is what a new block removed.
type Purged struct {
	Followers    int
	Interactions int
	Keys         int
}

// Covers reports whether the block applies to actorID (for a domain block:
// an actor on the domain or one of its subdomains).
func (b Block) Covers(actorID string) bool {
	if b.Kind == BlockActor {
		return actorID == b.Value
	}
	u, err := url.Parse(actorID)
	if err != nil {
		return false
	}
	return DomainCovers(b.Value, u.Hostname())
}

// DomainCovers reports whether host is domain or one of its subdomains.
func DomainCovers(domain, host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// PutBlock records b and, in the same transaction, removes what it covers:
// followers, their interactions and cached keys. Replacing a block with
// the same kind and value keeps its creation time.
func (s *Store) PutBlock(b Block) (Purged, error) {
	var p Purged
	err := s.update(func(tx *bbolt.Tx) error {
		p = Purged{}
		bucket := tx.Bucket(bucketBlocks)
		var old Block
		found, err := getJSON(bucket, blockKey(b.Kind, b.Value), &old)
		if err != nil {
			return err
		}
		if found {
			b.CreatedAt = old.CreatedAt
		} else if b.CreatedAt.IsZero() {
			b.CreatedAt = s.now()
		}
		if err := putJSON(bucket, blockKey(b.Kind, b.Value), b); err != nil {
			return err
		}
		return purge(tx, b, &p)
	})
	s.remoteKeys.forget()
	if err != nil {
		return Purged{}, fmt.Errorf("storage: block %s %s: %w", b.Kind, b.Value, err)
	}
	return p, nil
}

// purge removes the followers, interactions and keys b covers.
func purge(tx *bbolt.Tx, b Block, p *Purged) error {
	var actors []string
	err := tx.Bucket(bucketFollowers).ForEach(func(k, _ []byte) error {
		if b.Covers(string(k)) {
			actors = append(actors, string(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range actors {
		removed, err := deleteFollower(tx, a)
		if err != nil {
			return err
		}
		if removed {
			p.Followers++
		}
	}
	var ids []string
	err = tx.Bucket(bucketInteractions).ForEach(func(k, v []byte) error {
		var i Interaction
		if err := decode(v, &i); err != nil {
			return fmt.Errorf("interaction %q: %w", k, err)
		}
		if b.Covers(i.Actor.ID) {
			ids = append(ids, string(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := deleteInteraction(tx, id); err != nil {
			return err
		}
	}
	p.Interactions = len(ids)
	n, err := deleteRemoteKeysWhere(tx, func(rk RemoteKey) bool { return b.Covers(rk.Owner) || b.Covers(rk.KeyID) })
	p.Keys = n
	return err
}

// DeleteBlock removes a block; found is false when there was none.
func (s *Store) DeleteBlock(kind BlockKind, value string) (found bool, err error) {
	err = s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketBlocks)
		found = b.Get(blockKey(kind, value)) != nil
		return b.Delete(blockKey(kind, value))
	})
	if err != nil {
		return false, fmt.Errorf("storage: unblock %s %s: %w", kind, value, err)
	}
	return found, nil
}

// Blocks lists every block: actors, then domains, each sorted by value.
func (s *Store) Blocks() ([]Block, error) {
	var out []Block
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketBlocks).ForEach(func(k, v []byte) error {
			var b Block
			if err := decode(v, &b); err != nil {
				return fmt.Errorf("block %q: %w", k, err)
			}
			out = append(out, b)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: blocks: %w", err)
	}
	return out, nil
}
