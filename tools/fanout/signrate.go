package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// signPayloadSize is the size of what each measured signature covers: about
// one Create{Note} of a short article, as crieur digests and signs it.
const signPayloadSize = 2048

// rsaBits is the key size crieur uses for its actor key.
const rsaBits = 2048

// signRate is one measurement of the machine's RSA signing rate.
type signRate struct {
	Goroutines int           `json:"goroutines"`
	Signatures int64         `json:"signatures"`
	Elapsed    time.Duration `json:"-"`
	PerSec     float64       `json:"per_sec"`
}

// signKey is made once per run: generating it is slow and is not what is
// measured.
func signKey() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, fmt.Errorf("fanout: generate signing key: %w", err)
	}
	return k, nil
}

// measureSignRate runs GOMAXPROCS goroutines that each hash a ~2 KiB
// payload with SHA-256 and sign the digest with rsa.SignPKCS1v15, for d,
// and returns signatures per second over the whole machine. This is the
// ceiling for crieur's fan-out: one delivery costs one such signature
// plus everything else. ctx ends the measurement early (the rate is then
// over the time actually spent).
func measureSignRate(ctx context.Context, key *rsa.PrivateKey, d time.Duration) (signRate, error) {
	n := runtime.GOMAXPROCS(0)
	payload := make([]byte, signPayloadSize)
	if _, err := rand.Read(payload); err != nil {
		return signRate{}, fmt.Errorf("fanout: sign rate payload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		count   atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		signErr error
	)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(payload))
			copy(buf, payload)
			for i := 0; ctx.Err() == nil; i++ {
				// A different payload each time, as every delivery
				// has its own Date and so its own signing string.
				buf[i%len(buf)]++
				sum := sha256.Sum256(buf)
				if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:]); err != nil {
					errOnce.Do(func() { signErr = err })
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if signErr != nil {
		return signRate{}, fmt.Errorf("fanout: sign: %w", signErr)
	}
	r := signRate{Goroutines: n, Signatures: count.Load(), Elapsed: elapsed}
	if elapsed > 0 {
		r.PerSec = float64(r.Signatures) / elapsed.Seconds()
	}
	return r, nil
}

// opensslLine is the RSA-2048 result line of `openssl speed`: seconds per
// signature and verification, then signatures and verifications per second.
var opensslLine = regexp.MustCompile(`(?m)^rsa\s+2048 bits\s+[0-9.]+s\s+[0-9.]+s\s+([0-9.]+)\s+[0-9.]+\s*$`)

// measureOpenSSLSpeed runs `openssl speed rsa2048` with procs processes
// (on the CPUs this process is pinned to, which children inherit) and
// returns the RSA-2048 signatures per second it reports. It is the second
// reference: crieur signs with OpenSSL's libcrypto when it loads, and
// Go's crypto/rsa (the first reference) is about 2.4 times slower than
// OpenSSL 3 on the machines this was written on, so a ratio against Go's
// rate alone would flatter crieur. openssl speed measures verification
// for as long as signing, so a run takes twice seconds.
func measureOpenSSLSpeed(ctx context.Context, bin string, procs, seconds int) (float64, error) {
	args := []string{"speed", "-seconds", strconv.Itoa(max(seconds, 1))}
	if procs > 1 {
		args = append(args, "-multi", strconv.Itoa(procs))
	}
	args = append(args, "rsa2048")
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return 0, fmt.Errorf("fanout: %s %s: %w", bin, strings.Join(args, " "), err)
	}
	return parseOpenSSLSpeed(out)
}

// parseOpenSSLSpeed reads the signatures per second from openssl speed's
// output: with -multi, the summary line sums every process.
func parseOpenSSLSpeed(out []byte) (float64, error) {
	m := opensslLine.FindAllSubmatch(out, -1)
	if len(m) == 0 {
		return 0, errors.New("fanout: no RSA-2048 line in openssl speed's output")
	}
	v, err := strconv.ParseFloat(string(m[len(m)-1][1]), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("fanout: openssl speed: bad rate %q", m[len(m)-1][1])
	}
	return v, nil
}
