package storage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envCrashChild makes the test binary act as the writer that gets killed.
const envCrashChild = "CRIEUR_STORAGE_CRASH_CHILD_DB"

// crashJobsPerPublish is how many deliveries each child Publish enqueues.
const crashJobsPerPublish = 5

// crashRounds is how many times the child is killed; each kill lands at a
// random point, so more rounds catch more torn writes.
const crashRounds = 8

func crashEntry(i int) (LedgerEntry, Activity, []Job) {
	key := fmt.Sprintf("post-%05d/en", i)
	note := "https://b.example/posts/" + key
	body := map[string]any{
		"id":      fmt.Sprintf("https://b.example/activities/%05d", i),
		"type":    "Create",
		"object":  note,
		"content": strings.Repeat(fmt.Sprintf("paragraph %d. ", i), 150), // ~2 KiB: records span pages
	}
	data, _ := json.Marshal(body)
	act := Activity{ID: body["id"].(string), Type: "Create", ObjectID: note,
		Published: time.Unix(int64(1_700_000_000+i), 0).UTC(), InOutbox: true, JSON: data}
	entry := LedgerEntry{Key: key, NoteID: note, Hash: fmt.Sprintf("hash-%d", i), Published: act.Published, Pushed: true}
	var jobs []Job
	for k := range crashJobsPerPublish {
		jobs = append(jobs, Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", (i+k)%17)})
	}
	return entry, act, jobs
}

func crashFollower(i int) Follower {
	f := follower(i, FollowerAccepted)
	f.Handle = strings.Repeat("x", 300) + strconv.Itoa(i)
	f.CreatedAt = time.Unix(int64(1_600_000_000+i), 0).UTC()
	return f
}

// runCrashChild writes until it is killed: a follower and a Publish per
// step, reporting each committed Publish on stdout, while workers complete,
// retry and fail jobs through db.Batch.
func runCrashChild(path string) {
	fail := func(err error) {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	s, err := Open(path, Options{})
	if err != nil {
		fail(err)
	}
	ledger, err := s.Ledger()
	if err != nil {
		fail(err)
	}
	var mu sync.Mutex // serialises stdout lines
	for w := range 4 {
		go func() {
			for n := 0; ; n++ {
				due, err := s.DueJobs(time.Now().Add(time.Hour), 8)
				if err != nil {
					fail(err)
				}
				for _, j := range due {
					switch {
					case (int(j.ID)+w+n)%7 == 0:
						err = s.FailJob(j.ID, 410, "gone")
					case (int(j.ID)+n)%5 == 0:
						err = s.RetryJob(j.ID, time.Now(), 500, "boom", true)
					default:
						err = s.CompleteJob(j.ID)
					}
					if err != nil && !errors.Is(err, ErrNotFound) {
						fail(err)
					}
				}
				if len(due) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	for i := len(ledger); ; i++ {
		if err := s.PutFollower(crashFollower(i)); err != nil {
			fail(err)
		}
		entry, act, jobs := crashEntry(i)
		if _, err := s.Publish(entry, act, jobs); err != nil {
			fail(err)
		}
		mu.Lock()
		fmt.Printf("published %d\n", i)
		mu.Unlock()
	}
}

// TestCrashSafety kills a writing process with SIGKILL crashRounds times and
// checks after each crash that every record is whole, every Publish is all
// or nothing, everything reported committed is there, and the indexes and
// counters agree.
func TestCrashSafety(t *testing.T) {
	if path := os.Getenv(envCrashChild); path != "" {
		runCrashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	path := filepath.Join(t.TempDir(), "crieur.db")
	lastReported := -1
	for round := range crashRounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashChild+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })

		// Let it commit a different number of publishes each round, then
		// kill it wherever it is.
		target := lastReported + 40 + 23*round
		sc := bufio.NewScanner(out)
		for lastReported < target && sc.Scan() {
			line := sc.Text()
			n, ok := strings.CutPrefix(line, "published ")
			if !ok {
				t.Fatalf("child: %s\nstderr: %s", line, stderr.String())
			}
			if lastReported, err = strconv.Atoi(n); err != nil {
				t.Fatal(err)
			}
			if round == 0 && lastReported == 5 {
				// Another process holds the file: Open must give up.
				if s2, err := Open(path, Options{Timeout: 200 * time.Millisecond}); !errors.Is(err, ErrLocked) {
					if s2 != nil {
						_ = s2.Close()
					}
					t.Fatalf("Open while the child holds the lock: %v, want ErrLocked", err)
				}
			}
		}
		if lastReported < target {
			t.Fatalf("child stopped at %d (scan error %v)\nstderr: %s", lastReported, sc.Err(), stderr.String())
		}
		// Killing right after reading a line would always land just after
		// a Publish; a random pause spreads the kills over the whole loop.
		time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Millisecond))))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		// Lines still in the pipe were written before the kill: they are
		// commits too.
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "published "); ok {
				if lastReported, err = strconv.Atoi(n); err != nil {
					t.Fatal(err)
				}
			}
		}
		_ = cmd.Wait()

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		checkCrashState(t, s, lastReported)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d publishes", round, lastReported+1)
	}
}

func checkCrashState(t *testing.T, s *Store, lastReported int) {
	t.Helper()
	checkInvariants(t, s)
	ledger, err := s.Ledger()
	if err != nil {
		t.Fatal(err)
	}
	// Publishes are sequential: the ledger is 0..m-1, with at most one
	// unreported publish committed just before the kill.
	m := len(ledger)
	if m < lastReported+1 || m > lastReported+2 {
		t.Fatalf("%d ledger entries, child reported %d committed", m, lastReported+1)
	}
	for i, got := range ledger {
		entry, act, _ := crashEntry(i)
		entry.ActivityID = act.ID // Publish names the activity it stored
		if got != entry {
			t.Fatalf("ledger %d = %+v, want %+v", i, got, entry)
		}
		gotAct, err := s.Activity(act.ID)
		if err != nil {
			t.Fatalf("publish %d: ledger entry without activity: %v", i, err)
		}
		if !bytes.Equal(gotAct.JSON, act.JSON) || !gotAct.Published.Equal(act.Published) || gotAct.ObjectID != act.ObjectID {
			t.Fatalf("publish %d: activity not whole: %+v", i, gotAct)
		}
		c, err := s.DeliveryCounts(act.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Delivered+c.Pending+c.Failed != crashJobsPerPublish {
			t.Fatalf("publish %d: counts %+v do not add up to %d jobs", i, c, crashJobsPerPublish)
		}
	}
	// Nothing of a publish past the ledger exists.
	_, next, _ := crashEntry(m)
	if _, err := s.Activity(next.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("activity %d exists without its ledger entry: %v", m, err)
	}
	if _, total, _ := s.Outbox(0, 1); total != m {
		t.Fatalf("outbox has %d, ledger %d", total, m)
	}
	// Followers are written before each publish: m or m+1 of them, whole.
	followers, err := s.Followers("")
	if err != nil {
		t.Fatal(err)
	}
	if len(followers) < m || len(followers) > m+1 {
		t.Fatalf("%d followers for %d publishes", len(followers), m)
	}
	for i, f := range followers {
		if want := crashFollower(i); f != want {
			t.Fatalf("follower %d = %+v, want %+v", i, f, want)
		}
	}
	// Every job left is for a published activity and still deliverable.
	jobs, _ := s.PendingJobs()
	for _, j := range jobs {
		if j.State != JobPending || j.Inbox == "" {
			t.Fatalf("job %+v", j)
		}
	}
}
