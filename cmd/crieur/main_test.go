package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// instance is a crieur started through run() on a loopback port, the way
// `crieur serve` starts, with its own posts and data folders.
type instance struct {
	t        testing.TB
	base     string
	posts    string
	data     string
	cancel   context.CancelFunc
	done     chan error
	out      *syncBuffer
	extraEnv map[string]string
	// logLines and logBytes count what a process started by startProcess
	// wrote to its standard error.
	logLines, logBytes atomic.Int64
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newInstance prepares folders; files maps names in posts/ to contents.
func newInstance(t testing.TB, files map[string]string) *instance {
	t.Helper()
	in := &instance{t: t, posts: t.TempDir(), data: t.TempDir(), extraEnv: map[string]string{}}
	for name, body := range files {
		in.writePost(name, body)
	}
	in.base = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	return in
}

func (in *instance) env() func(string) string {
	m := map[string]string{
		"CRIEUR_BASE_URL":      in.base,
		"CRIEUR_LISTEN":        strings.TrimPrefix(in.base, "http://"),
		"CRIEUR_POSTS":         in.posts,
		"CRIEUR_DATA":          in.data,
		"CRIEUR_HANDLE":        "reports",
		"CRIEUR_ALLOW_PRIVATE": "true",
		"CRIEUR_LOG_LEVEL":     "warn",
	}
	for k, v := range in.extraEnv {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// start runs the server and waits until it answers.
func (in *instance) start() {
	in.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	in.done = make(chan error, 1)
	in.out = &syncBuffer{}
	go func() { in.done <- run(ctx, []string{"serve"}, in.env(), in.out, in.out) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(in.base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-in.done:
			in.t.Fatalf("crieur stopped while starting: %v\n%s", err, in.out.String())
		default:
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("crieur did not answer within 15s\n%s", in.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.t.Cleanup(in.stop)
}

// stop shuts the server down the way SIGTERM does and waits for it.
func (in *instance) stop() {
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			in.t.Errorf("crieur serve returned %v\n%s", err, in.out.String())
		}
	case <-time.After(30 * time.Second):
		in.t.Errorf("crieur did not stop within 30s")
	}
}

func (in *instance) writePost(name, body string) {
	in.t.Helper()
	p := filepath.Join(in.posts, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		in.t.Fatal(err)
	}
	// Written beside and renamed, as editors and sync tools do, so the
	// watcher never sees half a file in these tests.
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		in.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		in.t.Fatal(err)
	}
}

func (in *instance) actorID() string { return in.base + "/@reports" }

// getJSON fetches an ActivityPub document.
func (in *instance) getJSON(url string) (int, map[string]any) {
	in.t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if resp.StatusCode == 200 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/activity+json") {
			in.t.Errorf("GET %s: content type %q, want application/activity+json", url, ct)
		}
		if err := json.Unmarshal(body, &m); err != nil {
			in.t.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return resp.StatusCode, m
}

func (in *instance) followerCount() int {
	in.t.Helper()
	code, m := in.getJSON(in.actorID() + "/followers")
	if code != 200 {
		in.t.Fatalf("followers collection: %d", code)
	}
	n, ok := m["totalItems"].(float64)
	if !ok {
		in.t.Fatalf("followers collection without totalItems: %v", m)
	}
	return int(n)
}

// admin runs an admin subcommand against this instance's folders.
func (in *instance) admin(args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, in.env(), &out, &errb)
	return out.String() + errb.String(), err
}

func post(slug, lang, title, date, body string) string {
	return fmt.Sprintf("---\ntitle: %q\ndate: %s\nslug: %s\ntranslationKey: %s\ntags: [reports]\n---\n\n%s\n", title, date, slug, slug, body)
}

func follow(r *remote, in *instance, name string) map[string]any {
	return map[string]any{
		"@context": "https://www.w3.org/ns/activitystreams",
		"id":       r.actorID(name) + "/follows/1",
		"type":     "Follow",
		"actor":    r.actorID(name),
		"object":   in.actorID(),
	}
}
