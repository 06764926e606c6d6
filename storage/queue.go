package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// The queue keeps one record per pending job (bucket jobs) and two indexes:
//
//   - due: timeKey(NextAttempt) + id → chain prefix, walked in time order;
//   - chain: chain prefix + id → empty, where the chain prefix encodes
//     (Inbox, Topic). The lowest id of a chain is its head; only heads are
//     handed out, so activities about one object reach one inbox in the order
//     they were enqueued, whatever happens to retries.
//
// Failed jobs move to their own bucket and leave both indexes, so a dead
// Create does not block the Update behind it forever.

// Enqueue stores an activity (unless act.ID is empty) and its delivery jobs
// in one transaction. See Publish for the job defaults.
func (s *Store) Enqueue(act Activity, jobs []Job) error {
	err := s.db.Update(func(tx *bbolt.Tx) error { return s.storeAndEnqueue(tx, act, jobs) })
	if err != nil {
		return fmt.Errorf("storage: enqueue: %w", err)
	}
	return nil
}

// AcceptFollower stores the follower, the Accept activity and its delivery
// jobs in one transaction.
func (s *Store) AcceptFollower(f Follower, act Activity, jobs []Job) error {
	if f.ActorID == "" {
		return fmt.Errorf("storage: accept follower: empty actor id")
	}
	err := s.update(func(tx *bbolt.Tx) error {
		if err := s.putFollower(tx, f); err != nil {
			return err
		}
		if err := putActivity(tx, act); err != nil {
			return err
		}
		_, err := s.enqueue(tx, act, jobs)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: accept follower %s: %w", f.ActorID, err)
	}
	return nil
}

// RejectFollower removes the follower (a pending follow request refused by
// the admin) and stores the Reject activity and its delivery jobs, in one
// transaction: the request is never gone without its Reject queued, nor
// refused twice. An unknown follower is ErrNotFound and nothing is stored.
func (s *Store) RejectFollower(actorID string, act Activity, jobs []Job) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		found, err := deleteFollower(tx, actorID)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		if err := putActivity(tx, act); err != nil {
			return err
		}
		_, err = s.enqueue(tx, act, jobs)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: reject follower %s: %w", actorID, err)
	}
	return nil
}

// storeAndEnqueue stores act, unless its ID is empty (the jobs then name
// an activity stored before), and queues jobs.
func (s *Store) storeAndEnqueue(tx *bbolt.Tx, act Activity, jobs []Job) error {
	if act.ID != "" {
		if err := putActivity(tx, act); err != nil {
			return err
		}
	}
	_, err := s.enqueue(tx, act, jobs)
	return err
}

// enqueue writes jobs. Storage assigns ID, State (pending) and CreatedAt
// (now); NextAttempt defaults to now, ActivityID to act.ID, Topic to
// act.ObjectID (else the activity id) and Host to the inbox URL's host.
// Each job of jobs is filled in as stored (running it again, as a batched
// function may be, stores them again under new ids). It returns the jobs
// that may be attempted at once (readyJobs).
func (s *Store) enqueue(tx *bbolt.Tx, act Activity, jobs []Job) ([]Job, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	b := tx.Bucket(bucketJobs)
	due, chain := tx.Bucket(bucketDue), tx.Bucket(bucketChain)
	// Job ids only grow: full pages at the end of the bucket mean fewer
	// pages to write now and to read later.
	b.FillPercent = appendFill
	now := s.now()
	pending := map[string]int{}
	// bbolt keeps the values it is given until the commit (it copies only
	// keys): the records and index values share one buffer, rather than
	// 4,000 small allocations for a fan-out to 2,000 inboxes.
	var arena []byte
	chainKeys := make([][]byte, 0, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if j.ActivityID == "" {
			j.ActivityID = act.ID
		}
		if j.ActivityID == "" {
			return nil, fmt.Errorf("job without activity id")
		}
		if j.Inbox == "" {
			return nil, fmt.Errorf("job for %s without inbox", j.ActivityID)
		}
		if j.Topic == "" {
			j.Topic = act.ObjectID
		}
		if j.Topic == "" {
			j.Topic = j.ActivityID
		}
		if j.Host == "" {
			if u, err := url.Parse(j.Inbox); err == nil {
				j.Host = u.Host
			}
		}
		id, err := b.NextSequence()
		if err != nil {
			return nil, err
		}
		j.ID = id
		j.State = JobPending
		j.CreatedAt = now
		if j.NextAttempt.IsZero() {
			j.NextAttempt = now
		}
		if need := 3 * (jobRecordMax + len(j.ActivityID) + len(j.Inbox) + len(j.Host) + len(j.Topic) + len(j.LastError)); cap(arena)-len(arena) < need {
			arena = make([]byte, 0, max(64<<10, 4*need))
		}
		var rec, prefix, ck []byte
		arena, rec = carve(arena, func(dst []byte) []byte { return appendJob(dst, *j) })
		arena, prefix = carve(arena, func(dst []byte) []byte { return appendChainPrefix(dst, *j) })
		arena, ck = carve(arena, func(dst []byte) []byte { return binary.BigEndian.AppendUint64(append(dst, prefix...), j.ID) })
		if err := b.Put(u64(j.ID), rec); err != nil {
			return nil, err
		}
		dk := dueKeyOf(*j) // bbolt copies keys
		if err := due.Put(dk[:], prefix); err != nil {
			return nil, err
		}
		chainKeys = append(chainKeys, ck)
		pending[j.ActivityID]++
	}
	// Job ids and due times only grow, so the records and the due index
	// are appended in order. Chain keys start with the inbox's length and
	// URL: in the order of the jobs, each went into the middle of the
	// bucket's node and moved everything after it, which made the
	// transaction quadratic in the fan-out. Sorted, they are appended.
	slices.SortFunc(chainKeys, bytes.Compare)
	for _, ck := range chainKeys {
		if err := chain.Put(ck, nil); err != nil {
			return nil, err
		}
	}
	for actID, n := range pending {
		if err := addCounts(tx, actID, DeliveryCounts{Pending: n}); err != nil {
			return nil, err
		}
	}
	return readyJobs(chain.Cursor(), chainKeys, jobs, now), nil
}

// readyJobs is the part of jobs, just queued, that may be attempted at
// once: due by now and first of its (Inbox, Topic) chain. The others wait
// for an earlier job about the same object (an Update behind its Create)
// or for their time. chainKeys are the jobs' chain keys, sorted.
func readyJobs(chain *bbolt.Cursor, chainKeys [][]byte, jobs []Job, now time.Time) []Job {
	var behind map[uint64]bool
	for _, ck := range chainKeys {
		// The chain's first key: an older job's when one is pending.
		if k, _ := chain.Seek(ck[:len(ck)-8]); !bytes.Equal(k, ck) {
			if behind == nil {
				behind = map[uint64]bool{}
			}
			behind[binary.BigEndian.Uint64(ck[len(ck)-8:])] = true
		}
	}
	ready := jobs
	for i, j := range jobs {
		if behind[j.ID] || j.NextAttempt.After(now) {
			// Copy out on the first job that is not ready: in a fan-out
			// of a new post every job is, and jobs is returned as it is.
			ready = slices.Clone(jobs[:i])
			for _, j := range jobs[i+1:] {
				if !behind[j.ID] && !j.NextAttempt.After(now) {
					ready = append(ready, j)
				}
			}
			break
		}
	}
	return ready
}

// chainPrefix encodes (Inbox, Topic) with length prefixes, so no URL content
// can make one chain's keys look like another's.
func chainPrefix(j Job) []byte {
	return appendChainPrefix(make([]byte, 0, 2*binary.MaxVarintLen64+len(j.Inbox)+len(j.Topic)+8), j)
}

func appendChainPrefix(p []byte, j Job) []byte {
	p = binary.AppendUvarint(p, uint64(len(j.Inbox)))
	p = append(p, j.Inbox...)
	p = binary.AppendUvarint(p, uint64(len(j.Topic)))
	return append(p, j.Topic...)
}

// jobRecordMax bounds what a job record and its chain prefix add to their
// strings: the layout byte, the varints and the two times.
const jobRecordMax = 128

// appendFill is the FillPercent of buckets whose new keys all come after
// the existing ones (bbolt's default, 0.5, leaves their pages half empty).
const appendFill = 0.95

// carve appends with fill to arena and returns the grown arena and the
// appended bytes, capped so that later appends cannot overwrite them.
func carve(arena []byte, fill func([]byte) []byte) ([]byte, []byte) {
	start := len(arena)
	arena = fill(arena)
	return arena, arena[start:len(arena):len(arena)]
}

// dueKeyOf is j's key in the due index: when it is due, then its id. As
// an array it stays on the caller's stack; dueKey is the same as a slice.
func dueKeyOf(j Job) [timeKeyLen + 8]byte {
	var dk [timeKeyLen + 8]byte
	putTimeKey(dk[:timeKeyLen], j.NextAttempt)
	binary.BigEndian.PutUint64(dk[timeKeyLen:], j.ID)
	return dk
}

func dueKey(j Job) []byte {
	dk := dueKeyOf(j)
	return dk[:]
}

func addJobIndexes(tx *bbolt.Tx, j Job) error {
	return indexJob(tx.Bucket(bucketDue), tx.Bucket(bucketChain), j, chainPrefix(j))
}

// indexJob adds j to the due and chain indexes; prefix is chainPrefix(j),
// which bbolt keeps as the due entry's value until the commit.
func indexJob(due, chain *bbolt.Bucket, j Job, prefix []byte) error {
	dk := dueKeyOf(j)
	if err := due.Put(dk[:], prefix); err != nil {
		return err
	}
	var ck [256]byte // bbolt copies keys; most chain keys fit here
	return chain.Put(append(append(ck[:0], prefix...), dk[timeKeyLen:]...), nil)
}

func removeJobIndexes(tx *bbolt.Tx, j Job) error {
	if err := tx.Bucket(bucketDue).Delete(dueKey(j)); err != nil {
		return err
	}
	return tx.Bucket(bucketChain).Delete(append(chainPrefix(j), u64(j.ID)...))
}

// isHead tells whether the job with due-index key dk and value prefix is the
// lowest id of its chain.
func isHead(chain *bbolt.Cursor, dk, prefix []byte) bool {
	k, _ := chain.Seek(prefix)
	return k != nil && len(k) == len(prefix)+8 &&
		bytes.HasPrefix(k, prefix) && bytes.Equal(k[len(prefix):], dk[timeKeyLen:])
}

func addCounts(tx *bbolt.Tx, activityID string, d DeliveryCounts) error {
	b := tx.Bucket(bucketCounters)
	var c DeliveryCounts
	if _, err := getJSON(b, []byte(activityID), &c); err != nil {
		return err
	}
	c.Delivered += d.Delivered
	c.Pending += d.Pending
	c.Failed += d.Failed
	return putJSON(b, []byte(activityID), c)
}

func getJob(tx *bbolt.Tx, id uint64) (Job, bool, error) {
	return readJob(tx.Bucket(bucketJobs), u64(id))
}

// DueJobs returns up to limit (all when limit <= 0) pending jobs with
// NextAttempt <= now, earliest first, keeping only the head of each
// (Inbox, Topic) chain. The jobs stay pending until CompleteJob, RetryJob or
// FailJob: callers track what they have in flight.
func (s *Store) DueJobs(now time.Time, limit int) ([]Job, error) {
	var out []Job
	end := timeKey(now)
	err := s.db.View(func(tx *bbolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		chain := tx.Bucket(bucketChain).Cursor()
		c := tx.Bucket(bucketDue).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if bytes.Compare(k[:timeKeyLen], end) > 0 || (limit > 0 && len(out) >= limit) {
				break
			}
			if !isHead(chain, k, v) {
				continue
			}
			j, found, err := readJob(jobs, k[timeKeyLen:])
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("due index names missing job %x", k[timeKeyLen:])
			}
			out = append(out, j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: due jobs: %w", err)
	}
	return out, nil
}

// NextDue returns when the earliest chain head is due; ok is false when the
// queue is empty. Jobs waiting behind a head do not count: their time is
// not theirs to decide, and counting them would wake the scheduler for
// nothing.
func (s *Store) NextDue() (time.Time, bool, error) {
	var (
		next time.Time
		ok   bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		chain := tx.Bucket(bucketChain).Cursor()
		c := tx.Bucket(bucketDue).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !isHead(chain, k, v) {
				continue
			}
			j, found, err := readJob(tx.Bucket(bucketJobs), k[timeKeyLen:])
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("due index names missing job %x", k[timeKeyLen:])
			}
			next, ok = j.NextAttempt, true
			return nil
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("storage: next due: %w", err)
	}
	return next, ok, nil
}

// CompleteJob removes a delivered job and counts it as delivered. Unknown
// ids are not an error: delivery is at-least-once and a job retried after a
// crash may be completed twice. Calls from many workers share commits
// (see groupCommit), so a fan-out costs few fsyncs.
func (s *Store) CompleteJob(id uint64) error {
	err := s.batch(func(tx *bbolt.Tx) error {
		j, found, err := getJob(tx, id)
		if err != nil || !found {
			return err
		}
		if err := removeJobIndexes(tx, j); err != nil {
			return err
		}
		if err := tx.Bucket(bucketJobs).Delete(u64(id)); err != nil {
			return err
		}
		return addCounts(tx, j.ActivityID, DeliveryCounts{Delivered: 1, Pending: -1})
	})
	if err != nil {
		return fmt.Errorf("storage: complete job %d: %w", id, err)
	}
	return nil
}

// RetryJob reschedules a pending job at next and records the last result.
// countAttempt is false when the job is deferred without being tried (host
// circuit breaker open). An unknown id gives ErrNotFound.
func (s *Store) RetryJob(id uint64, next time.Time, status int, errMsg string, countAttempt bool) error {
	var missing bool
	// A batched function may run twice and must not fail for a missing
	// job, or it would roll back the calls batched with it.
	err := s.batch(func(tx *bbolt.Tx) error {
		missing = false
		j, found, err := getJob(tx, id)
		if err != nil {
			return err
		}
		if !found {
			missing = true
			return nil
		}
		if err := tx.Bucket(bucketDue).Delete(dueKey(j)); err != nil {
			return err
		}
		j.NextAttempt = next
		j.LastStatus = status
		j.LastError = errMsg
		if countAttempt {
			j.Attempts++
		}
		if err := putJob(tx.Bucket(bucketJobs), j); err != nil {
			return err
		}
		return tx.Bucket(bucketDue).Put(dueKey(j), chainPrefix(j))
	})
	if err == nil && missing {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("storage: retry job %d: %w", id, err)
	}
	return nil
}

// FailJob gives up on a job after a final attempt: it leaves the queue (so
// the next job of its chain can go) and is kept among failed jobs with the
// last status and error. An unknown id gives ErrNotFound.
func (s *Store) FailJob(id uint64, status int, errMsg string) error {
	var missing bool
	err := s.batch(func(tx *bbolt.Tx) error {
		missing = false
		j, found, err := getJob(tx, id)
		if err != nil {
			return err
		}
		if !found {
			missing = true
			return nil
		}
		if err := removeJobIndexes(tx, j); err != nil {
			return err
		}
		if err := tx.Bucket(bucketJobs).Delete(u64(id)); err != nil {
			return err
		}
		j.State = JobFailed
		j.Attempts++
		j.LastStatus = status
		j.LastError = errMsg
		if err := putJob(tx.Bucket(bucketFailed), j); err != nil {
			return err
		}
		return addCounts(tx, j.ActivityID, DeliveryCounts{Pending: -1, Failed: 1})
	})
	if err == nil && missing {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("storage: fail job %d: %w", id, err)
	}
	return nil
}

// QueueStats counts pending (never tried), retrying and failed jobs, in
// total and per host, with the most recent error seen for each host, its
// next attempt and how long it has been retried.
func (s *Store) QueueStats() (QueueStats, error) {
	st := QueueStats{PerHost: map[string]HostStats{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		walk := func(name []byte, failed bool) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				j, err := decodeJob(v)
				if err != nil {
					return fmt.Errorf("job %x: %w", k, err)
				}
				h := st.PerHost[j.Host]
				switch {
				case failed:
					st.Failed++
					h.Failed++
				case j.Attempts > 0:
					st.Retrying++
					h.Retrying++
					if h.RetryingSince.IsZero() || j.CreatedAt.Before(h.RetryingSince) {
						h.RetryingSince = j.CreatedAt
					}
				default:
					st.Pending++
					h.Pending++
				}
				if !failed && (h.NextAttempt.IsZero() || j.NextAttempt.Before(h.NextAttempt)) {
					h.NextAttempt = j.NextAttempt
				}
				if j.LastError != "" {
					h.LastError = j.LastError
				}
				st.PerHost[j.Host] = h
				return nil
			})
		}
		if err := walk(bucketFailed, true); err != nil {
			return err
		}
		// Pending jobs last: their errors are fresher than failed ones'.
		return walk(bucketJobs, false)
	})
	if err != nil {
		return QueueStats{}, fmt.Errorf("storage: queue stats: %w", err)
	}
	return st, nil
}

// DeliveryCounts tells how many deliveries of an activity succeeded, wait
// and failed. An activity with no jobs has zero counts.
func (s *Store) DeliveryCounts(activityID string) (DeliveryCounts, error) {
	var c DeliveryCounts
	err := s.db.View(func(tx *bbolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketCounters), []byte(activityID), &c)
		return err
	})
	if err != nil {
		return DeliveryCounts{}, fmt.Errorf("storage: delivery counts %s: %w", activityID, err)
	}
	return c, nil
}

// PendingJobs lists every pending job by id.
func (s *Store) PendingJobs() ([]Job, error) {
	jobs, err := s.listJobs(bucketJobs)
	if err != nil {
		return nil, fmt.Errorf("storage: pending jobs: %w", err)
	}
	return jobs, nil
}

// FailedJobs lists every failed job by id.
func (s *Store) FailedJobs() ([]Job, error) {
	jobs, err := s.listJobs(bucketFailed)
	if err != nil {
		return nil, fmt.Errorf("storage: failed jobs: %w", err)
	}
	return jobs, nil
}

func (s *Store) listJobs(name []byte) ([]Job, error) {
	var out []Job
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(name).ForEach(func(k, v []byte) error {
			j, err := decodeJob(v)
			if err != nil {
				return fmt.Errorf("job %x: %w", k, err)
			}
			out = append(out, j)
			return nil
		})
	})
	return out, err
}

// RequeueFailed gives failed jobs another chance, in one transaction: the
// failed records named by ids are removed (their activities count one
// failure less each), act is stored unless its ID is empty (the jobs then
// name an activity already stored), and jobs are queued as new pending
// jobs with the defaults of Enqueue. New ids put them behind whatever their
// chains already hold. When an id is not a failed job (another retry took
// it meanwhile), nothing is changed and the error wraps ErrNotFound.
func (s *Store) RequeueFailed(ids []uint64, act Activity, jobs []Job) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		failed := tx.Bucket(bucketFailed)
		for _, id := range ids {
			j, found, err := readJob(failed, u64(id))
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("job %d is not failed: %w", id, ErrNotFound)
			}
			if err := failed.Delete(u64(id)); err != nil {
				return err
			}
			if err := addCounts(tx, j.ActivityID, DeliveryCounts{Failed: -1}); err != nil {
				return err
			}
		}
		return s.storeAndEnqueue(tx, act, jobs)
	})
	if err != nil {
		return fmt.Errorf("storage: requeue failed jobs: %w", err)
	}
	return nil
}
