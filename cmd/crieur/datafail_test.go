package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// serveProcess runs `crieur serve` as a child process on in's folders and
// returns what it printed and its exit code, expecting it to stop by itself.
func (in *instance) serveProcess(t *testing.T) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "serve")
	cmd.Env = append(os.Environ(), "CRIEUR_TEST_MAIN=1")
	get := in.env()
	for _, k := range []string{"CRIEUR_BASE_URL", "CRIEUR_LISTEN", "CRIEUR_POSTS", "CRIEUR_DATA", "CRIEUR_HANDLE",
		"CRIEUR_ALLOW_PRIVATE", "CRIEUR_LOG_LEVEL"} {
		cmd.Env = append(cmd.Env, k+"="+get(k))
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("crieur serve did not stop with an error: %v\n%s", err, out)
	}
	return string(out), exit.ExitCode()
}

// A data folder whose database is lost, emptied or damaged, or whose key is
// lost or foreign, stops crieur serve before it serves anything: one line
// naming the file and the way out, exit status 1, never a panic or a
// goroutine dump (which a supervisor would restart in a loop), and the files
// left as they were. Each case starts from an instance with a follower.
func TestDataProblemsStopWithOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cases := []struct {
		name   string
		damage func(in *instance)
		file   func(in *instance) string
		says   []string
		check  func(t *testing.T, in *instance)
	}{
		{"empty database", func(in *instance) { os.Truncate(in.dbPath(), 0) }, (*instance).dbPath,
			[]string{"is empty", "backup"}, func(t *testing.T, in *instance) {
				if info, err := os.Stat(in.dbPath()); err != nil || info.Size() != 0 {
					t.Errorf("the empty database was written to: %v", err)
				}
			}},
		{"database gone", func(in *instance) { os.Remove(in.dbPath()) }, (*instance).dbPath,
			[]string{"is gone", "backup"}, func(t *testing.T, in *instance) {
				if _, err := os.Stat(in.dbPath()); err == nil {
					t.Errorf("a new database was made")
				}
			}},
		{"damaged database", func(in *instance) {
			data, err := os.ReadFile(in.dbPath())
			if err != nil {
				t.Fatal(err)
			}
			// Everything after the two meta pages: the root and every
			// bucket page are garbage.
			for i := 2 * 4096; i < len(data); i++ {
				data[i] = byte(i*7 + 3)
			}
			os.WriteFile(in.dbPath(), data, 0o600)
		}, (*instance).dbPath, []string{"damaged", "backup"}, nil},
		{"key gone", func(in *instance) { os.Remove(in.keyPath()) }, (*instance).keyPath,
			[]string{"missing", "backup", "crieur key rotate"}, func(t *testing.T, in *instance) {
				if _, err := os.Stat(in.keyPath()); err == nil {
					t.Errorf("a new key was made")
				}
			}},
		{"key gone, database from before the record", func(in *instance) {
			// As a crieur older than the record left it: followers, no
			// recorded key.
			st, err := storage.Open(in.dbPath(), storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			st.SetMeta(metaKey, "")
			st.Close()
			os.Remove(in.keyPath())
		}, (*instance).keyPath, []string{"missing", "followers or history", "backup", "crieur key rotate"}, func(t *testing.T, in *instance) {
			if _, err := os.Stat(in.keyPath()); err == nil {
				t.Errorf("a new key was made")
			}
		}},
		{"foreign key", func(in *instance) {
			os.Remove(in.keyPath())
			loadKey(t, in.keyPath())
		}, (*instance).keyPath, []string{"belongs to key", "backup", "crieur key rotate"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := newInstance(t, nil)
			in.seedData(func(st *storage.Store) {
				if err := st.PutFollower(storage.Follower{ActorID: "https://a.example/users/x", Inbox: "https://a.example/users/x/inbox",
					Host: "a.example", Status: storage.FollowerAccepted}); err != nil {
					t.Fatal(err)
				}
			})
			if out, err := in.admin("followers"); err != nil { // a run: the key is recorded
				t.Fatalf("%v\n%s", err, out)
			}
			c.damage(in)
			out, code := in.serveProcess(t)
			t.Log(strings.TrimSpace(out))
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "crieur: ") {
				t.Fatalf("exit %d, %d lines, want 1 and one line:\n%s", code, len(lines), out)
			}
			for _, w := range append([]string{c.file(in)}, c.says...) {
				if !strings.Contains(out, w) {
					t.Errorf("the line does not say %q: %s", w, out)
				}
			}
			for _, w := range []string{"panic", "goroutine", "serving"} {
				if strings.Contains(out, w) {
					t.Errorf("the output says %q: %s", w, out)
				}
			}
			if c.check != nil {
				c.check(t, in)
			}
			if _, err := os.Stat(filepath.Join(in.data, "admin.sock")); err == nil {
				t.Errorf("the server got as far as its admin socket")
			}
		})
	}
}
