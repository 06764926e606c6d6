// The inbox farm: loopback servers that verify every delivery the way a
// strict peer does and count what they received.

package fanoutbench

import (
	"bytes"
	"crypto/rsa"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// DeliveryVerifier checks an incoming delivery the way a strict peer does:
// draft-cavage signature by the expected key over (request-target), host,
// date and digest; a Digest that matches the body; a Date within the window
// Mastodon allows; the ActivityPub media type.
// The benchmark's inboxes and the delivery tests use it.
type DeliveryVerifier struct {
	KeyID string
	Key   *rsa.PublicKey
	Now   func() time.Time // nil: time.Now
}

// Verify checks r (whose body was read into body).
func (v *DeliveryVerifier) Verify(r *http.Request, body []byte) error {
	if ct := r.Header.Get("Content-Type"); ct != "application/activity+json" {
		return fmt.Errorf("content type %q", ct)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	return signature.VerifyKnown(r, body, v.KeyID, v.Key, now())
}

// Behaviours of the benchmark's inbox servers.
type inboxMode int

const (
	inboxOK    inboxMode = iota // 202 after verification
	inboxError                  // 500
	inboxHang                   // no answer until the client gives up
)

// inboxFarm is the benchmark's loopback servers.
type inboxFarm struct {
	servers []*farmServer
	healthy int
	stop    chan struct{}
	wg      sync.WaitGroup
	// bufs recycles request body buffers: the receivers share the CPU
	// with the publisher being measured, so they should not make garbage
	// a real remote server would make on its own machine.
	bufs sync.Pool

	mu          sync.Mutex
	first, last time.Time // first and last verified delivery to a healthy server
}

// span returns when the first and the last verified delivery arrived.
func (f *inboxFarm) span() (first, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first, f.last
}

type farmServer struct {
	url      string
	mode     inboxMode
	srv      *http.Server
	ok       atomic.Int64 // verified deliveries
	rejected atomic.Int64
	attempts atomic.Int64
}

// startInboxFarm starts n servers; a fraction fail (half 500, half hang),
// chosen with a fixed seed so runs compare.
func startInboxFarm(n int, failFraction float64, v *DeliveryVerifier) (*inboxFarm, error) {
	f := &inboxFarm{stop: make(chan struct{})}
	f.bufs.New = func() any { return new(bytes.Buffer) }
	modes := make([]inboxMode, n)
	failing := int(math.Round(failFraction * float64(n)))
	for i := range failing {
		modes[i] = inboxError
		if i%2 == 1 {
			modes[i] = inboxHang
		}
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	rng.Shuffle(n, func(i, j int) { modes[i], modes[j] = modes[j], modes[i] })
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.close()
			return nil, fmt.Errorf("fanoutbench: bench: listen: %w", err)
		}
		s := &farmServer{url: "http://" + ln.Addr().String(), mode: modes[i]}
		s.srv = &http.Server{
			Handler:           f.handler(s, v),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          nil,
		}
		if s.mode == inboxOK {
			f.healthy++
		}
		f.servers = append(f.servers, s)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_ = s.srv.Serve(ln)
		}()
	}
	return f, nil
}

func (f *inboxFarm) handler(s *farmServer, v *DeliveryVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.attempts.Add(1)
		switch s.mode {
		case inboxError:
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, inboxMaxBody))
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		case inboxHang:
			select {
			case <-r.Context().Done():
			case <-f.stop:
			}
			return
		}
		buf := f.bufs.Get().(*bytes.Buffer)
		defer f.bufs.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(io.LimitReader(r.Body, inboxMaxBody)); err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := v.Verify(r, buf.Bytes()); err != nil {
			s.rejected.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		s.ok.Add(1)
		now := time.Now()
		f.mu.Lock()
		if f.first.IsZero() {
			f.first = now
		}
		f.last = now
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
}

// addFollowers spreads n followers over the servers, each server's
// followers sharing its shared inbox.
func (f *inboxFarm) addFollowers(store *storage.Store, n int) error {
	for i := range n {
		s := f.servers[i%len(f.servers)]
		actor := fmt.Sprintf("%s/users/u%d", s.url, i)
		err := store.PutFollower(storage.Follower{
			ActorID: actor, Inbox: actor + "/inbox", SharedInbox: s.url + "/inbox",
			Handle: fmt.Sprintf("u%d@%s", i, strings.TrimPrefix(s.url, "http://")),
			Host:   strings.TrimPrefix(s.url, "http://"), Status: storage.FollowerAccepted,
			FollowID: actor + "/follows/1",
		})
		if err != nil {
			return fmt.Errorf("fanoutbench: bench: %w", err)
		}
	}
	return nil
}

// counts sums what the servers saw.
func (f *inboxFarm) counts() (delivered, duplicates, rejected, attempts int) {
	for _, s := range f.servers {
		ok := int(s.ok.Load())
		delivered += min(ok, 1)
		duplicates += max(ok-1, 0)
		rejected += int(s.rejected.Load())
		attempts += int(s.attempts.Load())
	}
	return delivered, duplicates, rejected, attempts
}

func (f *inboxFarm) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	for _, s := range f.servers {
		_ = s.srv.Close()
	}
	f.wg.Wait()
}
