package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/crieur/crieur/federation/signature"
)

// Deliveries do not go through net/http's Transport. With it, a request is
// signed first and handed to the Transport, whose dial, write and read run
// in goroutines of their own; under a fan-out those wait behind the next
// signatures (Go runs the goroutine a signer wakes before the ones already
// queued), so a whole fan-out was signed before most requests left: the
// remote servers sat idle, then all worked at once, and a slow reader at
// the end held up the last deliveries. Here one goroutine connects (TCP and
// TLS, before it waits for a signing goroutine), signs, writes the request at
// once in one write, and reads the answer: each signature leaves as soon as
// it is made. The connection is guarded by the same dialer as every other
// request, and kept alive for the host's next delivery unless the caller
// says there is none.
// PerHost is how many deliveries one host gets at once by default
// (delivery.DefaultPerHost), and so how many idle connections are kept
// for it.
const PerHost = 4

const (
	// postIdleTimeout is how long an idle delivery connection is kept.
	// Servers keep theirs longer (nginx 75 s, Go servers often 60 s or
	// more); a connection they closed first is detected on reuse and the
	// request is sent again on a new one.
	postIdleTimeout = 30 * time.Second
	// postMaxIdlePerHost matches PerHost: the requests a host gets at once
	// are the connections worth keeping for it.
	postMaxIdlePerHost = PerHost
	// postMaxIdle bounds idle delivery connections in total.
	postMaxIdle = 1024
	// postMaxInformational bounds the 1xx answers skipped before the real
	// one.
	postMaxInformational = 5
	// postEarlyAnswerWait is how long an answer is waited for after the
	// request could not be written whole.
	postEarlyAnswerWait = time.Second
	// postReaderSize is the read buffer of a connection: answers to
	// deliveries are a status line, a few headers and a short body.
	postReaderSize = 4 << 10
)

// PostOptions tune one delivery.
type PostOptions struct {
	// Timeout bounds the exchange once the request is signed (the
	// client's Timeout when zero). Connecting is bounded on its own (dial
	// and TLS timeouts): on a busy machine signing waits for a CPU, and
	// neither that wait nor the connection may eat the remote server's
	// time, or a delivery that did arrive would count as timed out.
	Timeout time.Duration
	// Last says that no other request for this host is waiting: the
	// request asks the server to close the connection after answering
	// (Connection: close), so a fan-out to thousands of servers does not
	// leave thousands of idle sockets behind, and the server, closing
	// first, keeps the TIME_WAIT state rather than our ports.
	Last bool
	// Admitted, when set, is called once, on the caller's goroutine or a
	// timer's, when the request stops waiting to go out: it has a kept
	// connection, or a new one and its signature, or its connection
	// attempt has held a slot of the dial gate for dialGateHold, or it
	// failed before. A caller starting many requests holds the others
	// back until then, rather than parking them at the gate.
	Admitted func()
}

// postConn is one HTTP/1.1 connection used for deliveries.
type postConn struct {
	conn  net.Conn
	br    *bufio.Reader // from postReaders, given back on close
	key   string        // scheme://host:port
	since time.Time     // idle since (in the pool)
}

// close closes the connection and gives its read buffer back. A fan-out
// opens a connection per server and reads a few hundred bytes from each:
// a new 4 KiB buffer for each was a third of what a delivery allocated.
func (pc *postConn) close() {
	_ = pc.conn.Close()
	if pc.br != nil {
		pc.br.Reset(nil)
		postReaders.Put(pc.br)
		pc.br = nil
	}
}

var postReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, postReaderSize) }}

// connPool keeps idle delivery connections per scheme://host:port.
type connPool struct {
	mu     sync.Mutex
	idle   map[string][]*postConn
	n      int
	reaper *time.Timer // set while the pool holds connections
}

// get returns an idle connection for key that has not outlived
// postIdleTimeout, or nil.
func (p *connPool) get(key string, now time.Time) *postConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	for len(list) > 0 {
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		p.n--
		if now.Sub(pc.since) < postIdleTimeout {
			p.setLocked(key, list)
			return pc
		}
		pc.close()
	}
	p.setLocked(key, nil)
	return nil
}

func (p *connPool) setLocked(key string, list []*postConn) {
	if len(list) == 0 {
		delete(p.idle, key)
		return
	}
	p.idle[key] = list
}

// put keeps pc for reuse, or closes it when the pool is full.
func (p *connPool) put(pc *postConn, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*postConn{}
	}
	if len(p.idle[pc.key]) >= postMaxIdlePerHost || p.n >= postMaxIdle {
		pc.close()
		return
	}
	pc.since = now
	p.idle[pc.key] = append(p.idle[pc.key], pc)
	p.n++
	if p.reaper == nil {
		p.reaper = time.AfterFunc(postIdleTimeout, p.reap)
	}
}

// reap closes the connections idle for longer than postIdleTimeout, and
// comes back while some remain.
func (p *connPool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for key, list := range p.idle {
		kept := list[:0]
		for _, pc := range list {
			if now.Sub(pc.since) >= postIdleTimeout {
				pc.close()
				p.n--
				continue
			}
			kept = append(kept, pc)
		}
		clear(list[len(kept):])
		p.setLocked(key, kept)
	}
	if p.n > 0 {
		p.reaper.Reset(postIdleTimeout / 2)
	} else {
		p.reaper = nil
	}
}

// closeAll closes every idle connection.
func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, list := range p.idle {
		for _, pc := range list {
			pc.close()
		}
		delete(p.idle, key)
	}
	p.n = 0
	if p.reaper != nil {
		p.reaper.Stop()
		p.reaper = nil
	}
}

// dialGate admits a bounded number of connection attempts at once. A
// fan-out starts thousands of deliveries together; each connects before it
// signs, and Go runs every new goroutine once before it comes back to the
// first one whose connection is open, so without the gate all 2,000
// connections of a fan-out were opened (150 ms of CPU on loopback) before
// the first signature began, and most then waited seconds for theirs while
// the remote servers held them open. A slot is held from the attempt until
// the request's signature starts, and given back after dialGateHold in any
// case, so hosts that never answer a SYN cannot hold the gate for the dial
// timeout.
//
// The gate opens gradually: from idle it admits dialGateStartPerCPU
// attempts, and grows to its full size over dialGateRamp. Where servers
// are near (a LAN, loopback) a connection costs CPU rather than waiting,
// and the full 256 at once kept the first signature waiting 12–28 ms behind
// them; where they are far, the ramp is shorter than one round trip and
// changes nothing.
type dialGate struct {
	start, size int
	ramp        time.Duration
	now         func() time.Time

	mu      sync.Mutex
	held    int
	since   time.Time // when the gate last left idle
	waiting []chan struct{}
	tick    *time.Timer // while attempts wait for the gate to grow
}

// dialGateHold is the longest a connection attempt holds its slot: longer
// than a connection across the world takes, so the gate still bounds the
// attempts in flight everywhere but on dead hosts.
const dialGateHold = 300 * time.Millisecond

// dialGatePerCPU is the gate's size per CPU: at 300 ms a connection (the
// worst case the hold allows), 128 slots admit 427 attempts a second, about
// half of what one CPU can sign, and a real connection is much faster.
const dialGatePerCPU = 128

// dialGateStartPerCPU is the gate's size per CPU when a burst begins:
// enough for the first signatures, few enough that they start at once.
const dialGateStartPerCPU = 4

// dialGateRamp is how long the gate takes to grow to its full size, and
// dialGateStep how often it admits more while it grows.
const (
	dialGateRamp = 10 * time.Millisecond
	dialGateStep = time.Millisecond
)

func newDialGate(cpus int) *dialGate {
	cpus = max(cpus, 1)
	return &dialGate{start: dialGateStartPerCPU * cpus, size: dialGatePerCPU * cpus, ramp: dialGateRamp, now: time.Now}
}

// DialSlots is the dial gate's full size: how many new connections may be
// opened ahead of their signatures.
func (c *Client) DialSlots() int { return c.dials.size }

// limitLocked is how many attempts the gate admits at now.
func (g *dialGate) limitLocked(now time.Time) int {
	return RampUp(g.start, g.size, now.Sub(g.since), g.ramp)
}

// enter waits for a slot; leave, which may be called more than once, gives
// it back (it is given back by itself after dialGateHold, and then held is
// called when not nil).
func (g *dialGate) enter(ctx context.Context, held func()) (leave func(), err error) {
	g.mu.Lock()
	now := g.now()
	if g.held == 0 && len(g.waiting) == 0 {
		g.since = now // idle until now: the ramp starts again
	}
	if len(g.waiting) == 0 && g.held < g.limitLocked(now) {
		g.held++
		g.mu.Unlock()
		return g.leaveFunc(held), nil
	}
	admitted := make(chan struct{}, 1)
	g.waiting = append(g.waiting, admitted)
	g.armLocked(now)
	g.mu.Unlock()
	select {
	case <-admitted:
		return g.leaveFunc(held), nil
	case <-ctx.Done():
		g.mu.Lock()
		if i := slices.Index(g.waiting, admitted); i >= 0 {
			g.waiting = slices.Delete(g.waiting, i, i+1)
			g.mu.Unlock()
		} else {
			// Admitted meanwhile: the slot is ours to give back.
			g.mu.Unlock()
			g.release()
		}
		return nil, ctx.Err()
	}
}

// leaveFunc gives the slot back once, when called or after dialGateHold
// (then calling held, when not nil).
func (g *dialGate) leaveFunc(held func()) func() {
	var once sync.Once
	release := func() { once.Do(g.release) }
	t := time.AfterFunc(dialGateHold, func() {
		release()
		if held != nil {
			held()
		}
	})
	return func() {
		t.Stop()
		release()
	}
}

func (g *dialGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held--
	g.admitLocked(g.now())
}

// admitLocked lets waiting attempts in, first come first served, up to the
// limit at now.
func (g *dialGate) admitLocked(now time.Time) {
	limit := g.limitLocked(now)
	for len(g.waiting) > 0 && g.held < limit {
		g.waiting[0] <- struct{}{}
		g.waiting[0] = nil
		g.waiting = g.waiting[1:]
		g.held++
	}
}

// armLocked makes sure the waiting attempts are let in as the gate grows,
// even when no slot is given back meanwhile.
func (g *dialGate) armLocked(now time.Time) {
	if g.tick != nil || g.limitLocked(now) >= g.size {
		return
	}
	g.tick = time.AfterFunc(dialGateStep, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.tick = nil
		now := g.now()
		g.admitLocked(now)
		if len(g.waiting) > 0 {
			g.armLocked(now)
		}
	})
}

var postBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// postKey and dial address of u: the port is made explicit.
func postAddr(u *url.URL) (key, addr string) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr = net.JoinHostPort(u.Hostname(), port)
	return u.Scheme + "://" + addr, addr
}

// connect returns a kept connection for u or dials a new one (through the
// guarded dialer, then TLS for https). reused tells which. A new
// connection holds a slot of the dial gate until leave is called (once it
// is being signed for) or dialGateHold has passed; held is called (when
// not nil) in the second case.
func (c *Client) connect(ctx context.Context, u *url.URL, fresh bool, held func()) (pc *postConn, reused bool, leave func(), err error) {
	key, addr := postAddr(u)
	if !fresh {
		if pc := c.pool.get(key, time.Now()); pc != nil {
			return pc, true, func() {}, nil
		}
	}
	leave, err = c.dials.enter(ctx, held)
	if err != nil {
		return nil, false, nil, err
	}
	pc, err = c.dial(ctx, u, key, addr)
	if err != nil {
		leave()
		return nil, false, nil, err
	}
	return pc, false, leave, nil
}

// dial opens a new connection to addr.
func (c *Client) dial(ctx context.Context, u *url.URL, key, addr string) (*postConn, error) {
	conn, err := c.postDialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		cfg := c.tlsConfig.Clone()
		cfg.ServerName = u.Hostname()
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, clientTLSTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	br := postReaders.Get().(*bufio.Reader)
	br.Reset(conn)
	return &postConn{conn: conn, br: br, key: key}, nil
}

// PostDigest is Post for a body whose Digest header value (BodyDigest) the
// caller computed once for all the inboxes it goes to. The request is
// signed (when sign is not nil) once the connection is open, and written
// at once.
func (c *Client) PostDigest(ctx context.Context, rawURL string, body []byte, digest string, sign *signature.Signer, opts PostOptions) (*Response, error) {
	u, err := c.checkURL(rawURL)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	fail := func(err error) (*Response, error) {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("transport: POST %s: %w", rawURL, err)
	}
	admitted := func() {}
	if opts.Admitted != nil {
		admitted = sync.OnceFunc(opts.Admitted)
	}
	defer admitted()
	pc, reused, leave, err := c.connect(ctx, u, false, admitted)
	if err != nil {
		return fail(err)
	}
	defer leave()
	req := &http.Request{Method: http.MethodPost, URL: u, Host: u.Host, Header: http.Header{}, ContentLength: int64(len(body))}
	SetPostHeaders(req.Header, c.cfg.UserAgent)
	if sign != nil {
		if err := sign.SignDigestContext(ctx, req, digest, leave); err != nil {
			pc.close()
			if ctx.Err() != nil {
				return fail(err)
			}
			return nil, err
		}
	}
	leave()
	// Not from leave, which the signing goroutine calls: whatever the
	// caller does next stays off the signatures' path.
	admitted()
	buf := postBuffers.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		postBuffers.Put(buf)
	}()
	writePostRequest(buf, req, body, opts.Last)

	deadline := time.Now().Add(timeout)
	resp, kept, err := c.exchange(ctx, pc, req, buf.Bytes(), deadline, opts.Last)
	if err != nil && reused && ctx.Err() == nil && time.Now().Before(deadline) {
		// The server may have closed the kept connection just before our
		// request: send it again once on a new connection. At worst the
		// inbox gets the activity twice; receivers deduplicate by id.
		var again func()
		pc, _, again, err = c.connect(ctx, u, true, nil)
		if err != nil {
			return fail(err)
		}
		again()
		resp, kept, err = c.exchange(ctx, pc, req, buf.Bytes(), deadline, opts.Last)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("timed out: no answer within %s (%w)", timeout, err)
	}
	if err != nil {
		return fail(err)
	}
	keep := kept && !opts.Last && !resp.Close && resp.ProtoAtLeast(1, 1)
	if keep {
		_ = pc.conn.SetDeadline(time.Time{})
		c.pool.put(pc, time.Now())
	} else {
		pc.close()
	}
	return &Response{
		Status:     resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.now()),
		Body:       resp.kept,
	}, nil
}

// postResponse is an answer with the kept start of its body.
type postResponse struct {
	*http.Response
	kept []byte
}

// exchange writes wire on pc and reads the answer, all within deadline
// (the delivery timeout, like Mastodon's 30 s for the whole request). drained
// tells whether the body was read to its end, so the connection can be
// reused. pc is closed on error. closing says the request asked the server
// to close the connection: a success is then known from its status line,
// and the rest of the answer is not read.
func (c *Client) exchange(ctx context.Context, pc *postConn, req *http.Request, wire []byte, deadline time.Time, closing bool) (postResponse, bool, error) {
	stop := context.AfterFunc(ctx, func() {
		// Shutdown: unblock the read or write at once.
		_ = pc.conn.SetDeadline(time.Unix(1, 0))
	})
	defer stop()
	if err := pc.conn.SetDeadline(deadline); err != nil {
		pc.close()
		return postResponse{}, false, err
	}
	_, werr := pc.conn.Write(wire)
	if werr != nil {
		if errors.Is(werr, os.ErrDeadlineExceeded) || ctx.Err() != nil {
			pc.close()
			return postResponse{}, false, werr
		}
		// A server may answer and close before it has read the whole
		// body (413 for an activity over its size limit): that answer
		// says more than the broken pipe, and a 4xx must not be retried
		// for two days. It is already here or not coming.
		_ = pc.conn.SetReadDeadline(time.Now().Add(postEarlyAnswerWait))
	}
	if closing && werr == nil {
		if code, ok := peekSuccess(pc.br); ok {
			// Nearly every delivery of a fan-out ends here: its headers and
			// body would only be read to be dropped with the connection.
			return postResponse{Response: &http.Response{StatusCode: code, ProtoMajor: 1, Close: true}}, false, nil
		}
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil && werr != nil {
		err = werr
	}
	for i := 0; err == nil && resp.StatusCode >= 100 && resp.StatusCode <= 199 && resp.StatusCode != http.StatusSwitchingProtocols; i++ {
		if i == postMaxInformational {
			err = fmt.Errorf("more than %d informational answers", postMaxInformational)
			break
		}
		resp, err = http.ReadResponse(pc.br, req)
	}
	if err != nil {
		pc.close()
		return postResponse{}, false, err
	}
	defer resp.Body.Close()
	var kept []byte
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Only an error's body says something worth keeping.
		kept, _ = io.ReadAll(io.LimitReader(resp.Body, clientErrorBodyKept))
	}
	// Read what is left, up to MaxBody, so the connection can be reused;
	// a larger or broken body just closes it. The answer itself is known
	// already and stands.
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, c.cfg.MaxBody))
	drained := err == nil && n < c.cfg.MaxBody && werr == nil
	if !drained {
		// The connection is closed before the body, which would otherwise
		// read the rest of itself whatever its length, and the read
		// buffer goes back to the pool only once the body is done with it.
		_ = pc.conn.Close()
		resp.Body.Close()
		pc.close()
	}
	return postResponse{Response: resp, kept: kept}, drained, nil
}

// peekSuccess reports the status of a 2xx answer from its status line,
// without consuming anything: any other answer, or a status line that has
// not arrived whole in the first read, is left to http.ReadResponse.
func peekSuccess(br *bufio.Reader) (int, bool) {
	if _, err := br.Peek(1); err != nil {
		return 0, false
	}
	b, _ := br.Peek(br.Buffered())
	line, _, found := bytes.Cut(b, []byte("\n"))
	// "HTTP/1.x 2xx", then the end of the line or a space and a reason.
	if !found || len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || !isDigit(line[7]) || line[8] != ' ' ||
		line[9] != '2' || !isDigit(line[10]) || !isDigit(line[11]) ||
		!(len(line) == 12 || string(line[12:]) == "\r" || line[12] == ' ') {
		return 0, false
	}
	return 200 + int(line[10]-'0')*10 + int(line[11]-'0'), true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// writePostRequest writes req as an HTTP/1.1 request with body into buf.
// Header values were set by us; Header.Write still turns any newline in
// them into a space, so no value can add a header line.
func writePostRequest(buf *bytes.Buffer, req *http.Request, body []byte, last bool) {
	buf.WriteString("POST ")
	buf.WriteString(req.URL.RequestURI())
	buf.WriteString(" HTTP/1.1\r\nHost: ")
	buf.WriteString(req.Host)
	buf.WriteString("\r\n")
	_ = req.Header.WriteSubset(buf, postSkipHeaders)
	fmt.Fprintf(buf, "Content-Length: %d\r\n", len(body))
	if last {
		buf.WriteString("Connection: close\r\n")
	}
	buf.WriteString("\r\n")
	buf.Write(body)
}

// postSkipHeaders are written by writePostRequest itself (the signer keeps
// Host in the header map for go-fed).
var postSkipHeaders = map[string]bool{"Host": true, "Content-Length": true, "Connection": true}

// RampUp grows linearly from start to full over the duration over, and is
// full from then on (or at once when over is not positive).
func RampUp(start, full int, elapsed, over time.Duration) int {
	if over <= 0 || start >= full {
		return full
	}
	grown := start + int(int64(full-start)*int64(elapsed)/int64(over))
	return min(max(grown, start), full)
}
