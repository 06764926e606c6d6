package inbox

// Test fixtures shared by the protocol tests: a fake remote server (peer)
// with its own key and actor, and a crieur inbox served over loopback.

import (
	"bytes"
	"cmp"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// keyStyle is how a peer publishes its key.
type keyStyle int

const (
	keyInActor keyStyle = iota // keyId = actor#main-key, actor holds publicKey (Mastodon)
	keyStub                    // keyId = actor/main-key, a stub without inbox (GoToSocial)
	keyBare                    // keyId = /keys/name, a key document with owner
	keyArray                   // actor publicKey is an array of two keys
)

// peerRequest is a request the peer received.
type peerRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	// SignedByCrieur: go-fed's verifier accepted the signature with
	// crieur's public key, and for a POST the Digest matches the body.
	SignedByCrieur bool
}

// protoPeer is a remote ActivityPub server on loopback with one actor.
type protoPeer struct {
	t      *testing.T
	srv    *httptest.Server
	name   string
	style  keyStyle
	crieur *rsa.PublicKey // to check crieur's signatures

	mu          sync.Mutex
	key         *rsa.PrivateKey
	keyStatus   int // non-zero: the key URL answers this
	actorStatus int // non-zero: the actor URL answers this
	requests    []peerRequest
	signers     int // signers made with the default clock so far
	// inboxURL, when set, is the inbox the actor document names instead
	// of its own.
	inboxURL string
	// profile holds fields added to the actor document (name, url, icon:
	// what servers shape differently).
	profile map[string]any
}

func newProtoPeer(t *testing.T, name string, style keyStyle, key *rsa.PrivateKey, crieur *rsa.PublicKey) *protoPeer {
	p := &protoPeer{t: t, name: name, style: style, key: key, crieur: crieur}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *protoPeer) ActorID() string     { return p.srv.URL + "/users/" + p.name }
func (p *protoPeer) Inbox() string       { return p.ActorID() + "/inbox" }
func (p *protoPeer) SharedInbox() string { return p.srv.URL + "/inbox" }

func (p *protoPeer) KeyID() string {
	switch p.style {
	case keyStub:
		return p.ActorID() + "/main-key"
	case keyBare:
		return p.srv.URL + "/keys/" + p.name
	default:
		return p.ActorID() + "#main-key"
	}
}

func (p *protoPeer) setKey(k *rsa.PrivateKey) { p.mu.Lock(); p.key = k; p.mu.Unlock() }
func (p *protoPeer) setGone(status int) {
	p.mu.Lock()
	p.keyStatus, p.actorStatus = status, status
	p.mu.Unlock()
}
func (p *protoPeer) setKeyStatus(status int) { p.mu.Lock(); p.keyStatus = status; p.mu.Unlock() }

// Requests returns what the peer received.
func (p *protoPeer) Requests() []peerRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]peerRequest(nil), p.requests...)
}

// count returns how many requests of method hit path.
func (p *protoPeer) count(method, path string) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func (p *protoPeer) publicKeyDoc() map[string]any {
	pemText, err := signature.PublicKeyPEM(&p.key.PublicKey)
	if err != nil {
		p.t.Error(err)
	}
	return map[string]any{"id": p.KeyID(), "owner": p.ActorID(), "publicKeyPem": pemText}
}

func (p *protoPeer) actorDoc() map[string]any {
	doc := map[string]any{
		"@context":          []any{"https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"},
		"id":                p.ActorID(),
		"type":              "Person",
		"preferredUsername": p.name,
		"inbox":             cmp.Or(p.inboxURL, p.Inbox()),
		"outbox":            p.ActorID() + "/outbox",
		"endpoints":         map[string]any{"sharedInbox": p.SharedInbox()},
		"publicKey":         p.publicKeyDoc(),
	}
	for k, v := range p.profile {
		doc[k] = v
	}
	if p.style == keyArray {
		other := testkit.Key(p.t, 4)
		otherPEM, _ := signature.PublicKeyPEM(&other.PublicKey)
		doc["publicKey"] = []any{
			map[string]any{"id": p.ActorID() + "#other-key", "owner": p.ActorID(), "publicKeyPem": otherPEM},
			p.publicKeyDoc(),
		}
	}
	return doc
}

func (p *protoPeer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	req := peerRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	req.SignedByCrieur = p.crieur != nil && testkit.CheckSignature(r, body, p.crieur) == nil

	p.mu.Lock()
	p.requests = append(p.requests, req)
	keyStatus, actorStatus := p.keyStatus, p.actorStatus
	p.mu.Unlock()

	if r.Method == http.MethodPost {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	// Like GoToSocial, refuse unsigned GETs of the actor.
	if r.URL.Path == "/users/"+p.name && !req.SignedByCrieur {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var doc map[string]any
	switch {
	case r.URL.Path == "/users/"+p.name:
		if actorStatus != 0 {
			w.WriteHeader(actorStatus)
			return
		}
		if p.style == keyInActor || p.style == keyArray {
			if keyStatus != 0 {
				w.WriteHeader(keyStatus)
				return
			}
		}
		doc = p.actorDoc()
	case p.style == keyStub && r.URL.Path == "/users/"+p.name+"/main-key":
		if keyStatus != 0 {
			w.WriteHeader(keyStatus)
			return
		}
		// GoToSocial's stub: the actor's id and key, no inbox.
		doc = map[string]any{"id": p.ActorID(), "type": "Person", "publicKey": p.publicKeyDoc()}
	case p.style == keyBare && r.URL.Path == "/keys/"+p.name:
		if keyStatus != 0 {
			w.WriteHeader(keyStatus)
			return
		}
		doc = p.publicKeyDoc()
		doc["@context"] = "https://w3id.org/security/v1"
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/activity+json")
	_ = json.NewEncoder(w).Encode(doc)
}

// signer returns a Signer for the peer's current key; now may be nil. With
// the default clock, each signer signs one second later than the previous
// one, as a real server's successive requests are: the same document sent
// twice is then two signatures, not a replay, and activities are ordered.
func (p *protoPeer) signer(now func() time.Time) *signature.Signer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now == nil {
		p.signers++
		ahead := time.Duration(p.signers) * time.Second
		now = func() time.Time { return time.Now().Add(ahead) }
	}
	s, err := signature.NewSigner(p.KeyID(), p.key, now)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// protoCrieur is an Inbox behind a loopback inbox endpoint, the way web
// will serve it (minus Gin).
type protoCrieur struct {
	t      *testing.T
	srv    *httptest.Server
	svc    *Inbox
	docs   *documents.Builder
	store  *storage.Store
	dbPath string
	key    *rsa.PrivateKey
	now    func() time.Time

	mu      sync.Mutex
	lastErr error
}

type protoOptions struct {
	manual  bool
	allow   []netip.Prefix // nil: loopback allowed
	noAllow bool           // true: nothing allowed (the production guard)
	log     io.Writer      // where the service logs at debug level (nil: nowhere)
}

func newProtoCrieur(t *testing.T, opts protoOptions) *protoCrieur {
	c := &protoCrieur{t: t, key: testkit.Key(t, 0), now: time.Now}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	c.dbPath = filepath.Join(t.TempDir(), "crieur.db")
	st, err := storage.Open(c.dbPath, storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.store = st
	allow := opts.allow
	if allow == nil && !opts.noAllow {
		allow = testkit.Loopback()
	}
	client := transport.NewClient(transport.ClientConfig{UserAgent: "crieur-test", AllowPrefixes: allow, Timeout: 5 * time.Second})
	t.Cleanup(client.CloseIdleConnections)
	now := func() time.Time { return c.now() }
	c.docs, err = documents.New(documents.Config{
		BaseURL:                   c.srv.URL,
		Handle:                    "reports",
		ManuallyApprovesFollowers: opts.manual,
	}, documents.Deps{Store: st, Key: &c.key.PublicKey, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(c.docs.Config().KeyID(), c.key, now)
	if err != nil {
		t.Fatal(err)
	}
	c.svc, err = New(Deps{
		Docs:   c.docs,
		Store:  st,
		Signer: signer,
		Client: client,
		Logger: protoLogger(opts.log),
		Now:    now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *protoCrieur) ActorID() string  { return c.svc.cfg.ActorID() }
func (c *protoCrieur) InboxURL() string { return c.ActorID() + "/inbox" }

// serve runs Precheck, reads the body (one byte past the limit, so Inbox
// sees oversize bodies) and maps the sentinels the way web does.
func (c *protoCrieur) serve(w http.ResponseWriter, r *http.Request) {
	err := c.svc.Precheck(r)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(io.LimitReader(r.Body, InboxMaxBody+1))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		err = c.svc.Receive(r.Context(), r, body)
	}
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	w.WriteHeader(statusOf(err))
}

func statusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusAccepted
	case errors.Is(err, federation.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, federation.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, federation.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, federation.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, federation.ErrGone):
		return http.StatusGone
	case errors.Is(err, federation.ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, federation.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, federation.ErrBusy):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// post sends body to crieur's inbox, signed by signer (nil: unsigned), with
// the body actually sent possibly differing (sent != nil) from the signed
// one. It returns the status and the error Inbox returned.
func (c *protoCrieur) post(signer *signature.Signer, body, sent []byte, contentType string) (int, error) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.InboxURL(), bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType == "" {
		contentType = "application/activity+json"
	}
	req.Header.Set("Content-Type", contentType)
	if signer != nil {
		if err := signer.SignRequest(req, body); err != nil {
			c.t.Fatal(err)
		}
	}
	if sent != nil {
		req.Body = io.NopCloser(bytes.NewReader(sent))
		req.ContentLength = int64(len(sent))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return resp.StatusCode, c.lastErr
}

// send posts a signed activity document.
func (c *protoCrieur) send(p *protoPeer, doc map[string]any) (int, error) {
	c.t.Helper()
	return c.post(p.signer(nil), mustJSON(c.t, doc), nil, "")
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stateSnapshot is everything an inbox request may change.
type stateSnapshot struct {
	Followers    []storage.Follower
	Jobs         []storage.Job
	Keys         map[string]bool
	Interactions []storage.Interaction
}

func (c *protoCrieur) snapshot(keyIDs ...string) stateSnapshot {
	c.t.Helper()
	var s stateSnapshot
	for _, st := range []storage.FollowerStatus{storage.FollowerAccepted, storage.FollowerPending} {
		fs, err := c.store.Followers(st)
		if err != nil {
			c.t.Fatal(err)
		}
		s.Followers = append(s.Followers, fs...)
	}
	jobs, err := c.store.PendingJobs()
	if err != nil {
		c.t.Fatal(err)
	}
	s.Jobs = jobs
	if s.Interactions, err = c.store.RecentInteractions(1000); err != nil {
		c.t.Fatal(err)
	}
	s.Keys = map[string]bool{}
	for _, k := range keyIDs {
		_, err := c.store.RemoteKey(k)
		s.Keys[k] = err == nil
	}
	return s
}

func (c *protoCrieur) followCount() int {
	c.t.Helper()
	n, err := c.store.CountFollowers()
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// activity builders

func followDoc(p *protoPeer, object, id string) map[string]any {
	return map[string]any{
		"@context": "https://www.w3.org/ns/activitystreams",
		"id":       id,
		"type":     "Follow",
		"actor":    p.ActorID(),
		"object":   object,
	}
}

func protoLogger(w io.Writer) *slog.Logger {
	if w == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newInbox builds an Inbox for https://crieur.example over st and client
// (log nil: nowhere), for tests without a loopback crieur.
func newInbox(t testing.TB, st *storage.Store, client *transport.Client, log *slog.Logger) *Inbox {
	t.Helper()
	key := testkit.Key(t, 0)
	docs, err := documents.New(documents.Config{BaseURL: "https://crieur.example", Handle: "reports"},
		documents.Deps{Store: st, Key: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(docs.Config().KeyID(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(Deps{Docs: docs, Store: st, Signer: signer, Client: client, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return in
}
