package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
)

// connCounter is an inbox server that counts the TCP connections it
// accepted and keeps each request (verified against the signer's key).
type connCounter struct {
	srv   *httptest.Server
	conns atomic.Int64
	mu    sync.Mutex
	reqs  []*http.Request
	errs  []error
}

func newConnCounter(t *testing.T, signer *signature.Signer, h http.HandlerFunc) *connCounter {
	t.Helper()
	cc := &connCounter{}
	cc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var err error
		if signer != nil {
			err = testkit.CheckSignature(r, body, &testkit.Key(t, 0).PublicKey)
		}
		cc.mu.Lock()
		cc.reqs = append(cc.reqs, r)
		cc.errs = append(cc.errs, err)
		cc.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	cc.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			cc.conns.Add(1)
		}
	}
	cc.srv.Start()
	t.Cleanup(cc.srv.Close)
	return cc
}

func (cc *connCounter) requests() ([]*http.Request, []error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return append([]*http.Request(nil), cc.reqs...), append([]error(nil), cc.errs...)
}

func TestPostKeepsConnectionForTheHostsNextDelivery(t *testing.T) {
	signer, _ := signature.NewSigner("https://crieur.example/@reports#main-key", testkit.Key(t, 0), nil)
	in := newConnCounter(t, signer, nil)
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	body := []byte(`{"type":"Create","id":"https://crieur.example/a/1"}`)

	for i := 0; i < 3; i++ {
		resp, err := c.PostDigest(testkit.Context(t), in.srv.URL+"/users/a/inbox?x=1", body, signature.BodyDigest(body), signer, PostOptions{})
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("delivery %d: %+v %v", i, resp, err)
		}
	}
	if n := in.conns.Load(); n != 1 {
		t.Errorf("3 deliveries to one host took %d connections, want 1 kept alive", n)
	}
	// The last delivery asks the server to close, and leaves nothing idle.
	if _, err := c.PostDigest(testkit.Context(t), in.srv.URL+"/users/a/inbox", body, signature.BodyDigest(body), signer, PostOptions{Last: true}); err != nil {
		t.Fatal(err)
	}
	reqs, errs := in.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests received, want 4", len(reqs))
	}
	for i, r := range reqs {
		if errs[i] != nil {
			t.Errorf("request %d: signature or digest refused: %v", i, errs[i])
		}
		if r.Header.Get("Content-Type") != "application/activity+json" || r.ContentLength != int64(len(body)) ||
			len(r.Header.Values("Signature")) != 1 || r.Host != strings.TrimPrefix(in.srv.URL, "http://") {
			t.Errorf("request %d: headers %v host %q length %d", i, r.Header, r.Host, r.ContentLength)
		}
	}
	if reqs[0].RequestURI != "/users/a/inbox?x=1" {
		t.Errorf("request target %q", reqs[0].RequestURI)
	}
	if !reqs[3].Close || reqs[2].Close {
		t.Errorf("Connection: close on the last delivery only: got %v, %v", reqs[2].Close, reqs[3].Close)
	}
	c.pool.mu.Lock()
	idle := c.pool.n
	c.pool.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d idle connections kept after the host's last delivery", idle)
	}
}

func TestPostSendsAgainWhenTheKeptConnectionWasClosed(t *testing.T) {
	signer, _ := signature.NewSigner("https://crieur.example/@reports#main-key", testkit.Key(t, 0), nil)
	var n atomic.Int64
	in := newConnCounter(t, signer, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			// Answer, then drop the connection the way a server whose
			// keep-alive ran out does, without saying so.
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusAccepted)
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				time.AfterFunc(50*time.Millisecond, func() { conn.Close() })
			}
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	body := []byte(`{}`)
	if _, err := c.PostDigest(testkit.Context(t), in.srv.URL+"/inbox", body, signature.BodyDigest(body), signer, PostOptions{}); err != nil {
		t.Fatal(err)
	}
	c.pool.mu.Lock()
	kept := c.pool.n
	c.pool.mu.Unlock()
	if kept != 1 {
		t.Fatalf("%d connections kept after the first delivery, want 1", kept)
	}
	time.Sleep(200 * time.Millisecond) // the server has closed its end
	resp, err := c.PostDigest(testkit.Context(t), in.srv.URL+"/inbox", body, signature.BodyDigest(body), signer, PostOptions{})
	if err != nil || resp.Status != http.StatusAccepted {
		t.Fatalf("delivery on a connection closed by the server: %+v %v", resp, err)
	}
	if got := in.conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2 (the closed one, then a new one)", got)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("server handled %d requests, want 2", got)
	}
}

// rawServer answers each connection with fn, on loopback.
func rawServer(t testing.TB, fn func(conn net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				fn(conn, bufio.NewReader(conn))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestPostWireAndInformationalAnswers(t *testing.T) {
	signer, _ := signature.NewSigner("https://crieur.example/@reports#main-key", testkit.Key(t, 0), nil)
	got := make(chan *http.Request, 1)
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(r.Body)
		if err := testkit.CheckSignature(r, body, &testkit.Key(t, 0).PublicKey); err != nil {
			r.Header.Set("X-Test-Error", err.Error())
		}
		got <- r
		io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"+
			"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 9\r\n\r\nslow down")
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback(), UserAgent: "crieur/test\r\nX-Injected: 1"})
	t.Cleanup(c.CloseIdleConnections)
	body := []byte(`{"type":"Note"}`)
	resp, err := c.PostDigest(testkit.Context(t), url+"/inbox", body, signature.BodyDigest(body), signer, PostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusTooManyRequests || resp.RetryAfter != 7*time.Second || string(resp.Body) != "slow down" {
		t.Errorf("answer after two 1xx: %d, Retry-After %s, body %q", resp.Status, resp.RetryAfter, resp.Body)
	}
	r := <-got
	if e := r.Header.Get("X-Test-Error"); e != "" {
		t.Errorf("request refused by the verifier: %s", e)
	}
	if r.Header.Get("X-Injected") != "" {
		t.Errorf("a newline in a header value added a header line")
	}
	if r.Method != http.MethodPost || r.Proto != "HTTP/1.1" || r.Header.Get("Date") == "" || r.Header.Get("Digest") == "" {
		t.Errorf("request %s %s, headers %v", r.Method, r.Proto, r.Header)
	}
}

func TestPostTimeoutAndShutdown(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		<-hang // read the request, never answer
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	body := []byte(`{}`)

	start := time.Now()
	_, err := c.PostDigest(testkit.Context(t), url+"/inbox", body, signature.BodyDigest(body), nil, PostOptions{Timeout: 150 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("hanging server: err %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout of 150ms took %s", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = c.PostDigest(ctx, url+"/inbox", body, signature.BodyDigest(body), nil, PostOptions{Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled delivery: err %v, want context.Canceled in its chain", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s to end the request", d)
	}

	// A refused connection is an error, not an answer.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := c.PostDigest(testkit.Context(t), "http://"+addr+"/inbox", body, signature.BodyDigest(body), nil, PostOptions{}); err == nil || IsRefused(err) {
		t.Errorf("closed port: err %v, want a connection error", err)
	}
}

func TestPostOverTLS(t *testing.T) {
	signer, _ := signature.NewSigner("https://crieur.example/@reports#main-key", testkit.Key(t, 0), nil)
	var verified atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.TLS != nil && testkit.CheckSignature(r, body, &testkit.Key(t, 0).PublicKey) == nil {
			verified.Add(1)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	body := []byte(`{}`)
	// The test server's certificate is not trusted yet: refused.
	if _, err := c.PostDigest(testkit.Context(t), srv.URL+"/inbox", body, signature.BodyDigest(body), signer, PostOptions{}); err == nil {
		t.Fatal("delivery to an untrusted certificate succeeded")
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c.tlsConfig.RootCAs = roots
	for i := 0; i < 2; i++ {
		resp, err := c.PostDigest(testkit.Context(t), srv.URL+"/inbox", body, signature.BodyDigest(body), signer, PostOptions{})
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("delivery over TLS: %+v %v", resp, err)
		}
	}
	if verified.Load() != 2 {
		t.Errorf("%d of 2 deliveries verified over TLS", verified.Load())
	}
}

func TestConnPoolExpiresIdleConnections(t *testing.T) {
	var p connPool
	a, b := net.Pipe()
	t.Cleanup(func() { b.Close() })
	now := time.Now()
	p.put(&postConn{conn: a, key: "http://x:80"}, now.Add(-postIdleTimeout))
	if pc := p.get("http://x:80", now); pc != nil {
		t.Fatal("a connection idle for postIdleTimeout was reused")
	}
	if _, err := a.Write([]byte{0}); err == nil {
		t.Error("the expired connection was not closed")
	}
	for i := 0; i < postMaxIdlePerHost+2; i++ {
		c1, c2 := net.Pipe()
		t.Cleanup(func() { c2.Close() })
		p.put(&postConn{conn: c1, key: "http://y:80"}, now)
	}
	if p.n != postMaxIdlePerHost {
		t.Errorf("%d idle connections for one host, want at most %d", p.n, postMaxIdlePerHost)
	}
	p.closeAll()
	if p.n != 0 || len(p.idle) != 0 || p.reaper != nil {
		t.Errorf("closeAll left %d connections", p.n)
	}
}

func TestPostReadsAnAnswerSentBeforeTheBodyWasRead(t *testing.T) {
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		// Read the head only, refuse the size, and close with most of the
		// body unread (the way a server with a body limit does).
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		io.WriteString(conn, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		conn.(*net.TCPConn).CloseWrite()
		time.Sleep(100 * time.Millisecond)
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	body := []byte(`{"content":"` + strings.Repeat("a", 8<<20) + `"}`)
	resp, err := c.PostDigest(testkit.Context(t), url+"/inbox", body, signature.BodyDigest(body), nil, PostOptions{})
	if err != nil || resp.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized delivery: %+v %v, want the server's 413", resp, err)
	}
}

func TestDialGate(t *testing.T) {
	g := &dialGate{start: 2, size: 2, now: time.Now}
	ctx := context.Background()
	leave1, err := g.enter(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	leave2, _ := g.enter(ctx, nil)
	// Full: a third attempt waits, and gives up with its context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := g.enter(short, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third attempt on a gate of 2: %v, want to wait until its context ends", err)
	}
	// Leaving twice gives back one slot, not two.
	leave1()
	leave1()
	leave3, err := g.enter(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if held := gateHeld(g); held != 2 {
		t.Fatalf("%d slots taken after leave twice and one enter, want 2", held)
	}
	// A slot never left (a host that never answers the SYN) comes back by
	// itself after dialGateHold.
	start := time.Now()
	leave4, err := g.enter(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < dialGateHold/2 {
		t.Errorf("entered a full gate after %s, before any slot was given back", waited)
	}
	leave2()
	leave3()
	leave4()
	if held := gateHeld(g); held != 0 {
		t.Errorf("%d slots still taken after everybody left", held)
	}
}

func gateHeld(g *dialGate) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// TestDialGateRamps: a burst first gets the gate's start size, and the
// rest as time passes, without any slot given back; an idle gate starts
// small again.
func TestDialGateRamps(t *testing.T) {
	var mu sync.Mutex
	clock := time.Unix(1000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	g := &dialGate{start: 1, size: 3, ramp: 10 * time.Second, now: now}
	ctx := context.Background()

	burst := func() (admitted chan func()) {
		admitted = make(chan func(), 3)
		for range 3 {
			go func() {
				leave, err := g.enter(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				admitted <- leave
			}()
		}
		return admitted
	}
	expect := func(admitted chan func(), n int, when string) []func() {
		t.Helper()
		var leaves []func()
		for range n {
			select {
			case leave := <-admitted:
				leaves = append(leaves, leave)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: %d of %d attempts admitted", when, len(leaves), n)
			}
		}
		select {
		case leave := <-admitted:
			t.Fatalf("%s: more than %d attempts admitted", when, n)
			leave()
		case <-time.After(50 * time.Millisecond):
		}
		return leaves
	}

	admitted := burst()
	leaves := expect(admitted, 1, "at the start of a burst")
	advance(5 * time.Second) // half the ramp: 1 + (3-1)/2
	leaves = append(leaves, expect(admitted, 1, "half way through the ramp")...)
	advance(5 * time.Second)
	leaves = append(leaves, expect(admitted, 1, "at the end of the ramp")...)
	for _, leave := range leaves {
		leave()
	}

	// Idle again: the next burst starts from the start size.
	advance(time.Hour)
	admitted = burst()
	leaves = expect(admitted, 1, "after the gate was idle")
	// A slot given back admits the next attempt at once.
	leaves[0]()
	leaves = expect(admitted, 1, "after a slot was given back")
	advance(10 * time.Second)
	leaves = append(leaves, expect(admitted, 1, "after the second ramp")...)
	for _, leave := range leaves {
		leave()
	}
}

// TestPostEndlessInformationalAnswers: a server that only ever sends 1xx
// answers is an error after a few, not a delivery that waits forever.
func TestPostEndlessInformationalAnswers(t *testing.T) {
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		for range 50 {
			if _, err := io.WriteString(conn, "HTTP/1.1 103 Early Hints\r\n\r\n"); err != nil {
				return
			}
		}
		time.Sleep(time.Second)
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	t.Cleanup(c.CloseIdleConnections)
	body := []byte(`{}`)
	start := time.Now()
	_, err := c.PostDigest(testkit.Context(t), url+"/inbox", body, signature.BodyDigest(body), nil, PostOptions{Timeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "informational") {
		t.Errorf("endless 1xx: err %v, want an error naming the informational answers", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("endless 1xx took %s, want the error at once", d)
	}
}

// A delivery that asked the server to close the connection takes a success
// from the status line alone; anything else is read whole.
func TestPostClosingAnswers(t *testing.T) {
	type chunk struct {
		text  string
		pause time.Duration
	}
	cases := []struct {
		name       string
		answer     []chunk
		status     int
		retryAfter time.Duration
	}{
		// The body never ends: only the status line may be waited for.
		{"success with an endless body", []chunk{{"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 0}}, 202, 0},
		{"success with a broken header", []chunk{{"HTTP/1.0 204\r\nnot a header line\r\n\r\n", 0}}, 204, 0},
		{"status line in two reads", []chunk{{"HTTP/1.1 2", 50 * time.Millisecond}, {"01 Created\r\nContent-Length: 0\r\n\r\n", 0}}, 201, 0},
		{"informational first", []chunk{{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0}}, 200, 0},
		{"failure headers are read", []chunk{{"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 9\r\nContent-Length: 4\r\n\r\nslow", 0}}, 429, 9 * time.Second},
		{"a 2xx lookalike", []chunk{{"HTTP/1.1 2000 Odd\r\nContent-Length: 0\r\n\r\n", 0}}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, r.Body)
				for _, c := range tc.answer {
					io.WriteString(conn, c.text)
					time.Sleep(c.pause)
				}
				time.Sleep(3 * time.Second) // hold the connection open
			})
			c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
			t.Cleanup(c.CloseIdleConnections)
			body := []byte(`{"type":"Create"}`)
			start := time.Now()
			resp, err := c.PostDigest(testkit.Context(t), url+"/inbox", body, signature.BodyDigest(body), nil, PostOptions{Timeout: 2 * time.Second, Last: true})
			if tc.status == 0 {
				if err == nil {
					t.Fatalf("malformed status line accepted: %+v", resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || resp.RetryAfter != tc.retryAfter {
				t.Errorf("status %d, Retry-After %s; want %d, %s", resp.Status, resp.RetryAfter, tc.status, tc.retryAfter)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("answer taken after %s, want it as soon as its status line came", d)
			}
		})
	}
}

// BenchmarkPostClosing is one fan-out delivery without its signature: a
// new loopback connection, the request, a 202 answer, the close. It shows
// what the client adds to the kernel's work (see -benchmem).
func BenchmarkPostClosing(b *testing.B) {
	answer := []byte("HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\nDate: Mon, 07 Dec 2026 06:00:00 GMT\r\n\r\n")
	url := rawServer(b, func(conn net.Conn, br *bufio.Reader) {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, r.Body)
		conn.Write(answer)
	})
	c := NewClient(ClientConfig{AllowPrefixes: testkit.Loopback()})
	defer c.CloseIdleConnections()
	body := bytes.Repeat([]byte("x"), 4400)
	digest := signature.BodyDigest(body)
	inbox := url + "/inbox"
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.PostDigest(ctx, inbox, body, digest, nil, PostOptions{Last: true})
		if err != nil || resp.Status != http.StatusAccepted {
			b.Fatal(resp, err)
		}
	}
}
