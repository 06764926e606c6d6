// Package fanoutbench measures a whole fan-out in one process: a farm of
// loopback inbox servers that verify every signature, crieur's real
// Publisher and Deliverer over a fresh store, and the signing rates
// measured in the same run as references. `crieur bench` runs it; it is
// kept out of the protocol packages, which hold no test scaffolding.
package fanoutbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/publish"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// Benchmark limits and defaults.
const (
	// TargetRatio is crieur's goal for a fan-out: deliveries per second at
	// no less than 80% of the rate one thread makes the same signatures.
	TargetRatio           = 0.8
	DefaultBenchFollowers = 10_000
	DefaultBenchServers   = 2_000
	// DefaultBenchSignDuration is how long the signing rate is measured.
	DefaultBenchSignDuration = 2 * time.Second
	// benchTimeout bounds a whole fan-out: far above any plausible run.
	benchTimeout = 10 * time.Minute
	// benchSample is how often memory is sampled during the run.
	benchSample = 20 * time.Millisecond
	// inboxMaxBody is what the loopback inboxes accept, like a real inbox.
	inboxMaxBody = 1 << 20
	// benchBase is the base URL of the benchmark's publisher. Nothing is
	// fetched from it: the inboxes know the key.
	benchBase = "https://crieur.bench.invalid"
)

// BenchConfig sizes a fan-out benchmark run.
type BenchConfig struct {
	Followers int // followers, spread evenly over the servers (10,000)
	Servers   int // inbox servers on loopback, one shared inbox each (2,000)
	// FailFraction of the servers fail: half answer 500, half hang until
	// the request times out.
	FailFraction float64
	// Deliverer settings; zero values are the production defaults,
	// except Timeout (per request) which defaults to 30 s as in production.
	Workers int
	PerHost int
	Timeout time.Duration
	// SignDuration is how long the signing rate is measured (2 s).
	SignDuration time.Duration
	// Dir holds the benchmark's database; a temporary folder when empty.
	Dir string
	// Key signs; a fresh RSA-2048 key when nil.
	Key *rsa.PrivateKey
	// RSA is what makes the signatures, as crieur serve's -rsa; "" is
	// RSAAuto.
	RSA    signature.RSAEngine
	Logger *slog.Logger
	// CPUProfile, when set, receives a pprof CPU profile of the fan-out
	// alone (setup and signing measurement excluded).
	CPUProfile io.Writer
	// AllocsBefore and AllocsAfter, when both set, receive the allocs
	// profile just before and just after the fan-out: `go tool pprof
	// -diff_base before after` shows what the fan-out alone allocated.
	AllocsBefore, AllocsAfter io.Writer
}

// BenchResult is what one fan-out run measured.
type BenchResult struct {
	Followers, Servers int
	Deliveries         int // jobs queued (distinct inboxes)
	BodyBytes          int // size of the delivered activity
	HealthyServers     int
	Delivered          int // verified deliveries counted by healthy servers
	Duplicates         int // deliveries beyond one per inbox (must be 0)
	Rejected           int // deliveries an inbox refused (bad signature or digest; must be 0)
	Attempts           int // requests received by all servers, failing ones included
	Publish            time.Duration
	// Duration is publish start → the last healthy server verifying its
	// delivery, timed on the receiving side as tools/fanout does: storing
	// the outcome afterwards is crieur's bookkeeping (its last batch waits
	// up to 50 ms for company), not the delivery.
	Duration time.Duration
	// HealthySpan is first → last healthy delivery received: how long the
	// healthy servers took once delivery had started. With failing
	// servers, compare it with an all-healthy run's (CompareHealthy).
	HealthySpan      time.Duration
	DeliveriesPerSec float64 // Delivered / Duration
	AttemptsPerSec   float64 // requests per second, all servers
	// SignPerSec is the target's reference: RSA-2048 signatures of a hash
	// by the engine crieur signs with, one after another on one goroutine,
	// as `openssl speed rsa2048` measures a machine's rate (one process).
	// The receivers share the machine with the sender, so no sender can
	// sign on every core.
	SignPerSec float64
	Ratio      float64 // DeliveriesPerSec / SignPerSec; the target is TargetRatio
	SignEngine string  // what signed them (Signer.Engine)
	// SignAllPerSec is requests signed as deliveries are (fresh request,
	// Date, Digest, signature) on GOMAXPROCS goroutines, and RatioAll the
	// deliveries against it: what the machine could sign with nothing else
	// running.
	SignAllPerSec float64
	RatioAll      float64
	// Raw RSA-2048 signatures of a hash on GOMAXPROCS goroutines, by Go's
	// rsa.SignPKCS1v15 and by OpenSSL (0 without it), and the deliveries
	// against each.
	RawRSAPerSec, RawOpenSSLPerSec float64
	RatioGo, RatioOpenSSL          float64
	PeakHeapSys                    uint64 // max runtime HeapSys sampled during the run
	PeakSys                        uint64 // max runtime Sys sampled during the run
	PeakRSS                        uint64 // VmHWM of the process (servers included), 0 if unknown
	// CPUUse is the process's CPU time during the fan-out over the time
	// GOMAXPROCS cores offered (1 = every core busy); 0 if unknown. Below
	// 1 the machine was idle part of the time or another process had it.
	CPUUse float64
	// CPU cost per delivery (crieur and the loopback servers together,
	// process CPU during the fan-out over healthy deliveries) and per
	// signature (Signer.SignRequest); their ratio is the delivery path's
	// efficiency, which other processes on the machine do not skew the
	// way they skew wall-clock rates.
	CPUPerDelivery, CPUPerSign time.Duration
	CPURatio                   float64
	// Go heap allocated per delivery and garbage collections during the
	// fan-out (the receivers' share included).
	AllocPerDelivery uint64
	GCCycles         uint32
	GCCPU            time.Duration // CPU the garbage collector used during the fan-out
	GOMAXPROCS       int
	Workers          int
}

// String is a human report of one run.
func (r BenchResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fan-out: %d followers on %d servers → %d deliveries of %d bytes (%d healthy servers), GOMAXPROCS %d, %d workers\n",
		r.Followers, r.Servers, r.Deliveries, r.BodyBytes, r.HealthyServers, r.GOMAXPROCS, r.Workers)
	fmt.Fprintf(&b, "  delivered %d (duplicates %d, rejected %d) in %s (publish %s): %.0f deliveries/s\n",
		r.Delivered, r.Duplicates, r.Rejected, r.Duration.Round(time.Millisecond), r.Publish.Round(time.Millisecond), r.DeliveriesPerSec)
	fmt.Fprintf(&b, "  attempts received %d: %.0f/s; healthy servers served from first to last in %s\n",
		r.Attempts, r.AttemptsPerSec, r.HealthySpan.Round(time.Millisecond))
	// The target is for a fan-out to healthy servers: with failing ones
	// the rate counts time spent on them, and -compare judges that run.
	verdict := "met"
	switch {
	case r.HealthyServers < r.Servers:
		verdict = "not judged, some servers fail"
	case r.Ratio < TargetRatio:
		verdict = "NOT met"
	}
	fmt.Fprintf(&b, "  RSA-2048 signing rate, one thread as openssl speed (%s): %.0f/s → ratio %.1f%%, target %.0f%% %s\n",
		r.SignEngine, r.SignPerSec, 100*r.Ratio, 100*TargetRatio, verdict)
	fmt.Fprintf(&b, "  requests signed as deliveries are, on %d threads with nothing else running: %.0f/s → ratio %.1f%%\n", r.GOMAXPROCS, r.SignAllPerSec, 100*r.RatioAll)
	fmt.Fprintf(&b, "  raw RSA-2048 signatures on %d threads: Go crypto/rsa %.0f/s → ratio %.1f%%", r.GOMAXPROCS, r.RawRSAPerSec, 100*r.RatioGo)
	if r.RawOpenSSLPerSec > 0 {
		fmt.Fprintf(&b, "; OpenSSL %.0f/s → ratio %.1f%%", r.RawOpenSSLPerSec, 100*r.RatioOpenSSL)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  peak memory: heap %s, Go sys %s, process RSS %s\n", mib(r.PeakHeapSys), mib(r.PeakSys), mib(r.PeakRSS))
	fmt.Fprintf(&b, "  allocated %.1f KiB per delivery, %d GC cycles using %s of CPU during the fan-out\n",
		float64(r.AllocPerDelivery)/1024, r.GCCycles, r.GCCPU.Round(time.Millisecond))
	if r.CPUUse > 0 {
		fmt.Fprintf(&b, "  CPU use during the fan-out: %.0f%% of %d cores; CPU per delivery %s, per signature %s → %.1f%%\n",
			100*r.CPUUse, r.GOMAXPROCS, r.CPUPerDelivery.Round(time.Microsecond), r.CPUPerSign.Round(time.Microsecond), 100*r.CPURatio)
	}
	return b.String()
}

// HealthyComparison is how a run with failing servers treated its healthy
// ones compared with an all-healthy run of the same size.
type HealthyComparison struct {
	// Slowdown is the healthy servers' completion time (first → last
	// healthy delivery) over the all-healthy run's, minus one: 0.1 means
	// the healthy servers waited 10% longer because others failed.
	Slowdown float64
	// PerAttempt compares the span per request the servers received:
	// failing servers' first attempts are signed and sent too, so the
	// degraded run has about as many requests in its span as the healthy
	// one. Positive: each request cost more time.
	PerAttempt float64
	// Budget is the limit (20%): Ok reports Slowdown <= Budget.
	Budget float64
	Ok     bool
}

// MaxHealthySlowdown is how much failing servers may slow the healthy ones
// (issue 4: "must not slow the healthy ones by more than 20%").
const MaxHealthySlowdown = 0.20

// CompareHealthy compares degraded (a run with failing servers) with
// healthy (the same size, all servers healthy).
func CompareHealthy(healthy, degraded BenchResult) HealthyComparison {
	c := HealthyComparison{Budget: MaxHealthySlowdown}
	if healthy.HealthySpan <= 0 || degraded.HealthySpan <= 0 || healthy.Attempts == 0 || degraded.Attempts == 0 {
		return c
	}
	c.Slowdown = degraded.HealthySpan.Seconds()/healthy.HealthySpan.Seconds() - 1
	per := func(r BenchResult) float64 { return r.HealthySpan.Seconds() / float64(r.Attempts) }
	c.PerAttempt = per(degraded)/per(healthy) - 1
	c.Ok = c.Slowdown <= c.Budget
	return c
}

func mib(n uint64) string {
	if n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// RunFanoutBench publishes one article through the real Publisher,
// Deliverer and storage to followers on loopback inbox servers that verify
// every signature and Digest, waits until every healthy server has it, and
// reports the delivery rate next to the signing rate measured in the same
// process. It is used by BenchmarkFanout and by `crieur bench`.
func RunFanoutBench(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	if cfg.Followers <= 0 {
		cfg.Followers = DefaultBenchFollowers
	}
	if cfg.Servers <= 0 {
		cfg.Servers = DefaultBenchServers
	}
	cfg.Servers = min(cfg.Servers, cfg.Followers)
	if cfg.FailFraction < 0 || cfg.FailFraction > 1 {
		return BenchResult{}, fmt.Errorf("fanoutbench: bench: fail fraction %v not in [0,1]", cfg.FailFraction)
	}
	if cfg.SignDuration <= 0 {
		cfg.SignDuration = DefaultBenchSignDuration
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = delivery.DefaultDeliveryTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, benchTimeout)
	defer cancel()
	key := cfg.Key
	if key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return BenchResult{}, fmt.Errorf("fanoutbench: bench: key: %w", err)
		}
		key = k
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "crieur-bench-")
		if err != nil {
			return BenchResult{}, fmt.Errorf("fanoutbench: bench: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	res := BenchResult{Followers: cfg.Followers, Servers: cfg.Servers, GOMAXPROCS: runtime.GOMAXPROCS(0)}

	// The inbox servers.
	verifier := &DeliveryVerifier{KeyID: documents.Config{BaseURL: benchBase, Handle: "bench"}.KeyID(), Key: &key.PublicKey}
	farm, err := startInboxFarm(cfg.Servers, cfg.FailFraction, verifier)
	if err != nil {
		return res, err
	}
	defer farm.close()
	res.HealthyServers = farm.healthy

	// Storage, followers and the service.
	store, err := storage.Open(filepath.Join(dir, "bench.db"), storage.Options{})
	if err != nil {
		return res, fmt.Errorf("fanoutbench: bench: %w", err)
	}
	defer store.Close()
	if err := farm.addFollowers(store, cfg.Followers); err != nil {
		return res, err
	}
	postsDir := filepath.Join(dir, "posts")
	if err := os.MkdirAll(postsDir, 0o755); err != nil {
		return res, fmt.Errorf("fanoutbench: bench: %w", err)
	}
	var lib atomic.Pointer[articles.Library]
	empty, err := articles.Load(postsDir, articles.Options{})
	if err != nil {
		return res, fmt.Errorf("fanoutbench: bench: %w", err)
	}
	lib.Store(empty)
	client := transport.NewClient(transport.ClientConfig{
		UserAgent:     "crieur-bench",
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Timeout:       cfg.Timeout,
	})
	defer client.CloseIdleConnections()
	docs, err := documents.New(documents.Config{BaseURL: benchBase, Handle: "bench", DisplayName: "Bench"}, documents.Deps{
		Store: store, Posts: lib.Load, Key: &key.PublicKey, Logger: cfg.Logger,
	})
	if err != nil {
		return res, err
	}
	signer, err := signature.NewSignerEngine(docs.Config().KeyID(), key, nil, cfg.RSA)
	if err != nil {
		return res, err
	}

	// The Deliverer, counting outcomes: the run ends once every healthy
	// delivery is stored, so nothing is left in the queue.
	var (
		mu          sync.Mutex
		healthyDone int
		allDone     = make(chan struct{})
	)
	d := delivery.NewDeliverer(store, client, signer, delivery.Options{
		Workers: cfg.Workers, PerHost: cfg.PerHost, Timeout: cfg.Timeout, Grace: 100 * time.Millisecond,
		Logger: cfg.Logger,
		OnDone: func(r delivery.Result) {
			if r.Outcome != delivery.OutcomeDelivered {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			healthyDone++
			if healthyDone == farm.healthy {
				close(allDone)
			}
		},
	})
	res.Workers = d.Workers()
	pub := publish.NewPublisher(docs, d, publish.Options{Logger: cfg.Logger})
	// The first reconcile over an empty folder marks the store as
	// initialised; the article then is a new post, not back catalogue.
	if err := pub.Reconcile(ctx); err != nil {
		return res, err
	}
	full, err := benchLibrary(postsDir)
	if err != nil {
		return res, err
	}

	// Signing rate before the run, with the body that will be delivered.
	body, err := benchBody(docs, full)
	if err != nil {
		return res, err
	}
	res.BodyBytes = len(body)
	before := measureSigning(signer, key, body, farm.servers[0].url+"/inbox", cfg.SignDuration/2)

	runCtx, cancelRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = d.Run(runCtx)
	}()
	stopRun := func() {
		cancelRun()
		<-runDone
	}
	defer stopRun()

	var peak memPeak
	stopSampling := peak.sample(benchSample)
	runtime.GC()
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			stopSampling()
			return res, fmt.Errorf("fanoutbench: bench: %w", err)
		}
	}
	allocs := cfg.AllocsBefore != nil && cfg.AllocsAfter != nil
	if allocs {
		if err := pprof.Lookup("allocs").WriteTo(cfg.AllocsBefore, 0); err != nil {
			stopSampling()
			return res, fmt.Errorf("fanoutbench: bench: %w", err)
		}
	}
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	gc0 := gcCPU()
	cpuStart := processCPU()
	start := time.Now()
	lib.Store(full)
	if err := pub.Reconcile(ctx); err != nil {
		stopSampling()
		return res, err
	}
	res.Publish = time.Since(start)
	if farm.healthy > 0 {
		select {
		case <-allDone:
		case <-ctx.Done():
			stopSampling()
			return res, fmt.Errorf("fanoutbench: bench: waiting for deliveries: %w", ctx.Err())
		}
	}
	stopSampling()
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	first, end := farm.span()
	if end.IsZero() {
		end = time.Now()
	}
	res.Duration = end.Sub(start)
	if !first.IsZero() {
		res.HealthySpan = end.Sub(first)
	}
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	res.GCCycles = ms1.NumGC - ms0.NumGC
	res.GCCPU = gcCPU() - gc0
	if farm.healthy > 0 {
		res.AllocPerDelivery = (ms1.TotalAlloc - ms0.TotalAlloc) / uint64(farm.healthy)
	}
	if cpu := processCPU() - cpuStart; cpu > 0 && cpuStart > 0 {
		res.CPUUse = cpu.Seconds() / (time.Since(start).Seconds() * float64(res.GOMAXPROCS))
		if farm.healthy > 0 {
			res.CPUPerDelivery = cpu / time.Duration(farm.healthy)
		}
	}
	stopRun()
	if allocs {
		// The profile is as of the last collection: collect first so it
		// covers the whole fan-out (the figures above are taken already).
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(cfg.AllocsAfter, 0); err != nil {
			return res, fmt.Errorf("fanoutbench: bench: %w", err)
		}
	}

	after := measureSigning(signer, key, body, farm.servers[0].url+"/inbox", cfg.SignDuration/2)
	res.SignPerSec = (before.signOne + after.signOne) / 2
	res.SignAllPerSec = (before.sign + after.sign) / 2
	res.RawRSAPerSec = (before.raw + after.raw) / 2
	res.RawOpenSSLPerSec = (before.rawOpenSSL + after.rawOpenSSL) / 2
	res.SignEngine, _ = signer.Engine()
	res.CPUPerSign = (before.signCPU + after.signCPU) / 2

	if acts, _, err := store.Outbox(0, 1); err == nil && len(acts) == 1 {
		if c, err := store.DeliveryCounts(acts[0].ID); err == nil {
			res.Deliveries = c.Delivered + c.Pending + c.Failed
		}
	}
	res.Delivered, res.Duplicates, res.Rejected, res.Attempts = farm.counts()
	secs := res.Duration.Seconds()
	if secs > 0 {
		res.DeliveriesPerSec = float64(res.Delivered) / secs
		res.AttemptsPerSec = float64(res.Attempts) / secs
	}
	if res.SignPerSec > 0 {
		res.Ratio = res.DeliveriesPerSec / res.SignPerSec
	}
	if res.SignAllPerSec > 0 {
		res.RatioAll = res.DeliveriesPerSec / res.SignAllPerSec
	}
	if res.RawRSAPerSec > 0 {
		res.RatioGo = res.DeliveriesPerSec / res.RawRSAPerSec
	}
	if res.RawOpenSSLPerSec > 0 {
		res.RatioOpenSSL = res.DeliveriesPerSec / res.RawOpenSSLPerSec
	}
	if res.CPUPerDelivery > 0 {
		res.CPURatio = float64(res.CPUPerSign) / float64(res.CPUPerDelivery)
	}
	res.PeakHeapSys, res.PeakSys = peak.values()
	res.PeakRSS = vmHWM()
	if res.Rejected > 0 {
		return res, fmt.Errorf("fanoutbench: bench: %d deliveries failed verification", res.Rejected)
	}
	return res, nil
}

// benchLibrary writes the benchmark's article and loads the folder.
func benchLibrary(dir string) (*articles.Library, error) {
	var b strings.Builder
	b.WriteString("---\ntitle: \"Fan-out benchmark\"\ndate: 2024-01-02T09:00:00Z\n")
	b.WriteString("summary: \"One article delivered to every follower.\"\ntags: [bench, fediverse]\n---\n\n")
	// About 6 KB of text, the size of a short article.
	for i := range 12 {
		fmt.Fprintf(&b, "## Part %d\n\nThe association counts its services, its volunteers and its donors; "+
			"this paragraph %d stands for the text of a real report, with *emphasis*, **strong words** "+
			"and [a link](https://example.org/%d) so that the Note is rendered like an article.\n\n", i+1, i+1, i+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "fanout-bench.en.md"), []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("fanoutbench: bench: %w", err)
	}
	lib, err := articles.Load(dir, articles.Options{})
	if err != nil {
		return nil, fmt.Errorf("fanoutbench: bench: %w", err)
	}
	if len(lib.Visible(time.Now())) != 1 {
		return nil, fmt.Errorf("fanoutbench: bench: the article did not load: %v", lib.Problems())
	}
	return lib, nil
}

// benchBody is a Create of the benchmark article, as delivered.
func benchBody(svc *documents.Builder, lib *articles.Library) ([]byte, error) {
	p := lib.Visible(time.Now())[0]
	note, err := svc.BuildNote(p, lib, p.Date, time.Time{})
	if err != nil {
		return nil, err
	}
	act, err := svc.NewActivity(publish.ActionCreate, note)
	if err != nil {
		return nil, err
	}
	return act.JSON, nil
}

// signRates is what measureSigning found.
type signRates struct {
	signOne    float64       // the engine's raw signatures per second on one goroutine
	sign, raw  float64       // operations per second on GOMAXPROCS goroutines
	rawOpenSSL float64       // 0 without OpenSSL
	signCPU    time.Duration // process CPU per signature on GOMAXPROCS goroutines, 0 if unknown
}

// measureSigning measures, for d each: raw RSA-2048 signatures of a SHA-256
// hash by the signer's engine on one goroutine; signing requests like a
// delivery does (fresh request, Date, the body's Digest, RSA signature) on
// GOMAXPROCS goroutines; and raw signatures on GOMAXPROCS goroutines, by Go
// and by OpenSSL when it loads.
func measureSigning(signer *signature.Signer, key *rsa.PrivateKey, body []byte, target string, d time.Duration) signRates {
	run := func(goroutines int, op func() error) (float64, time.Duration) {
		var n atomic.Int64
		var wg sync.WaitGroup
		cpu0 := processCPU()
		start := time.Now()
		deadline := start.Add(d)
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					if op() != nil {
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		ops := n.Load()
		if ops == 0 {
			return 0, 0
		}
		var perOp time.Duration
		if cpu0 > 0 {
			perOp = (processCPU() - cpu0) / time.Duration(ops)
		}
		return float64(ops) / time.Since(start).Seconds(), perOp
	}
	var r signRates
	// Exactly what a delivery does before sending: the request, its
	// headers, a fresh Date and the signature over the fan-out's digest,
	// with the Deliverer's key.
	digest := signature.BodyDigest(body)
	signRequest := func() error {
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		transport.SetPostHeaders(req.Header, "crieur-bench")
		return signer.SignRequestDigest(req, digest)
	}
	all := runtime.GOMAXPROCS(0)
	sum := sha256.Sum256(body)
	r.signOne, _ = run(1, func() error {
		_, err := signer.SignHash(sum[:])
		return err
	})
	r.sign, r.signCPU = run(all, signRequest)
	r.raw, _ = run(all, func() error {
		_, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
		return err
	})
	if o, err := signature.NewSignerEngine(signer.KeyID(), key, nil, signature.RSAOpenSSL); err == nil {
		r.rawOpenSSL, _ = run(all, func() error {
			_, err := o.SignHash(sum[:])
			return err
		})
	}
	return r
}

// memPeak samples the Go runtime's memory during a run.
type memPeak struct {
	mu            sync.Mutex
	heapSys, sys  uint64
	stop, stopped chan struct{}
}

func (m *memPeak) sample(every time.Duration) (stop func()) {
	m.stop, m.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m.read()
			select {
			case <-m.stop:
				m.read()
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(m.stop)
			<-m.stopped
		})
	}
}

func (m *memPeak) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mu.Lock()
	m.heapSys = max(m.heapSys, ms.HeapSys)
	m.sys = max(m.sys, ms.Sys)
	m.mu.Unlock()
}

func (m *memPeak) values() (heapSys, sys uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heapSys, m.sys
}

// vmHWM is the process's peak resident set (Linux), 0 elsewhere.
func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 1 {
				kb, err := strconv.ParseUint(fields[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// gcCPU is the CPU time the Go garbage collector has used so far.
func gcCPU() time.Duration {
	sample := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(sample[0].Value.Float64() * float64(time.Second))
}

// processCPU is the user+system CPU time of the process so far (Linux,
// from /proc/self/stat; 0 elsewhere).
func processCPU() time.Duration {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses and may hold
	// spaces): utime and stime are the 12th and 13th, in clock ticks.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	// USER_HZ is 100 on every Linux configuration Go supports.
	return time.Duration(ut+st) * (time.Second / 100)
}
