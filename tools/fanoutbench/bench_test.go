package fanoutbench

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/signature"
)

// TestRunFanoutBenchCountsEveryInboxOnce runs the benchmark machinery at a
// small size and checks what it reports, not how fast it was.
func TestRunFanoutBenchCountsEveryInboxOnce(t *testing.T) {
	// The timeout is far above any healthy delivery on a loaded machine:
	// a healthy server answered after the client gave up would be tried
	// again and counted twice. The run ends when the healthy deliveries
	// are stored, so the hanging servers do not make it longer.
	res, err := RunFanoutBench(context.Background(), BenchConfig{
		Followers: 90, Servers: 30, FailFraction: 0.3,
		Timeout: 30 * time.Second, SignDuration: 100 * time.Millisecond,
		Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deliveries != 30 {
		t.Errorf("jobs queued %d, want one per shared inbox (30)", res.Deliveries)
	}
	if res.HealthyServers != 21 || res.Delivered != 21 {
		t.Errorf("healthy %d delivered %d, want 21 and 21", res.HealthyServers, res.Delivered)
	}
	if res.Duplicates != 0 || res.Rejected != 0 {
		t.Errorf("duplicates %d rejected %d", res.Duplicates, res.Rejected)
	}
	if res.Attempts < 30 {
		t.Errorf("servers saw %d requests, want every one of the 30 tried", res.Attempts)
	}
	if res.SignPerSec <= 0 || res.SignAllPerSec <= 0 || res.RawRSAPerSec <= 0 || res.DeliveriesPerSec <= 0 || res.PeakSys == 0 {
		t.Errorf("missing figures: %+v", res)
	}
	if _, err := signature.OpenSSL(); err == nil && (res.RawOpenSSLPerSec <= 0 || res.RatioOpenSSL <= 0 || !strings.HasPrefix(res.SignEngine, "OpenSSL")) {
		t.Errorf("OpenSSL loads, yet the run reports engine %q, raw rate %v, ratio %v", res.SignEngine, res.RawOpenSSLPerSec, res.RatioOpenSSL)
	}
	if s := res.String(); !strings.Contains(s, res.SignEngine) || !strings.Contains(s, "Go crypto/rsa") {
		t.Errorf("report does not name the engines:\n%s", s)
	}
}

// TestBenchReportVerdict: the report says whether the fan-out met the
// target, against the one-thread signing rate; a run with failing servers
// is not judged by it.
func TestBenchReportVerdict(t *testing.T) {
	for _, tc := range []struct {
		ratio   float64
		healthy int
		want    string
	}{
		{0.79, 10, "target 80% NOT met"},
		{0.8, 10, "target 80% met"},
		{1.1, 10, "target 80% met"},
		{1.1, 7, "target 80% not judged, some servers fail"},
	} {
		r := BenchResult{SignEngine: "OpenSSL", SignPerSec: 1000, DeliveriesPerSec: 1000 * tc.ratio, Ratio: tc.ratio,
			GOMAXPROCS: 2, Servers: 10, HealthyServers: tc.healthy}
		if s := r.String(); !strings.Contains(s, tc.want) {
			t.Errorf("ratio %v: report lacks %q:\n%s", tc.ratio, tc.want, s)
		}
	}
}

// TestRunFanoutBenchWithGoRSA: the bench signs with the engine it is
// given, and says so.
func TestRunFanoutBenchWithGoRSA(t *testing.T) {
	res, err := RunFanoutBench(context.Background(), BenchConfig{
		Followers: 20, Servers: 10, SignDuration: 50 * time.Millisecond,
		Dir: t.TempDir(), RSA: signature.RSAGo,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.SignEngine != "Go crypto/rsa" || res.Delivered != 10 || res.Rejected != 0 {
		t.Errorf("engine %q, delivered %d, rejected %d; want Go crypto/rsa, 10, 0", res.SignEngine, res.Delivered, res.Rejected)
	}
}

func TestRunFanoutBenchRejectsBadFraction(t *testing.T) {
	if _, err := RunFanoutBench(context.Background(), BenchConfig{FailFraction: 1.5}); err == nil {
		t.Fatal("fail fraction 1.5 accepted")
	}
}

// BenchmarkFanout fans one article out through the real Publisher,
// Deliverer and storage to loopback inboxes that verify every signature.
// Small by default; CRIEUR_BENCH_FULL=1 runs the size (10,000
// followers on 2,000 servers), CRIEUR_BENCH_FAIL=0.3 makes 30% of the
// servers fail (half 500, half hang), CRIEUR_BENCH_WORKERS sets Workers,
// CRIEUR_BENCH_CPUPROFILE=f writes a CPU profile of the fan-out and
// CRIEUR_BENCH_ALLOCS=f its allocations (f.before is the -diff_base).
//
//	CRIEUR_BENCH_FULL=1 go test -run '^$' -bench Fanout -benchtime 1x ./federation/
func BenchmarkFanout(b *testing.B) {
	cfg := BenchConfig{Followers: 500, Servers: 100, SignDuration: time.Second, Timeout: 5 * time.Second}
	if os.Getenv("CRIEUR_BENCH_FULL") != "" {
		cfg.Followers, cfg.Servers, cfg.SignDuration = DefaultBenchFollowers, DefaultBenchServers, DefaultBenchSignDuration
	}
	if v := os.Getenv("CRIEUR_BENCH_FAIL"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatal(err)
		}
		cfg.FailFraction = f
	}
	if v := os.Getenv("CRIEUR_BENCH_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Workers = n
	}
	if path := os.Getenv("CRIEUR_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cfg.CPUProfile = f
	}
	if path := os.Getenv("CRIEUR_BENCH_ALLOCS"); path != "" {
		before, err := os.Create(path + ".before")
		if err != nil {
			b.Fatal(err)
		}
		defer before.Close()
		after, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer after.Close()
		cfg.AllocsBefore, cfg.AllocsAfter = before, after
	}
	for b.Loop() {
		cfg.Dir = b.TempDir()
		res, err := RunFanoutBench(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.DeliveriesPerSec, "deliveries/s")
		b.ReportMetric(res.SignPerSec, "signs/s")
		b.ReportMetric(100*res.Ratio, "%sign-rate")
		b.ReportMetric(100*res.RatioAll, "%sign-rate-all-cores")
		b.ReportMetric(100*res.RatioGo, "%go-rsa-rate")
		b.ReportMetric(float64(res.PeakRSS)/(1<<20), "peak-RSS-MiB")
		b.Log("\n" + res.String())
	}
}

func TestCompareHealthyUsesHealthyServersSpan(t *testing.T) {
	healthy := BenchResult{HealthySpan: time.Second, Delivered: 2000, Attempts: 2000}
	slow := BenchResult{HealthySpan: 1300 * time.Millisecond, Delivered: 1400, Attempts: 2000}
	c := CompareHealthy(healthy, slow)
	if c.Ok || c.Slowdown < 0.29 || c.Slowdown > 0.31 || c.PerAttempt < 0.29 || c.PerAttempt > 0.31 {
		t.Errorf("30%% slower healthy span: %+v", c)
	}
	ok := BenchResult{HealthySpan: 1100 * time.Millisecond, Delivered: 1400, Attempts: 2200}
	if c := CompareHealthy(healthy, ok); !c.Ok || c.PerAttempt > 0.001 {
		t.Errorf("10%% slower span, same time per request: %+v", c)
	}
	if c := CompareHealthy(BenchResult{}, ok); c.Ok {
		t.Errorf("no baseline reported as within budget: %+v", c)
	}
}
