package storage

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Authorization is crieur's consent to one interaction with one of its
// Notes (a quote, reply, like or boost that a remote server asked about):
// served at ID until it is revoked, then answered 410.
type Authorization struct {
	ID   string // our URL for it
	Kind InteractionKind
	// RequestID is the request answered last (QuoteRequest, LikeRequest…),
	// AcceptID the Accept sent for it.
	RequestID string
	AcceptID  string `json:",omitempty"`
	// ActorID asked, and is the interacting object's author.
	ActorID           string
	InteractingObject string // the quote, reply, Like or Announce
	InteractionTarget string // our Note
	CreatedAt         time.Time
	RevokedAt         time.Time `json:",omitzero"` // zero while it stands
}

// ErrRevoked is returned when an authorization revoked before is granted
// again: the interacting object was deleted, and ids are never reused.
var ErrRevoked = errors.New("storage: authorization was revoked")

// authorizationObjectKey indexes an authorization by its interacting
// object: object 0x00 id → empty (bucketAuthorizationObject).
func authorizationObjectKey(object, id string) []byte {
	k := make([]byte, 0, len(object)+1+len(id))
	k = append(k, object...)
	k = append(k, 0)
	return append(k, id...)
}

// GrantAuthorization stores a, or renews the authorization with its id (a
// request sent again: the new request and Accept ids are kept, CreatedAt
// is not), together with the Accept act and its delivery jobs, in one
// transaction: an authorization never exists without its Accept queued. A
// revoked one is ErrRevoked, one held by another actor ErrNotOwner; then
// nothing is stored. created says whether a is new.
func (s *Store) GrantAuthorization(a Authorization, act Activity, jobs []Job) (created bool, err error) {
	if a.ID == "" || a.Kind == "" || a.ActorID == "" || a.InteractingObject == "" || a.InteractionTarget == "" {
		return false, errors.New("storage: grant authorization: id, kind, actor, object and target are required")
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAuthorizations)
		var old Authorization
		found, err := getJSON(b, []byte(a.ID), &old)
		if err != nil {
			return err
		}
		switch {
		case found && !old.RevokedAt.IsZero():
			return ErrRevoked
		case found && old.ActorID != a.ActorID:
			return ErrNotOwner
		case found:
			a.CreatedAt = old.CreatedAt
		default:
			created = true
			if a.CreatedAt.IsZero() {
				a.CreatedAt = s.now()
			}
		}
		a.RevokedAt = time.Time{}
		if err := putJSON(b, []byte(a.ID), a); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAuthorizationObject).Put(authorizationObjectKey(a.InteractingObject, a.ID), nil); err != nil {
			return err
		}
		return s.storeAndEnqueue(tx, act, jobs)
	})
	if err != nil {
		return false, fmt.Errorf("storage: grant authorization %s: %w", a.ID, err)
	}
	return created, nil
}

// Authorization returns one authorization, revoked or not, or ErrNotFound.
func (s *Store) Authorization(id string) (Authorization, error) {
	var a Authorization
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketAuthorizations), []byte(id), &a)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Authorization{}, fmt.Errorf("storage: get authorization %s: %w", id, err)
	}
	return a, nil
}

// AuthorizationsFor lists the authorizations granted for one interacting
// object, revoked ones included.
func (s *Store) AuthorizationsFor(object string) ([]Authorization, error) {
	var out []Authorization
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		out, err = authorizationsFor(tx, object)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: authorizations for %s: %w", object, err)
	}
	return out, nil
}

func authorizationsFor(tx *bbolt.Tx, object string) ([]Authorization, error) {
	var out []Authorization
	records := tx.Bucket(bucketAuthorizations)
	prefix := authorizationObjectKey(object, "")
	c := tx.Bucket(bucketAuthorizationObject).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		var a Authorization
		found, err := getJSON(records, k[len(prefix):], &a)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("authorization index names missing %q", k[len(prefix):])
		}
		out = append(out, a)
	}
	return out, nil
}

// RevokeAuthorizations revokes, at the time at, every standing
// authorization of object granted to actorID, and returns them as revoked.
// Authorizations held by another actor are left alone: only the author's
// Delete of their own post revokes. The records stay, so their URLs answer
// 410 rather than 404.
func (s *Store) RevokeAuthorizations(object, actorID string, at time.Time) ([]Authorization, error) {
	var revoked []Authorization
	err := s.db.Update(func(tx *bbolt.Tx) error {
		all, err := authorizationsFor(tx, object)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketAuthorizations)
		for _, a := range all {
			if a.ActorID != actorID || !a.RevokedAt.IsZero() {
				continue
			}
			a.RevokedAt = at
			if err := putJSON(b, []byte(a.ID), a); err != nil {
				return err
			}
			revoked = append(revoked, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: revoke authorizations of %s: %w", object, err)
	}
	return revoked, nil
}

// RevokeActorAuthorizations revokes, at the time at, every standing
// authorization granted to actorID (the account was deleted). It walks
// every authorization: accounts are deleted rarely, and an index by actor
// would cost every grant a write for that.
func (s *Store) RevokeActorAuthorizations(actorID string, at time.Time) ([]Authorization, error) {
	var revoked []Authorization
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAuthorizations)
		var hit []Authorization
		err := b.ForEach(func(k, v []byte) error {
			var a Authorization
			if err := decode(v, &a); err != nil {
				return fmt.Errorf("authorization %q: %w", k, err)
			}
			if a.ActorID == actorID && a.RevokedAt.IsZero() {
				hit = append(hit, a)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, a := range hit {
			a.RevokedAt = at
			if err := putJSON(b, []byte(a.ID), a); err != nil {
				return err
			}
			revoked = append(revoked, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: revoke authorizations of actor %s: %w", actorID, err)
	}
	return revoked, nil
}
