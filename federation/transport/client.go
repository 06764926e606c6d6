// Package transport owns crieur's one guarded outgoing HTTP client: the
// address guard on the address actually dialled (no loopback, private or
// reserved ranges unless allowed), timeouts and body limits, signed GETs
// of remote documents, and the delivery POST path with its own connection
// pool and dial gate. It imports signature, to sign at send time, and
// nothing else of ours.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crieur/crieur/federation/signature"
)

// Limits of the outgoing client. Each one is a bound on what a remote server
// can make crieur wait for or hold in memory.
const (
	clientDialTimeout           = 10 * time.Second
	clientTLSTimeout            = 10 * time.Second
	clientResponseHeaderTimeout = 20 * time.Second
	clientIdleConnTimeout       = 90 * time.Second
	clientDefaultTimeout        = 30 * time.Second // whole request
	clientDefaultMaxBody        = 1 << 20          // 1 MiB response bodies
	clientDefaultMaxRedirects   = 3
	// Fetches (actors, keys) reach many hosts, each now and then: keep a
	// few connections, the ones likely to serve again soon. Each idle one
	// holds two goroutines and two buffers; at 4,096 and 16 per host, a
	// burst of 10,000 Follows from 2,000 servers left the key fetches'
	// connections holding 45 MB of live heap (peak RSS 311 MiB, 145 MiB
	// at these limits). Deliveries keep theirs apart (post.go).
	clientMaxIdleConns        = 256
	clientMaxIdleConnsPerHost = 4
	// clientErrorBodyKept is how much of a response body Post keeps for
	// error messages.
	clientErrorBodyKept = 512
)

// AcceptActivity is the Accept header of ActivityPub GETs.
const AcceptActivity = `application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"`

// ErrRefused marks a request the client refused to make: a URL that is not
// http(s) with a host, or an address in a reserved range (loopback, private,
// link-local…) not in ClientConfig.AllowPrefixes. It is permanent: retrying
// cannot help.
var ErrRefused = errors.New("transport: request refused")

// ErrResponseTooLarge is returned when a response body exceeds MaxBody.
var ErrResponseTooLarge = errors.New("transport: response body too large")

// ErrTooManyRedirects is returned when a GET is redirected more than
// MaxRedirects times.
var ErrTooManyRedirects = errors.New("transport: too many redirects")

// IsRefused reports whether err comes from the client's guard (bad URL or a
// reserved address). The delivery workers treat it as permanent.
func IsRefused(err error) bool { return errors.Is(err, ErrRefused) }

// StatusError is returned by FetchActivity for a non-2xx answer.
type StatusError struct {
	URL    string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("transport: GET %s: status %d", e.URL, e.Status)
}

// HTTPStatus returns the status code carried by a *StatusError in err's
// chain, or 0.
func HTTPStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// ClientConfig configures the one guarded outgoing HTTP client.
type ClientConfig struct {
	UserAgent string
	// AllowPrefixes lets the client reach addresses that are otherwise
	// refused (loopback, private ranges): tests and local runs only.
	AllowPrefixes []netip.Prefix
	Timeout       time.Duration // whole request; default 30s
	MaxBody       int64         // response body cap; default 1 MiB
	MaxRedirects  int           // default 3
	// DialGate is how many new delivery connections may be opened ahead
	// of their signatures; 0 is dialGatePerCPU per CPU, reached over the
	// gate's start ramp. A size given here applies at once.
	DialGate int
	// Blocked, when set, says whether the admin blocked a host (and its
	// subdomains): crieur then neither fetches from it nor delivers to it,
	// whatever address it resolves to.
	Blocked func(host string) bool
	// BeforeDial, when set, is called on every delivery connection attempt
	// the address guard admitted, just before connect(2): tests hold or
	// count attempts with it.
	BeforeDial func(address string)
}

// Client is the one guarded outgoing HTTP client: every fetch and delivery
// goes through it. It is safe for concurrent use.
type Client struct {
	cfg       ClientConfig
	reserved  []netip.Prefix
	transport *http.Transport
	http      *http.Client
	now       func() time.Time
	// Deliveries (PostDigest) use the same guard and TLS settings on
	// connections of their own (see post.go), dialled by postDialer.
	dialer     *net.Dialer
	postDialer *net.Dialer
	tlsConfig  *tls.Config
	pool       connPool
	dials      *dialGate
}

// NewClient builds the client. Zero fields of cfg get the defaults.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = clientDefaultTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = clientDefaultMaxBody
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = clientDefaultMaxRedirects
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "crieur"
	}
	c := &Client{cfg: cfg, reserved: reservedPrefixes(), now: time.Now}
	dialer := &net.Dialer{
		Timeout:   clientDialTimeout,
		KeepAlive: 30 * time.Second,
		// Control runs after DNS resolution and before connect(2): the
		// address checked is the one dialled, so DNS rebinding cannot
		// slip a private address past the guard, and a refused address
		// never sees a packet.
		Control: c.control,
	}
	c.dialer = dialer
	// A delivery connection carries one request, or a few within
	// seconds, and idles at most postIdleTimeout in the pool, where a
	// connection the server dropped is retried once anyway: TCP
	// keep-alive probes would never find anything. Off, they cost no
	// setsockopt calls: four of a dozen system calls per connection.
	postDialer := *dialer
	postDialer.KeepAlive = -1
	if hook := cfg.BeforeDial; hook != nil {
		postDialer.Control = func(network, address string, rc syscall.RawConn) error {
			if err := c.control(network, address, rc); err != nil {
				return err
			}
			hook(address)
			return nil
		}
	}
	c.postDialer = &postDialer
	c.dials = newDialGate(runtime.GOMAXPROCS(0))
	if cfg.DialGate > 0 {
		c.dials = &dialGate{start: cfg.DialGate, size: cfg.DialGate, now: time.Now}
	}
	c.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	c.transport = &http.Transport{
		// No proxy from the environment: the guard must see the real
		// destination.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   clientTLSTimeout,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ResponseHeaderTimeout: clientResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       clientIdleConnTimeout,
		MaxIdleConns:          clientMaxIdleConns,
		MaxIdleConnsPerHost:   clientMaxIdleConnsPerHost,
	}
	c.http = &http.Client{
		Transport: c.transport,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c
}

// Config returns the configuration with defaults filled in.
func (c *Client) Config() ClientConfig { return c.cfg }

// CloseIdleConnections closes kept-alive connections (shutdown, tests).
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
	c.pool.closeAll()
}

// reservedPrefixes are the ranges no fetch may reach unless allowed: they
// are this machine, its networks, or not routable on the internet.
func reservedPrefixes() []netip.Prefix {
	list := []string{
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // RFC 1918
		"100.64.0.0/10",   // CGNAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local (cloud metadata lives here)
		"172.16.0.0/12",   // RFC 1918
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // RFC 1918
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, includes broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard
		"2001::/23",       // IETF protocol assignments (Teredo…)
		"2001:db8::/32",   // documentation
		"fc00::/7",        // unique local
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	}
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// nat64WellKnown embeds an IPv4 address in its low 32 bits.
var nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")

// checkAddr refuses reserved addresses that are not explicitly allowed.
func (c *Client) checkAddr(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	for _, p := range c.cfg.AllowPrefixes {
		if p.Contains(ip) {
			return nil
		}
	}
	check := ip
	if nat64WellKnown.Contains(ip) {
		b := ip.As16()
		check = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if !check.IsValid() || check.IsUnspecified() || check.IsLoopback() || check.IsPrivate() ||
		check.IsLinkLocalUnicast() || check.IsLinkLocalMulticast() || check.IsMulticast() ||
		check.IsInterfaceLocalMulticast() {
		return fmt.Errorf("%w: reserved address %s", ErrRefused, ip)
	}
	for _, p := range c.reserved {
		if p.Contains(check) {
			return fmt.Errorf("%w: reserved address %s", ErrRefused, ip)
		}
	}
	return nil
}

// control is the dialer hook: address is the resolved ip:port.
func (c *Client) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrRefused, address)
	}
	return c.checkAddr(ap.Addr())
}

// checkURL accepts only absolute http(s) URLs with a host, and refuses IP
// literals in reserved ranges before anything is dialled.
func (c *Client) checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: bad URL: %v", ErrRefused, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme %q in %s", ErrRefused, u.Scheme, raw)
	}
	if u.Hostname() == "" || u.User != nil {
		return nil, fmt.Errorf("%w: URL without host or with credentials: %s", ErrRefused, raw)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		if err := c.checkAddr(ip); err != nil {
			return nil, err
		}
	}
	if c.cfg.Blocked != nil && c.cfg.Blocked(u.Hostname()) {
		return nil, fmt.Errorf("%w: %s is blocked by the admin", ErrRefused, u.Hostname())
	}
	return u, nil
}

// Response is what Post learnt from the remote inbox.
type Response struct {
	Status int
	// RetryAfter is the wait asked for by Retry-After (seconds or an HTTP
	// date), zero when absent or unparsable.
	RetryAfter time.Duration
	// Body holds the first bytes of a non-2xx response, for error
	// messages (nil for a 2xx: nobody reads it).
	Body []byte
}

// Post delivers body to an inbox, signed now (a retry calls Post again and
// gets a fresh Date). Any HTTP answer is a *Response with a nil error, the
// status is for the caller to judge; errors are transport failures or
// refusals (IsRefused). Redirects are not followed: a signature covers the
// request target, and a redirected POST would carry a stale one.
func (c *Client) Post(ctx context.Context, rawURL string, body []byte, sign *signature.Signer) (*Response, error) {
	if body == nil {
		body = []byte{}
	}
	return c.PostDigest(ctx, rawURL, body, signature.BodyDigest(body), sign, PostOptions{})
}

// SetPostHeaders sets the headers of a delivery other than the signed
// ones. The benchmark's signing rate builds its requests with it too.
func SetPostHeaders(h http.Header, userAgent string) {
	h.Set("Content-Type", "application/activity+json")
	h.Set("Accept", AcceptActivity)
	h.Set("User-Agent", userAgent)
}

// drain reads what is left of a body, up to MaxBody, so the connection can
// be reused; a larger body just closes the connection.
func (c *Client) drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, c.cfg.MaxBody))
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
