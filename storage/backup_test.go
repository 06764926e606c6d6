package storage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A backup is one read transaction: writes committed while it runs go on,
// and the copy holds exactly what was there when it began, described by
// the BackupInfo begin got; the copy is a database Open accepts.
func TestBackupIsOneMomentWhileWritesGoOn(t *testing.T) {
	s, _, _ := newTestStore(t)
	// Grow the file and free the space again: the writes below reuse free
	// pages instead of growing the memory map, which would wait for the
	// backup's transaction to end (see Backup).
	if err := s.PutAvatar("big", Avatar{URL: "https://h.example/a.png"}, bytes.Repeat([]byte{7}, 4<<20)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAvatar("big", Avatar{URL: "https://h.example/a.png", Refused: "gone"}, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if err := s.PutFollower(follower(i, FollowerAccepted)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMeta("test.marker", "before"); err != nil {
		t.Fatal(err)
	}

	// A writer runs through the whole backup.
	var written atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 1000; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := s.PutFollower(follower(i, FollowerAccepted)); err != nil {
				done <- err
				return
			}
			written.Add(1)
		}
	}()

	var info BackupInfo
	var marker string
	var buf bytes.Buffer
	n, err := s.Backup(func(bi BackupInfo) (io.Writer, error) {
		info = bi
		marker, _ = bi.Meta("test.marker")
		// Writes commit while the transaction is open.
		start := written.Load()
		deadline := time.Now().Add(10 * time.Second)
		for written.Load() < start+50 {
			if time.Now().After(deadline) {
				return nil, errors.New("no write committed while the backup's transaction was open")
			}
			time.Sleep(time.Millisecond)
		}
		if err := s.SetMeta("test.marker", "after"); err != nil {
			return nil, err
		}
		return &buf, nil
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != info.Size || int64(buf.Len()) != n {
		t.Fatalf("Backup wrote %d bytes (buffer %d), BackupInfo.Size %d", n, buf.Len(), info.Size)
	}
	if info.Followers < 200 || info.Schema != schemaVersion || marker != "before" {
		t.Fatalf("BackupInfo %+v, marker %q", info, marker)
	}
	live, err := s.CountFollowers()
	if err != nil || live < info.Followers+50 {
		t.Fatalf("live followers %d (%v), copy %d: the writes did not go on", live, err, info.Followers)
	}

	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, Options{MustExist: true})
	if err != nil {
		t.Fatalf("the copy does not open: %v", err)
	}
	defer c.Close()
	checkInvariants(t, c)
	if got, err := c.CountFollowers(); err != nil || got != info.Followers {
		t.Errorf("the copy has %d followers (%v), its BackupInfo said %d", got, err, info.Followers)
	}
	if v, _, _ := c.Meta("test.marker"); v != "before" {
		t.Errorf("the copy's marker is %q, want the value from before the backup began", v)
	}
	for i := 0; i < 200; i++ {
		if _, err := c.Follower(follower(i, FollowerAccepted).ActorID); err != nil {
			t.Fatalf("follower %d missing from the copy: %v", i, err)
		}
	}
}

// begin may refuse (nothing is written), and a failing writer ends the
// backup with its error; the store goes on either way.
func TestBackupRefusedOrBroken(t *testing.T) {
	s, _, _ := newTestStore(t)
	for i := 0; i < 50; i++ {
		if err := s.PutFollower(follower(i, FollowerAccepted)); err != nil {
			t.Fatal(err)
		}
	}
	refused := errors.New("not this pair")
	var buf bytes.Buffer
	n, err := s.Backup(func(BackupInfo) (io.Writer, error) { return &buf, refused })
	if !errors.Is(err, refused) || n != 0 || buf.Len() != 0 {
		t.Fatalf("refused backup: %d bytes, %v", n, err)
	}
	broken := errors.New("disk full")
	n, err = s.Backup(func(BackupInfo) (io.Writer, error) { return &failingWriter{left: 5000, err: broken}, nil })
	if !errors.Is(err, broken) || n > 5000 {
		t.Fatalf("broken backup: %d bytes, %v", n, err)
	}
	if err := s.PutFollower(follower(99, FollowerAccepted)); err != nil {
		t.Fatalf("write after a broken backup: %v", err)
	}
}

type failingWriter struct {
	left int
	err  error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, f.err
	}
	f.left -= len(p)
	return len(p), nil
}

// LockFile takes the lock Open takes: each refuses while the other holds it.
func TestLockFile(t *testing.T) {
	dir := t.TempDir()
	release, err := LockFile(filepath.Join(dir, "none.db"))
	if err != nil {
		t.Fatalf("a missing file: %v", err)
	}
	release()

	path := filepath.Join(dir, "crieur.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockFile(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("LockFile while the store is open: %v, want ErrLocked", err)
	}
	s.Close()
	release, err = LockFile(path)
	if err != nil {
		t.Fatalf("LockFile after Close: %v", err)
	}
	if s, err := Open(path, Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open while LockFile holds the lock: %v, want ErrLocked", err)
	}
	release()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after release: %v", err)
	}
	s.Close()
}
