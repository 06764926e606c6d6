package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/inbox"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// testNow is the clock of every test: after every testdata article but
// future.en.md.
var testNow = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	testBase   = "https://crieur.example"
	testHandle = "reports"
)

// testKey is generated once per test binary: RSA generation is the slow
// part of building the documents and the inbox.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is a running crieur web server on loopback with the testdata
// articles, a real bbolt store, real documents and a real inbox.
type testEnv struct {
	srv   *httptest.Server
	url   string // where the server listens (not BaseURL)
	cfg   Config
	store *storage.Store
	lib   *articles.Library
	logs  *syncBuffer
	// handler is the server's handler, for benchmarks that call it
	// without a network in between.
	handler http.Handler
}

func newTestEnv(t testing.TB, tweak ...func(*Config)) *testEnv {
	t.Helper()
	return newTestEnvDir(t, "testdata/posts", tweak...)
}

// newTestEnvDir is newTestEnv with another posts folder.
func newTestEnvDir(t testing.TB, postsDir string, tweak ...func(*Config)) *testEnv {
	t.Helper()
	return newTestEnvDeps(t, postsDir, nil, tweak...)
}

// newTestEnvDeps is newTestEnvDir with the Deps changed by deps before
// New (the visitor's fetcher and blocks, for instance).
func newTestEnvDeps(t testing.TB, postsDir string, deps func(*Deps), tweak ...func(*Config)) *testEnv {
	t.Helper()
	cfg := Config{
		BaseURL:      testBase,
		Handle:       testHandle,
		DisplayName:  "Framasoft reports",
		Bio:          "Reports and diaries of the association.\n\nOne article per language.",
		SiteLanguage: "en",
		Software:     "crieur",
		Version:      "1.2.3",
		PageSize:     4,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	lib, err := articles.Load(postsDir, articles.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("load testdata posts: %v", err)
	}
	if probs := lib.Problems(); len(probs) > 0 {
		t.Fatalf("testdata posts have problems: %v", probs)
	}
	store, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{
		Timeout: time.Second, Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	current := func() *articles.Library { return lib }
	docs, err := documents.New(documents.Config{
		BaseURL:     cfg.BaseURL,
		Handle:      cfg.Handle,
		DisplayName: cfg.DisplayName,
		Bio:         cfg.Bio,
		AvatarURL:   cfg.AvatarURL(),
		AvatarType:  cfg.AvatarType(),
		Created:     testNow.Add(-24 * time.Hour),
		Software:    cfg.Software,
		Version:     cfg.Version,
	}, documents.Deps{
		Store: store, Posts: current, Key: &testKey().PublicKey, Logger: logger,
		Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatalf("documents.New: %v", err)
	}
	signer, err := signature.NewSigner(docs.Config().KeyID(), testKey(), func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	in, err := inbox.New(inbox.Deps{
		Docs: docs, Store: store, Signer: signer, Logger: logger,
		Client: transport.NewClient(transport.ClientConfig{UserAgent: "crieur-test"}),
		Now:    func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatalf("inbox.New: %v", err)
	}
	// Avatars come from loopback test servers: the guarded client with
	// the loopback allowance tests get (private ranges stay refused).
	images := transport.NewClient(transport.ClientConfig{UserAgent: "crieur-test", AllowPrefixes: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d := Deps{
		Posts: current, Docs: docs, Inbox: in, Store: store, Logger: logger,
		Now: func() time.Time { return testNow }, PostsDir: postsDir,
		FetchImage: func(ctx context.Context, u string) ([]byte, string, error) {
			img, err := images.FetchImage(ctx, u)
			if err != nil {
				return nil, "", err
			}
			return img.Body, img.ContentType, nil
		},
		Context: ctx,
	}
	if deps != nil {
		deps(&d)
	}
	h := New(cfg, d)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testEnv{srv: srv, url: srv.URL, cfg: cfg, store: store, lib: lib, logs: logs, handler: h}
}

// response is a fully read answer.
type response struct {
	*http.Response
	body string
}

func (r response) ctype() string { return r.Header.Get("Content-Type") }

// do sends a request to the test server; headers come in name, value pairs.
func (e *testEnv) do(t *testing.T, method, path string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return response{Response: resp, body: string(b)}
}

func (e *testEnv) get(t *testing.T, path string, headers ...string) response {
	t.Helper()
	return e.do(t, http.MethodGet, path, nil, headers...)
}

// browser is the Accept header Firefox sends for a page.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// expect checks status and content type (a prefix, so charset may follow).
func expect(t *testing.T, r response, status int, ctype string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, clip(r.body))
	}
	if ctype != "" && !strings.HasPrefix(r.ctype(), ctype) {
		t.Fatalf("%s %s: Content-Type %q, want %q", r.Request.Method, r.Request.URL.Path, r.ctype(), ctype)
	}
}

// contains checks that every want occurs in the body.
func contains(t *testing.T, r response, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(r.body, w) {
			t.Errorf("%s: body lacks %q\n%s", r.Request.URL.Path, w, clip(r.body))
		}
	}
}

// lacks checks that no unwanted string occurs in the body.
func lacks(t *testing.T, r response, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(r.body, u) {
			t.Errorf("%s: body has %q", r.Request.URL.Path, u)
		}
	}
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// hasVaryAccept reports whether the answer varies on Accept.
func hasVaryAccept(r response) bool {
	for _, v := range r.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Accept") {
				return true
			}
		}
	}
	return false
}

// ledgerEntry is an announced, later edited post.
func ledgerEntry(key string, updated time.Time) storage.LedgerEntry {
	return storage.LedgerEntry{
		Key: key, NoteID: testBase + "/posts/" + key, Hash: "1",
		Published: testNow.Add(-30 * 24 * time.Hour), Updated: updated, Pushed: true,
	}
}

// activityFor is a stored Update for key, with an id unique to key.
func activityFor(key string) storage.Activity {
	sum := sha256.Sum256([]byte(key))
	return storage.Activity{
		ID: testBase + "/activities/" + hex.EncodeToString(sum[:16]), Type: "Update",
		ObjectID: testBase + "/posts/" + key, Published: testNow, InOutbox: true,
		JSON: []byte(`{"type":"Update"}`),
	}
}

// publishDeleted records in the ledger that a Delete was sent for key.
func (e *testEnv) publishDeleted(t *testing.T, key string) {
	t.Helper()
	id := testBase + "/posts/" + key
	_, err := e.store.Publish(storage.LedgerEntry{
		Key: key, NoteID: id, Hash: "0", Published: testNow.Add(-48 * time.Hour),
		Deleted: testNow.Add(-time.Hour), Pushed: true,
	}, storage.Activity{
		ID: testBase + "/activities/00112233445566778899aabbccddeeff", Type: "Delete", ObjectID: id,
		Published: testNow.Add(-time.Hour), InOutbox: false,
		JSON: []byte(`{"type":"Delete"}`),
	}, nil)
	if err != nil {
		t.Fatalf("publish deleted %s: %v", key, err)
	}
}

func TestMain(m *testing.M) {
	// Quiet route listing; cmd/crieur sets the mode for the real server.
	gin.SetMode(gin.TestMode)
	code := m.Run()
	rig.close() // the browser tests' shared Chromium, when one was started
	os.Exit(code)
}
