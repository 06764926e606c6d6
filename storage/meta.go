package storage

import (
	"fmt"

	"go.etcd.io/bbolt"
)

// Meta returns a small named value kept for other rooms (for example the
// publisher's "back catalogue imported" marker); ok is false when unset.
// Keys are namespaced by their owner ("publisher.state").
func (s *Store) Meta(key string) (value string, ok bool, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
			value, ok = string(v), true
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("storage: get meta %s: %w", key, err)
	}
	return value, ok, nil
}

// SetMeta stores a small named value.
func (s *Store) SetMeta(key, value string) error {
	if key == "" {
		return fmt.Errorf("storage: set meta: empty key")
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), []byte(value))
	})
	if err != nil {
		return fmt.Errorf("storage: set meta %s: %w", key, err)
	}
	return nil
}

// EnqueueWithMeta stores act, queues jobs and sets the meta value key, in
// one transaction: an announcement that is not about a post (a changed
// profile) is recorded as sent exactly when its deliveries are queued, so
// a crash neither loses it nor sends it twice.
func (s *Store) EnqueueWithMeta(key, value string, act Activity, jobs []Job) error {
	if key == "" {
		return fmt.Errorf("storage: enqueue with meta: empty key")
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put([]byte(key), []byte(value)); err != nil {
			return err
		}
		return s.storeAndEnqueue(tx, act, jobs)
	})
	if err != nil {
		return fmt.Errorf("storage: enqueue %s with meta %s: %w", act.ID, key, err)
	}
	return nil
}

// HasPast tells whether the database holds anything of an instance that
// has run: followers in any state, activities, ledger entries or jobs.
func (s *Store) HasPast() (bool, error) {
	past := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketFollowers, bucketActivities, bucketLedger, bucketJobs, bucketFailed} {
			if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
				past = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: has past: %w", err)
	}
	return past, nil
}
