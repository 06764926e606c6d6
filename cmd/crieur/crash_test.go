package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// TestMain lets the test binary stand in for the crieur binary: the crash
// test re-executes it with CRIEUR_TEST_MAIN=1 to get a real process it can
// kill with SIGKILL.
func TestMain(m *testing.M) {
	switch os.Getenv("CRIEUR_TEST_MAIN") {
	case "1":
		testMainCrieur()
		os.Exit(0)
	case "floor":
		stormFloorServer(os.Getenv("CRIEUR_LISTEN"))
		os.Exit(0)
	case "rawfloor":
		stormRawFloorServer(os.Getenv("CRIEUR_LISTEN"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testMainCrieur is the re-executed crieur. CRIEUR_TEST_CPUPROFILE, when
// set, writes a CPU profile of it until main returns (the storm benchmark
// stops it with SIGTERM).
func testMainCrieur() {
	if path := os.Getenv("CRIEUR_TEST_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	main()
}

// startProcess runs `crieur serve` as a child process and waits until it
// answers.
func (in *instance) startProcess(t testing.TB) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(os.Environ(), "CRIEUR_TEST_MAIN=1")
	get := in.env()
	for _, k := range []string{"CRIEUR_BASE_URL", "CRIEUR_LISTEN", "CRIEUR_POSTS", "CRIEUR_DATA", "CRIEUR_HANDLE",
		"CRIEUR_ALLOW_PRIVATE", "CRIEUR_LOG_LEVEL", "CRIEUR_WORKERS", "CRIEUR_PER_HOST"} {
		if v := get(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			in.logLines.Add(1)
			in.logBytes.Add(int64(len(s.Bytes()) + 1))
			if testing.Verbose() {
				t.Log("crieur:", s.Text())
			}
		}
		// A line too long for the scanner must not leave the pipe full
		// and the process blocked writing its log.
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(in.base + "/")
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("crieur process did not answer within 20s")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// A fan-out to hundreds of inboxes is cut by SIGKILL; after a restart every
// inbox still gets the article, and the queue ends empty.
func TestCrashDuringFanOutLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const servers, perServer = 20, 15
	const workers, serverDelay = 8, 40 * time.Millisecond
	in := newInstance(t, map[string]string{"old.en.md": post("old", "en", "Old", "2023-01-02", "Before.")})
	in.extraEnv["CRIEUR_WORKERS"] = strconv.Itoa(workers)
	in.extraEnv["CRIEUR_PER_HOST"] = "2"

	var mu sync.Mutex
	got := map[string]int{} // inbox URL → Creates received
	var total atomic.Int64
	var followers []storage.Follower
	for s := 0; s < servers; s++ {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			// Slow enough that the kill lands in the middle of the fan-out.
			time.Sleep(serverDelay)
			if !strings.Contains(string(body), `"Create"`) {
				w.WriteHeader(http.StatusAccepted)
				return
			}
			mu.Lock()
			got[srv.URL+r.URL.Path]++
			mu.Unlock()
			total.Add(1)
			w.WriteHeader(http.StatusAccepted)
		}))
		t.Cleanup(srv.Close)
		for u := 0; u < perServer; u++ {
			actor := fmt.Sprintf("%s/users/u%d", srv.URL, u)
			followers = append(followers, storage.Follower{
				ActorID: actor, Inbox: actor + "/inbox", Host: strings.TrimPrefix(srv.URL, "http://"),
				FollowID: actor + "/follow", Status: storage.FollowerAccepted, CreatedAt: time.Now(),
			})
		}
	}
	// Followers are put in the data file before the first start, as if they
	// had followed earlier.
	in.seedData(func(st *storage.Store) {
		for _, f := range followers {
			if err := st.PutFollower(f); err != nil {
				t.Fatal(err)
			}
		}
	})

	cmd := in.startProcess(t)
	in.writePost("big.en.md", post("big", "en", "Big news", "2024-05-01T08:00:00Z", "For everyone."))
	deadline := time.Now().Add(30 * time.Second)
	for total.Load() < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("fan-out did not start: %d deliveries", total.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	atKill := total.Load()
	if atKill >= servers*perServer {
		t.Fatalf("fan-out finished before the kill (%d): the test proves nothing", atKill)
	}
	t.Logf("killed after %d of %d deliveries", atKill, servers*perServer)
	// What the data file holds at the kill: the inboxes whose delivery was
	// not durably done. Only those may get the article twice.
	st, err := storage.Open(filepath.Join(in.data, "crieur.db"), storage.Options{MustExist: true})
	if err != nil {
		t.Fatalf("the data file after SIGKILL: %v", err)
	}
	pending, err := st.PendingJobs()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	pendingAtKill := map[string]bool{}
	for _, j := range pending {
		pendingAtKill[j.Inbox] = true
	}

	cmd = in.startProcess(t)
	deadline = time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == servers*perServer {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart only %d of %d inboxes got the article", n, servers*perServer)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The queue drains: nothing pending, nothing failed.
	in.waitQueueEmpty(20*time.Second, "the fan-out")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("crieur did not exit cleanly on SIGTERM: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// At-least-once: a delivery whose outcome was durable at the kill is
	// never made again; one still pending in the data file may be (it was
	// on the wire, or answered but not yet committed).
	dups := 0
	for inbox, n := range got {
		if n > 1 {
			dups++
			if !pendingAtKill[inbox] {
				t.Errorf("%s got the Create %d times, though its delivery was done in the data file at the kill", inbox, n)
			}
		}
	}
	t.Logf("%d inboxes received the Create twice, of %d whose delivery was pending at the kill", dups, len(pendingAtKill))
}

// A burst of Follows is cut by SIGKILL. Every Follow crieur answered 2xx
// is a follower after the restart and gets its Accept (the answer comes
// only once the follower and its Accept job are on disk, even when
// concurrent Follows share a commit). The Follows the kill cut off are
// sent again, as their servers would; in the end every account follows,
// each has an Accept, and the queue is empty.
func TestCrashDuringFollowBurstLosesNoFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const accounts, senders, killAfter = 400, 16, 60
	in := newInstance(t, nil)
	cmd := in.startProcess(t)
	r := newRemote(t)
	name := func(i int) string { return fmt.Sprintf("a%03d", i) }

	var (
		mu       sync.Mutex
		answered = map[int]bool{} // Follows crieur answered 2xx
		accepted atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range senders {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= accounts {
					return
				}
				resp, err := r.trySend(in.actorID()+"/inbox", name(i), follow(r, in, name(i)), time.Now(), nil)
				if err != nil {
					return // crieur is gone: this sender's server gives up for now
				}
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					answered[i] = true
					mu.Unlock()
					accepted.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for accepted.Load() < killAfter {
		if time.Now().After(deadline) {
			t.Fatalf("only %d Follows answered in 30s", accepted.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	wg.Wait()
	mu.Lock()
	before := len(answered)
	mu.Unlock()
	if before >= accounts {
		t.Fatalf("every Follow was answered before the kill: the test proves nothing")
	}
	t.Logf("killed after %d of %d Follows were answered", before, accounts)

	in.startProcess(t)
	out, err := in.admin("followers")
	if err != nil {
		t.Fatalf("crieur followers: %v\n%s", err, out)
	}
	mu.Lock()
	for i := range answered {
		if !strings.Contains(out, r.actorID(name(i))+" ") && !strings.Contains(out, r.actorID(name(i))+"\n") {
			t.Errorf("%s was answered 2xx before the kill but is not a follower after it", name(i))
		}
	}
	mu.Unlock()

	// The other servers send their Follows again.
	for i := range accounts {
		mu.Lock()
		done := answered[i]
		mu.Unlock()
		if done {
			continue
		}
		resp, err := r.trySend(in.actorID()+"/inbox", name(i), follow(r, in, name(i)), time.Now(), nil)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("Follow of %s after the restart: %v %v", name(i), resp, err)
		}
	}
	if n := in.followerCount(); n != accounts {
		t.Errorf("%d followers, want %d", n, accounts)
	}
	// Every account gets an Accept of its Follow, before or after the kill.
	deadline = time.Now().Add(60 * time.Second)
	for {
		got := map[string]bool{}
		for _, d := range r.deliveries() {
			if d.Activity["type"] != "Accept" {
				continue
			}
			if obj, _ := d.Activity["object"].(map[string]any); obj != nil {
				got[fmt.Sprint(obj["id"])] = true
			}
		}
		missing := []string{}
		for i := range accounts {
			if !got[r.actorID(name(i))+"/follows/1"] {
				missing = append(missing, name(i))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d accounts never got an Accept, e.g. %v", len(missing), missing[:min(5, len(missing))])
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.waitQueueEmpty(20*time.Second, "the Accepts")
}

// waitQueueEmpty polls crieur queue until nothing is pending, retrying or
// failed, and fails the test after d; after names what should have drained.
func (in *instance) waitQueueEmpty(d time.Duration, after string) {
	in.t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := in.admin("queue")
		if err != nil {
			in.t.Fatalf("crieur queue: %v\n%s", err, out)
		}
		if strings.HasPrefix(out, "pending 0, retrying 0, failed 0") {
			return
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("queue not empty after %s:\n%s", after, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
