package inbox

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// docServer serves fixed documents by path; anything else is 404.
type docServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	docs map[string]docReply
	hits int
}

type docReply struct {
	status      int
	body        string
	contentType string // "": application/activity+json
	redirect    string // non-empty: a 302 there
}

func newDocServer(t *testing.T) *docServer {
	d := &docServer{docs: map[string]docReply{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		rep, ok := d.docs[r.URL.Path]
		d.hits++
		d.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rep.redirect != "" {
			http.Redirect(w, r, rep.redirect, http.StatusFound)
			return
		}
		ct := rep.contentType
		if ct == "" {
			ct = "application/activity+json"
		}
		w.Header().Set("Content-Type", ct)
		if rep.status != 0 {
			w.WriteHeader(rep.status)
		}
		w.Write([]byte(rep.body))
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *docServer) set(path string, status int, body any) {
	d.setTyped(path, status, "", body)
}

// setTyped serves body at path with status and contentType ("":
// application/activity+json).
func (d *docServer) setTyped(path string, status int, contentType string, body any) {
	s, ok := body.(string)
	if !ok {
		b, _ := json.Marshal(body)
		s = string(b)
	}
	d.mu.Lock()
	d.docs[path] = docReply{status: status, body: s, contentType: contentType}
	d.mu.Unlock()
}

// setRedirect makes path redirect (302) to target.
func (d *docServer) setRedirect(path, target string) {
	d.mu.Lock()
	d.docs[path] = docReply{redirect: target}
	d.mu.Unlock()
}

// count is how many requests the server got.
func (d *docServer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits
}

func TestResolveKeyRefusals(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	a := newDocServer(t)
	b := newDocServer(t)
	goodPEM, _ := signature.PublicKeyPEM(&testkit.Key(t, 1).PublicKey)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	edPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edDER}))
	actor := func(id, keyID, owner, pemText string) map[string]any {
		return map[string]any{"id": id, "type": "Person", "inbox": id + "/inbox",
			"publicKey": map[string]any{"id": keyID, "owner": owner, "publicKeyPem": pemText}}
	}
	A := a.srv.URL
	cases := []struct {
		name  string
		setup func()
		keyID string
		gone  bool
	}{
		{"publicKey.id differs from keyId", func() {
			a.set("/u/1", 0, actor(A+"/u/1", A+"/u/1#other-key", A+"/u/1", goodPEM))
		}, A + "/u/1#main-key", false},
		{"owner differs from the actor", func() {
			a.set("/u/2", 0, actor(A+"/u/2", A+"/u/2#main-key", A+"/u/9", goodPEM))
		}, A + "/u/2#main-key", false},
		{"owner on another host", func() {
			a.set("/keys/3", 0, map[string]any{"id": A + "/keys/3", "owner": b.srv.URL + "/u/3", "publicKeyPem": goodPEM})
			b.set("/u/3", 0, actor(b.srv.URL+"/u/3", A+"/keys/3", b.srv.URL+"/u/3", goodPEM))
		}, A + "/keys/3", false},
		{"bare key whose owner does not list it", func() {
			a.set("/keys/4", 0, map[string]any{"id": A + "/keys/4", "owner": A + "/u/4", "publicKeyPem": goodPEM})
			a.set("/u/4", 0, actor(A+"/u/4", A+"/u/4#main-key", A+"/u/4", goodPEM))
		}, A + "/keys/4", false},
		{"bare key without owner", func() {
			a.set("/keys/5", 0, map[string]any{"id": A + "/keys/5", "publicKeyPem": goodPEM})
		}, A + "/keys/5", false},
		{"stub whose owner document has another id", func() {
			a.set("/u/6/main-key", 0, map[string]any{"id": A + "/u/6", "publicKey": map[string]any{"id": A + "/u/6/main-key", "owner": A + "/u/6", "publicKeyPem": goodPEM}})
			a.set("/u/6", 0, actor(A+"/u/66", A+"/u/6/main-key", A+"/u/66", goodPEM))
		}, A + "/u/6/main-key", false},
		{"stub whose key is not the one its owner lists", func() {
			otherPEM, _ := signature.PublicKeyPEM(&testkit.Key(t, 3).PublicKey)
			a.set("/u/16/main-key", 0, map[string]any{"id": A + "/u/16", "publicKey": map[string]any{"id": A + "/u/16/main-key", "owner": A + "/u/16", "publicKeyPem": otherPEM}})
			a.set("/u/16", 0, actor(A+"/u/16", A+"/u/16/main-key", A+"/u/16", goodPEM))
		}, A + "/u/16/main-key", false},
		{"stub whose owner lists the key without its PEM", func() {
			a.set("/u/17/main-key", 0, map[string]any{"id": A + "/u/17", "publicKey": map[string]any{"id": A + "/u/17/main-key", "owner": A + "/u/17", "publicKeyPem": goodPEM}})
			a.set("/u/17", 0, map[string]any{"id": A + "/u/17", "type": "Person", "inbox": A + "/u/17/inbox",
				"publicKey": map[string]any{"id": A + "/u/17/main-key", "owner": A + "/u/17"}})
		}, A + "/u/17/main-key", false},
		{"actor served from another path of its host", func() {
			a.set("/files/18.json", 0, actor(A+"/u/18", A+"/files/18.json#main-key", A+"/u/18", goodPEM))
			a.set("/u/18", 0, actor(A+"/u/18", A+"/u/18#main-key", A+"/u/18", goodPEM))
		}, A + "/files/18.json#main-key", false},
		{"actor served as plain JSON", func() {
			a.setTyped("/u/19", 0, "application/json", actor(A+"/u/19", A+"/u/19#main-key", A+"/u/19", goodPEM))
		}, A + "/u/19#main-key", false},
		{"key document redirected to another origin", func() {
			b.set("/u/20", 0, actor(A+"/u/20", A+"/u/20#main-key", A+"/u/20", goodPEM))
			a.setRedirect("/u/20", b.srv.URL+"/u/20")
		}, A + "/u/20#main-key", false},
		{"Ed25519 key", func() {
			a.set("/u/7", 0, actor(A+"/u/7", A+"/u/7#main-key", A+"/u/7", edPEM))
		}, A + "/u/7#main-key", false},
		{"PEM garbage", func() {
			a.set("/u/8", 0, actor(A+"/u/8", A+"/u/8#main-key", A+"/u/8", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
		}, A + "/u/8#main-key", false},
		{"not JSON", func() { a.set("/u/10", 0, "<html>hi</html>") }, A + "/u/10#main-key", false},
		{"JSON array", func() { a.set("/u/11", 0, "[]") }, A + "/u/11#main-key", false},
		{"document over 1 MiB", func() {
			a.set("/u/12", 0, `{"id":"`+strings.Repeat("a", 1<<20)+`"}`)
		}, A + "/u/12#main-key", false},
		{"server error", func() { a.set("/u/13", 500, "") }, A + "/u/13#main-key", false},
		{"gone", func() { a.set("/u/14", 410, "") }, A + "/u/14#main-key", true},
		{"not found", func() {}, A + "/u/15#main-key", true},
		{"keyId not a URL", func() {}, "acct:alice@example.org", false},
		{"keyId relative", func() {}, "/u/1#main-key", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			_, err := c.svc.resolveKey(testkit.Context(t), tc.keyID, false)
			if !errors.Is(err, federation.ErrUnauthorized) {
				t.Fatalf("err %v, want federation.ErrUnauthorized", err)
			}
			if errors.Is(err, errKeyGone) != tc.gone {
				t.Errorf("err %v: gone = %v, want %v", err, !tc.gone, tc.gone)
			}
			if _, err := c.store.RemoteKey(tc.keyID); err == nil {
				t.Error("refused key was cached")
			}
		})
	}
}

func TestResolveKeyCacheAndPKCS1(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	a := newDocServer(t)
	A := a.srv.URL
	der := x509.MarshalPKCS1PublicKey(&testkit.Key(t, 2).PublicKey)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: der}))
	a.set("/users/bob", 0, map[string]any{
		"id": A + "/users/bob", "type": "Person", "preferredUsername": "bob",
		"inbox": A + "/users/bob/inbox", "endpoints": map[string]any{"sharedInbox": "ftp://x/inbox"},
		"publicKey": map[string]any{"id": A + "/users/bob#main-key", "owner": A + "/users/bob", "publicKeyPem": pkcs1},
	})
	keyID := A + "/users/bob#main-key"
	rk, err := c.svc.resolveKey(testkit.Context(t), keyID, false)
	if err != nil {
		t.Fatal(err)
	}
	if !rk.fresh || !rk.pub.Public().Equal(&testkit.Key(t, 2).PublicKey) {
		t.Errorf("first resolve: fresh %v", rk.fresh)
	}
	if rk.rec.Inbox != A+"/users/bob/inbox" || rk.rec.SharedInbox != "" || rk.rec.Handle != "bob@127.0.0.1" {
		t.Errorf("actor info %+v (a non-http shared inbox must be dropped)", rk.rec)
	}
	a.set("/users/bob", 500, "")
	rk, err = c.svc.resolveKey(testkit.Context(t), keyID, false)
	if err != nil || rk.fresh {
		t.Errorf("second resolve should come from the cache: fresh %v, %v", rk.fresh, err)
	}
	if _, err := c.svc.resolveKey(testkit.Context(t), keyID, true); !errors.Is(err, federation.ErrUnauthorized) {
		t.Errorf("forced refresh against a failing server: %v", err)
	}
}

// TestResolveKeyOriginAccepted: what the origin rule still believes: a
// bare key document served from its own id whose owner lists it without
// repeating the PEM, and an actor reached through a redirect on its own
// origin whose id is the final URL.
func TestResolveKeyOriginAccepted(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	a := newDocServer(t)
	A := a.srv.URL
	goodPEM, _ := signature.PublicKeyPEM(&testkit.Key(t, 1).PublicKey)
	a.set("/keys/1", 0, map[string]any{"id": A + "/keys/1", "owner": A + "/u/1", "publicKeyPem": goodPEM})
	a.set("/u/1", 0, map[string]any{"id": A + "/u/1", "type": "Person", "inbox": A + "/u/1/inbox",
		"publicKey": map[string]any{"id": A + "/keys/1", "owner": A + "/u/1"}})
	rk, err := c.svc.resolveKey(testkit.Context(t), A+"/keys/1", false)
	if err != nil || !rk.pub.Public().Equal(&testkit.Key(t, 1).PublicKey) || rk.rec.Owner != A+"/u/1" || rk.rec.Inbox != A+"/u/1/inbox" {
		t.Errorf("bare key: %+v %v", rk.rec, err)
	}
	a.setRedirect("/@two", "/u/2")
	a.set("/u/2", 0, map[string]any{"id": A + "/u/2", "type": "Person", "inbox": A + "/u/2/inbox",
		"publicKey": map[string]any{"id": A + "/@two#main-key", "owner": A + "/u/2", "publicKeyPem": goodPEM}})
	rk, err = c.svc.resolveKey(testkit.Context(t), A+"/@two#main-key", false)
	if err != nil || rk.rec.Owner != A+"/u/2" {
		t.Errorf("actor behind a same-origin redirect: %+v %v", rk.rec, err)
	}
}

// FuzzFetchKey: whatever a remote server answers for a key and its owner,
// fetchKey either refuses with federation.ErrUnauthorized, or returns a key that
// parses, is owned by an actor on the keyId's host that lists it, and
// inbox URLs that are http(s). "{A}" in the documents stands for the
// server's URL, so the fuzzer can reach the paths that need matching ids.
func FuzzFetchKey(f *testing.F) {
	goodPEM, _ := signature.PublicKeyPEM(&testkit.Key(f, 1).PublicKey)
	pemJSON, _ := json.Marshal(goodPEM)
	actor := `{"id":"{A}/u","type":"Person","inbox":"{A}/u/inbox","preferredUsername":"u",` +
		`"endpoints":{"sharedInbox":"{A}/inbox"},"publicKey":{"id":"{A}/u#main-key","owner":"{A}/u","publicKeyPem":` + string(pemJSON) + `}}`
	f.Add("u#main-key", actor, "")
	f.Add("k", `{"id":"{A}/k","owner":"{A}/u","publicKeyPem":`+string(pemJSON)+`}`,
		strings.ReplaceAll(actor, "{A}/u#main-key", "{A}/k"))
	f.Add("u/main-key", `{"id":"{A}/u","publicKey":[{"id":"{A}/x"},{"id":"{A}/u/main-key","owner":"{A}/u","publicKeyPem":`+string(pemJSON)+`}]}`,
		strings.ReplaceAll(actor, "{A}/u#main-key", "{A}/u/main-key"))
	f.Add("u#main-key", `{"id":"{A}/u","publicKey":{"id":"{A}/u#main-key","owner":"http://evil.example/u","publicKeyPem":"x"}}`, "[]")

	st, err := storage.Open(filepath.Join(f.TempDir(), "crieur.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	var docs atomic.Pointer[[2]string] // key document, owner document
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := docs.Load()
		w.Header().Set("Content-Type", "application/activity+json")
		switch {
		case r.URL.Path == "/u" && d[1] != "":
			w.Write([]byte(d[1]))
		case r.URL.Path == "/u" || strings.HasPrefix(r.URL.Path, "/u/") || r.URL.Path == "/k":
			w.Write([]byte(d[0]))
		default:
			http.NotFound(w, r)
		}
	}))
	f.Cleanup(srv.Close)
	client := transport.NewClient(transport.ClientConfig{UserAgent: "crieur-fuzz", AllowPrefixes: testkit.Loopback(), Timeout: 5 * time.Second})
	f.Cleanup(client.CloseIdleConnections)
	svc := newInbox(f, st, client, nil)
	A := srv.URL

	f.Fuzz(func(t *testing.T, keyPath, keyDoc, ownerDoc string) {
		docs.Store(&[2]string{strings.ReplaceAll(keyDoc, "{A}", A), strings.ReplaceAll(ownerDoc, "{A}", A)})
		keyID := A + "/" + keyPath
		rec, pub, err := svc.fetchKey(context.Background(), keyID)
		if err != nil {
			if !errors.Is(err, federation.ErrUnauthorized) {
				t.Fatalf("refusal %v does not wrap federation.ErrUnauthorized", err)
			}
			return
		}
		if rec.KeyID != keyID || pub == nil {
			t.Fatalf("accepted %+v for %s (public key %v)", rec, keyID, pub)
		}
		if p, perr := signature.ParsePublicKeyPEM(rec.PublicKeyPEM); perr != nil || !p.Equal(pub.Public()) {
			t.Fatalf("the stored PEM is not the key returned: %v", perr)
		}
		if !strings.EqualFold(urlHost(rec.Owner), urlHost(keyID)) {
			t.Fatalf("owner %q is not on the key's host", rec.Owner)
		}
		for _, u := range []string{rec.Inbox, rec.SharedInbox} {
			if u != "" && !isHTTPURL(u) {
				t.Fatalf("inbox %q kept", u)
			}
		}
	})
}

// TestKeyFetchRefusedIsAWarning: a server that answers crieur's signed GET
// with 401 (it knows crieur by another key, GoToSocial after a lost
// actor.pem) refuses every Follow from there; the admin sees it at warn,
// not only as a debug line per refused request.
func TestKeyFetchRefusedIsAWarning(t *testing.T) {
	var logs testkit.Log
	c := newProtoCrieur(t, protoOptions{log: &logs})
	a := newDocServer(t)
	a.set("/users/alice", http.StatusUnauthorized, `{"error":"signature"}`)
	if _, err := c.svc.resolveKey(testkit.Context(t), a.srv.URL+"/users/alice#main-key", false); !errors.Is(err, federation.ErrUnauthorized) {
		t.Fatalf("resolve a key behind a 401: %v", err)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="inbox: a server refused crieur's signed GET`) ||
		!strings.Contains(logs.String(), "status=401") {
		t.Errorf("no warning for the refused GET:\n%s", logs.String())
	}
	a.set("/users/bob", http.StatusInternalServerError, "")
	before := strings.Count(logs.String(), "level=WARN")
	_, _ = c.svc.resolveKey(testkit.Context(t), a.srv.URL+"/users/bob#main-key", false)
	if strings.Count(logs.String(), "level=WARN") != before {
		t.Errorf("a 500 is not a refusal of crieur's key, yet it was warned about:\n%s", logs.String())
	}
}

// A key is parsed and imported once per PEM text, and the keys kept are
// bounded.
func TestReadyKeysParsedOnceAndBounded(t *testing.T) {
	s := &Inbox{verify: &signature.Verifier{}, ready: newReadyKeys(8)}
	for i := range 20 {
		key, err := rsa.GenerateKey(rand.Reader, 1024+64*(i%2))
		if err != nil {
			t.Fatal(err)
		}
		pemText, err := signature.PublicKeyPEM(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		k1, err := s.parseKey(pemText)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := s.parseKey(pemText)
		if err != nil || k2 != k1 {
			t.Fatalf("key %d parsed twice (%p, %p, %v)", i, k1, k2, err)
		}
		if !k1.Public().Equal(&key.PublicKey) {
			t.Fatalf("key %d: parsed key differs", i)
		}
		if len(s.ready.m) > 8 {
			t.Fatalf("%d keys kept, bound 8", len(s.ready.m))
		}
	}
	if _, err := s.parseKey("not a key"); err == nil {
		t.Fatal("a bad PEM text was accepted")
	}
}
