package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultOpenTimeout is how long Open waits for the file lock. bbolt takes an
// exclusive flock; without a timeout a second crieur on the same data folder
// would hang forever instead of saying why it cannot start.
const DefaultOpenTimeout = 2 * time.Second

// fileMode keeps the database private to the user running crieur: it holds
// follower lists and delivery history.
const fileMode = 0o600

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("storage: database is locked by another process")

// ErrNewerSchema is returned by Open for a file written by a newer crieur.
var ErrNewerSchema = errors.New("storage: database written by a newer crieur")

// Bucket names, one per kind of record.
var (
	bucketFollowers     = []byte("followers")      // actorID → Follower
	bucketFollowerOrder = []byte("follower_order") // timeKey(CreatedAt)+actorID → status
	bucketActivities    = []byte("activities")     // activity id → Activity
	bucketOutbox        = []byte("outbox")         // timeKey(Published)+id → id (InOutbox only)
	bucketLedger        = []byte("ledger")         // post key → LedgerEntry
	bucketJobs          = []byte("jobs")           // u64(id) → Job (pending)
	bucketDue           = []byte("jobs_due")       // timeKey(NextAttempt)+u64(id) → chain prefix
	bucketChain         = []byte("jobs_chain")     // chain prefix+u64(id) → empty
	bucketFailed        = []byte("jobs_failed")    // u64(id) → Job (failed)
	bucketCounters      = []byte("delivery_counts")
	bucketRemoteKeys    = []byte("remote_keys") // keyID → RemoteKey
	bucketMeta          = []byte("meta")
	bucketFollowEnds    = []byte("follow_ends") // actorID → signed time of the activity that ended its follow
	// Interactions with our Notes (interactions.go has the index layouts).
	bucketInteractions      = []byte("interactions") // id → Interaction
	bucketInteractionNote   = []byte("interactions_by_note")
	bucketInteractionActor  = []byte("interactions_by_actor")
	bucketInteractionRecent = []byte("interactions_recent")
	bucketInteractionCounts = []byte("interaction_counts")
	bucketBlocks            = []byte("blocks")  // kind + " " + value → Block
	bucketReports           = []byte("reports") // Flag id → Report
	// Authorizations granted for interactions (authorizations.go).
	bucketAuthorizations      = []byte("authorizations")           // id → Authorization
	bucketAuthorizationObject = []byte("authorizations_by_object") // interacting object 0x00 id → empty
	// delivery inbox → uvarint count of accepted followers delivering there
	bucketDeliveryInboxes = []byte("delivery_inboxes")
	// Remote avatars fetched once and served by crieur (avatars.go).
	bucketAvatars     = []byte("avatars")      // key → Avatar
	bucketAvatarBytes = []byte("avatar_bytes") // key → the image's bytes

	allBuckets = [][]byte{
		bucketFollowers, bucketFollowerOrder, bucketActivities, bucketOutbox,
		bucketLedger, bucketJobs, bucketDue, bucketChain, bucketFailed,
		bucketCounters, bucketRemoteKeys, bucketMeta, bucketDeliveryInboxes, bucketFollowEnds,
		bucketInteractions, bucketInteractionNote, bucketInteractionActor, bucketInteractionRecent,
		bucketInteractionCounts, bucketBlocks, bucketReports, bucketAuthorizations, bucketAuthorizationObject,
		bucketAvatars, bucketAvatarBytes,
	}
)

// schemaVersion is written in meta on creation so a later layout change can
// recognise old files. Versions:
//
//   - "1": the first layout;
//   - "2": adds the delivery_inboxes index. Open builds it from the
//     followers when a file has none (a version 1 file);
//   - "3": job records are written in a binary layout (jobcodec.go). Older
//     JSON records are still read as they are, so nothing is converted.
//
// Open raises older files to schemaVersion and refuses newer ones: a crieur
// that does not know a layout would misread it (a version 2 crieur cannot
// read binary jobs, for instance).
const schemaVersion = 3

// schemaKey holds schemaVersion in the meta bucket (Meta("schema") reads it).
var schemaKey = []byte("schema")

// Options configure Open.
type Options struct {
	// Timeout for acquiring the file lock; DefaultOpenTimeout when zero.
	Timeout time.Duration
	// Now is the clock used for CreatedAt and default NextAttempt;
	// time.Now when nil.
	Now func() time.Time
	// MustExist says the file belongs to an instance that has run before
	// (its caller knows, from the actor key for instance): an absent or
	// empty file is then ErrMissing, never a fresh database.
	MustExist bool
}

// Store is crieur's durable state. It is safe for concurrent use.
type Store struct {
	db    *bbolt.DB
	now   func() time.Time
	group groupCommit
	// batch runs the frequent small queue updates (CompleteJob, RetryJob,
	// FailJob) through group commit, lingering for company; a benchmark
	// swaps in db.Batch.
	batch func(func(*bbolt.Tx) error) error
	// Records read on every inbox request, kept decoded (memo.go).
	remoteKeys *memo[RemoteKey]
	ledger     *memo[LedgerEntry]
}

// Memo sizes: a remote key is about 1 KiB decoded, so 16,384 of them (the
// keys of as many senders) hold at most about 16 MiB; ledger entries are
// one per article and language.
const (
	remoteKeyMemo = 16384
	ledgerMemo    = 4096
)

// Open opens (creating if needed) the bbolt file at path, makes sure every
// bucket exists and reads the whole file once: a damaged file is
// ErrDamaged, never a panic then or later; with opts.MustExist, an absent
// or empty file is ErrMissing.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.MustExist {
		// bbolt makes a new database of an empty file as of a missing one.
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("storage: open %s: %w (there is no such file)", path, ErrMissing)
		case err != nil:
			return nil, fmt.Errorf("storage: open %s: %w", path, err)
		case info.Size() == 0:
			return nil, fmt.Errorf("storage: open %s: %w (the file is empty)", path, ErrMissing)
		}
	}
	db, err := openBolt(path, timeout)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("storage: open %s: %w (waited %s; is another crieur running on this data folder?)",
				path, ErrLocked, timeout)
		}
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	if err := verify(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		hadIndex := tx.Bucket(bucketDeliveryInboxes) != nil
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return upgrade(tx, hadIndex)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	st := &Store{db: db, now: now, remoteKeys: newMemo[RemoteKey](remoteKeyMemo), ledger: newMemo[LedgerEntry](ledgerMemo)}
	st.batch = func(fn func(*bbolt.Tx) error) error { return st.group.do(db, fn, true) }
	return st, nil
}

// update runs fn in a write transaction that concurrent calls may share
// (group commit, without lingering): the followers' and remote keys'
// writes, which a burst of inbox requests makes by the hundred. With a
// commit (an fsync) each, a burst of Follows from 2,000 servers ran at
// about 200 a second, bound by the disk.
func (s *Store) update(fn func(*bbolt.Tx) error) error { return s.group.do(s.db, fn, false) }

// upgrade brings a file of an older layout up to schemaVersion, in Open's
// transaction. hadIndex tells whether the delivery inbox index existed
// before Open created the missing buckets.
func upgrade(tx *bbolt.Tx, hadIndex bool) error {
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(schemaKey); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return fmt.Errorf("unreadable schema version %q", v)
		}
		if n > schemaVersion {
			return fmt.Errorf("%w: the file has layout version %d, this crieur knows up to %d; run a newer crieur",
				ErrNewerSchema, n, schemaVersion)
		}
	}
	current := []byte(strconv.Itoa(schemaVersion))
	if !bytes.Equal(meta.Get(schemaKey), current) {
		if err := meta.Put(schemaKey, current); err != nil {
			return err
		}
	}
	if !hadIndex {
		if err := rebuildDeliveryInboxes(tx); err != nil {
			return fmt.Errorf("build delivery inbox index: %w", err)
		}
		return nil
	}
	// A crieur older than the index ignores it: after a downgrade and an
	// upgrade its counts may be off. Counting costs no decoding.
	ok, err := deliveryInboxesAddUp(tx)
	if err != nil {
		return fmt.Errorf("check delivery inbox index: %w", err)
	}
	if !ok {
		if err := rebuildDeliveryInboxes(tx); err != nil {
			return fmt.Errorf("rebuild delivery inbox index: %w", err)
		}
	}
	return nil
}

// Close releases the file. Pending batched writes are flushed first by bbolt.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// --- encoding helpers -------------------------------------------------------

func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// getJSON decodes the value under key into v; found is false when absent.
func getJSON(b *bbolt.Bucket, key []byte, v any) (found bool, err error) {
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := decode(data, v); err != nil {
		return true, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}

func decode(data []byte, v any) error { return json.Unmarshal(data, v) }

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// timeKeyLen is the size of timeKey's output.
const timeKeyLen = 12

// timeKey encodes t so that byte order is time order, for any time including
// the zero time.Time (whose UnixNano overflows): Unix seconds with the sign
// bit flipped, then nanoseconds.
func timeKey(t time.Time) []byte {
	b := make([]byte, timeKeyLen, timeKeyLen+64)
	putTimeKey(b, t)
	return b
}

// putTimeKey writes timeKey(t) into b[:timeKeyLen].
func putTimeKey(b []byte, t time.Time) {
	binary.BigEndian.PutUint64(b[:8], uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:timeKeyLen], uint32(t.Nanosecond()))
}
