package storage

import (
	"bytes"
	"fmt"

	"go.etcd.io/bbolt"
)

// PutFollower creates or replaces a follower. A zero CreatedAt keeps the
// stored one (or is set to now for a new follower), so re-accepting a Follow
// does not move the follower in the paged list. An empty Status means
// FollowerAccepted.
func (s *Store) PutFollower(f Follower) error {
	if f.ActorID == "" {
		return fmt.Errorf("storage: put follower: empty actor id")
	}
	err := s.update(func(tx *bbolt.Tx) error { return s.putFollower(tx, f) })
	if err != nil {
		return fmt.Errorf("storage: put follower: %w", err)
	}
	return nil
}

func (s *Store) putFollower(tx *bbolt.Tx, f Follower) error {
	b := tx.Bucket(bucketFollowers)
	order := tx.Bucket(bucketFollowerOrder)
	var old Follower
	found, err := getJSON(b, []byte(f.ActorID), &old)
	if err != nil {
		return err
	}
	oldInbox := ""
	if found {
		if f.CreatedAt.IsZero() {
			f.CreatedAt = old.CreatedAt
		}
		if err := order.Delete(followerOrderKey(old)); err != nil {
			return err
		}
		oldInbox = indexedInbox(old)
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = s.now()
	}
	if f.Status == "" {
		f.Status = FollowerAccepted
	}
	if err := putJSON(b, []byte(f.ActorID), f); err != nil {
		return err
	}
	if err := moveDeliveryInbox(tx, oldInbox, indexedInbox(f)); err != nil {
		return err
	}
	return order.Put(followerOrderKey(f), []byte(f.Status))
}

func followerOrderKey(f Follower) []byte {
	return append(timeKey(f.CreatedAt), f.ActorID...)
}

// Follower returns one follower, or ErrNotFound.
func (s *Store) Follower(actorID string) (Follower, error) {
	var f Follower
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketFollowers), []byte(actorID), &f)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Follower{}, fmt.Errorf("storage: get follower %s: %w", actorID, err)
	}
	return f, nil
}

// DeleteFollower removes a follower; it reports whether one was there.
func (s *Store) DeleteFollower(actorID string) (bool, error) {
	var deleted bool
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		deleted, err = deleteFollower(tx, actorID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("storage: delete follower: %w", err)
	}
	return deleted, nil
}

func deleteFollower(tx *bbolt.Tx, actorID string) (bool, error) {
	b := tx.Bucket(bucketFollowers)
	var old Follower
	found, err := getJSON(b, []byte(actorID), &old)
	if err != nil || !found {
		return false, err
	}
	if err := tx.Bucket(bucketFollowerOrder).Delete(followerOrderKey(old)); err != nil {
		return false, err
	}
	if err := moveDeliveryInbox(tx, indexedInbox(old), ""); err != nil {
		return false, err
	}
	return true, b.Delete([]byte(actorID))
}

// DeleteFollowersByInbox removes every follower whose personal Inbox is
// inbox (a 410 Gone from it means the account is gone). Followers that only
// share that URL as SharedInbox are kept: a shared inbox answering 410 does
// not tell which of its accounts went away.
func (s *Store) DeleteFollowersByInbox(inbox string) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		var ids []string
		err := tx.Bucket(bucketFollowers).ForEach(func(k, v []byte) error {
			var f Follower
			if err := decode(v, &f); err != nil {
				return fmt.Errorf("follower %q: %w", k, err)
			}
			if f.Inbox == inbox {
				ids = append(ids, f.ActorID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			ok, err := deleteFollower(tx, id)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: delete followers by inbox: %w", err)
	}
	return n, nil
}

// Followers lists followers with the given status (all when status is
// empty), oldest first.
func (s *Store) Followers(status FollowerStatus) ([]Follower, error) {
	var out []Follower
	err := s.db.View(func(tx *bbolt.Tx) error {
		return eachFollower(tx, status, func(f Follower) bool {
			out = append(out, f)
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list followers: %w", err)
	}
	return out, nil
}

// FollowersPage returns accepted followers in a stable order (CreatedAt,
// then ActorID), skipping offset and returning at most limit, with the total
// number of accepted followers.
func (s *Store) FollowersPage(offset, limit int) ([]Follower, int, error) {
	var out []Follower
	total := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		followers := tx.Bucket(bucketFollowers)
		return tx.Bucket(bucketFollowerOrder).ForEach(func(k, v []byte) error {
			if FollowerStatus(v) != FollowerAccepted {
				return nil
			}
			i := total
			total++
			if i < offset || len(out) >= limit {
				return nil
			}
			var f Follower
			found, err := getJSON(followers, k[timeKeyLen:], &f)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("follower index names missing %q", k[timeKeyLen:])
			}
			out = append(out, f)
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: followers page: %w", err)
	}
	return out, total, nil
}

// CountFollowers counts accepted followers.
func (s *Store) CountFollowers() (int, error) {
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFollowerOrder).ForEach(func(_, v []byte) error {
			if FollowerStatus(v) == FollowerAccepted {
				n++
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("storage: count followers: %w", err)
	}
	return n, nil
}

// eachFollower walks followers in list order; fn returns false to stop.
func eachFollower(tx *bbolt.Tx, status FollowerStatus, fn func(Follower) bool) error {
	followers := tx.Bucket(bucketFollowers)
	c := tx.Bucket(bucketFollowerOrder).Cursor()
	want := []byte(status)
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if status != "" && !bytes.Equal(v, want) {
			continue
		}
		var f Follower
		found, err := getJSON(followers, k[timeKeyLen:], &f)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("follower index names missing %q", k[timeKeyLen:])
		}
		if !fn(f) {
			return nil
		}
	}
	return nil
}
