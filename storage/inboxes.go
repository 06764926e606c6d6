package storage

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// The delivery inbox index (bucket delivery_inboxes) maps each
// Follower.DeliveryInbox() of accepted followers to how many accepted
// followers deliver there, as a uvarint. It is kept in the transaction that
// changes the followers, so a publication reads its fan-out list without
// decoding a single follower. A count reaching zero removes the key.

// DeliveryInboxes returns the distinct delivery inboxes of accepted
// followers, sorted (bbolt's key order is byte order, which is Go's string
// order).
func (s *Store) DeliveryInboxes() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDeliveryInboxes).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: delivery inboxes: %w", err)
	}
	return out, nil
}

// indexedInbox is the index key f counts under, or "" when f is not
// counted (not accepted, or no inbox at all).
func indexedInbox(f Follower) string {
	if f.Status != FollowerAccepted {
		return ""
	}
	return f.DeliveryInbox()
}

// moveDeliveryInbox moves one follower's count from the inbox old to the
// inbox new; either may be "" (not counted).
func moveDeliveryInbox(tx *bbolt.Tx, old, new string) error {
	if old == new {
		return nil
	}
	if old != "" {
		if err := addDeliveryInbox(tx, old, -1); err != nil {
			return err
		}
	}
	if new != "" {
		return addDeliveryInbox(tx, new, 1)
	}
	return nil
}

// addDeliveryInbox adds delta to the count of inbox. A count that would go
// below zero is dropped rather than refused: a stale index must not stop a
// follower from being removed.
func addDeliveryInbox(tx *bbolt.Tx, inbox string, delta int64) error {
	b := tx.Bucket(bucketDeliveryInboxes)
	key := []byte(inbox)
	n, err := inboxCount(b.Get(key))
	if err != nil {
		return fmt.Errorf("delivery inbox %q: %w", inbox, err)
	}
	n += delta
	if n <= 0 {
		return b.Delete(key)
	}
	return b.Put(key, binary.AppendUvarint(nil, uint64(n)))
}

// inboxCount decodes an index value; nil (absent) is zero.
func inboxCount(v []byte) (int64, error) {
	if v == nil {
		return 0, nil
	}
	n, size := binary.Uvarint(v)
	if size <= 0 || size != len(v) || n > 1<<62 {
		return 0, fmt.Errorf("bad count %x", v)
	}
	return int64(n), nil
}

// rebuildDeliveryInboxes recreates the index from the follower records.
func rebuildDeliveryInboxes(tx *bbolt.Tx) error {
	if tx.Bucket(bucketDeliveryInboxes) != nil {
		if err := tx.DeleteBucket(bucketDeliveryInboxes); err != nil {
			return err
		}
	}
	b, err := tx.CreateBucket(bucketDeliveryInboxes)
	if err != nil {
		return err
	}
	counts := map[string]uint64{}
	err = tx.Bucket(bucketFollowers).ForEach(func(k, v []byte) error {
		var f Follower
		if err := decode(v, &f); err != nil {
			return fmt.Errorf("follower %q: %w", k, err)
		}
		if in := indexedInbox(f); in != "" {
			counts[in]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for in, n := range counts {
		if err := b.Put([]byte(in), binary.AppendUvarint(nil, n)); err != nil {
			return err
		}
	}
	return nil
}

// deliveryInboxesAddUp is a cheap check, made on Open, that the index
// counts as many accepted followers as the follower order index does,
// without decoding any record. It catches followers added or removed by a
// crieur older than the index (a downgrade then upgrade).
func deliveryInboxesAddUp(tx *bbolt.Tx) (bool, error) {
	var accepted, indexed int64
	err := tx.Bucket(bucketFollowerOrder).ForEach(func(_, v []byte) error {
		if FollowerStatus(v) == FollowerAccepted {
			accepted++
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	err = tx.Bucket(bucketDeliveryInboxes).ForEach(func(k, v []byte) error {
		n, err := inboxCount(v)
		indexed += n
		return err
	})
	if err != nil {
		return false, nil // an undecodable count: rebuild
	}
	return accepted == indexed, nil
}
