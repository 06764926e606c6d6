package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"runtime"
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
