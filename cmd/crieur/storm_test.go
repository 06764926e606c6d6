//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
	"golang.org/x/sys/unix"
)

// The storm's size. Each actor sends a Like and an Announce of the article
// per iteration, on its own host, with a key crieur has cached.
const (
	stormActors       = 5000
	stormSenders      = 64                    // kept-alive connections
	stormReaders      = 4                     // goroutines loading the article's page
	stormReadEvery    = 50 * time.Millisecond // per reader: 80 pages a second in all
	stormVerifyFor    = time.Second           // how long each reference is measured
	stormStartTimeout = 30 * time.Second
)

// BenchmarkInboxStorm sends a storm of signed Likes and Announces from
// stormActors actors, each on its own server whose key crieur has cached
// (warm keys: crieur fetches nothing), to a real crieur process on loopback,
// while readers load the article's page 80 times a second. The target
// (at least 70%) compares the interactions crieur stores per second of its
// own CPU time with the RSA-2048 verifications made per CPU-second by the
// engine crieur verifies with (OpenSSL when it loads, as crieur), both
// measured in the same run; the page's answer times (p50, p99) show
// whether readers are still served.
//
// crieur runs in its own process because real senders are other machines:
// measured in one process, the senders' HTTP client would be charged to
// crieur. The senders here are as cheap as a client can be (requests signed
// and serialised beforehand, written as raw bytes on 64 kept-alive
// connections), but they still share this machine's CPUs, so the wall-clock
// rate ("stored/s", "%verify-wall") is a lower bound. The CPU time of the
// crieur process (utime+stime in /proc) counts everything crieur does for
// the storm: HTTP, logging (at the default info level), the signature's
// parsing and verification, storage, garbage collection, and rendering the
// readers' pages.
//
// The floor is the same requests answered by a bare net/http server in
// its own process (stormFloorServer), which verifies, stores and logs
// nothing: what answering them costs at least. From it, %ceiling is the
// best headline any inbox on net/http could reach on this machine, one
// whose only work beyond answering is the verification.
//
// Metrics: stored/s and stored/cpu-s (interactions per second of wall time
// and per CPU-second of the crieur process), us-cpu/interaction,
// verify/cpu-s (the engine's verification of a SHA-256 digest on one
// goroutine, per CPU-second of its thread), %verify-per-cpu (the headline:
// 100 × stored/cpu-s ÷ verify/cpu-s), go-verify/cpu-s and
// %go-verify-per-cpu (the same against Go's crypto/rsa),
// floor-us-cpu/request, %ceiling and %go-ceiling, verify/s-all-cpus (the
// engine on every CPU, per second of wall time), %verify-wall (100 ×
// stored/s ÷ verify/s-all-cpus), page-p50-ms and page-p99-ms. Figures are
// over all iterations. Both sides of the headline are CPU time, so it
// depends far less on what else the machine runs than the wall-clock
// figures and the pages' times do (a busy neighbour sharing a core still
// slows both sides). Iterations after the first replace each actor's like
// and boost of the one before (storage keeps one of each per actor and
// Note), a delete more per request. Linux only (/proc, RUSAGE_THREAD).
//
//	go test -run '^$' -bench InboxStorm -benchtime 3x ./cmd/crieur
func BenchmarkInboxStorm(b *testing.B) {
	in := newInstance(b, map[string]string{
		"hello.en.md": post("hello", "en", "Hello", "2024-01-02", "An article everyone likes."),
	})
	// Logs as a default install does.
	in.extraEnv["CRIEUR_LOG_LEVEL"] = "info"
	host := strings.TrimPrefix(in.base, "http://")
	note := in.base + "/posts/hello/en"

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	pemText, err := signature.PublicKeyPEM(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	actor := func(i int) string { return fmt.Sprintf("https://s%d.example/users/u", i) }
	// Warm keys, put in the data file before the first start as if crieur
	// had fetched them earlier. The hosts do not exist: a fetch would fail.
	in.seedData(func(st *storage.Store) {
		now := time.Now()
		for i := range stormActors {
			if err := st.PutRemoteKey(storage.RemoteKey{KeyID: actor(i) + "#main-key", Owner: actor(i), PublicKeyPEM: pemText,
				Inbox: actor(i) + "/inbox", Handle: fmt.Sprintf("u@s%d.example", i), FetchedAt: now}); err != nil {
				b.Fatal(err)
			}
		}
	})
	cmd := in.startProcess(b)
	pid := cmd.Process.Pid
	waitNote(b, note)
	floorHost, floorPid := startStormFloor(b, "floor")
	rawHost, rawPid := startStormFloor(b, "rawfloor")

	// One signer per actor (its key id), made once: NewSigner picks
	// OpenSSL when it loads and checks it with a signature of its own.
	signers := make([]*signature.Signer, stormActors)
	if err := parallel(stormActors, func(i int) (err error) {
		signers[i], err = signature.NewSigner(actor(i)+"#main-key", key, nil)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	engine, _ := signers[0].Engine()

	// The references' input: a SHA-256 digest and its signature.
	sum := sha256.Sum256([]byte("reference"))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	goVerify := func() error { return rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig) }
	// The engine crieur verifies with (the same -rsa setting, auto here):
	// OpenSSL when it loads, the key imported once as crieur keeps it.
	verifier, err := signature.NewVerifier(signature.RSAAuto)
	if err != nil {
		b.Fatal(err)
	}
	verifyEngine, _ := verifier.Engine()
	ready, err := verifier.Key(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	engineVerify := func() error { return ready.VerifySHA256(sum[:], sig) }

	var (
		total, floor, rawFloor  stormResult
		verifyPerCPU, verifyAll float64 // the engine's, summed over iterations
		goPerCPU                float64
		iters                   int
		signTime                time.Duration
		lastIDs                 []string
	)
	for iter := 0; b.Loop(); iter++ {
		b.StopTimer()
		// Signed and serialised beforehand: signing is not what is
		// measured. Fresh activity ids each iteration (storage keeps one
		// like and one boost per actor and Note: these replace the last
		// iteration's).
		t0 := time.Now()
		reqs := make([][]byte, 2*stormActors)
		ids := make([]string, 2*stormActors)
		if err := parallel(stormActors, func(i int) error {
			for j, typ := range []string{"Like", "Announce"} {
				id := fmt.Sprintf("%s/%s/%d", actor(i), strings.ToLower(typ), iter)
				body := fmt.Appendf(nil, `{"@context":"https://www.w3.org/ns/activitystreams","id":%q,"type":%q,"actor":%q,"object":%q}`,
					id, typ, actor(i), note)
				raw, err := rawSignedPost(signers[i], host, "/inbox", body)
				if err != nil {
					return err
				}
				reqs[2*i+j], ids[2*i+j] = raw, id
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		signTime += time.Since(t0)
		lastIDs = ids

		// crieur should be idle here: what it uses would slow the
		// references down.
		idle0 := procCPU(b, pid)
		_, perCPU := verifyRate(1, stormVerifyFor, engineVerify)
		all, _ := verifyRate(runtime.GOMAXPROCS(0), stormVerifyFor, engineVerify)
		_, goCPU := verifyRate(1, stormVerifyFor, goVerify)
		idle := procCPU(b, pid) - idle0

		// The floor: the same requests answered by a bare net/http server.
		f := storm(b, floorPid, floorHost, "", reqs)
		if f.failed > 0 {
			b.Fatalf("iteration %d: the floor server failed %d requests; first: %s", iter, f.failed, f.firstFailure)
		}
		floor.add(f)
		f = storm(b, rawPid, rawHost, "", reqs)
		if f.failed > 0 {
			b.Fatalf("iteration %d: the raw floor server failed %d requests; first: %s", iter, f.failed, f.firstFailure)
		}
		rawFloor.add(f)

		logLines := in.logLines.Load()
		b.StartTimer()
		r := storm(b, pid, host, note, reqs)
		b.StopTimer()
		r.logLines = in.logLines.Load() - logLines

		if r.failed > 0 {
			b.Fatalf("iteration %d: %d of %d requests failed; first: %s", iter, r.failed, len(reqs), r.firstFailure)
		}
		if r.readFailed > 0 {
			b.Fatalf("iteration %d: %d of %d page loads failed; first: %s", iter, r.readFailed, len(r.latencies), r.firstReadFailure)
		}
		// Every interaction is counted on the Note.
		for _, coll := range []string{"likes", "shares"} {
			if n := collectionTotal(b, note, coll); n != stormActors {
				b.Fatalf("iteration %d: %s collection has %d items, want %d", iter, coll, n, stormActors)
			}
		}
		b.Logf("iteration %d: %d interactions in %s (%.0f/s), crieur CPU %s (%.0f µs each), verify %.0f/cpu-s (Go %.0f), %.0f/s on %d CPUs (crieur CPU meanwhile %s), %d log lines",
			iter, r.stored, r.wall.Round(time.Millisecond), float64(r.stored)/r.wall.Seconds(), r.cpu,
			float64(r.cpu.Microseconds())/float64(r.stored), perCPU, goCPU, all, runtime.GOMAXPROCS(0), idle, r.logLines)
		total.add(r)
		verifyPerCPU += perCPU
		verifyAll += all
		goPerCPU += goCPU
		iters++
		b.StartTimer()
	}
	b.StopTimer()

	// The last iteration's activities are all in the data file, by id.
	logBytes := in.logBytes.Load()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("crieur did not exit cleanly on SIGTERM: %v", err)
	}
	st, err := storage.Open(filepath.Join(in.data, "crieur.db"), storage.Options{MustExist: true})
	if err != nil {
		b.Fatal(err)
	}
	missing := 0
	for _, id := range lastIDs {
		if _, err := st.Interaction(id); err != nil {
			missing++
		}
	}
	st.Close()
	if missing > 0 {
		b.Fatalf("%d of the last iteration's %d interactions are not in the data file", missing, len(lastIDs))
	}

	storedPerSec := float64(total.stored) / total.wall.Seconds()
	storedPerCPU := float64(total.stored) / total.cpu.Seconds()
	verifyPerCPU /= float64(iters)
	verifyAll /= float64(iters)
	goPerCPU /= float64(iters)
	slices.Sort(total.latencies)
	var p50, p99 time.Duration
	if n := len(total.latencies); n > 0 {
		p50, p99 = total.latencies[n/2], total.latencies[n*99/100]
	}
	usPerInteraction := float64(total.cpu.Microseconds()) / float64(total.stored)
	// The ceiling: the best headline any inbox on net/http could reach
	// here, if verifying were all it did beyond answering the request.
	floorUS := float64(floor.cpu.Microseconds()) / float64(floor.stored)
	rawFloorUS := float64(rawFloor.cpu.Microseconds()) / float64(rawFloor.stored)
	ceilingOf := func(verifyPerCPU, floorUS float64) float64 {
		verifyUS := 1e6 / verifyPerCPU
		return 100 * verifyUS / (verifyUS + floorUS)
	}
	ceiling, goCeiling := ceilingOf(verifyPerCPU, floorUS), ceilingOf(goPerCPU, floorUS)
	rawCeiling := ceilingOf(verifyPerCPU, rawFloorUS)
	b.ReportMetric(storedPerSec, "stored/s")
	b.ReportMetric(storedPerCPU, "stored/cpu-s")
	b.ReportMetric(verifyPerCPU, "verify/cpu-s")
	b.ReportMetric(100*storedPerCPU/verifyPerCPU, "%verify-per-cpu")
	b.ReportMetric(goPerCPU, "go-verify/cpu-s")
	b.ReportMetric(100*storedPerCPU/goPerCPU, "%go-verify-per-cpu")
	b.ReportMetric(goCeiling, "%go-ceiling")
	b.ReportMetric(usPerInteraction, "us-cpu/interaction")
	b.ReportMetric(verifyAll, "verify/s-all-cpus")
	b.ReportMetric(100*storedPerSec/verifyAll, "%verify-wall")
	b.ReportMetric(floorUS, "floor-us-cpu/request")
	b.ReportMetric(ceiling, "%ceiling")
	b.ReportMetric(rawFloorUS, "raw-floor-us-cpu/request")
	b.ReportMetric(rawCeiling, "%raw-ceiling")
	b.ReportMetric(float64(p50.Microseconds())/1000, "page-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "page-p99-ms")
	b.Logf("a bare net/http server answered the same requests with %.1f µs of CPU each: with a verification on top, the headline could reach %.1f%% at most (%.1f%% against Go's crypto/rsa)",
		floorUS, ceiling, goCeiling)
	b.Logf("a minimal HTTP/1.1 responder on raw sockets answered them with %.1f µs of CPU each: an inbox on it that verified and did nothing else could reach %.1f%%",
		rawFloorUS, rawCeiling)
	b.Logf("%d iterations of %d interactions: %.0f stored/s, %.0f stored/cpu-s (%.0f µs of crieur CPU each, %.2f CPUs busy) "+
		"against %.0f verify/cpu-s = %.1f%% (target 70%%; %s), %.0f Go verify/cpu-s = %.1f%%; %.0f verify/s on %d CPUs = %.1f%% of wall; "+
		"page p50 %s p99 %s (%d loads); crieur logged %.2f lines per interaction (%d bytes in all); signing took %s per iteration (%s)",
		iters, 2*stormActors, storedPerSec, storedPerCPU, usPerInteraction, total.cpu.Seconds()/total.wall.Seconds(),
		verifyPerCPU, 100*storedPerCPU/verifyPerCPU, verifyEngine, goPerCPU, 100*storedPerCPU/goPerCPU, verifyAll, runtime.GOMAXPROCS(0), 100*storedPerSec/verifyAll,
		p50, p99, len(total.latencies), float64(total.logLines)/float64(total.stored), logBytes,
		(signTime / time.Duration(max(iters, 1))).Round(time.Millisecond), engine)
}

// stormResult is what one storm measured.
type stormResult struct {
	stored, failed   int           // requests answered 202, and not
	firstFailure     string        // the first failed request's status and body, or error
	wall, cpu        time.Duration // the storm's wall time and crieur's CPU time in it
	latencies        []time.Duration
	readFailed       int
	firstReadFailure string
	logLines         int64
}

func (r *stormResult) add(o stormResult) {
	r.stored += o.stored
	r.failed += o.failed
	r.wall += o.wall
	r.cpu += o.cpu
	r.latencies = append(r.latencies, o.latencies...)
	r.logLines += o.logLines
}

// storm sends reqs (raw HTTP/1.1 requests) to host on stormSenders
// kept-alive connections while readers load page, and measures the wall
// time and the CPU time of process pid from the first request to the last
// answer.
func storm(b *testing.B, pid int, host, page string, reqs [][]byte) stormResult {
	var r stormResult
	conns := make([]net.Conn, stormSenders)
	for i := range conns {
		c, err := net.Dial("tcp", host)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}

	var mu sync.Mutex
	fail := func(first *string, count *int, msg string) {
		mu.Lock()
		defer mu.Unlock()
		if *count == 0 {
			*first = msg
		}
		*count++
	}

	// Readers, each on its own kept-alive connection (none without a page).
	stop := make(chan struct{})
	var readers sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: stormReaders}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for range stormReaders * min(len(page), 1) {
		readers.Go(func() {
			tick := time.NewTicker(stormReadEvery)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				t0 := time.Now()
				resp, err := client.Get(page)
				if err != nil {
					fail(&r.firstReadFailure, &r.readFailed, err.Error())
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				mu.Lock()
				r.latencies = append(r.latencies, d)
				mu.Unlock()
				if err != nil || resp.StatusCode != http.StatusOK {
					fail(&r.firstReadFailure, &r.readFailed, fmt.Sprintf("%d %v", resp.StatusCode, err))
				}
			}
		})
	}

	var next, stored atomic.Int64
	var senders sync.WaitGroup
	cpu0 := procCPU(b, pid)
	start := time.Now()
	for _, c := range conns {
		senders.Go(func() {
			br := bufio.NewReader(c)
			for {
				k := int(next.Add(1) - 1)
				if k >= len(reqs) {
					return
				}
				if _, err := c.Write(reqs[k]); err != nil {
					fail(&r.firstFailure, &r.failed, "write: "+err.Error())
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(&r.firstFailure, &r.failed, "read: "+err.Error())
					return
				}
				if resp.StatusCode != http.StatusAccepted {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
					resp.Body.Close()
					fail(&r.firstFailure, &r.failed, fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body)))
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					fail(&r.firstFailure, &r.failed, "read body: "+err.Error())
					return
				}
				stored.Add(1)
			}
		})
	}
	senders.Wait()
	r.wall = time.Since(start)
	r.cpu = procCPU(b, pid) - cpu0
	close(stop)
	readers.Wait()
	r.stored = int(stored.Load())
	// Requests left unsent when connections broke count as failed.
	r.failed = len(reqs) - r.stored
	return r
}

// rawSignedPost is a POST of body to host's path signed by s (Date now,
// Digest, Host), as raw HTTP/1.1 bytes on a kept-alive connection.
func rawSignedPost(s *signature.Signer, host, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+host+path, nil)
	if err != nil {
		return nil, err
	}
	if err := s.SignRequest(req, body); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: crieur-storm-bench\r\nContent-Type: application/activity+json\r\n"+
		"Content-Length: %d\r\nDate: %s\r\nDigest: %s\r\nSignature: %s\r\n\r\n",
		path, host, len(body), req.Header.Get("Date"), req.Header.Get("Digest"), req.Header.Get("Signature"))
	buf.Write(body)
	return buf.Bytes(), nil
}

// procCPU is the CPU time (user and system) process pid has used so far,
// from fields 14 and 15 of /proc/<pid>/stat, in clock ticks. CLK_TCK is
// 100 on Linux amd64 (sysconf(_SC_CLK_TCK), fixed by the kernel's ABI for
// /proc): 10 ms resolution, fine for a storm of seconds.
func procCPU(b *testing.B, pid int) time.Duration {
	const clkTck = 100
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing one, which ends field 2.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 (utime) and 15 (stime)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clkTck
}

// verifyRate runs verify on goroutines goroutines, each locked to an OS
// thread of its own, for d of wall time. It returns the successful
// verifications per second of wall time (with GOMAXPROCS goroutines, the
// machine's rate) and per CPU-second of those threads (with one goroutine,
// the cost of a verification, whatever else the machine is doing).
func verifyRate(goroutines int, d time.Duration, verify func() error) (perWall, perCPU float64) {
	var n atomic.Int64
	var cpu atomic.Int64 // nanoseconds
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range goroutines {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			k := int64(0)
			for time.Now().Before(deadline) {
				if verify() == nil {
					k++
				}
			}
			cpu.Add(int64(threadCPU() - cpu0))
			n.Add(k)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	return float64(n.Load()) / wall.Seconds(), float64(n.Load()) / time.Duration(cpu.Load()).Seconds()
}

// threadCPU is the CPU time (user and system) the calling thread has used.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		panic(err) // Linux has had RUSAGE_THREAD since 2.6.26
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallel calls f(0) … f(n-1) on one goroutine per CPU and returns the
// first error; after one, the calls not yet started are skipped.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// getAP fetches an ActivityPub document: its status and, for 200, its
// fields.
func getAP(url string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/activity+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: %w: %.200s", url, err, body)
	}
	return resp.StatusCode, m, nil
}

// waitNote waits until crieur serves the Note at url.
func waitNote(b *testing.B, url string) {
	deadline := time.Now().Add(stormStartTimeout)
	for {
		code, _, err := getAP(url)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the Note %s was not published within %s: %d %v", url, stormStartTimeout, code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// collectionTotal is the totalItems of the Note's likes or shares
// collection, read at the URL the Note gives for it.
func collectionTotal(b *testing.B, note, name string) int {
	code, m, err := getAP(note)
	if code != http.StatusOK || err != nil {
		b.Fatalf("GET %s: %d %v", note, code, err)
	}
	url := ""
	switch c := m[name].(type) {
	case string:
		url = c
	case map[string]any:
		url, _ = c["id"].(string)
	}
	if url == "" {
		b.Fatalf("the Note has no %s collection: %v", name, m[name])
	}
	code, c, err := getAP(url)
	if code != http.StatusOK || err != nil {
		b.Fatalf("GET %s: %d %v", url, code, err)
	}
	n, ok := c["totalItems"].(float64)
	if !ok {
		b.Fatalf("%s without totalItems: %v", url, c)
	}
	return int(n)
}

// startStormFloor starts a floor server (mode "floor": stormFloorServer,
// "rawfloor": stormRawFloorServer, in a re-executed test binary) on a free
// loopback port and returns its address and pid; it is killed when the
// benchmark ends.
func startStormFloor(b *testing.B, mode string) (host string, pid int) {
	host = fmt.Sprintf("127.0.0.1:%d", freePort(b))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CRIEUR_TEST_MAIN="+mode, "CRIEUR_LISTEN="+host)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(stormStartTimeout)
	for {
		c, err := net.Dial("tcp", host)
		if err == nil {
			c.Close()
			return host, cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			b.Fatalf("floor server did not listen on %s: %v", host, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stormFloorServer is the storm's floor: what answering the same POSTs
// costs a bare net/http server that reads each body (at most 1 MiB, as
// crieur) and answers 202, with nothing verified, stored or logged.
func stormFloorServer(addr string) {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(io.LimitReader(r.Body, 1<<20)); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusAccepted)
	})}
	_ = srv.ListenAndServe()
}

// stormRawFloorServer is the floor under any HTTP server: a responder on
// raw sockets that finds each request's end (its header block, then
// Content-Length bytes) and writes a fixed 202, nothing parsed beyond
// that. What it costs is the system calls and little else: no inbox
// answering over TCP can spend less per request. Only for the storm's
// requests (one Content-Length header, as rawSignedPost writes them).
func stormRawFloorServer(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	answer := []byte("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 64<<10)
			n := 0
			for {
				m, err := c.Read(buf[n:])
				if err != nil {
					return
				}
				n += m
				for {
					head := bytes.Index(buf[:n], []byte("\r\n\r\n"))
					if head < 0 {
						break
					}
					length := 0
					if i := bytes.Index(buf[:head], []byte("\r\nContent-Length: ")); i >= 0 {
						v := buf[i+len("\r\nContent-Length: ") : head+2]
						length, _ = strconv.Atoi(string(v[:bytes.IndexByte(v, '\r')]))
					}
					end := head + 4 + length
					if end > n {
						break
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
					n = copy(buf, buf[end:n])
				}
				if n == len(buf) {
					return // a request larger than the buffer: not the storm's
				}
			}
		}()
	}
}
