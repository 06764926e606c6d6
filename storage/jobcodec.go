package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/bbolt"
)

// Job records are the queue's hot path: a fan-out to 2,000 inboxes writes
// 2,000 of them, reads them back to start the deliveries and reads each
// again to complete it. In JSON that decoding cost more CPU than anything
// in a delivery besides the signature and the TCP handshake, so jobs are
// stored in a small binary layout instead:
//
//	0x01                          layout version
//	uvarint ID
//	string ActivityID, Inbox, Host, Topic, State   (uvarint length, bytes)
//	uvarint Attempts
//	time CreatedAt, NextAttempt   (uvarint length, time.Time.AppendBinary)
//	uvarint LastStatus
//	string LastError
//
// Records written before schema "3" are JSON objects, whose first byte is
// '{'; decodeJob still reads them, so an upgrade needs no conversion.
const jobLayoutV1 = 0x01

// maxJobField bounds what decodeJob accepts as one field: no legitimate
// field comes near it, and a corrupt length must not allocate gigabytes.
const maxJobField = 1 << 20

var errJobRecord = errors.New("malformed job record")

// appendJob appends j's binary record to dst.
func appendJob(dst []byte, j Job) []byte {
	dst = append(dst, jobLayoutV1)
	dst = binary.AppendUvarint(dst, j.ID)
	for _, s := range [...]string{j.ActivityID, j.Inbox, j.Host, j.Topic, string(j.State)} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(max(j.Attempts, 0)))
	dst = appendTime(dst, j.CreatedAt)
	dst = appendTime(dst, j.NextAttempt)
	dst = binary.AppendUvarint(dst, uint64(max(j.LastStatus, 0)))
	return appendString(dst, j.LastError)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	// AppendBinary fails only for zone offsets that are not whole
	// minutes or beyond ±32767 minutes; such a time is stored in UTC,
	// which is the same instant.
	var scratch [16]byte
	enc, err := t.AppendBinary(scratch[:0])
	if err != nil {
		enc, _ = t.UTC().AppendBinary(scratch[:0])
	}
	dst = binary.AppendUvarint(dst, uint64(len(enc)))
	return append(dst, enc...)
}

// decodeJob reads a job record in either layout. The strings are copies:
// data may be bbolt's memory, valid only inside the transaction.
func decodeJob(data []byte) (Job, error) {
	var j Job
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &j); err != nil {
			return Job{}, fmt.Errorf("%w: %v", errJobRecord, err)
		}
		return j, nil
	}
	r := jobReader{buf: data}
	if r.byte() != jobLayoutV1 {
		return Job{}, fmt.Errorf("%w: unknown layout", errJobRecord)
	}
	j.ID = r.uvarint()
	j.ActivityID = r.string()
	j.Inbox = r.string()
	j.Host = r.string()
	j.Topic = r.string()
	j.State = JobState(r.string())
	j.Attempts = r.int()
	j.CreatedAt = r.time()
	j.NextAttempt = r.time()
	j.LastStatus = r.int()
	j.LastError = r.string()
	if r.err == nil && len(r.buf) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return Job{}, fmt.Errorf("%w: %v", errJobRecord, r.err)
	}
	return j, nil
}

// jobReader reads fields in order; the first error sticks and every later
// read returns a zero value.
type jobReader struct {
	buf []byte
	err error
}

func (r *jobReader) fail(what string) {
	if r.err == nil {
		r.err = errors.New(what)
	}
	r.buf = nil
}

func (r *jobReader) byte() byte {
	if len(r.buf) == 0 {
		r.fail("empty record")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *jobReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *jobReader) int() int {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.fail("number out of range")
		return 0
	}
	return int(v)
}

func (r *jobReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > maxJobField || n > uint64(len(r.buf)) {
		r.fail("field longer than the record")
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *jobReader) string() string { return string(r.bytes()) }

func (r *jobReader) time() time.Time {
	b := r.bytes()
	if r.err != nil {
		return time.Time{}
	}
	var t time.Time
	if err := t.UnmarshalBinary(b); err != nil {
		r.fail("bad time: " + err.Error())
		return time.Time{}
	}
	return t
}

// putJob stores j under its id in bucket b.
func putJob(b *bbolt.Bucket, j Job) error {
	return b.Put(u64(j.ID), appendJob(make([]byte, 0, 128+len(j.Inbox)+len(j.ActivityID)+len(j.Topic)+len(j.LastError)), j))
}

// readJob decodes the job stored under key in b; found is false when absent.
func readJob(b *bbolt.Bucket, key []byte) (j Job, found bool, err error) {
	data := b.Get(key)
	if data == nil {
		return Job{}, false, nil
	}
	j, err = decodeJob(data)
	if err != nil {
		return Job{}, true, fmt.Errorf("job %x: %w", key, err)
	}
	return j, true, nil
}
