package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Totals are the instance-wide counts a monitoring scrape reads: what
// `crieur status` shows per article, summed. Each comes from an index or a
// counter, never from decoding a big bucket: see Totals.
type Totals struct {
	// Followers by status (accepted, pending).
	Followers map[FollowerStatus]int
	// PendingJobs are the deliveries queued and not finished (never tried
	// or retrying); FailedJobs the given-up ones still kept for `crieur
	// queue retry`.
	PendingJobs, FailedJobs int
	// Interactions counts the stored interactions by kind, then by
	// moderation state ("" for shown ones, ModerationHidden,
	// ModerationPending).
	Interactions map[InteractionKind]map[string]int
	// Articles are the ledger's entries not deleted: the articles in the
	// outbox (back catalogue included).
	Articles int
}

// Totals reads every count in one read transaction. The cost grows with
// the follower index (a key and a status word per follower), the delivery
// counters (one small record per activity still stored), the failed jobs'
// keys (bounded by -keep-failed; not decoded), the interaction counters
// (one per Note and kind) and the ledger (one per article). The pending
// jobs, which a fan-out makes as many as followers, are not walked: their
// number is the sum of the activities' delivery counters.
func (s *Store) Totals() (Totals, error) {
	t := Totals{
		Followers:    map[FollowerStatus]int{},
		Interactions: map[InteractionKind]map[string]int{},
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketFollowerOrder).ForEach(func(_, v []byte) error {
			t.Followers[FollowerStatus(v)]++
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketCounters).ForEach(func(k, v []byte) error {
			var c DeliveryCounts
			if err := decode(v, &c); err != nil {
				return fmt.Errorf("delivery counts %q: %w", k, err)
			}
			t.PendingJobs += c.Pending
			return nil
		}); err != nil {
			return err
		}
		c := tx.Bucket(bucketFailed).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			t.FailedJobs++
		}
		if err := tx.Bucket(bucketInteractionCounts).ForEach(func(k, v []byte) error {
			// NoteID 0x00 kind[:state] → uint64.
			i := bytes.LastIndexByte(k, 0)
			if i < 0 || len(v) != 8 {
				return nil
			}
			kind, state, _ := bytes.Cut(k[i+1:], []byte(":"))
			byState := t.Interactions[InteractionKind(kind)]
			if byState == nil {
				byState = map[string]int{}
				t.Interactions[InteractionKind(kind)] = byState
			}
			byState[string(state)] += int(binary.BigEndian.Uint64(v))
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			var e struct{ Deleted time.Time }
			if err := decode(v, &e); err != nil {
				return fmt.Errorf("ledger %q: %w", k, err)
			}
			if e.Deleted.IsZero() {
				t.Articles++
			}
			return nil
		})
	})
	if err != nil {
		return Totals{}, fmt.Errorf("storage: totals: %w", err)
	}
	return t, nil
}
