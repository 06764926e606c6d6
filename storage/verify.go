package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrMissing is returned by Open, with Options.MustExist, for a file that
// is absent or empty: the data of an instance that has run before is gone.
var ErrMissing = errors.New("storage: the database file is missing or empty")

// ErrDamaged is returned by Open for a file bbolt cannot read, or whose
// pages do not add up. Nothing was written to it.
var ErrDamaged = errors.New("storage: the database file is damaged")

// openBolt is bbolt.Open that cannot crash the process. bbolt trusts the
// file: on a damaged one it may panic on an assertion, or read past the
// end of its memory map, which without SetPanicOnFault kills the process
// with a fault. Both become ErrDamaged here. A panic inside bbolt.Open
// leaves the file it opened (and its lock) held by this process, which
// stops on that error anyway.
func openBolt(path string, timeout time.Duration) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w (%v)", ErrDamaged, oneLine(r))
		}
	}()
	db, err = bbolt.Open(path, fileMode, &bbolt.Options{Timeout: timeout})
	switch {
	case err == nil, errors.Is(err, berrors.ErrTimeout), errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return db, err
	}
	// Anything else bbolt refuses (not a bbolt file, bad checksums,
	// a file too short for its meta pages) is about what the file holds.
	return nil, fmt.Errorf("%w (%s)", ErrDamaged, oneLine(err))
}

// verify reads the whole file once before crieur trusts it, so damage is
// found at start instead of as a panic while serving. It first reads
// every key and value of every bucket in this goroutine, where a fault or
// a panic is caught, which also proves every page a read reaches; then it
// runs bbolt's own consistency check (pages both used and free, pages
// neither), which would otherwise let the next writes overwrite live data.
func verify(db *bbolt.DB) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w (%v)", ErrDamaged, oneLine(r))
		}
	}()
	return db.View(func(tx *bbolt.Tx) error {
		if err := tx.ForEach(func(name []byte, b *bbolt.Bucket) error { return readBucket(b) }); err != nil {
			return err
		}
		var first error
		n := 0
		for cerr := range tx.Check() {
			if first == nil {
				first = cerr
			}
			n++
		}
		switch {
		case n == 1:
			return fmt.Errorf("%w (%s)", ErrDamaged, oneLine(first))
		case n > 1:
			return fmt.Errorf("%w (%s, and %d more problems)", ErrDamaged, oneLine(first), n-1)
		}
		return nil
	})
}

// readBucket touches every key and value of b and of its nested buckets.
func readBucket(b *bbolt.Bucket) error {
	var sum byte
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return readBucket(nb)
			}
			return nil
		}
		// Read the value's last byte: an overflow page beyond the file
		// faults here, inside the recover of verify.
		if len(v) > 0 {
			sum ^= v[len(v)-1]
		}
		return nil
	})
	_ = sum
	return err
}

// oneLine keeps a message from bbolt to one line: the error crieur prints
// is a single line.
func oneLine(v any) string {
	return strings.Join(strings.Fields(fmt.Sprint(v)), " ")
}
