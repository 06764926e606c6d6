package storage

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// What the store forgets, and when. Followers on dead servers, Follows
// answered by the thousand and strangers whose keys were checked once
// would otherwise make the data file grow for as long as crieur runs. The
// federation room calls these on a timer; each is one transaction.

// PruneFailed drops failed jobs whose last attempt was due before before
// (a failed job keeps the NextAttempt of its final attempt), in one
// transaction, and returns how many it dropped. Their activities' delivery
// counts keep them as failed: only the records that `crieur queue retry`
// could resend are gone.
func (s *Store) PruneFailed(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		c := tx.Bucket(bucketFailed).Cursor()
		for k, v := c.First(); k != nil; {
			j, err := decodeJob(v)
			if err != nil {
				return fmt.Errorf("job %x: %w", k, err)
			}
			if !j.NextAttempt.Before(before) {
				k, v = c.Next()
				continue
			}
			key := append([]byte(nil), k...)
			if err := c.Delete(); err != nil {
				return err
			}
			n++
			// After Delete the cursor may skip the next key: seek it.
			k, v = c.Seek(key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: prune failed jobs: %w", err)
	}
	return n, nil
}

// PruneAnswers drops the Accept and Reject activities published before
// before that no job still names: none pending, and none failed (`crieur
// queue retry` resends a failed job's own activity). Their delivery counts
// go with them. Every other activity stays: the outbox lists the Creates,
// and the ledger names each post's latest Create, Update or Delete. It
// returns how many activities were dropped.
func (s *Store) PruneAnswers(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		named := map[string]bool{}
		for _, name := range [][]byte{bucketJobs, bucketFailed} {
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				j, err := decodeJob(v)
				if err != nil {
					return fmt.Errorf("job %x: %w", k, err)
				}
				named[j.ActivityID] = true
				return nil
			})
			if err != nil {
				return err
			}
		}
		acts := tx.Bucket(bucketActivities)
		var drop [][]byte
		err := acts.ForEach(func(k, v []byte) error {
			// Only the fields the choice needs: the document itself, a
			// Note of several kilobytes for each post, is not decoded.
			var a struct {
				ID, Type  string
				Published time.Time
				InOutbox  bool
			}
			if err := decode(v, &a); err != nil {
				return fmt.Errorf("activity %q: %w", k, err)
			}
			if (a.Type == "Accept" || a.Type == "Reject") && !a.InOutbox &&
				a.Published.Before(before) && !named[a.ID] {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		counts := tx.Bucket(bucketCounters)
		for _, k := range drop {
			if err := acts.Delete(k); err != nil {
				return err
			}
			if err := counts.Delete(k); err != nil {
				return err
			}
		}
		n = len(drop)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: prune answers: %w", err)
	}
	return n, nil
}

// PruneRemoteKeys drops the cached keys fetched before before whose owner
// is not a follower (nor asking to be one). A key that is needed again is
// fetched again; followers' keys stay, so their Undo or Delete is checked
// without a fetch. It returns how many keys were dropped.
func (s *Store) PruneRemoteKeys(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		followers := tx.Bucket(bucketFollowers)
		var err error
		n, err = deleteRemoteKeysWhere(tx, func(rk RemoteKey) bool {
			return rk.FetchedAt.Before(before) && followers.Get([]byte(rk.Owner)) == nil
		})
		return err
	})
	s.remoteKeys.forget()
	if err != nil {
		return 0, fmt.Errorf("storage: prune remote keys: %w", err)
	}
	return n, nil
}
