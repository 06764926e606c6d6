package storage

import (
	"bytes"
	"fmt"

	"go.etcd.io/bbolt"
)

// ReplyLink is a reply's place in the conversation under a Note: enough
// to thread and page it without reading its content.
type ReplyLink struct {
	ID        string
	InReplyTo string
}

// ReplyLinks lists the public replies of noteID (KindReply, at any depth),
// oldest first, with their parents only: the article page threads a long
// conversation from these, then reads in full (Interactions) the replies
// of the page it shows. The parents come from the note index itself, so a
// 1,000-reply conversation is threaded without decoding 1,000 records.
func (s *Store) ReplyLinks(noteID string) ([]ReplyLink, error) {
	var out []ReplyLink
	err := s.db.View(func(tx *bbolt.Tx) error {
		prefix := notePrefix(noteID, KindReply)
		c := tx.Bucket(bucketInteractionNote).Cursor()
		b := tx.Bucket(bucketInteractions)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			id := k[len(prefix)+timeKeyLen:]
			if len(v) > 0 {
				// The index carries the parent: no record is read.
				out = append(out, ReplyLink{ID: string(id), InReplyTo: string(v)})
				continue
			}
			// An entry written before the index kept parents.
			var l ReplyLink
			found, err := getJSON(b, id, &l)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("index names missing interaction %q", id)
			}
			out = append(out, l)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reply links of %s: %w", noteID, err)
	}
	return out, nil
}

// Interactions returns the interactions with these ids, in one
// transaction, in the order asked; ids not (or no longer) stored are left
// out.
func (s *Store) Interactions(ids []string) ([]Interaction, error) {
	out := make([]Interaction, 0, len(ids))
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketInteractions)
		for _, id := range ids {
			var i Interaction
			found, err := getJSON(b, []byte(id), &i)
			if err != nil {
				return err
			}
			if found {
				out = append(out, i)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read %d interactions: %w", len(ids), err)
	}
	return out, nil
}
