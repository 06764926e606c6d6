package storage

import (
	"fmt"

	"go.etcd.io/bbolt"
)

// PutActivity stores (or replaces) an activity and keeps the outbox index in
// step with its InOutbox flag.
func (s *Store) PutActivity(act Activity) error {
	if err := s.db.Update(func(tx *bbolt.Tx) error { return putActivity(tx, act) }); err != nil {
		return fmt.Errorf("storage: put activity: %w", err)
	}
	return nil
}

func putActivity(tx *bbolt.Tx, act Activity) error {
	if act.ID == "" {
		return fmt.Errorf("activity without id")
	}
	b := tx.Bucket(bucketActivities)
	outbox := tx.Bucket(bucketOutbox)
	var old Activity
	found, err := getJSON(b, []byte(act.ID), &old)
	if err != nil {
		return err
	}
	if found && old.InOutbox {
		if err := outbox.Delete(outboxKey(old)); err != nil {
			return err
		}
	}
	if err := putJSON(b, []byte(act.ID), act); err != nil {
		return err
	}
	if act.InOutbox {
		return outbox.Put(outboxKey(act), []byte(act.ID))
	}
	return nil
}

func outboxKey(a Activity) []byte { return append(timeKey(a.Published), a.ID...) }

// Activity returns one stored activity, or ErrNotFound.
func (s *Store) Activity(id string) (Activity, error) {
	var act Activity
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketActivities), []byte(id), &act)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Activity{}, fmt.Errorf("storage: get activity %s: %w", id, err)
	}
	return act, nil
}

// Outbox returns activities flagged InOutbox, newest first (by Published,
// then id), skipping offset and returning at most limit, with their total.
func (s *Store) Outbox(offset, limit int) ([]Activity, int, error) {
	var out []Activity
	total := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		acts := tx.Bucket(bucketActivities)
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			i := total
			total++
			if i < offset || len(out) >= limit {
				continue
			}
			var a Activity
			found, err := getJSON(acts, v, &a)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("outbox names missing activity %q", v)
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: outbox: %w", err)
	}
	return out, total, nil
}

// LedgerEntry returns what was announced for one post key, or ErrNotFound.
func (s *Store) LedgerEntry(key string) (LedgerEntry, error) {
	if e, ok := s.ledger.get(key); ok {
		return e, nil
	}
	gen := s.ledger.begin()
	var e LedgerEntry
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketLedger), []byte(key), &e)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return LedgerEntry{}, fmt.Errorf("storage: get ledger entry %s: %w", key, err)
	}
	s.ledger.put(gen, key, e)
	return e, nil
}

// Ledger returns every ledger entry, ordered by key.
func (s *Store) Ledger() ([]LedgerEntry, error) {
	var out []LedgerEntry
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			var e LedgerEntry
			if err := decode(v, &e); err != nil {
				return fmt.Errorf("ledger %q: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: ledger: %w", err)
	}
	return out, nil
}

// Publish records an announcement in one transaction: the ledger entry, the
// activity and its delivery jobs are all written, or none is. jobs may be
// empty (back catalogue taken in without pushing). The entry's ActivityID
// becomes act.ID. It returns the jobs a Deliverer may start at once (see
// Deliverer.Offer): those due now and first in line for their inbox.
func (s *Store) Publish(entry LedgerEntry, act Activity, jobs []Job) ([]Job, error) {
	if entry.Key == "" {
		return nil, fmt.Errorf("storage: publish: ledger entry without key")
	}
	entry.ActivityID = act.ID
	var ready []Job
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketLedger), []byte(entry.Key), entry); err != nil {
			return err
		}
		if err := putActivity(tx, act); err != nil {
			return err
		}
		var err error
		ready, err = s.enqueue(tx, act, jobs)
		return err
	})
	s.ledger.forget(entry.Key)
	if err != nil {
		return nil, fmt.Errorf("storage: publish %s: %w", entry.Key, err)
	}
	return ready, nil
}
