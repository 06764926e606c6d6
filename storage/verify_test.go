package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An instance that has run before has a database: with MustExist, an absent
// or an empty file is data lost, and Open says so instead of making a fresh
// database in its place (bbolt starts a new one in an empty file).
func TestOpenMustExistRefusesAMissingOrEmptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "crieur.db")
	if _, err := Open(path, Options{MustExist: true}); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing file: %v, want ErrMissing", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open created %s: %v", path, err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{MustExist: true})
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("empty file: %v, want ErrMissing", err)
	}
	if info, _ := os.Stat(path); info.Size() != 0 {
		t.Errorf("Open wrote %d bytes into the empty file", info.Size())
	}
	// Without MustExist an empty file is a first start cut short.
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("empty file without MustExist: %v", err)
	}
	st.Close()
}

// seedForDamage writes a file of many pages: followers, activities with
// overflow pages, jobs and failed jobs.
func seedForDamage(t *testing.T, path string) {
	t.Helper()
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		if err := st.PutFollower(crashFollower(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		entry, act, jobs := crashEntry(i)
		if _, err := st.Publish(entry, act, jobs); err != nil {
			t.Fatal(err)
		}
	}
	all, err := st.PendingJobs()
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all[:20] {
		if err := st.FailJob(j.ID, 410, "gone"); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// useAll reads and writes through the whole API, as crieur serve does.
func useAll(st *Store) error {
	if _, err := st.Followers(FollowerAccepted); err != nil {
		return err
	}
	if _, _, err := st.Outbox(0, 1000); err != nil {
		return err
	}
	if _, err := st.Ledger(); err != nil {
		return err
	}
	if _, err := st.PendingJobs(); err != nil {
		return err
	}
	if _, err := st.FailedJobs(); err != nil {
		return err
	}
	if _, err := st.QueueStats(); err != nil {
		return err
	}
	return st.PutFollower(follower(9999, FollowerAccepted))
}

// A damaged file is an error at Open, never a panic, a fault or a goroutine
// dump, then or later: every page of a real file is overwritten in turn
// (garbage, zeros, a plausible page header), and Open must either refuse
// the file as damaged or give a store that the whole API then uses safely.
func TestOpenDamagedFileIsAnErrorNotAPanic(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	seedForDamage(t, good)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	pages := len(orig) / pageSize
	rng := rand.New(rand.NewPCG(7, 19))
	refused := 0
	for p := range pages {
		for variant := range 3 {
			data := append([]byte(nil), orig...)
			page := data[p*pageSize : (p+1)*pageSize]
			switch variant {
			case 0: // garbage
				for i := range page {
					page[i] = byte(rng.Uint32())
				}
			case 1: // zeros
				clear(page)
			case 2: // the header only: a wrong id, flags and count
				for i := range 16 {
					page[i] = byte(rng.Uint32())
				}
			}
			path := filepath.Join(dir, fmt.Sprintf("p%d-%d.db", p, variant))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("page %d variant %d: panic: %v", p, variant, r)
					}
				}()
				st, err := Open(path, Options{Timeout: time.Second})
				if err != nil {
					if !errors.Is(err, ErrDamaged) {
						t.Errorf("page %d variant %d: %v, want ErrDamaged", p, variant, err)
					}
					refused++
					return
				}
				defer st.Close()
				if err := useAll(st); err != nil {
					t.Logf("page %d variant %d: opened, then %v", p, variant, err)
				}
			}()
			os.Remove(path)
		}
	}
	if refused == 0 {
		t.Fatalf("no damaged file of %d pages was refused: the test damaged nothing", pages)
	}
	t.Logf("%d pages, %d of %d damaged files refused at Open", pages, refused, pages*3)
}

// Files that are not bbolt databases at all, or cut short.
func TestOpenRefusesWhatIsNoDatabase(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	seedForDamage(t, good)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	for name, data := range map[string][]byte{
		"garbage":   garbage,
		"text":      []byte("this is not a database\n"),
		"truncated": orig[:len(orig)/3],
		"one page":  orig[:4096],
	} {
		path := filepath.Join(dir, name+".db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if st, err := Open(path, Options{Timeout: time.Second}); !errors.Is(err, ErrDamaged) {
			if err == nil {
				st.Close()
			}
			t.Errorf("%s: Open = %v, want ErrDamaged", name, err)
		}
	}
}
