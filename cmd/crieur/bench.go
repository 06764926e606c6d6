package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/tools/fanoutbench"
)

// runBench fans one article out to loopback inbox servers through the real
// publisher, queue, storage and signer, and prints deliveries per second
// next to the RSA signing rate measured in the same run.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("crieur bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg fanoutbench.BenchConfig
	fs.IntVar(&cfg.Followers, "followers", 10000, "followers, spread over the servers")
	fs.IntVar(&cfg.Servers, "servers", 2000, "loopback inbox servers (one shared inbox each)")
	fs.Float64Var(&cfg.FailFraction, "fail", 0, "fraction of servers that fail (half answer 500, half hang)")
	fs.IntVar(&cfg.Workers, "workers", 0, "concurrent deliveries (0: the production default)")
	fs.IntVar(&cfg.PerHost, "per-host", 0, "concurrent deliveries per host (0: the production default)")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "per-request timeout (hanging servers cost this much)")
	fs.DurationVar(&cfg.SignDuration, "sign-for", 2*time.Second, "how long the signing rate is measured")
	rsaEngine := fs.String("rsa", "auto", "what makes RSA signatures: auto, openssl or go (as crieur serve -rsa)")
	compare := fs.Bool("compare", false, "with -fail > 0: run an all-healthy fan-out first and compare")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	engine, err := signature.ParseRSAEngine(*rsaEngine)
	if err != nil {
		fmt.Fprintf(stderr, "crieur bench: -rsa: %v\n", err)
		return fmt.Errorf("%w: -rsa: %v", errUsage, err)
	}
	cfg.RSA = engine
	// Measure the garbage collector settings crieur serve runs with.
	tuneGC(os.Getenv)
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var healthy fanoutbench.BenchResult
	if *compare && cfg.FailFraction > 0 {
		base := cfg
		base.FailFraction = 0
		r, err := fanoutbench.RunFanoutBench(ctx, base)
		if err != nil {
			return err
		}
		healthy = r
		fmt.Fprintf(stdout, "all healthy:\n%s\n", r)
	}
	r, err := fanoutbench.RunFanoutBench(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, r)
	if healthy.Delivered > 0 {
		c := fanoutbench.CompareHealthy(healthy, r)
		verdict := "within"
		if !c.Ok {
			verdict = "OVER"
		}
		fmt.Fprintf(stdout, "healthy servers with %.0f%% failing: served first to last in %s vs %s all healthy → %+.1f%% (%s the %.0f%% budget); time per request received %+.1f%%\n",
			cfg.FailFraction*100, r.HealthySpan.Round(time.Millisecond), healthy.HealthySpan.Round(time.Millisecond),
			100*c.Slowdown, verdict, 100*c.Budget, 100*c.PerAttempt)
	}
	if r.Rejected > 0 || r.Duplicates > 0 || r.Delivered < r.HealthyServers {
		return fmt.Errorf("bench: %d rejected, %d duplicated, %d of %d healthy servers reached",
			r.Rejected, r.Duplicates, r.Delivered, r.HealthyServers)
	}
	return nil
}
