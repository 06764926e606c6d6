package storage

import (
	"fmt"
	"sort"
	"time"

	"go.etcd.io/bbolt"
)

// Report is a remote server's Flag about our content or our actor, kept for
// the admin.
type Report struct {
	ID         string   // the Flag activity's id
	ActorID    string   // who sent it (often the server's instance actor)
	Objects    []string // what it is about: our Notes, our actor, a reply
	Content    string   `json:",omitempty"` // the reporter's comment, plain text
	ReceivedAt time.Time
}

// PutReport records a report once: the same Flag sent again is ignored.
func (s *Store) PutReport(r Report) (created bool, err error) {
	if r.ID == "" {
		return false, fmt.Errorf("storage: put report: empty id")
	}
	err = s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketReports)
		if b.Get([]byte(r.ID)) != nil {
			return nil
		}
		created = true
		if r.ReceivedAt.IsZero() {
			r.ReceivedAt = s.now()
		}
		return putJSON(b, []byte(r.ID), r)
	})
	if err != nil {
		return false, fmt.Errorf("storage: put report %s: %w", r.ID, err)
	}
	return created, nil
}

// Reports lists the reports, newest first.
func (s *Store) Reports() ([]Report, error) {
	var out []Report
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketReports).ForEach(func(k, v []byte) error {
			var r Report
			if err := decode(v, &r); err != nil {
				return fmt.Errorf("report %q: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reports: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ReceivedAt.After(out[j].ReceivedAt) })
	return out, nil
}
