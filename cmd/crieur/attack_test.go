package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkInboxUnderAttack measures the inbox's two resource attacks on a
// real crieur process: 64 clients flood unsigned 1 MiB bodies, and 300
// connections trickle their bodies a byte at a time under well-formed
// signature headers naming a key on a server that never answers. Meanwhile
// real signed Follows arrive (b.N of them, each from a new account, so each
// makes crieur fetch a key). It reports the process's peak RSS (VmHWM) and
// the Follows' answer times, beside the same Follows' times and the RSS
// measured before the attack in the same run. Targets: peak RSS under 300
// MB, every real Follow accepted within 10 s.
//
//	go test -run '^$' -bench InboxUnderAttack -benchtime 20x ./cmd/crieur
func BenchmarkInboxUnderAttack(b *testing.B) {
	in := newInstance(b, nil)
	cmd := in.startProcess(b)
	r := newRemote(b)
	host := strings.TrimPrefix(in.base, "http://")
	followOnce := func(name string) time.Duration {
		start := time.Now()
		resp, err := r.trySend(in.actorID()+"/inbox", name, follow(r, in, name), time.Now(), nil)
		if err != nil {
			b.Fatalf("real Follow: %v", err)
		}
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("real Follow of %s: %d", name, resp.StatusCode)
		}
		return time.Since(start)
	}

	// Reference: the same kind of Follows with nobody attacking.
	var quiet []time.Duration
	for i := range 10 {
		quiet = append(quiet, followOnce(fmt.Sprintf("quiet%d", i)))
	}
	rssBefore := vmHWM(b, cmd.Process.Pid)

	// A key host that takes connections and never answers.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { <-req.Context().Done() }))
	b.Cleanup(hang.Close)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var floods, trickles atomic.Int64
	big := bytes.Repeat([]byte("x"), 1<<20-64)
	for range 64 {
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, in.actorID()+"/inbox", bytes.NewReader(big))
				req.Header.Set("Content-Type", "application/activity+json")
				if resp, err := c.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				floods.Add(1)
			}
		})
	}
	for i := range 300 {
		wg.Go(func() {
			for ctx.Err() == nil {
				trickle(ctx, host, hang.URL+fmt.Sprintf("/users/t%d#main-key", i))
				trickles.Add(1)
			}
		})
	}
	// Let the attack take hold: every trickling connection open, floods
	// under way.
	for floods.Load() < 64 {
		time.Sleep(10 * time.Millisecond)
	}

	b.ResetTimer()
	var attacked []time.Duration
	for i := range b.N {
		attacked = append(attacked, followOnce(fmt.Sprintf("real%d", i)))
	}
	b.StopTimer()
	rssPeak := vmHWM(b, cmd.Process.Pid)
	stop()
	wg.Wait()

	slices.Sort(quiet)
	slices.Sort(attacked)
	p50 := attacked[len(attacked)/2]
	worst := attacked[len(attacked)-1]
	b.ReportMetric(float64(rssPeak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(rssBefore)/(1<<20), "RSS-before-MiB")
	b.ReportMetric(float64(p50.Microseconds())/1000, "follow-p50-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "follow-max-ms")
	b.ReportMetric(float64(quiet[len(quiet)/2].Microseconds())/1000, "quiet-follow-p50-ms")
	b.ReportMetric(float64(floods.Load()), "unsigned-1MiB-posts")
	b.Logf("peak RSS %d MiB (before the attack %d MiB); real Follow p50 %s, max %s (quiet p50 %s); %d unsigned 1 MiB posts, %d trickling connections ended",
		rssPeak>>20, rssBefore>>20, p50, worst, quiet[len(quiet)/2], floods.Load(), trickles.Load())
	if rssPeak > 300<<20 || worst > 10*time.Second {
		b.Errorf("targets missed: peak RSS %d MiB (target < 300), slowest real Follow %s (target 10 s)", rssPeak>>20, worst)
	}
}

// trickle opens a connection, sends a POST whose headers pass the inbox's
// first checks (a well-formed signature over a fresh Date, naming keyID),
// then its body one byte every 100 ms until crieur cuts it off or ctx ends.
func trickle(ctx context.Context, host, keyID string) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return
	}
	defer conn.Close()
	go func() { <-ctx.Done(); conn.Close() }()
	const length = 4096
	fmt.Fprintf(conn, "POST /inbox HTTP/1.1\r\nHost: %s\r\nContent-Type: application/activity+json\r\nContent-Length: %d\r\n"+
		"Date: %s\r\nDigest: SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n"+
		"Signature: keyId=%q,algorithm=\"rsa-sha256\",headers=\"(request-target) host date digest\",signature=\"AAAA\"\r\n\r\n",
		host, length, time.Now().UTC().Format(http.TimeFormat), keyID)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = http.ReadResponse(bufio.NewReader(conn), nil)
	}()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for range length {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
		}
	}
}

// vmHWM is the peak resident set of process pid (Linux /proc).
func vmHWM(b *testing.B, pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Skipf("no /proc status: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}
