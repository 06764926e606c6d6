package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuSampleInterval is how often crieur's and the harness's CPU time are
// read during the fan-out; /proc counts in 10 ms ticks.
const cpuSampleInterval = 50 * time.Millisecond

// cpuSample is both processes' CPU time used so far at one moment.
type cpuSample struct {
	at              time.Time
	crieur, harness time.Duration
	// machine is CPU time used by every process on the machine, from
	// /proc/stat: on a shared machine, what others take is not crieur's.
	machine time.Duration
}

// sampleCPU reads CPU times every cpuSampleInterval until ctx ends, and
// returns the samples. It shows where the fan-out leaves the machine idle:
// a bucket with few deliveries and little CPU is crieur waiting (disk,
// locks, timers), one with few deliveries and full CPU is crieur busy with
// something else than signing.
func sampleCPU(ctx context.Context, pid int) []cpuSample {
	var out []cpuSample
	tick := time.NewTicker(cpuSampleInterval)
	defer tick.Stop()
	for {
		c, err := procCPU(pid)
		if err != nil {
			return out
		}
		m, _ := machineCPU()
		out = append(out, cpuSample{at: time.Now(), crieur: c, harness: selfCPU(), machine: m})
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// cores says how many CPUs each share is a share of: crieur's and the
// receivers' own (the same as the machine's unless -crieur-cpus pins
// them), and the machine's for other processes.
type cores struct{ crieur, receivers, machine int }

// cpuTimeline turns samples into the share of its CPUs (percent) crieur,
// the harness and every other process used per bucket after drop. An
// interval counts in the bucket of its middle.
func cpuTimeline(samples []cpuSample, drop time.Time, bucket time.Duration, buckets int, n cores) (crieur, harness, others []int) {
	if bucket <= 0 || buckets == 0 || n.crieur <= 0 || n.receivers <= 0 || n.machine <= 0 {
		return nil, nil, nil
	}
	cu := make([]time.Duration, buckets)
	hu := make([]time.Duration, buckets)
	mu := make([]time.Duration, buckets)
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		mid := a.at.Add(b.at.Sub(a.at) / 2)
		k := int(mid.Sub(drop) / bucket)
		if mid.Before(drop) || k >= buckets {
			continue
		}
		cu[k] += b.crieur - a.crieur
		hu[k] += b.harness - a.harness
		mu[k] += b.machine - a.machine
	}
	pct := func(d time.Duration, c int) int { return int(100 * d / (bucket * time.Duration(c))) }
	crieur, harness, others = make([]int, buckets), make([]int, buckets), make([]int, buckets)
	for k := range buckets {
		crieur[k], harness[k] = pct(cu[k], n.crieur), pct(hu[k], n.receivers)
		others[k] = max(0, pct(mu[k]-cu[k]-hu[k], n.machine))
	}
	return crieur, harness, others
}

// machineCores counts the CPUs /proc/stat sums up in its first line.
func machineCores() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}

// machineCPU is the busy time of all CPUs since boot: the first line of
// /proc/stat without idle and iowait.
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("fanout: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, errors.New("fanout: unexpected /proc/stat")
	}
	var busy int64
	for i, f := range fields[1:] {
		if i >= 8 { // guest times are already in user and nice
			break
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("fanout: /proc/stat: %w", err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
