// Package storage owns everything durable, in one bbolt file: followers, the
// publication ledger, activities, the delivery queue and the remote key cache.
// Records are plain Go values; nothing here knows ActivityPub types. Every
// public method of Store is one bbolt transaction.
package storage

import (
	"errors"
	"time"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("storage: not found")

// FollowerStatus tells whether a follow request was accepted.
type FollowerStatus string

const (
	FollowerAccepted FollowerStatus = "accepted"
	FollowerPending  FollowerStatus = "pending" // waiting for an admin (manual approval)
)

// Follower is a remote actor that follows the bot.
type Follower struct {
	ActorID     string
	Inbox       string
	SharedInbox string // empty when the remote server has none
	FollowID    string // id of the Follow activity, for Accept/Reject
	Handle      string // preferredUsername@host, for display
	Host        string
	Status      FollowerStatus
	CreatedAt   time.Time
	// SignedAt is when the Follow that made (or last renewed) this
	// follower was signed: an older activity from the same actor cannot
	// undo it, and an older Follow cannot replace it. Zero in followers
	// stored before it existed.
	SignedAt time.Time `json:",omitzero"`
}

// DeliveryInbox is where activities for this follower go: the shared inbox
// when there is one, so followers on one server cost one delivery.
func (f Follower) DeliveryInbox() string {
	if f.SharedInbox != "" {
		return f.SharedInbox
	}
	return f.Inbox
}

// LedgerEntry records what was announced for one post language version.
type LedgerEntry struct {
	Key       string // posts.Post.Key(): "slug/lang"
	NoteID    string
	Hash      string    // content hash last announced
	Published time.Time // the Note's published time
	Updated   time.Time // last Update sent; zero if never edited
	Deleted   time.Time // zero unless a Delete was sent
	// Pushed is false for the back catalogue taken in on the first start:
	// it is in the outbox but was never delivered to followers.
	Pushed bool
	// ActivityID is the last activity announced for the Note (Create,
	// Update or Delete), set by Publish. Empty in entries written before
	// it existed.
	ActivityID string `json:",omitempty"`
}

// Activity is a stored outgoing activity, kept so its id dereferences.
type Activity struct {
	ID        string // full URL id
	Type      string // Create, Update, Delete, Accept, Reject…
	ObjectID  string // id of the object it is about
	Published time.Time
	InOutbox  bool   // listed in the outbox collection
	JSON      []byte // the exact document that is delivered and served
}

// JobState is where a delivery job stands.
type JobState string

const (
	JobPending JobState = "pending"
	JobFailed  JobState = "failed"
)

// Job is one delivery: one activity to one inbox. It is written before any
// attempt is made, so a crash never loses it.
type Job struct {
	ID          uint64
	ActivityID  string
	Inbox       string
	Host        string
	Topic       string // ordering key (the object id): one chain per (Inbox, Topic)
	State       JobState
	Attempts    int
	CreatedAt   time.Time
	NextAttempt time.Time
	LastStatus  int
	LastError   string
}

// QueueStats summarises the delivery queue.
type QueueStats struct {
	Pending  int // never tried yet
	Retrying int // tried at least once, still pending
	Failed   int
	PerHost  map[string]HostStats
}

// HostStats is the queue seen from one remote host.
type HostStats struct {
	Pending, Retrying, Failed int
	LastError                 string
	// NextAttempt is the earliest next attempt of its pending jobs (zero
	// when none is pending). A job queued behind another of its chain
	// counts with its own time, though it waits for the one before it.
	NextAttempt time.Time
	// RetryingSince is when the oldest of its jobs tried at least once
	// was queued (zero when none): that job is given up at RetryingSince
	// plus the retry window.
	RetryingSince time.Time
}

// DeliveryCounts tells how far one activity got.
type DeliveryCounts struct {
	Delivered, Pending, Failed int
}

// RemoteKey is a cached public key of a remote actor.
type RemoteKey struct {
	KeyID        string
	Owner        string // actor id that owns the key
	PublicKeyPEM string
	Inbox        string // owner's inbox, learnt with the key
	SharedInbox  string
	Handle       string
	// The owner's display data, learnt with the key so that an interaction
	// needs no second fetch of its author: plain-text name, profile page,
	// avatar URL. Empty in keys cached before they existed.
	Name      string `json:",omitempty"`
	URL       string `json:",omitempty"`
	Avatar    string `json:",omitempty"`
	FetchedAt time.Time
}
