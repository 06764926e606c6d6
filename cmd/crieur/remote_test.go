package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-fed/httpsig"
)

// remote plays another fediverse server on loopback: it has its own actors
// and key, sends signed activities to crieur, and records what crieur
// delivers to its inboxes after checking each signature with go-fed/httpsig
// against the key published in crieur's actor document.
type remote struct {
	t      testing.TB
	srv    *httptest.Server
	key    *rsa.PrivateKey
	mu     sync.Mutex
	got    []received
	notify chan struct{}
	// status, when set, decides the answer of the inbox (default 202).
	status func(path string) int
	keys   map[string]*rsa.PublicKey // crieur key cache, by keyId
	// refetched counts keys fetched again after a signature failed with
	// the cached one.
	refetched int
}

type received struct {
	Path     string
	Activity map[string]any
	KeyID    string
}

func newRemote(t testing.TB) *remote {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	r := &remote{t: t, key: key, notify: make(chan struct{}, 1024), keys: map[string]*rsa.PublicKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{name}", r.serveActor)
	mux.HandleFunc("POST /users/{name}/inbox", r.serveInbox)
	mux.HandleFunc("POST /inbox", r.serveInbox)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *remote) actorID(name string) string { return r.srv.URL + "/users/" + name }

func (r *remote) serveActor(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	der, _ := x509.MarshalPKIXPublicKey(&r.key.PublicKey)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	id := r.actorID(name)
	doc := map[string]any{
		"@context":          []any{"https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"},
		"id":                id,
		"type":              "Person",
		"preferredUsername": name,
		"inbox":             id + "/inbox",
		"outbox":            id + "/outbox",
		"endpoints":         map[string]any{"sharedInbox": r.srv.URL + "/inbox"},
		"publicKey":         map[string]any{"id": id + "#main-key", "owner": id, "publicKeyPem": pemKey},
	}
	w.Header().Set("Content-Type", "application/activity+json")
	json.NewEncoder(w).Encode(doc)
}

// crieurKey fetches crieur's public key the way a remote server would: an
// unsigned GET of the actor (crieur must serve its own key without a
// signature, or two servers in secure mode would wait on each other).
func (r *remote) crieurKey(keyID string) (*rsa.PublicKey, error) {
	r.mu.Lock()
	k := r.keys[keyID]
	r.mu.Unlock()
	if k != nil {
		return k, nil
	}
	actorURL, _, _ := strings.Cut(keyID, "#")
	req, _ := http.NewRequest("GET", actorURL, nil)
	req.Header.Set("Accept", "application/activity+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc struct {
		ID        string `json:"id"`
		PublicKey struct {
			ID    string `json:"id"`
			Owner string `json:"owner"`
			PEM   string `json:"publicKeyPem"`
		} `json:"publicKey"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, err
	}
	if doc.PublicKey.ID != keyID || doc.PublicKey.Owner != doc.ID {
		return nil, fmt.Errorf("key %s not owned by %s", keyID, doc.ID)
	}
	blk, _ := pem.Decode([]byte(doc.PublicKey.PEM))
	if blk == nil {
		return nil, fmt.Errorf("no PEM in actor")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("not an RSA key")
	}
	r.mu.Lock()
	r.keys[keyID] = rk
	r.mu.Unlock()
	return rk, nil
}

func (r *remote) serveInbox(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", 400)
		return
	}
	err = checkSigned(req, body, r.crieurKey)
	if err != nil && r.forgetKey(req) {
		// As Mastodon does (actor_refresh_key!), fetch the key again
		// once when the cached one fails: a rotated key is learnt so.
		err = checkSigned(req, body, r.crieurKey)
	}
	if err != nil {
		r.t.Errorf("remote inbox %s: crieur's delivery does not verify: %v", req.URL.Path, err)
		http.Error(w, "bad signature", 401)
		return
	}
	var act map[string]any
	if err := json.Unmarshal(body, &act); err != nil {
		r.t.Errorf("remote inbox: body is not JSON: %v", err)
		http.Error(w, "bad json", 400)
		return
	}
	if r.status != nil {
		if s := r.status(req.URL.Path); s >= 300 {
			w.WriteHeader(s)
			return
		}
	}
	v, _ := httpsig.NewVerifier(req)
	r.mu.Lock()
	r.got = append(r.got, received{Path: req.URL.Path, Activity: act, KeyID: v.KeyId()})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
}

// forgetKey drops the cached key a request names; false when none was cached.
func (r *remote) forgetKey(req *http.Request) bool {
	v, err := httpsig.NewVerifier(req)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[v.KeyId()]; !ok {
		return false
	}
	delete(r.keys, v.KeyId())
	r.refetched++
	return true
}

// checkSigned verifies a request the way Mastodon does: the signature with
// go-fed/httpsig, the signed headers, the Digest against the body, the Date.
func checkSigned(req *http.Request, body []byte, key func(string) (*rsa.PublicKey, error)) error {
	v, err := httpsig.NewVerifier(req)
	if err != nil {
		return fmt.Errorf("parse signature: %w", err)
	}
	sig := req.Header.Get("Signature")
	for _, h := range []string{"(request-target)", "host", "date", "digest"} {
		if !strings.Contains(sig, h) {
			return fmt.Errorf("%s not signed: %s", h, sig)
		}
	}
	sum := sha256.Sum256(body)
	if want := "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:]); req.Header.Get("Digest") != want {
		return fmt.Errorf("digest %q, want %q", req.Header.Get("Digest"), want)
	}
	d, err := http.ParseTime(req.Header.Get("Date"))
	if err != nil || time.Since(d).Abs() > 5*time.Minute {
		return fmt.Errorf("date %q not fresh", req.Header.Get("Date"))
	}
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/activity+json") {
		return fmt.Errorf("content type %q", ct)
	}
	k, err := key(v.KeyId())
	if err != nil {
		return fmt.Errorf("key %s: %w", v.KeyId(), err)
	}
	return v.Verify(k, httpsig.RSA_SHA256)
}

// send posts a signed activity from one of the remote's actors to url.
func (r *remote) send(url, actorName string, act map[string]any, mutate func(req *http.Request, body []byte) []byte) *http.Response {
	r.t.Helper()
	return r.sendAt(url, actorName, act, time.Now(), mutate)
}

// sendDated signs honestly but with the given Date.
func (r *remote) sendDated(url, actorName string, act map[string]any, date time.Time) *http.Response {
	r.t.Helper()
	return r.sendAt(url, actorName, act, date, nil)
}

func (r *remote) sendAt(url, actorName string, act map[string]any, date time.Time, mutate func(req *http.Request, body []byte) []byte) *http.Response {
	r.t.Helper()
	resp, err := r.trySend(url, actorName, act, date, mutate)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// trySend is sendAt for callers that expect the request may fail (crieur
// killed under it): the error is returned, not fatal.
func (r *remote) trySend(url, actorName string, act map[string]any, date time.Time, mutate func(req *http.Request, body []byte) []byte) (*http.Response, error) {
	body, _ := json.Marshal(act)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/activity+json")
	req.Header.Set("Date", date.UTC().Format(http.TimeFormat))
	req.Header.Set("Host", req.URL.Host)
	sum := sha256.Sum256(body)
	req.Header.Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]))
	signer, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256,
		[]string{httpsig.RequestTarget, "host", "date", "digest"}, httpsig.Signature, 0)
	if err != nil {
		return nil, err
	}
	if err := signer.SignRequest(r.key, r.actorID(actorName)+"#main-key", req, nil); err != nil {
		return nil, err
	}
	if mutate != nil {
		if nb := mutate(req, body); nb != nil {
			req.Body = io.NopCloser(bytes.NewReader(nb))
			req.ContentLength = int64(len(nb))
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// deliveries returns what arrived so far.
func (r *remote) deliveries() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// waitFor waits until match finds a delivery, or fails the test after d.
func (r *remote) waitFor(d time.Duration, what string, match func(received) bool) received {
	r.t.Helper()
	deadline := time.After(d)
	for {
		for _, g := range r.deliveries() {
			if match(g) {
				return g
			}
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("no %s arrived within %s; got %d deliveries: %v", what, d, len(r.deliveries()), summarize(r.deliveries()))
			return received{}
		}
	}
}

func summarize(ds []received) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s %v", d.Path, d.Activity["type"]))
	}
	return out
}

func ofType(typ string) func(received) bool {
	return func(d received) bool { return d.Activity["type"] == typ }
}
