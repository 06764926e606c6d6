package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// InteractionKind is what a remote actor did about one of our Notes.
type InteractionKind string

const (
	KindReply    InteractionKind = "reply"    // a public reply, shown under the article
	KindMention  InteractionKind = "mention"  // a reply or mention addressed to the bot only: listed for the admin, never shown
	KindLike     InteractionKind = "like"     // a Like, or an emoji reaction (Emoji set)
	KindAnnounce InteractionKind = "announce" // a boost
	KindQuote    InteractionKind = "quote"    // a post quoting the Note
)

// Kinds lists every kind, in the order pages and reports show them.
var Kinds = []InteractionKind{KindReply, KindLike, KindAnnounce, KindQuote, KindMention}

// RemoteActor is how an interaction's author is shown, as it was when the
// interaction was stored.
type RemoteActor struct {
	ID     string
	Name   string `json:",omitempty"` // display name, plain text
	Handle string `json:",omitempty"` // preferredUsername@host
	URL    string `json:",omitempty"` // profile page
	Avatar string `json:",omitempty"` // the avatar's URL on its server
}

// Interaction is a reply, like, boost or quote of one of our Notes, kept as
// plain data (nothing here knows ActivityStreams).
type Interaction struct {
	// ID is the remote post's id for replies, mentions and quotes, and the
	// activity's id for likes and boosts.
	ID   string
	Kind InteractionKind
	// NoteID is our Note it belongs to: for a reply in a thread, the
	// article's Note, however deep.
	NoteID string
	// InReplyTo is a reply's parent: our Note, or a reply kept before.
	InReplyTo string `json:",omitempty"`
	Actor     RemoteActor
	URL       string `json:",omitempty"` // where people read it on its server
	Content   string `json:",omitempty"` // replies, mentions, quotes: sanitised HTML
	Summary   string `json:",omitempty"` // content warning, plain text
	Sensitive bool   `json:",omitempty"`
	Language  string `json:",omitempty"`
	Emoji     string `json:",omitempty"` // an emoji reaction's emoji
	// ActivityID is the activity that brought or last changed it (the
	// Create or Update of a reply; the Like or Announce itself).
	ActivityID string    `json:",omitempty"`
	Published  time.Time // as the remote server says
	Updated    time.Time `json:",omitzero"` // last edit, zero if never edited
	ReceivedAt time.Time // when crieur stored it first
	// Moderation is "" for an interaction shown on pages and in
	// collections, ModerationHidden when the admin hid it, and
	// ModerationPending while it waits for the admin's approval. Only
	// shown ones are listed by NoteInteractions and counted.
	Moderation string `json:",omitempty"`
}

// Moderation states of an interaction.
const (
	ModerationHidden  = "hidden"
	ModerationPending = "pending"
)

// indexKind is the kind an interaction is indexed and counted under: its
// own when shown, kind:state when hidden or pending, so that listings and
// counts of a kind hold the shown ones only.
func indexKind(i Interaction) InteractionKind {
	if i.Moderation == "" {
		return i.Kind
	}
	return i.Kind + InteractionKind(":"+i.Moderation)
}

// ErrNotOwner is returned when an interaction would be changed or removed by
// another actor than its author.
var ErrNotOwner = errors.New("storage: interaction belongs to another actor")

// Index layouts (bucketInteractionNote, bucketInteractionActor,
// bucketInteractionRecent) and counters:
//
//	note:    NoteID 0x00 kind 0x00 timeKey(Published) id → InReplyTo
//	actor:   ActorID 0x00 NoteID 0x00 kind 0x00 id → empty
//	recent:  timeKey(ReceivedAt) id → empty
//	counts:  NoteID 0x00 kind → uint64 big endian
func interactionNoteKey(i Interaction) []byte {
	k := append(notePrefix(i.NoteID, indexKind(i)), timeKey(i.Published)...)
	return append(k, i.ID...)
}

func notePrefix(noteID string, kind InteractionKind) []byte {
	k := make([]byte, 0, len(noteID)+len(kind)+2+timeKeyLen+64)
	k = append(k, noteID...)
	k = append(k, 0)
	k = append(k, kind...)
	return append(k, 0)
}

func actorPrefix(actorID string) []byte { return append([]byte(actorID), 0) }

func interactionActorKey(i Interaction) []byte {
	k := actorPrefix(i.Actor.ID)
	k = append(k, i.NoteID...)
	k = append(k, 0)
	k = append(k, i.Kind...)
	k = append(k, 0)
	return append(k, i.ID...)
}

func interactionRecentKey(i Interaction) []byte {
	return append(timeKey(i.ReceivedAt), i.ID...)
}

func countKey(noteID string, kind InteractionKind) []byte {
	return append(append([]byte(noteID), 0), kind...)
}

// PutInteraction stores i, or updates the interaction with its id (an
// edited reply), in one transaction with its indexes and counts. Likes and
// boosts are one per actor and Note: a second one with another activity id
// replaces the first. created says whether i is new. An existing
// interaction of another actor is never replaced (ErrNotOwner).
func (s *Store) PutInteraction(i Interaction) (created bool, err error) {
	if i.ID == "" || i.NoteID == "" || i.Actor.ID == "" || i.Kind == "" {
		return false, errors.New("storage: put interaction: id, note, actor and kind are required")
	}
	err = s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketInteractions)
		var old Interaction
		found, err := getJSON(b, []byte(i.ID), &old)
		if err != nil {
			return err
		}
		if found {
			if old.Actor.ID != i.Actor.ID {
				return refuse(ErrNotOwner)
			}
			// An edit keeps the admin's decision about it.
			i.ReceivedAt, i.Moderation = old.ReceivedAt, old.Moderation
			if err := unindexInteraction(tx, old); err != nil {
				return err
			}
		} else {
			created = true
			if i.ReceivedAt.IsZero() {
				i.ReceivedAt = s.now()
			}
			if i.Kind == KindLike || i.Kind == KindAnnounce {
				if err := dropSameKind(tx, i); err != nil {
					return err
				}
			}
		}
		if i.Published.IsZero() {
			i.Published = i.ReceivedAt
		}
		if err := putJSON(b, []byte(i.ID), i); err != nil {
			return err
		}
		return indexInteraction(tx, i)
	})
	if err != nil {
		return false, fmt.Errorf("storage: put interaction %s: %w", i.ID, err)
	}
	return created, nil
}

// dropSameKind removes the actor's other likes (or boosts) of the same Note.
func dropSameKind(tx *bbolt.Tx, i Interaction) error {
	prefix := actorPrefix(i.Actor.ID)
	prefix = append(prefix, i.NoteID...)
	prefix = append(prefix, 0)
	prefix = append(prefix, i.Kind...)
	prefix = append(prefix, 0)
	var ids []string
	c := tx.Bucket(bucketInteractionActor).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	for _, id := range ids {
		if _, err := deleteInteraction(tx, id); err != nil {
			return err
		}
	}
	return nil
}

func indexInteraction(tx *bbolt.Tx, i Interaction) error {
	// The note index's value is the parent, so a conversation is
	// threaded from the index alone (ReplyLinks).
	if err := tx.Bucket(bucketInteractionNote).Put(interactionNoteKey(i), []byte(i.InReplyTo)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketInteractionActor).Put(interactionActorKey(i), nil); err != nil {
		return err
	}
	if err := tx.Bucket(bucketInteractionRecent).Put(interactionRecentKey(i), nil); err != nil {
		return err
	}
	return addCount(tx, countKey(i.NoteID, indexKind(i)), 1)
}

func unindexInteraction(tx *bbolt.Tx, i Interaction) error {
	if err := tx.Bucket(bucketInteractionNote).Delete(interactionNoteKey(i)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketInteractionActor).Delete(interactionActorKey(i)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketInteractionRecent).Delete(interactionRecentKey(i)); err != nil {
		return err
	}
	return addCount(tx, countKey(i.NoteID, indexKind(i)), -1)
}

func addCount(tx *bbolt.Tx, key []byte, delta int64) error {
	b := tx.Bucket(bucketInteractionCounts)
	var n int64
	if v := b.Get(key); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	if n <= 0 {
		return b.Delete(key)
	}
	return b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

func deleteInteraction(tx *bbolt.Tx, id string) (Interaction, error) {
	b := tx.Bucket(bucketInteractions)
	var old Interaction
	found, err := getJSON(b, []byte(id), &old)
	if err != nil || !found {
		return Interaction{}, err
	}
	if err := unindexInteraction(tx, old); err != nil {
		return Interaction{}, err
	}
	return old, b.Delete([]byte(id))
}

// Interaction returns one interaction, or ErrNotFound.
func (s *Store) Interaction(id string) (Interaction, error) {
	var i Interaction
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketInteractions), []byte(id), &i)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Interaction{}, fmt.Errorf("storage: get interaction %s: %w", id, err)
	}
	return i, nil
}

// DeleteInteraction removes the interaction id when actorID is its author
// (an Undo or Delete by anyone else changes nothing: ErrNotOwner). It
// returns what was removed; found is false when there was nothing.
func (s *Store) DeleteInteraction(id, actorID string) (removed Interaction, found bool, err error) {
	err = s.update(func(tx *bbolt.Tx) error {
		var old Interaction
		ok, err := getJSON(tx.Bucket(bucketInteractions), []byte(id), &old)
		if err != nil || !ok {
			return err
		}
		if old.Actor.ID != actorID {
			return refuse(ErrNotOwner)
		}
		removed, err = deleteInteraction(tx, id)
		found = err == nil
		return err
	})
	if err != nil {
		return Interaction{}, false, fmt.Errorf("storage: delete interaction %s: %w", id, err)
	}
	return removed, found, nil
}

// DeleteInteractionsOf removes every interaction of actorID (its account
// was deleted) and returns how many.
func (s *Store) DeleteInteractionsOf(actorID string) (int, error) {
	n := 0
	err := s.update(func(tx *bbolt.Tx) error {
		n = 0
		prefix := actorPrefix(actorID)
		var ids []string
		c := tx.Bucket(bucketInteractionActor).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(prefix):]
			// NoteID 0x00 kind 0x00 id: the id is after the second 0x00.
			first := bytes.IndexByte(rest, 0)
			second := bytes.IndexByte(rest[first+1:], 0)
			ids = append(ids, string(rest[first+1+second+1:]))
		}
		for _, id := range ids {
			if _, err := deleteInteraction(tx, id); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: delete interactions of %s: %w", actorID, err)
	}
	return n, nil
}

// HasInteractionsOf reports whether actorID has any interaction stored.
func (s *Store) HasInteractionsOf(actorID string) (bool, error) {
	found := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		prefix := actorPrefix(actorID)
		k, _ := tx.Bucket(bucketInteractionActor).Cursor().Seek(prefix)
		found = k != nil && bytes.HasPrefix(k, prefix)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: interactions of %s: %w", actorID, err)
	}
	return found, nil
}

// NoteInteractions lists the interactions of kind about noteID, oldest
// first (or newest first), from offset, at most limit (0: all), with their
// total.
func (s *Store) NoteInteractions(noteID string, kind InteractionKind, offset, limit int, newestFirst bool) ([]Interaction, int, error) {
	var out []Interaction
	total := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		total = readCount(tx, countKey(noteID, kind))
		prefix := notePrefix(noteID, kind)
		c := tx.Bucket(bucketInteractionNote).Cursor()
		b := tx.Bucket(bucketInteractions)
		var k []byte
		next := c.Next
		if newestFirst {
			next = c.Prev
			k, _ = c.Seek(append(append([]byte(nil), prefix[:len(prefix)-1]...), 1))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else {
			k, _ = c.Seek(prefix)
		}
		skipped := 0
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = next() {
			if skipped < offset {
				skipped++
				continue
			}
			if limit > 0 && len(out) >= limit {
				break
			}
			id := k[len(prefix)+timeKeyLen:]
			var i Interaction
			found, err := getJSON(b, id, &i)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("index names missing interaction %q", id)
			}
			out = append(out, i)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: interactions of %s: %w", noteID, err)
	}
	return out, total, nil
}

// InteractionCounts returns how many interactions of each kind noteID has.
func (s *Store) InteractionCounts(noteID string) (map[InteractionKind]int, error) {
	out := map[InteractionKind]int{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		for _, k := range Kinds {
			if n := readCount(tx, countKey(noteID, k)); n > 0 {
				out[k] = n
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: interaction counts of %s: %w", noteID, err)
	}
	return out, nil
}

func readCount(tx *bbolt.Tx, key []byte) int {
	if v := tx.Bucket(bucketInteractionCounts).Get(key); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

// RecentInteractions lists the latest interactions received, newest first,
// at most limit.
func (s *Store) RecentInteractions(limit int) ([]Interaction, error) {
	var out []Interaction
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketInteractionRecent).Cursor()
		b := tx.Bucket(bucketInteractions)
		for k, _ := c.Last(); k != nil && len(out) < limit; k, _ = c.Prev() {
			var i Interaction
			found, err := getJSON(b, k[timeKeyLen:], &i)
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
		return nil, fmt.Errorf("storage: recent interactions: %w", err)
	}
	return out, nil
}

// SetModeration sets the moderation state of the interaction id ("" shows
// it) and moves it in the listings and counts accordingly.
func (s *Store) SetModeration(id, state string) (Interaction, error) {
	var i Interaction
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketInteractions)
		found, err := getJSON(b, []byte(id), &i)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		if err := unindexInteraction(tx, i); err != nil {
			return err
		}
		i.Moderation = state
		if err := putJSON(b, []byte(id), i); err != nil {
			return err
		}
		return indexInteraction(tx, i)
	})
	if err != nil {
		return Interaction{}, fmt.Errorf("storage: moderate %s: %w", id, err)
	}
	return i, nil
}
