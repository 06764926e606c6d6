package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/go-fed/httpsig"
)

// Limits of the -follow phase, where the followers subscribe to crieur with
// real signed Follows instead of being written into its database.
const (
	// followTimeout bounds one Follow POST, as a remote server's delivery
	// timeout would (Mastodon: 10 s to connect, 10 s to read).
	followTimeout = 20 * time.Second
	// followAttempts is how many times one Follow is sent when crieur
	// answers 5xx or 429 or the request fails, with followBackoff × the
	// attempt number between tries: a real server retries too, but a Follow
	// that needs a retry on an idle loopback crieur is reported.
	followAttempts = 5
	followBackoff  = 500 * time.Millisecond
	// defaultFollowWorkers is how many Follows are in flight at once: 2,000
	// remote servers whose users press "follow" in the same minute.
	defaultFollowWorkers = 64
)

// followerKey is what the followers sign their Follows with. One RSA key is
// shared by every follower (10,000 keys would take minutes to make), but
// each follower publishes it under its own keyId, so crieur fetches and
// stores one key per follower as it would for real accounts.
type followerKey struct {
	priv *rsa.PrivateKey
	pem  string
}

func newFollowerKey(priv *rsa.PrivateKey) (followerKey, error) {
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return followerKey{}, fmt.Errorf("fanout: follower key: %w", err)
	}
	return followerKey{priv: priv, pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}, nil
}

func followID(actorID string) string { return actorID + "/follows/1" }
func keyID(actorID string) string    { return actorID + "#main-key" }

// followStats is what the Follow phase saw from the followers' side.
type followStats struct {
	Sent     int             // Follows answered 2xx
	Retries  int             // extra attempts after a 5xx, 429 or failed request
	Refused  int             // Follows crieur never took (4xx, or every attempt failed)
	Statuses map[int]int     // the last status of each refused Follow that got one, with its count
	Sample   string          // the first refusal, quoted in the report
	Elapsed  time.Duration   // first Follow sent → last one answered
	Latency  []time.Duration // per accepted Follow: sent → answered (sorted)
}

// followAll sends one signed Follow per follower of the fleet to crieur's
// inbox, workers at a time, the way the followers' servers would: draft-
// cavage signature over (request-target) host date digest with the
// follower's key, retried on 5xx, 429 and network errors. It returns once
// every Follow has an answer; the Accepts arrive on the fleet's inboxes.
func followAll(ctx context.Context, fl *fleet, key followerKey, inbox, target string, workers int) (followStats, error) {
	type job struct{ actor string }
	jobs := make(chan job)
	client := &http.Client{
		Timeout:   followTimeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers},
	}
	defer client.CloseIdleConnections()
	var (
		mu    sync.Mutex
		stats = followStats{Statuses: map[int]int{}}
		wg    sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				lat, retries, err := sendFollow(ctx, client, key, inbox, target, j.actor)
				mu.Lock()
				stats.Retries += retries
				var se *statusError
				switch {
				case err == nil:
					stats.Sent++
					stats.Latency = append(stats.Latency, lat)
				case errors.As(err, &se):
					stats.Refused++
					stats.Statuses[se.code]++
				default:
					stats.Refused++
				}
				if err != nil && stats.Sample == "" {
					stats.Sample = err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	var err error
feed:
	for _, s := range fl.servers {
		for _, name := range s.followers {
			select {
			case jobs <- job{actor: s.actorID(name)}:
			case <-ctx.Done():
				err = ctx.Err()
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	stats.Elapsed = time.Since(start)
	sort.Slice(stats.Latency, func(i, j int) bool { return stats.Latency[i] < stats.Latency[j] })
	return stats, err
}

// statusError is a status crieur answered a Follow with.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("Follow answered %d: %s", e.code, e.body) }

// retryable says whether a remote server would send the Follow again.
func (e *statusError) retryable() bool {
	return e.code >= 500 || e.code == http.StatusTooManyRequests || e.code == http.StatusRequestTimeout
}

// sendFollow posts actor's Follow of target, signed afresh on each attempt
// (the Date changes), and returns how long the accepted attempt took and
// how many retries it needed.
func sendFollow(ctx context.Context, client *http.Client, key followerKey, inbox, target, actor string) (time.Duration, int, error) {
	body, err := json.Marshal(map[string]any{
		"@context": "https://www.w3.org/ns/activitystreams",
		"id":       followID(actor),
		"type":     "Follow",
		"actor":    actor,
		"object":   target,
	})
	if err != nil {
		return 0, 0, err
	}
	var last error
	for attempt := range followAttempts {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * followBackoff):
			case <-ctx.Done():
				return 0, attempt - 1, ctx.Err()
			}
		}
		t0 := time.Now()
		last = postSigned(ctx, client, key, inbox, keyID(actor), body)
		var se *statusError
		if last == nil {
			return time.Since(t0), attempt, nil
		}
		if errors.As(last, &se) && !se.retryable() {
			return 0, attempt, last
		}
		if ctx.Err() != nil {
			return 0, attempt, ctx.Err()
		}
	}
	return 0, followAttempts - 1, fmt.Errorf("%s: %d attempts: %w", actor, followAttempts, last)
}

// postSigned makes one signed POST of body to inbox.
func postSigned(ctx context.Context, client *http.Client, key followerKey, inbox, keyID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, inbox, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/activity+json")
	req.Header.Set("Accept", "application/activity+json")
	req.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("Host", req.URL.Host)
	// A signer per request: go-fed's signers keep per-call state.
	signer, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256,
		requiredSigned, httpsig.Signature, 0)
	if err != nil {
		return fmt.Errorf("fanout: follow signer: %w", err)
	}
	if err := signer.SignRequest(key.priv, keyID, req, body); err != nil {
		return fmt.Errorf("fanout: sign Follow: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return &statusError{code: resp.StatusCode, body: string(bytes.TrimSpace(msg))}
	}
	return nil
}

// acceptTally counts the Accepts crieur sends back, one per Follow id.
type acceptTally struct {
	want    int
	mu      sync.Mutex
	got     map[string]bool
	dup     int
	foreign int // Accepts of a Follow the harness never sent
	all     chan struct{}
	last    time.Time
}

func newAcceptTally(fl *fleet) *acceptTally {
	a := &acceptTally{got: map[string]bool{}, all: make(chan struct{})}
	for _, s := range fl.servers {
		for _, name := range s.followers {
			a.got[followID(s.actorID(name))] = false
			a.want++
		}
	}
	return a
}

// add records an Accept of the Follow with id follow, arrived at at.
func (a *acceptTally) add(follow string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen, ok := a.got[follow]
	switch {
	case !ok:
		a.foreign++
		return
	case seen:
		a.dup++
		return
	}
	a.got[follow] = true
	a.last = at
	a.want--
	if a.want == 0 {
		close(a.all)
	}
}

// missing is how many Follows have no Accept yet.
func (a *acceptTally) missing() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.want
}

// wait returns when every Follow has its Accept, ctx ends, or crieur exits.
func (a *acceptTally) wait(ctx context.Context, gone <-chan struct{}) error {
	select {
	case <-a.all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fanout: %d Follows without an Accept: %w", a.missing(), ctx.Err())
	case <-gone:
		return errors.New("fanout: crieur exited while accepting the Follows")
	}
}

// followPhase subscribes every follower with a real Follow and waits for
// crieur's Accepts, measuring what that costs crieur. The fan-out that
// follows then runs on followers crieur recorded itself.
func followPhase(ctx context.Context, c *crieurRun, fl *fleet, workers int, rep *report, progress func(string, ...any)) error {
	cpu0, err := procCPU(c.pid())
	if err != nil {
		return err
	}
	progress("sending %d signed Follows to %s, %d at a time", fl.accepts.want, c.inbox(), workers)
	start := time.Now()
	st, err := followAll(ctx, fl, *fl.followers, c.inbox(), c.actorID(), workers)
	if err != nil {
		return err
	}
	waitErr := fl.accepts.wait(ctx, c.exited)
	cpu1, cpuErr := procCPU(c.pid())
	rep.fillFollow(st, fl.accepts, start, fl.actorFetches.Load())
	if cpuErr == nil {
		rep.FollowCrieurCPUSeconds = (cpu1 - cpu0).Seconds()
		if rep.FollowsAccepted > 0 {
			rep.FollowCPUPerFollowMs = 1000 * rep.FollowCrieurCPUSeconds / float64(rep.FollowsAccepted)
		}
	}
	if waitErr != nil {
		rep.problem("%v", waitErr)
		return waitErr
	}
	progress("%d Follows accepted in %.1fs (%.0f/s); %d refused, %d retries", rep.FollowsAccepted, rep.FollowAcceptSeconds, rep.FollowsPerSec, rep.FollowRefused, rep.FollowRetries)
	return nil
}
