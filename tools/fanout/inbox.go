package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Inbox server limits.
const (
	// maxInboxBody caps a delivery body, as a real inbox would.
	maxInboxBody = 1 << 20
	// inboxReadHeaderTimeout bounds a client that never finishes its headers.
	inboxReadHeaderTimeout = 10 * time.Second
	// inboxIdleTimeout closes idle keep-alive connections from crieur.
	inboxIdleTimeout = 120 * time.Second
	// failureSamples is how many verification failures the report quotes.
	failureSamples = 5
)

// mode is how one inbox server answers a delivery it has verified.
type mode int

const (
	modeHealthy mode = iota // 202 Accepted
	mode500                 // 500 Internal Server Error
	modeHang                // never answers; the client has to give up
)

func (m mode) String() string {
	switch m {
	case mode500:
		return "500"
	case modeHang:
		return "hang"
	}
	return "healthy"
}

// modes spreads the failing servers evenly over the fleet (so they are
// neither all at the head nor all at the tail of crieur's queue, which
// sorts inboxes by URL anyway, and ports are random): server i fails when
// floor((i+1)·fail) > floor(i·fail). Failing ones alternate 500 and hang.
func modes(servers int, fail float64) []mode {
	out := make([]mode, servers)
	failing := 0
	for i := range out {
		if int(float64(i+1)*fail) > int(float64(i)*fail) {
			if failing%2 == 0 {
				out[i] = mode500
			} else {
				out[i] = modeHang
			}
			failing++
		}
	}
	return out
}

// inboxServer is one remote instance: a plain net/http server on its own
// loopback port, with some of crieur's followers and their shared inbox.
type inboxServer struct {
	idx       int
	mode      mode
	base      string // http://127.0.0.1:port
	followers []string
	srv       *http.Server
	fleet     *fleet
	// keys holds crieur's key as this server knows it: the fleet's one
	// cache, or its own with -key-per-server.
	keys *keyCache
}

func (s *inboxServer) actorID(name string) string { return s.base + "/users/" + name }
func (s *inboxServer) sharedInbox() string        { return s.base + "/inbox" }

// serverStats is what one server saw.
type serverStats struct {
	creates     int       // verified Creates of the expected Note
	activityIDs []string  // their activity ids, to tell a duplicate from a retry
	first       time.Time // arrival of the first such Create
	other       int       // any other verified activity
	otherSample string
}

// fleet is every inbox server of the run and what they received.
type fleet struct {
	servers  []*inboxServer
	keys     *keyCache   // shared by every server, unless perServerKeys
	ownKeys  []*keyCache // with -key-per-server, one per server
	noteID   string      // the Note whose Create is expected; "": the first Create after the drop names it
	actorID  string      // crieur's actor: every activity's actor
	errorLog *log.Logger
	// followers is set with -follow: the actors then publish this key and
	// the Accepts crieur sends are counted in accepts.
	followers *followerKey
	accepts   *acceptTally
	// armed is set at the drop: until then every server answers 202, so
	// the failing ones fail the fan-out, not the Accepts before it.
	armed atomic.Bool
	// actorFetches counts crieur's GETs of follower actors (key lookups).
	actorFetches atomic.Int64

	mu             sync.Mutex
	stats          []serverStats
	healthyTotal   int
	healthyReached int
	allHealthy     chan struct{} // closed when every healthy server has the Create
	firstAny       time.Time     // first verified delivery, any server
	verifyFailures int
	failures       []string
	maxDateAge     time.Duration
	inflight       int
	maxInflight    int
	posts          int // every POST received
	conns          int // TCP connections accepted
	tlsConns       int // of which with TLS (-https)
	gaps           []time.Duration
}

// connInfo follows one accepted connection, to time how long crieur takes
// from connect(2) to its first request on it: signing happens before the
// dial, so a long gap is crieur's goroutine waiting to be scheduled.
type connInfo struct {
	accepted time.Time
	requests atomic.Int32
}

type connKey struct{}

func (f *fleet) connContext(ctx context.Context, c net.Conn) context.Context {
	_, isTLS := c.(*tls.Conn)
	f.mu.Lock()
	f.conns++
	if isTLS {
		f.tlsConns++
	}
	f.mu.Unlock()
	return context.WithValue(ctx, connKey{}, &connInfo{accepted: time.Now()})
}

func (f *fleet) connGap(d time.Duration) {
	f.mu.Lock()
	f.gaps = append(f.gaps, d)
	f.mu.Unlock()
}

// startFleet starts n servers; followers[i] are the follower names that
// live on server i.
// With keyPerServer each server fetches crieur's key itself, as separate
// instances do; otherwise one fetch serves them all.
func startFleet(n int, fail float64, followers [][]string, keys *keyCache, keyPerServer bool, noteID, actorID string, tlsConfig *tls.Config, errorLog *log.Logger) (*fleet, error) {
	f := &fleet{
		keys: keys, noteID: noteID, actorID: actorID, errorLog: errorLog,
		stats:      make([]serverStats, n),
		allHealthy: make(chan struct{}),
	}
	ms := modes(n, fail)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.close()
			return nil, fmt.Errorf("fanout: inbox server %d of %d: %w", i+1, n, err)
		}
		scheme := "http://"
		if tlsConfig != nil {
			ln, scheme = tls.NewListener(ln, tlsConfig), "https://"
		}
		s := &inboxServer{idx: i, mode: ms[i], base: scheme + ln.Addr().String(), followers: followers[i], fleet: f, keys: keys}
		if keyPerServer {
			s.keys = newKeyCache(keys.allowed)
			f.ownKeys = append(f.ownKeys, s.keys)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("POST /inbox", s.inbox)
		mux.HandleFunc("POST /users/{name}/inbox", s.inbox)
		mux.HandleFunc("GET /users/{name}", s.actor)
		s.srv = &http.Server{
			Handler:           mux,
			ConnContext:       f.connContext,
			ReadHeaderTimeout: inboxReadHeaderTimeout,
			IdleTimeout:       inboxIdleTimeout,
			ErrorLog:          errorLog,
		}
		if s.mode == modeHealthy {
			f.healthyTotal++
		}
		f.servers = append(f.servers, s)
		go func() {
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errorLog.Printf("server %s: %v", s.base, err)
			}
		}()
	}
	if f.healthyTotal == 0 {
		close(f.allHealthy)
	}
	return f, nil
}

// close stops every server and drops their connections, which also
// releases the hanging handlers.
func (f *fleet) close() {
	for _, s := range f.servers {
		_ = s.srv.Close()
	}
}

// actor serves a follower's actor document, so the followers crieur has
// on file exist on their servers like real ones.
func (s *inboxServer) actor(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	known := false
	for _, n := range s.followers {
		if n == name {
			known = true
			break
		}
	}
	if !known {
		http.NotFound(w, r)
		return
	}
	s.fleet.actorFetches.Add(1)
	id := s.actorID(name)
	doc := map[string]any{
		"@context":          []string{"https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"},
		"id":                id,
		"type":              "Person",
		"preferredUsername": name,
		"inbox":             id + "/inbox",
		"endpoints":         map[string]string{"sharedInbox": s.sharedInbox()},
	}
	if k := s.fleet.followers; k != nil {
		doc["publicKey"] = map[string]string{"id": keyID(id), "owner": id, "publicKeyPem": k.pem}
	}
	w.Header().Set("Content-Type", "application/activity+json")
	_ = json.NewEncoder(w).Encode(doc)
}

// activity is the part of a delivered activity the harness checks.
type activity struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Actor  string    `json:"actor"`
	Object objectRef `json:"object"`
}

// objectRef is an object's id whether the object is embedded or a bare
// URL. Decoding only what is needed keeps the receivers' CPU, which the
// machine shares with crieur, low.
type objectRef string

func (o *objectRef) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*o = objectRef(s)
		return nil
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return err
	}
	*o = objectRef(v.ID)
	return nil
}

// inbox verifies a delivery, records it, then answers as the server's
// mode says. The arrival time is taken before anything else so the
// receiving side's own work is not counted as crieur's.
func (s *inboxServer) inbox(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	f := s.fleet
	if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok && ci.requests.Add(1) == 1 {
		f.connGap(arrived.Sub(ci.accepted))
	}
	f.enter()
	defer f.leave()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInboxBody))
	if err != nil {
		f.fail(s, fmt.Errorf("read body: %w", err))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	owner, age, err := verifyDelivery(r.Context(), r, body, s.keys, time.Now())
	if err != nil {
		f.fail(s, err)
		http.Error(w, "signature", http.StatusUnauthorized)
		return
	}
	var act activity
	if err := json.Unmarshal(body, &act); err != nil {
		f.fail(s, fmt.Errorf("activity JSON: %w", err))
		http.Error(w, "bad activity", http.StatusBadRequest)
		return
	}
	if act.Actor != owner || owner != f.actor() {
		f.fail(s, fmt.Errorf("activity actor %q, key owner %q, crieur %q", act.Actor, owner, f.actor()))
		http.Error(w, "actor", http.StatusUnauthorized)
		return
	}
	f.record(s, arrived, age, act)
	m := s.mode
	if !f.armed.Load() {
		m = modeHealthy
	}
	switch m {
	case modeHealthy:
		w.WriteHeader(http.StatusAccepted)
	case mode500:
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	case modeHang:
		// Hold the request until crieur gives up (its context ends when
		// the connection closes) or the harness closes the server.
		<-r.Context().Done()
	}
}

func (f *fleet) actor() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.actorID
}

// discovered sets the actor and the expected Note once the harness has
// asked the sender (WebFinger); noteID "" takes the first Create after the
// drop.
func (f *fleet) discovered(actorID, noteID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actorID, f.noteID = actorID, noteID
}

// keyFetches is how many times the servers fetched crieur's key, and the
// slowest fetch.
func (f *fleet) keyFetches() (int, time.Duration) {
	caches := append([]*keyCache{f.keys}, f.ownKeys...)
	n, slowest := 0, time.Duration(0)
	for _, c := range caches {
		n += int(c.fetches.Load())
		slowest = max(slowest, time.Duration(c.slowestNs.Load()))
	}
	return n, slowest
}

// arm starts the fan-out proper: the failing servers fail from now on,
// and the counters start from zero, so the Follow phase's Accepts and
// connections are not counted as the fan-out's.
func (f *fleet) arm() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts, f.conns, f.tlsConns, f.maxInflight, f.maxDateAge = 0, 0, 0, f.inflight, 0
	f.gaps = nil
	f.armed.Store(true)
}

func (f *fleet) enter() {
	f.mu.Lock()
	f.posts++
	f.inflight++
	f.maxInflight = max(f.maxInflight, f.inflight)
	f.mu.Unlock()
}

func (f *fleet) leave() {
	f.mu.Lock()
	f.inflight--
	f.mu.Unlock()
}

func (f *fleet) fail(s *inboxServer, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verifyFailures++
	if len(f.failures) < failureSamples {
		f.failures = append(f.failures, fmt.Sprintf("%s: %v", s.base, err))
	}
}

func (f *fleet) record(s *inboxServer, arrived time.Time, age time.Duration, act activity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxDateAge = max(f.maxDateAge, age)
	// The Accepts come before the drop: they are not the fan-out.
	if act.Type == "Accept" && f.accepts != nil {
		f.accepts.add(string(act.Object), arrived)
		return
	}
	if f.firstAny.IsZero() || arrived.Before(f.firstAny) {
		f.firstAny = arrived
	}
	st := &f.stats[s.idx]
	if f.noteID == "" && act.Type == "Create" && f.armed.Load() {
		// A sender that names its Notes itself (a bot framework): the
		// one it creates after the drop is the article.
		f.noteID = string(act.Object)
	}
	if act.Type != "Create" || string(act.Object) != f.noteID {
		st.other++
		if st.otherSample == "" {
			st.otherSample = act.Type + " " + string(act.Object)
		}
		return
	}
	st.creates++
	st.activityIDs = append(st.activityIDs, act.ID)
	if st.creates == 1 {
		st.first = arrived
		if s.mode == modeHealthy {
			f.healthyReached++
			if f.healthyReached == f.healthyTotal {
				close(f.allHealthy)
			}
		}
	}
}

// tally is the fleet's outcome, taken once the fan-out is over.
type tally struct {
	Healthy, Failing500, Hanging int
	HealthyReached               int
	Duplicates                   int // extra Creates on healthy servers
	DistinctCreateIDs            int // activity ids seen for the Note
	Unexpected                   int // other activities (back catalogue pushed?)
	UnexpectedSample             string
	FailingAttempts              int // deliveries that reached 500/hang servers
	FailingReached               int // failing servers that saw the Create at least once
	VerifyFailures               int
	Failures                     []string
	First, Last                  time.Time // healthy servers' first Creates
	FirstAny                     time.Time
	HealthyArrivals              []time.Time // sorted
	MaxDateAge                   time.Duration
	MaxInflight                  int
	Posts                        int
	Conns                        int
	TLSConns                     int
	ConnGaps                     []time.Duration // sorted
	Missing                      []string        // a few healthy servers that never got it
}

func (f *fleet) tally() tally {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := tally{
		HealthyReached: f.healthyReached, VerifyFailures: f.verifyFailures,
		Failures: append([]string(nil), f.failures...), FirstAny: f.firstAny,
		MaxDateAge: f.maxDateAge, MaxInflight: f.maxInflight, Posts: f.posts,
		Conns: f.conns, TLSConns: f.tlsConns, ConnGaps: slices.Clone(f.gaps),
	}
	slices.Sort(t.ConnGaps)
	ids := map[string]bool{}
	for i, s := range f.servers {
		st := f.stats[i]
		for _, id := range st.activityIDs {
			ids[id] = true
		}
		t.Unexpected += st.other
		if st.other > 0 && t.UnexpectedSample == "" {
			t.UnexpectedSample = st.otherSample
		}
		switch s.mode {
		case modeHealthy:
			t.Healthy++
			if st.creates == 0 {
				if len(t.Missing) < failureSamples {
					t.Missing = append(t.Missing, s.base)
				}
				continue
			}
			t.Duplicates += st.creates - 1
			t.HealthyArrivals = append(t.HealthyArrivals, st.first)
		case mode500, modeHang:
			if s.mode == mode500 {
				t.Failing500++
			} else {
				t.Hanging++
			}
			t.FailingAttempts += st.creates
			if st.creates > 0 {
				t.FailingReached++
			}
		}
	}
	t.DistinctCreateIDs = len(ids)
	sort.Slice(t.HealthyArrivals, func(i, j int) bool { return t.HealthyArrivals[i].Before(t.HealthyArrivals[j]) })
	if n := len(t.HealthyArrivals); n > 0 {
		t.First, t.Last = t.HealthyArrivals[0], t.HealthyArrivals[n-1]
	}
	return t
}

// waitHealthy returns when every healthy server has the Create, when ctx
// ends, or when gone closes (crieur exited: nothing more will come).
func (f *fleet) waitHealthy(ctx context.Context, gone <-chan struct{}) error {
	select {
	case <-f.allHealthy:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-gone:
		return errors.New("fanout: crieur exited during the fan-out")
	}
}

// names of n followers, spread over servers as evenly as possible: server
// i gets n/servers, and the first n%servers get one more.
func followerNames(n, servers int) [][]string {
	out := make([][]string, servers)
	k := 0
	for i := range servers {
		c := n / servers
		if i < n%servers {
			c++
		}
		for range c {
			out[i] = append(out[i], fmt.Sprintf("f%d", k))
			k++
		}
	}
	return out
}

// hostOf is host:port of a base URL.
func hostOf(base string) string {
	return strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
}
