package storage

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// EndFollow removes actorID's follower record, if any, and remembers that
// an activity the actor signed at signedAt ended its follow (Undo, Delete,
// Block), in one transaction: a Follow signed before that moment, replayed
// later, must not subscribe it again. It reports whether a follower was
// removed. An older end never replaces a newer one.
func (s *Store) EndFollow(actorID string, signedAt time.Time) (bool, error) {
	var removed bool
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		if removed, err = deleteFollower(tx, actorID); err != nil {
			return err
		}
		b := tx.Bucket(bucketFollowEnds)
		var old time.Time
		if _, err := getJSON(b, []byte(actorID), &old); err != nil {
			return err
		}
		if signedAt.After(old) {
			return putJSON(b, []byte(actorID), signedAt.UTC())
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: end follow of %s: %w", actorID, err)
	}
	return removed, nil
}

// FollowEndedAt is the signed time of the last activity that ended
// actorID's follow, or zero.
func (s *Store) FollowEndedAt(actorID string) (time.Time, error) {
	var t time.Time
	err := s.db.View(func(tx *bbolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketFollowEnds), []byte(actorID), &t)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("storage: follow end of %s: %w", actorID, err)
	}
	return t, nil
}

// PruneFollowEnds forgets the ends signed before before: once no Follow
// signed earlier can still pass the signature window, they protect
// nothing. It returns how many were dropped.
func (s *Store) PruneFollowEnds(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketFollowEnds)
		var drop [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var t time.Time
			if err := decode(v, &t); err != nil {
				return fmt.Errorf("follow end %q: %w", k, err)
			}
			if t.Before(before) {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(drop)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: prune follow ends: %w", err)
	}
	return n, nil
}
