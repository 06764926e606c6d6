package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Timeline shape: at most timelineBuckets buckets, none shorter than
// timelineMinBucket.
const (
	timelineBuckets   = 40
	timelineMinBucket = 100 * time.Millisecond
	// maxBaselineFile caps the baseline report read with -baseline.
	maxBaselineFile = 1 << 20
)

// report is the outcome of one run. Its JSON form is one line that later
// runs can take as -baseline.
type report struct {
	Followers  int     `json:"followers"`
	Servers    int     `json:"servers"`
	Fail       float64 `json:"fail"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	NumCPU     int     `json:"num_cpu"`
	FileLimit  string  `json:"file_limit"`
	// CPUs crieur and the inbox servers ran on (the same list unless
	// -crieur-cpus pinned them apart), and how many the machine has.
	CrieurCPUs    string `json:"crieur_cpus"`
	ReceiverCPUs  string `json:"receiver_cpus"`
	CrieurCores   int    `json:"crieur_cores"`
	ReceiverCores int    `json:"receiver_cores"`
	MachineCores  int    `json:"machine_cores"`
	// SignGoroutines signed in parallel for the rate: one per crieur CPU.
	SignGoroutines int    `json:"sign_goroutines"`
	DataFS         string `json:"data_fs"`
	// HTTPS: the inbox servers spoke TLS (-https).
	HTTPS bool `json:"https,omitempty"`

	// Signatures per second over the whole machine, before crieur started
	// and after it stopped, and their mean: the ceiling of the fan-out.
	SignBefore float64 `json:"sign_rate_before"`
	SignAfter  float64 `json:"sign_rate_after"`
	SignRate   float64 `json:"sign_rate"`
	// RSA-2048 signatures per second of `openssl speed` on crieur's CPUs,
	// before and after, and their mean: the reference when crieur signs
	// with OpenSSL (0 without an openssl command).
	OpenSSLBefore float64 `json:"openssl_rate_before,omitempty"`
	OpenSSLAfter  float64 `json:"openssl_rate_after,omitempty"`
	OpenSSLRate   float64 `json:"openssl_rate,omitempty"`
	// The same for one process (plain `openssl speed rsa2048`, what one
	// core signs), measured only when crieur has more than one CPU.
	OpenSSLOneBefore float64 `json:"openssl_one_rate_before,omitempty"`
	OpenSSLOneAfter  float64 `json:"openssl_one_rate_after,omitempty"`
	OpenSSLOneRate   float64 `json:"openssl_one_rate,omitempty"`
	// Share of the machine other processes took while each was measured.
	SignBeforeOthers float64 `json:"sign_before_others"`
	SignAfterOthers  float64 `json:"sign_after_others"`

	Healthy         int      `json:"healthy_servers"`
	Failing500      int      `json:"failing_500"`
	Hanging         int      `json:"hanging"`
	HealthyReached  int      `json:"healthy_reached"`
	Missing         []string `json:"missing,omitempty"`
	Duplicates      int      `json:"duplicates"`
	DistinctCreates int      `json:"distinct_create_ids"`
	Unexpected      int      `json:"unexpected_activities"`
	VerifyFailures  int      `json:"verify_failures"`
	Failures        []string `json:"failures,omitempty"`
	FailingAttempts int      `json:"failing_attempts"`
	FailingReached  int      `json:"failing_reached"`

	// Milliseconds from the rename of the new article.
	DropToFirstMs float64 `json:"drop_to_first_ms"`
	FirstToLastMs float64 `json:"first_to_last_ms"`
	DropToLastMs  float64 `json:"drop_to_last_ms"`
	// Healthy deliveries per second, and as a fraction of SignRate.
	RateFirstToLast  float64 `json:"rate_first_to_last"`
	RateDropToLast   float64 `json:"rate_drop_to_last"`
	RatioFirstToLast float64 `json:"ratio_first_to_last"`
	RatioDropToLast  float64 `json:"ratio_drop_to_last"`
	// RateDropToLast as a fraction of OpenSSLRate and of OpenSSLOneRate.
	RatioOpenSSL    float64 `json:"ratio_openssl,omitempty"`
	RatioOpenSSLOne float64 `json:"ratio_openssl_one,omitempty"`

	PeakRSSMiB float64 `json:"crieur_peak_rss_mib"`
	// crieur's resident memory at the end of the fan-out, split into its
	// own (anonymous) and mapped files (mostly its bbolt database).
	RSSAnonMiB float64 `json:"crieur_rss_anon_mib"`
	RSSFileMiB float64 `json:"crieur_rss_file_mib"`
	// CPU used from the drop until the last healthy delivery.
	CrieurCPUSeconds  float64 `json:"crieur_cpu_s"`
	HarnessCPUSeconds float64 `json:"harness_cpu_s"`
	// CPU per POST received, against the CPU one signature costs with
	// what crieur signs with (CrieurSigns, from crieur version: "openssl"
	// takes openssl speed's rate, "go" or unknown Go's).
	CrieurCPUPerPostMs float64 `json:"crieur_cpu_per_post_ms"`
	CrieurSigns        string  `json:"crieur_signs"`
	SignCPUMs          float64 `json:"sign_cpu_ms"`
	// SignShare is SignCPUMs / CrieurCPUPerPostMs: the part of crieur's
	// CPU a delivery's signature accounts for. It does not depend on how
	// much of the machine the receivers and other processes took, so it
	// is the ratio crieur would reach with every core to itself.
	SignShare float64 `json:"sign_share"`
	// Share of the CPUs each was given, over that window.
	CrieurCPUShare  float64 `json:"crieur_cpu_share"`
	HarnessCPUShare float64 `json:"harness_cpu_share"`
	// OthersCPUShare is what other processes took: above a few percent the
	// machine was not quiet and the rates are low by about as much.
	OthersCPUShare float64 `json:"others_cpu_share"`

	KeyFetches int `json:"key_fetches"`
	// KeyFetchMs is the slowest fetch of crieur's key by a receiver: a
	// remote server verifying the first delivery waits that long, and
	// gives up past its own timeout (Mastodon: 10 s).
	KeyFetchMs     float64 `json:"key_fetch_ms"`
	MaxDateAgeMs   float64 `json:"max_date_age_ms"`
	MaxInflight    int     `json:"max_inflight"`
	Posts          int     `json:"posts_received"`
	CrieurLogLines int     `json:"crieur_log_lines"`
	SeedSeconds    float64 `json:"seed_s"`
	// Healthy first deliveries per bucket after the drop, and the share of
	// the machine (percent of all cores) crieur and the harness used in
	// each bucket.
	TimelineBucketMs float64 `json:"timeline_bucket_ms"`
	Timeline         []int   `json:"timeline"`
	CrieurCPUPct     []int   `json:"crieur_cpu_pct"`
	HarnessCPUPct    []int   `json:"harness_cpu_pct"`
	OthersCPUPct     []int   `json:"others_cpu_pct"`
	// Connections crieur opened to the inbox servers, and the time from
	// accept to the first request on each (crieur signs before it dials).
	Conns        int     `json:"connections"`
	TLSConns     int     `json:"tls_connections,omitempty"`
	ConnGapP50Ms float64 `json:"conn_gap_p50_ms"`
	ConnGapP90Ms float64 `json:"conn_gap_p90_ms"`
	ConnGapMaxMs float64 `json:"conn_gap_max_ms"`

	// The -follow phase: followers subscribed with real signed Follows.
	// Seconds from the first Follow sent to the last one answered, and to
	// the last Accept verified on the followers' side.
	Follow                 bool        `json:"follow"`
	FollowsAnswered        int         `json:"follows_answered,omitempty"` // 2xx from crieur's inbox
	FollowsAccepted        int         `json:"follows_accepted,omitempty"` // an Accept verified
	FollowPostSeconds      float64     `json:"follow_post_s,omitempty"`
	FollowAcceptSeconds    float64     `json:"follow_accept_s,omitempty"`
	FollowsPerSec          float64     `json:"follows_per_sec,omitempty"`
	FollowLatencyP50Ms     float64     `json:"follow_latency_p50_ms,omitempty"`
	FollowLatencyP99Ms     float64     `json:"follow_latency_p99_ms,omitempty"`
	FollowLatencyMaxMs     float64     `json:"follow_latency_max_ms,omitempty"`
	FollowRetries          int         `json:"follow_retries,omitempty"`
	FollowRefused          int         `json:"follow_refused,omitempty"`
	FollowStatuses         map[int]int `json:"follow_statuses,omitempty"`
	DuplicateAccepts       int         `json:"duplicate_accepts,omitempty"`
	ForeignAccepts         int         `json:"foreign_accepts,omitempty"`
	ActorFetches           int64       `json:"actor_fetches,omitempty"`
	FollowCrieurCPUSeconds float64     `json:"follow_crieur_cpu_s,omitempty"`
	FollowCPUPerFollowMs   float64     `json:"follow_cpu_per_follow_ms,omitempty"`

	BaselineRate      float64 `json:"baseline_rate,omitempty"`
	HealthyVsBaseline float64 `json:"healthy_vs_baseline,omitempty"`
	// HealthySlowdown is how much longer the healthy servers waited (drop
	// to last) than in the baseline run, both counted in signatures of
	// their own run (time × signing rate), so a busier machine in one run
	// does not count: 1.2 is 20% slower.
	HealthySlowdown float64 `json:"healthy_slowdown,omitempty"`

	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`

	drop, first, last time.Time
	samples           []cpuSample
}

func (r *report) problem(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fill takes the fleet's tally; done is when the harness saw the last
// healthy delivery (or gave up).
func (r *report) fill(t tally, drop, done time.Time) {
	r.drop, r.first, r.last = drop, t.First, t.Last
	r.Healthy, r.Failing500, r.Hanging = t.Healthy, t.Failing500, t.Hanging
	r.HealthyReached, r.Missing = t.HealthyReached, t.Missing
	r.Duplicates, r.DistinctCreates, r.Unexpected = t.Duplicates, t.DistinctCreateIDs, t.Unexpected
	r.VerifyFailures, r.Failures = t.VerifyFailures, t.Failures
	r.FailingAttempts, r.FailingReached = t.FailingAttempts, t.FailingReached
	r.MaxDateAgeMs, r.MaxInflight, r.Posts = ms(t.MaxDateAge), t.MaxInflight, t.Posts
	if !t.FirstAny.IsZero() {
		r.DropToFirstMs = ms(t.FirstAny.Sub(drop))
	}
	if !t.Last.IsZero() {
		r.FirstToLastMs = ms(t.Last.Sub(t.First))
		r.DropToLastMs = ms(t.Last.Sub(drop))
	}
	r.Timeline, r.TimelineBucketMs = timeline(t.HealthyArrivals, drop)
	bucket := time.Duration(r.TimelineBucketMs * float64(time.Millisecond))
	r.CrieurCPUPct, r.HarnessCPUPct, r.OthersCPUPct = cpuTimeline(r.samples, drop, bucket, len(r.Timeline), r.cores())
	r.Conns, r.TLSConns = t.Conns, t.TLSConns
	if n := len(t.ConnGaps); n > 0 {
		r.ConnGapP50Ms = ms(t.ConnGaps[n/2])
		r.ConnGapP90Ms = ms(t.ConnGaps[n*9/10])
		r.ConnGapMaxMs = ms(t.ConnGaps[n-1])
	}

	if t.VerifyFailures > 0 {
		r.problem("%d deliveries failed verification (first: %s)", t.VerifyFailures, strings.Join(t.Failures, " | "))
	}
	if t.HealthyReached < t.Healthy {
		r.problem("%d of %d healthy servers never got the Create (e.g. %s)", t.Healthy-t.HealthyReached, t.Healthy, strings.Join(t.Missing, ", "))
	}
	if t.Duplicates > 0 {
		r.problem("%d duplicate Creates on healthy servers", t.Duplicates)
	}
	if t.DistinctCreateIDs > 1 {
		r.problem("%d different Create ids for one Note", t.DistinctCreateIDs)
	}
	if t.Unexpected > 0 {
		r.problem("%d unexpected activities (e.g. %s): was the back catalogue pushed?", t.Unexpected, t.UnexpectedSample)
	}
	window := done.Sub(drop).Seconds()
	n := r.cores()
	if window > 0 && n.crieur > 0 && n.receivers > 0 {
		r.CrieurCPUShare = r.CrieurCPUSeconds / (window * float64(n.crieur))
		r.HarnessCPUShare = r.HarnessCPUSeconds / (window * float64(n.receivers))
	}
	if k := len(r.samples); k > 1 && n.machine > 0 {
		a, b := r.samples[0], r.samples[k-1]
		if d := b.at.Sub(a.at).Seconds(); d > 0 {
			others := (b.machine - a.machine) - (b.crieur - a.crieur) - (b.harness - a.harness)
			r.OthersCPUShare = max(0, others.Seconds()/(d*float64(n.machine)))
		}
	}
}

// fillFollow takes the Follow phase's outcome: what the senders saw and
// the Accepts that came back, from start (the first Follow sent).
func (r *report) fillFollow(st followStats, a *acceptTally, start time.Time, fetches int64) {
	a.mu.Lock()
	accepted := len(a.got) - a.want
	last, dup, foreign := a.last, a.dup, a.foreign
	a.mu.Unlock()
	r.Follow = true
	r.FollowsAnswered, r.FollowsAccepted = st.Sent, accepted
	r.FollowPostSeconds = st.Elapsed.Seconds()
	if !last.IsZero() {
		r.FollowAcceptSeconds = last.Sub(start).Seconds()
		if r.FollowAcceptSeconds > 0 {
			r.FollowsPerSec = float64(accepted) / r.FollowAcceptSeconds
		}
	}
	if n := len(st.Latency); n > 0 {
		r.FollowLatencyP50Ms = ms(st.Latency[n/2])
		r.FollowLatencyP99Ms = ms(st.Latency[n*99/100])
		r.FollowLatencyMaxMs = ms(st.Latency[n-1])
	}
	r.FollowRetries, r.FollowRefused = st.Retries, st.Refused
	if len(st.Statuses) > 0 {
		r.FollowStatuses = st.Statuses
	}
	r.DuplicateAccepts, r.ForeignAccepts, r.ActorFetches = dup, foreign, fetches
	if st.Refused > 0 {
		r.problem("%d Follows refused or never answered (first: %s)", st.Refused, st.Sample)
	}
	if foreign > 0 {
		r.problem("%d Accepts of Follows nobody sent", foreign)
	}
}

// rates derives every rate once both signing measurements are in.
func (r *report) rates() {
	switch {
	case r.SignBefore > 0 && r.SignAfter > 0:
		r.SignRate = (r.SignBefore + r.SignAfter) / 2
	default:
		r.SignRate = max(r.SignBefore, r.SignAfter)
	}
	switch {
	case r.OpenSSLBefore > 0 && r.OpenSSLAfter > 0:
		r.OpenSSLRate = (r.OpenSSLBefore + r.OpenSSLAfter) / 2
	default:
		r.OpenSSLRate = max(r.OpenSSLBefore, r.OpenSSLAfter)
	}
	switch {
	case r.OpenSSLOneBefore > 0 && r.OpenSSLOneAfter > 0:
		r.OpenSSLOneRate = (r.OpenSSLOneBefore + r.OpenSSLOneAfter) / 2
	default:
		r.OpenSSLOneRate = max(r.OpenSSLOneBefore, r.OpenSSLOneAfter)
	}
	n := float64(r.HealthyReached)
	if d := r.last.Sub(r.first).Seconds(); d > 0 {
		r.RateFirstToLast = n / d
	}
	if d := r.last.Sub(r.drop).Seconds(); d > 0 && !r.last.IsZero() {
		r.RateDropToLast = n / d
	}
	if r.SignRate > 0 {
		r.RatioFirstToLast = r.RateFirstToLast / r.SignRate
		r.RatioDropToLast = r.RateDropToLast / r.SignRate
		r.SignCPUMs = r.goSignCPUMs()
	}
	if r.CrieurSigns == "openssl" && r.OpenSSLRate > 0 && r.CrieurCores > 0 {
		// openssl speed ran one process per crieur CPU.
		r.SignCPUMs = 1000 * float64(r.CrieurCores) / r.OpenSSLRate
	}
	if r.OpenSSLRate > 0 {
		r.RatioOpenSSL = r.RateDropToLast / r.OpenSSLRate
	}
	if r.OpenSSLOneRate > 0 {
		r.RatioOpenSSLOne = r.RateDropToLast / r.OpenSSLOneRate
	}
	if r.Posts > 0 {
		r.CrieurCPUPerPostMs = 1000 * r.CrieurCPUSeconds / float64(r.Posts)
	}
	if r.CrieurCPUPerPostMs > 0 {
		r.SignShare = round3(r.SignCPUMs / r.CrieurCPUPerPostMs)
	}
	r.OK = len(r.Problems) == 0
	if r.CrieurCPUShare > 0 {
		r.CrieurCPUShare = round3(r.CrieurCPUShare)
		r.HarnessCPUShare = round3(r.HarnessCPUShare)
	}
	r.OthersCPUShare = round3(r.OthersCPUShare)
}

// signsWith names the engine the signature share was computed for.
func (r *report) signsWith() string {
	if r.CrieurSigns == "openssl" && r.OpenSSLRate > 0 {
		return "OpenSSL"
	}
	return "Go"
}

// goSignCPUMs is the CPU one signature by Go's crypto/rsa costs.
func (r *report) goSignCPUMs() float64 {
	if r.SignRate <= 0 {
		return 0
	}
	return 1000 * float64(r.SignGoroutines) / r.SignRate
}

func (r *report) cores() cores {
	return cores{crieur: r.CrieurCores, receivers: r.ReceiverCores, machine: r.MachineCores}
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// timeline counts arrivals per bucket after drop.
func timeline(arrivals []time.Time, drop time.Time) ([]int, float64) {
	if len(arrivals) == 0 {
		return nil, 0
	}
	span := arrivals[len(arrivals)-1].Sub(drop)
	bucket := max(timelineMinBucket, (span / timelineBuckets).Round(10*time.Millisecond))
	out := make([]int, int(span/bucket)+1)
	for _, a := range arrivals {
		i := int(a.Sub(drop) / bucket)
		if i < 0 {
			i = 0
		}
		out[i]++
	}
	return out, ms(bucket)
}

// compare reads the JSON line of an all-healthy run and compares the
// healthy servers' rate (first to last) with it.
func (r *report) compare(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("fanout: baseline: %w", err)
	}
	defer f.Close()
	var base report
	found := false
	sc := bufio.NewScanner(io.LimitReader(f, maxBaselineFile))
	sc.Buffer(make([]byte, 0, 64<<10), maxBaselineFile)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) > 0 && line[0] == '{' && json.Unmarshal(line, &base) == nil && base.RateFirstToLast > 0 {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("fanout: baseline %s: no report line with a rate", path)
	}
	r.BaselineRate = base.RateFirstToLast
	r.HealthyVsBaseline = round3(r.RateFirstToLast / base.RateFirstToLast)
	if base.DropToLastMs > 0 && base.SignRate > 0 {
		r.HealthySlowdown = round3(r.DropToLastMs * r.SignRate / (base.DropToLastMs * base.SignRate))
	}
	return nil
}

// write prints the human report, then the JSON line.
func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "fan-out of one article to %d followers on %d loopback servers (%d healthy, %d answering 500, %d hanging)\n",
		r.Followers, r.Servers, r.Healthy, r.Failing500, r.Hanging)
	fmt.Fprintf(w, "  machine:        %d CPUs, GOMAXPROCS %d, fd limit %s, crieur data on %s\n", r.MachineCores, r.GOMAXPROCS, r.FileLimit, r.DataFS)
	if r.HTTPS {
		fmt.Fprintf(w, "  tls:            the inbox servers speak TLS (ECDSA P-256 certificate and intermediate); %d of %d connections\n", r.TLSConns, r.Conns)
	}
	if r.CrieurCPUs != r.ReceiverCPUs {
		fmt.Fprintf(w, "  pinned:         crieur and the signing rate on CPUs %s, inbox servers on CPUs %s\n", r.CrieurCPUs, r.ReceiverCPUs)
	}
	fmt.Fprintf(w, "  RSA-2048 signs: %.0f/s before, %.0f/s after, mean %.0f/s (%.2f ms of one core each); other processes took %.0f%% and %.0f%% meanwhile\n",
		r.SignBefore, r.SignAfter, r.SignRate, r.goSignCPUMs(), 100*r.SignBeforeOthers, 100*r.SignAfterOthers)
	if r.OpenSSLRate > 0 {
		fmt.Fprintf(w, "  openssl speed:  %.0f/s before, %.0f/s after, mean %.0f/s (%.2f ms of one core each)\n",
			r.OpenSSLBefore, r.OpenSSLAfter, r.OpenSSLRate, 1000*float64(max(r.CrieurCores, 1))/r.OpenSSLRate)
	}
	if r.OpenSSLOneRate > 0 {
		fmt.Fprintf(w, "  one process:    openssl speed without -multi: %.0f/s before, %.0f/s after, mean %.0f/s\n",
			r.OpenSSLOneBefore, r.OpenSSLOneAfter, r.OpenSSLOneRate)
	}
	fmt.Fprintf(w, "  healthy:        %d of %d servers got the Create; %d duplicates; %d verification failures; %d unexpected activities\n",
		r.HealthyReached, r.Healthy, r.Duplicates, r.VerifyFailures, r.Unexpected)
	if r.Failing500+r.Hanging > 0 {
		fmt.Fprintf(w, "  failing:        %d attempts reached %d of %d failing servers\n", r.FailingAttempts, r.FailingReached, r.Failing500+r.Hanging)
	}
	fmt.Fprintf(w, "  timing:         drop → first %.0f ms, first → last %.0f ms, drop → last %.0f ms\n", r.DropToFirstMs, r.FirstToLastMs, r.DropToLastMs)
	fmt.Fprintf(w, "  rate:           %.0f deliveries/s first → last (%.0f%% of the signing rate), %.0f/s drop → last (%.0f%%)\n",
		r.RateFirstToLast, 100*r.RatioFirstToLast, r.RateDropToLast, 100*r.RatioDropToLast)
	if r.OpenSSLRate > 0 {
		fmt.Fprintf(w, "  vs OpenSSL:     %.0f%% of openssl speed's rate, drop → last\n", 100*r.RatioOpenSSL)
	}
	if r.OpenSSLOneRate > 0 {
		fmt.Fprintf(w, "  vs one process: %.0f%% of one openssl speed process's rate, drop → last\n", 100*r.RatioOpenSSLOne)
	}
	if r.BaselineRate > 0 {
		fmt.Fprintf(w, "  vs baseline:    healthy servers at %.0f%% of the all-healthy run's %.0f/s first → last; drop → last took %.2f× as long (in signatures)\n",
			100*r.HealthyVsBaseline, r.BaselineRate, r.HealthySlowdown)
	}
	fmt.Fprintf(w, "  crieur:         peak RSS %.1f MiB (at the end: %.1f MiB its own, %.1f MiB mapped files); %.2f s CPU (%.0f%% of its CPUs), %.2f ms per POST received, of which the signature (%s) is %.0f%%; %d log lines\n",
		r.PeakRSSMiB, r.RSSAnonMiB, r.RSSFileMiB, r.CrieurCPUSeconds, 100*r.CrieurCPUShare, r.CrieurCPUPerPostMs, r.signsWith(), 100*r.SignShare, r.CrieurLogLines)
	fmt.Fprintf(w, "  others:         other processes took %.0f%% of the machine during the fan-out\n", 100*r.OthersCPUShare)
	fmt.Fprintf(w, "  receivers:      %.2f s CPU (%.0f%% of their CPUs); %d POSTs, at most %d at once; %d key fetch(es), the slowest %.0f ms; oldest signed Date %.0f ms\n",
		r.HarnessCPUSeconds, 100*r.HarnessCPUShare, r.Posts, r.MaxInflight, r.KeyFetches, r.KeyFetchMs, r.MaxDateAgeMs)
	fmt.Fprintf(w, "  connections:    %d accepted; connect → first request p50 %.1f ms, p90 %.1f ms, max %.1f ms\n",
		r.Conns, r.ConnGapP50Ms, r.ConnGapP90Ms, r.ConnGapMaxMs)
	if len(r.Timeline) > 0 {
		fmt.Fprintf(w, "  timeline:       per %.0f ms after the drop:\n", r.TimelineBucketMs)
		fmt.Fprintf(w, "    deliveries    %v\n", r.Timeline)
		fmt.Fprintf(w, "    crieur CPU %%  %v\n", r.CrieurCPUPct)
		fmt.Fprintf(w, "    harness CPU %% %v\n", r.HarnessCPUPct)
		fmt.Fprintf(w, "    others CPU %%  %v\n", r.OthersCPUPct)
	}
	if r.Follow {
		fmt.Fprintf(w, "  follows:        %d accepted in %.1f s (%.0f/s; all answered in %.1f s), each answered in p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
			r.FollowsAccepted, r.FollowAcceptSeconds, r.FollowsPerSec, r.FollowPostSeconds, r.FollowLatencyP50Ms, r.FollowLatencyP99Ms, r.FollowLatencyMaxMs)
		fmt.Fprintf(w, "                  %d answered 2xx, %d refused %v, %d retries, %d duplicate Accepts; crieur fetched %d actors, used %.2f s CPU (%.2f ms per Follow)\n",
			r.FollowsAnswered, r.FollowRefused, r.FollowStatuses, r.FollowRetries, r.DuplicateAccepts, r.ActorFetches, r.FollowCrieurCPUSeconds, r.FollowCPUPerFollowMs)
	} else {
		fmt.Fprintf(w, "  seeding:        %.1f s (not measured)\n", r.SeedSeconds)
	}
	if r.OK {
		fmt.Fprintln(w, "  result:         correct")
	} else {
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  PROBLEM:        %s\n", p)
		}
	}
	fmt.Fprintln(w, jsonLine(r))
}
