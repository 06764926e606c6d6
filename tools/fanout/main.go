// Command fanout measures crieur's fan-out from the outside: it runs a
// crieur binary built by the caller as a child process, gives it followers
// on up to thousands of loopback inbox servers that verify every delivery
// the way Mastodon does, drops one new article into its posts folder and
// times the deliveries on the receiving side, next to the machine's RSA
// signing rate measured in the same run. It owns nothing of crieur and
// uses no federation internals: only the storage package, to seed the
// followers before the first start.
//
//	go build -o /tmp/crieur ./cmd/crieur
//	go run ./tools/fanout -crieur /tmp/crieur -followers 10000 -servers 2000 -fail 0.3
package main

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Defaults and fixed parts of the run.
const (
	defaultTimeout = 5 * time.Minute
	// defaultSignFor is how long the signing rate is measured, each time.
	defaultSignFor = 3 * time.Second
	// defaultSettle is how long crieur is left alone once its back
	// catalogue is in the outbox, before the new article is dropped.
	defaultSettle = time.Second
	// defaultLinger is how long the harness keeps listening after the last
	// healthy server got the article, to catch duplicates.
	defaultLinger = time.Second
	// fdMargin is file descriptors kept for everything that is not an
	// inbox listener or an accepted connection.
	fdMargin = 512
)

// options are the command line.
type options struct {
	crieur        string
	followers     int
	servers       int
	fail          float64
	timeout       time.Duration
	signFor       time.Duration
	settle        time.Duration
	linger        time.Duration
	dir           string
	keep          bool
	baseline      string
	env           []string
	profile       string
	pinCPUs       int
	openssl       string
	follow        bool
	keyPerServer  bool
	followWorkers int
	https         bool   // inbox servers over TLS
	runs          int    // measurements per binary (summary when > 1)
	versus        string // second binary, run alternately with crieur
}

type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || !strings.HasPrefix(k, "CRIEUR_") {
		return fmt.Errorf("%q is not CRIEUR_NAME=value", v)
	}
	*e = append(*e, v)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.crieur, "crieur", "", "crieur binary to run (build it with `go build -o PATH ./cmd/crieur`)")
	fs.IntVar(&o.followers, "followers", 10000, "followers, spread evenly over the servers")
	fs.IntVar(&o.servers, "servers", 2000, "loopback inbox servers, one shared inbox each")
	fs.Float64Var(&o.fail, "fail", 0, "fraction of servers that fail: half answer 500, half never answer")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "bound on the whole run")
	fs.DurationVar(&o.signFor, "sign-for", defaultSignFor, "how long the RSA signing rate is measured, before and after")
	fs.DurationVar(&o.settle, "settle", defaultSettle, "quiet time after crieur's back catalogue is in its outbox")
	fs.DurationVar(&o.linger, "linger", defaultLinger, "time to keep counting after the last healthy delivery")
	fs.StringVar(&o.dir, "dir", os.TempDir(), "parent folder of crieur's temporary posts and data folders")
	fs.BoolVar(&o.keep, "keep", false, "keep crieur's folders (and log) instead of removing them")
	fs.StringVar(&o.baseline, "baseline", "", "file holding the JSON line of an all-healthy run, to compare the healthy servers' rate with")
	fs.StringVar(&o.profile, "cpuprofile", "", "write the harness's own CPU profile over the fan-out (drop to last delivery) to this file")
	fs.IntVar(&o.pinCPUs, "crieur-cpus", 0, "pin crieur to this many CPUs and the inbox servers to the others, and measure the signing rate on crieur's CPUs (0: no pinning)")
	fs.StringVar(&o.openssl, "openssl", "openssl", "openssl command whose `openssl speed rsa2048` is the second reference rate (\"\": none)")
	fs.BoolVar(&o.follow, "follow", false, "subscribe the followers with real signed Follows to crieur's inbox (and wait for every Accept) instead of writing them into its database")
	fs.BoolVar(&o.keyPerServer, "key-per-server", false, "each inbox server fetches crieur's key itself, as separate instances do (default: one fetch, shared)")
	fs.IntVar(&o.followWorkers, "follow-workers", defaultFollowWorkers, "Follows in flight at once with -follow")
	fs.BoolVar(&o.https, "https", false, "inbox servers speak TLS (a certificate authority made for the run, trusted by crieur through SSL_CERT_FILE), so each delivery also pays a handshake")
	fs.IntVar(&o.runs, "runs", 1, "measure this many times (alternating with -versus) and end with each binary's median and range")
	fs.StringVar(&o.versus, "versus", "", "a second binary (idealsender, another build of crieur) measured alternately with -crieur, in the same hour")
	fs.Var((*envList)(&o.env), "env", "extra CRIEUR_NAME=value for crieur (repeat), e.g. CRIEUR_WORKERS=256")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if o.crieur == "" {
		errs = append(errs, errors.New("-crieur is required"))
	}
	if o.servers < 1 || o.followers < o.servers {
		errs = append(errs, fmt.Errorf("need 1 <= -servers (%d) <= -followers (%d)", o.servers, o.followers))
	}
	if o.fail < 0 || o.fail >= 1 {
		errs = append(errs, fmt.Errorf("-fail %v must be in [0, 1)", o.fail))
	}
	if o.pinCPUs < 0 {
		errs = append(errs, errors.New("-crieur-cpus must be >= 0"))
	}
	if o.followWorkers < 1 {
		errs = append(errs, errors.New("-follow-workers must be >= 1"))
	}
	if o.runs < 1 {
		errs = append(errs, errors.New("-runs must be >= 1"))
	}
	if o.timeout <= 0 || o.signFor <= 0 {
		errs = append(errs, errors.New("-timeout and -sign-for must be positive"))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	return o, errors.Join(errs...)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// errFailed is returned when the run completed but crieur got something
// wrong (a bad signature, a missed or duplicated delivery).
var errFailed = errors.New("the fan-out was not correct")

// run is the whole harness; the reports go to stdout. -timeout bounds
// each measurement.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	bins := []string{o.crieur}
	if o.versus != "" {
		bins = append(bins, o.versus)
	}
	reports := make([][]*report, len(bins))
	var problems []string
	for i := range o.runs {
		for b, bin := range bins {
			if o.runs > 1 || len(bins) > 1 {
				fmt.Fprintf(stdout, "run %d of %d: %s\n", i+1, o.runs, bin)
			}
			oo := o
			oo.crieur = bin
			rctx, cancel := context.WithTimeout(ctx, o.timeout)
			rep, err := fanout(rctx, oo, stderr)
			cancel()
			if rep != nil {
				rep.write(stdout)
				reports[b] = append(reports[b], rep)
			}
			if err != nil {
				return err
			}
			if len(rep.Problems) > 0 {
				problems = append(problems, strings.Join(rep.Problems, "; "))
			}
		}
	}
	if o.runs > 1 || len(bins) > 1 {
		sums := make([]binarySummary, len(bins))
		for b, bin := range bins {
			sums[b] = summarize(bin, reports[b])
		}
		writeSummary(stdout, sums)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errFailed, strings.Join(problems, " | "))
	}
	return nil
}

// fanout runs one measurement. It returns a report whenever the fan-out
// was attempted, even when it went wrong.
func fanout(ctx context.Context, o options, stderr io.Writer) (*report, error) {
	rep := &report{Followers: o.followers, Servers: o.servers, Fail: o.fail, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU()}
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "fanout: "+format+"\n", a...) }
	key, err := signKey()
	if err != nil {
		return nil, err
	}
	plan, err := planCPUs(o.pinCPUs)
	if err != nil {
		return nil, err
	}
	rep.CrieurCPUs, rep.ReceiverCPUs = plan.crieur.String(), plan.receivers.String()
	rep.CrieurCores, rep.ReceiverCores, rep.MachineCores = plan.crieur.count(), plan.receivers.count(), machineCores()
	opensslBin := ""
	if o.openssl != "" {
		if p, err := exec.LookPath(o.openssl); err == nil {
			opensslBin = p
		} else {
			progress("no OpenSSL reference rate: %v", err)
		}
	}
	// measureOnCrieurCPUs measures both reference rates on the CPUs crieur
	// gets (openssl speed's only when there is an openssl command, else
	// 0), then gives the harness back its own.
	// With more than one CPU for crieur it also measures one openssl
	// speed process: the plain `openssl speed rsa2048` figure.
	measureOnCrieurCPUs := func(after cpuSet) (goRate signRate, others, opensslRate, opensslOne float64, err error) {
		if plan.pinned {
			if err := pinProcess(plan.crieur); err != nil {
				return signRate{}, 0, 0, 0, err
			}
			defer func() { _ = pinProcess(after) }()
		}
		if goRate, others, err = measureQuietly(ctx, key, o.signFor); err != nil || opensslBin == "" {
			return goRate, others, 0, 0, err
		}
		secs := int((o.signFor / 2).Round(time.Second) / time.Second)
		if opensslRate, err = measureOpenSSLSpeed(ctx, opensslBin, plan.crieur.count(), secs); err != nil || plan.crieur.count() < 2 {
			return goRate, others, opensslRate, 0, err
		}
		opensslOne, err = measureOpenSSLSpeed(ctx, opensslBin, 1, secs)
		return goRate, others, opensslRate, opensslOne, err
	}

	fd, err := raiseFileLimit(uint64(2*o.servers + fdMargin))
	if err != nil {
		return nil, err
	}
	rep.FileLimit = fd

	c, err := newCrieurRun(o.crieur, o.dir, o.env)
	if err != nil {
		return nil, err
	}
	if o.keep {
		progress("keeping %s", c.root)
	} else {
		defer c.remove()
	}
	rep.DataFS = fsType(c.root)
	var serverTLS *tls.Config
	if o.https {
		t, err := newTestTLS(c.root)
		if err != nil {
			return nil, err
		}
		serverTLS = t.serverConfig()
		c.env = append(slices.Clone(c.env), "SSL_CERT_FILE="+t.caFile)
		rep.HTTPS = true
	}
	rep.CrieurSigns = c.engine()

	errorLog := log.New(stderr, "fanout: inbox server: ", 0)
	fl, err := startFleet(o.servers, o.fail, followerNames(o.followers, o.servers), newKeyCache(c.base), o.keyPerServer, c.noteID(), c.actorID(), serverTLS, errorLog)
	if err != nil {
		return nil, err
	}
	fleetClosed := false
	closeFleet := func() {
		if !fleetClosed {
			fleetClosed = true
			fl.close()
		}
	}
	defer closeFleet()

	if o.follow {
		fk, err := newFollowerKey(key)
		if err != nil {
			return nil, err
		}
		fl.followers = &fk
		fl.accepts = newAcceptTally(fl)
	} else {
		t0 := time.Now()
		seeded, err := c.seed(fl)
		if err != nil {
			return nil, err
		}
		rep.SeedSeconds = time.Since(t0).Seconds()
		progress("%d followers on %d servers written to crieur's database in %.1fs", seeded, o.servers, rep.SeedSeconds)
	}
	if err := c.writeOld(time.Now()); err != nil {
		return nil, err
	}
	if err := c.start(plan); err != nil {
		return nil, err
	}
	stopped := false
	stopCrieur := func() error {
		if stopped {
			return nil
		}
		stopped = true
		// Stop first, then release the hanging handlers, so crieur
		// does not retry them on its way out.
		errc := make(chan error, 1)
		go func() { errc <- c.stop() }()
		closeFleet()
		return <-errc
	}
	defer stopCrieur()
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	if isCrieur, err := c.discover(ctx); err != nil {
		return nil, err
	} else if !isCrieur {
		progress("the actor is %s (inbox %s): not crieur's layout, the first Create after the drop is the article", c.actorID(), c.inbox())
		fl.discovered(c.actorID(), "")
	}
	if err := c.waitOutbox(ctx, 1); err != nil {
		return nil, err
	}
	if o.follow {
		if err := followPhase(ctx, c, fl, o.followWorkers, rep, progress); err != nil {
			return rep, err
		}
	}
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// The reference rate is measured right before the drop, with crieur
	// up and idle: this VM's speed drifts by tens of percent within a
	// minute, so a measurement made before seeding and start-up (10 s
	// earlier) compared the fan-out with another machine.
	progress("measuring the RSA-%d signing rate for %s on CPUs %s (crieur idle)", rsaBits, o.signFor, plan.crieur)
	before, others, opensslBefore, opensslOneBefore, err := measureOnCrieurCPUs(plan.receivers)
	if err != nil {
		return nil, err
	}
	rep.SignBefore, rep.SignBeforeOthers, rep.SignGoroutines = before.PerSec, others, before.Goroutines
	rep.OpenSSLBefore, rep.OpenSSLOneBefore = opensslBefore, opensslOneBefore

	cpu0, err := procCPU(c.pid())
	if err != nil {
		return nil, err
	}
	self0 := selfCPU()
	sctx, stopSampling := context.WithCancel(ctx)
	samples := make(chan []cpuSample, 1)
	go func() { samples <- sampleCPU(sctx, c.pid()) }()
	progress("crieur (pid %d) is up on %s; dropping the new article", c.pid(), c.base)
	stopProfile, err := startProfile(o.profile)
	if err != nil {
		stopSampling()
		return nil, err
	}
	fl.arm()
	drop, err := c.dropNew(time.Now())
	if err != nil {
		stopSampling()
		stopProfile()
		return nil, err
	}
	waitErr := fl.waitHealthy(ctx, c.exited)
	done := time.Now()
	cpu1, cpuErr := procCPU(c.pid())
	self1 := selfCPU()
	stopSampling()
	stopProfile()
	rep.samples = <-samples
	if waitErr == nil {
		select {
		case <-time.After(o.linger):
		case <-ctx.Done():
		}
	}
	if err := c.running(); err != nil {
		rep.problem("%v", err)
	}
	hwm, err := procStatus(c.pid(), "VmHWM")
	if err != nil {
		rep.problem("peak memory: %v", err)
	}
	rep.PeakRSSMiB = float64(hwm) / 1024
	// Resident memory is crieur's own (anonymous: heap, stacks, OpenSSL's
	// allocations) plus the pages of its bbolt file it has mapped, which
	// are the kernel's page cache and grow with the database.
	if anon, err := procStatus(c.pid(), "RssAnon"); err == nil {
		rep.RSSAnonMiB = float64(anon) / 1024
	}
	if file, err := procStatus(c.pid(), "RssFile"); err == nil {
		rep.RSSFileMiB = float64(file) / 1024
	}
	rep.CrieurLogLines = c.logLines()
	t := fl.tally()
	fetches, slowest := fl.keyFetches()
	rep.KeyFetches, rep.KeyFetchMs = fetches, ms(slowest)
	if err := stopCrieur(); err != nil {
		rep.problem("%v", err)
	}

	if cpuErr == nil {
		rep.CrieurCPUSeconds = (cpu1 - cpu0).Seconds()
	}
	rep.HarnessCPUSeconds = (self1 - self0).Seconds()
	rep.fill(t, drop, done)
	if waitErr != nil {
		rep.problem("%d of %d healthy servers reached: %v (-timeout %s)", t.HealthyReached, t.Healthy, waitErr, o.timeout)
	}

	if ctx.Err() == nil {
		progress("measuring the signing rate again (crieur stopped)")
		after, others, opensslAfter, opensslOneAfter, err := measureOnCrieurCPUs(plan.all)
		if err != nil {
			return rep, err
		}
		rep.SignAfter, rep.SignAfterOthers = after.PerSec, others
		rep.OpenSSLAfter, rep.OpenSSLOneAfter = opensslAfter, opensslOneAfter
	}
	rep.rates()
	if o.baseline != "" {
		if err := rep.compare(o.baseline); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// measureQuietly measures the signing rate and says how much of the
// machine other processes took meanwhile: a busy neighbour lowers the rate
// and so raises every ratio computed from it.
func measureQuietly(ctx context.Context, key *rsa.PrivateKey, d time.Duration) (signRate, float64, error) {
	m0, merr := machineCPU()
	s0 := selfCPU()
	r, err := measureSignRate(ctx, key, d)
	m1, merr1 := machineCPU()
	s1 := selfCPU()
	if err != nil || merr != nil || merr1 != nil || r.Elapsed <= 0 {
		return r, 0, err
	}
	others := ((m1 - m0) - (s1 - s0)).Seconds() / (r.Elapsed.Seconds() * float64(machineCores()))
	return r, round3(max(0, others)), nil
}

// startProfile starts the harness's CPU profile when path is set; the
// returned function stops it and closes the file.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("fanout: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("fanout: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// raiseFileLimit makes sure this process may hold need descriptors: one
// listener and about one accepted connection per inbox server. Go already
// lifts the soft limit to the hard one at start (since Go 1.19); the
// explicit Setrlimit is for when that was not enough.
func raiseFileLimit(need uint64) (string, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "", fmt.Errorf("fanout: RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur >= need {
		return fmt.Sprintf("%d (need %d, unchanged)", rl.Cur, need), nil
	}
	if rl.Max < need {
		return "", fmt.Errorf("fanout: need %d file descriptors, the hard limit is %d: lower -servers or raise `ulimit -Hn`", need, rl.Max)
	}
	old := rl.Cur
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "", fmt.Errorf("fanout: raise RLIMIT_NOFILE from %d to %d: %w", old, rl.Max, err)
	}
	return fmt.Sprintf("%d (raised from %d; need %d)", rl.Cur, old, need), nil
}

// fsType names the file system crieur's database lives on: bbolt's fsyncs
// cost very different amounts on tmpfs and on a disk.
func fsType(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", st.Type)
}

// jsonLine is the report as one line of JSON.
func jsonLine(r *report) string {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Sprintf(`{"error":%q}`, err.Error())
	}
	return string(b)
}
