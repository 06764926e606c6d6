package storage

import (
	"fmt"
	"io"
	"strconv"

	"go.etcd.io/bbolt"
)

// BackupInfo describes the copy Backup writes. It is read in the copy's own
// transaction, so it describes the same moment as the copy.
type BackupInfo struct {
	// Size is the copy's length in bytes: on success Backup writes
	// exactly this many.
	Size int64
	// Schema is the file's layout version (schemaVersion once Open ran).
	Schema int
	// Followers counts the accepted followers.
	Followers int
	// Meta reads a value of the meta bucket, as Store.Meta does. It reads
	// the backup's transaction: valid only until begin returns.
	Meta func(key string) (value string, ok bool)
}

// Backup writes a consistent copy of the whole database to the writer that
// begin returns: a bbolt file that Open accepts, as it was when one read
// transaction began. begin gets the copy's description first (a caller
// writing an archive needs the size before the bytes) and may refuse by
// returning an error, in which case nothing is written. Writes go on
// meanwhile: bbolt keeps the pages that transaction reads until it ends,
// so the file grows instead of reusing them. Backup returns the bytes
// written.
//
// The transaction lasts as long as the writer takes. A write that must grow
// the file's memory map (bbolt remaps when the file outgrows its map, which
// doubles up to 1 GiB) waits until every read transaction has ended, this
// one included: the writer must be fast, or give up when its reader stalls.
func (s *Store) Backup(begin func(BackupInfo) (io.Writer, error)) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		info := BackupInfo{
			Size: tx.Size(),
			Meta: func(key string) (string, bool) {
				v := meta.Get([]byte(key))
				return string(v), v != nil
			},
		}
		if v := meta.Get(schemaKey); v != nil {
			info.Schema, _ = strconv.Atoi(string(v))
		}
		if err := tx.Bucket(bucketFollowerOrder).ForEach(func(_, v []byte) error {
			if FollowerStatus(v) == FollowerAccepted {
				info.Followers++
			}
			return nil
		}); err != nil {
			return err
		}
		w, err := begin(info)
		if err != nil {
			return err
		}
		// bbolt words some of the writer's errors with %s: keep the
		// writer's own, which its caller may test for.
		rw := &recordingWriter{w: w}
		n, err = tx.WriteTo(rw)
		if rw.err != nil {
			return rw.err
		}
		return err
	})
	if err != nil {
		return n, fmt.Errorf("storage: backup: %w", err)
	}
	return n, nil
}

// recordingWriter keeps the first error of w.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}
