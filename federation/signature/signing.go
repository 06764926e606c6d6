// Package signature owns the bot's key and HTTP signatures both ways: the
// key file (made once, never replaced silently), the Signer that signs
// every outgoing request at send time (draft-cavage, rsa-sha256) with
// OpenSSL's libcrypto when it loads and Go's crypto/rsa otherwise, and the
// checks of incoming signatures that need no network (CheckRequest,
// VerifyCavage, VerifyRFC9421, VerifyKnown), verified through keys a
// Verifier prepared, with the same engine choice. Finding a remote key is
// the inbox's job. It imports only the federation sentinel errors.
package signature

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-fed/httpsig"

	"github.com/crieur/crieur/federation"
)

// Signer signs outgoing requests with the bot's key (draft-cavage,
// rsa-sha256). It is safe for concurrent use: every call builds its own
// go-fed signer, because go-fed signers are not safe for concurrent use and a
// shared mutex would serialise the delivery workers' RSA operations.
type Signer struct {
	keyID string
	rsa   *rsaKey
	sig   httpsigSigner // rsa, as go-fed takes it
	now   func() time.Time
	// pool makes the RSA operations, one CPU at a time each (see
	// signPool for why).
	pool *signPool
	// made counts the request signatures made (Signed).
	made atomic.Uint64
}

// NewSigner returns a Signer for keyID (BASE/@handle#main-key) and key,
// signing with OpenSSL when it is available (RSAAuto). now may be nil
// (time.Now).
func NewSigner(keyID string, key *rsa.PrivateKey, now func() time.Time) (*Signer, error) {
	return NewSignerEngine(keyID, key, now, RSAAuto)
}

// NewSignerEngine is NewSigner with the RSA engine chosen.
func NewSignerEngine(keyID string, key *rsa.PrivateKey, now func() time.Time, engine RSAEngine) (*Signer, error) {
	if keyID == "" {
		return nil, errors.New("signature: new signer: empty key id")
	}
	if key == nil {
		return nil, errors.New("signature: new signer: nil key")
	}
	if now == nil {
		now = time.Now
	}
	k, err := newRSAKey(key, engine)
	if err != nil {
		return nil, fmt.Errorf("signature: new signer: %w", err)
	}
	sig, err := newHTTPSigSigner(k)
	if err != nil {
		return nil, fmt.Errorf("signature: new signer: %w", err)
	}
	return &Signer{keyID: keyID, rsa: k, sig: sig, now: now, pool: newSignPool(runtime.GOMAXPROCS(0))}, nil
}

// Engine names what makes the signatures ("OpenSSL 3.0.19 27 Jan 2026",
// "Go crypto/rsa"), and when OpenSSL was wanted but not used, why.
func (s *Signer) Engine() (engine, fallback string) { return s.rsa.Engine(), s.rsa.fallback }

// Signed is how many request signatures the Signer has made (for the
// metrics).
func (s *Signer) Signed() uint64 { return s.made.Load() }

// KeyID is the key id written into signatures.
func (s *Signer) KeyID() string { return s.keyID }

// Headers signed on outgoing requests (INTEROP: POST signs digest too).
var (
	postSignedHeaders = []string{httpsig.RequestTarget, "host", "date", "digest"}
	getSignedHeaders  = []string{httpsig.RequestTarget, "host", "date"}
)

// SignRequest sets Host, a fresh Date and (for a body) Digest, and signs the
// request. Call it once per attempt, just before sending: a retried request
// must carry a fresh Date. body must be the exact bytes that will be sent;
// nil means no body (GET).
func (s *Signer) SignRequest(req *http.Request, body []byte) error {
	if body == nil {
		return s.sign(context.Background(), req, "", nil)
	}
	return s.sign(context.Background(), req, BodyDigest(body), nil)
}

// SignRequestDigest is SignRequest for a body whose Digest header value
// (BodyDigest) was computed beforehand: a fan-out posts the same bytes to
// every inbox, so hashing them once is enough. Date and signature are
// still made fresh on every call.
func (s *Signer) SignRequestDigest(req *http.Request, digest string) error {
	return s.SignDigestContext(context.Background(), req, digest, nil)
}

// SignDigestContext is SignRequestDigest calling started, when not nil, once a
// signing goroutine has taken the signature and is about to make it. It
// gives up waiting for one when ctx ends: at shutdown, thousands of queued
// deliveries must not each make a signature nobody will send.
func (s *Signer) SignDigestContext(ctx context.Context, req *http.Request, digest string, started func()) error {
	if digest == "" {
		return errors.New("signature: sign request: empty digest")
	}
	return s.sign(ctx, req, digest, started)
}

// BodyDigest is the Digest header value of body: "SHA-256=" and the
// base64 of its SHA-256, as go-fed writes it.
func BodyDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
}

// sign signs req; digest is empty for a request without body. started,
// when not nil, is called once the signature is about to be made. It
// gives up waiting for a signing goroutine when ctx ends.
func (s *Signer) sign(ctx context.Context, req *http.Request, digest string, started func()) error {
	if req.URL == nil || req.URL.Host == "" {
		return errors.New("signature: sign request: no host in URL")
	}
	// Go keeps the host in req.Host; go-fed reads the header map.
	req.Header.Set("Host", req.URL.Host)
	req.Host = req.URL.Host
	req.Header.Set("Date", s.now().UTC().Format(http.TimeFormat))
	// A retried request may still carry the last attempt's headers.
	req.Header.Del("Signature")
	req.Header.Del("Digest")
	headers := getSignedHeaders
	if digest != "" {
		headers = postSignedHeaders
		// Set here rather than by go-fed, which would hash the body
		// again for every inbox; the value is the same.
		req.Header.Set("Digest", digest)
	}
	signer, _, err := httpsig.NewSSHSigner(s.sig, httpsig.DigestSha256, headers, httpsig.Signature, 0)
	if err != nil {
		return fmt.Errorf("signature: sign request: %w", err)
	}
	// No body for go-fed: the Digest header above is what it signs.
	err = s.pool.do(ctx, func() error { return signer.SignRequest(s.keyID, req, nil) }, started)
	if err != nil {
		return fmt.Errorf("signature: sign request: %w", err)
	}
	s.made.Add(1)
	return nil
}

// Limits and windows of incoming signatures.
const (
	// sigHeaderMax bounds the Signature header we parse; real ones are
	// well under 1 KiB.
	sigHeaderMax = 8 << 10
	// A Date older than MaxAge or further than MaxFuture ahead is
	// refused. These are Mastodon's numbers (signed_request.rb): a
	// signature "expires" 5 minutes after its Date and 1 hour of clock
	// skew is allowed either way, so it accepts Dates from 65 minutes ago
	// to 60 minutes ahead. A stricter window would refuse what Mastodon
	// accepts from the same senders (delayed retries from queues).
	MaxAge    = 65 * time.Minute
	MaxFuture = 60 * time.Minute
)

// Params is a parsed draft-cavage Signature header.
type Params struct {
	KeyID     string
	Signed    time.Time // the signed Date (set by CheckHeaders)
	Algorithm string    // lower case; "hs2019" when absent
	Headers   []string  // lower case
	Signature string
	// Created and Expires are the created and expires parameters, 0 when
	// absent (go-fed reads them so: created=0 is no created).
	Created, Expires int64
}

// ParseHeader parses `keyId="…",algorithm="…",headers="…",signature="…"`.
// It reads the header the way go-fed does (split on commas, no spaces
// between parameters, header names separated by single spaces) but is
// stricter: a value may not hold a quote or backslash, a parameter may not
// appear twice, created/expires must be integers. So whenever it accepts a
// header, go-fed reads the same keyId, headers and signature from it.
func ParseHeader(v string) (Params, error) {
	var p Params
	if len(v) > sigHeaderMax {
		return p, fmt.Errorf("signature header longer than %d bytes", sigHeaderMax)
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return p, fmt.Errorf("malformed parameter %q", part)
		}
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		if strings.ContainsAny(val, "\"\\") {
			return p, fmt.Errorf("parameter %q: quote or backslash in value", k)
		}
		if seen[k] {
			return p, fmt.Errorf("parameter %q given twice", k)
		}
		seen[k] = true
		switch k {
		case "keyId":
			p.KeyID = val
		case "algorithm":
			p.Algorithm = strings.ToLower(val)
		case "headers":
			p.Headers = strings.Split(strings.ToLower(val), " ")
			if slices.Contains(p.Headers, "") {
				return p, errors.New("empty name in headers")
			}
		case "signature":
			p.Signature = val
		case "created", "expires":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return p, fmt.Errorf("parameter %q: not an integer", k)
			}
			if k == "created" {
				p.Created = n
			} else {
				p.Expires = n
			}
		}
	}
	if p.KeyID == "" {
		return p, errors.New("missing keyId")
	}
	if p.Signature == "" {
		return p, errors.New("missing signature")
	}
	if p.Algorithm == "" {
		p.Algorithm = "hs2019" // the draft's default, Mastodon's too
	}
	if len(p.Headers) == 0 {
		p.Headers = []string{"date"} // the draft's default
	}
	return p, nil
}

// CheckHeaders makes every check of an incoming draft-cavage signature that
// needs neither the body nor a key, cheapest first: one Signature header,
// its parameters and algorithm (rsa-sha256 or hs2019), the signed headers
// ((request-target), host, date, and digest for POST), the Date window,
// and created/expires when given (with go-fed's 10 s of skew, which
// crieur verified with before). It returns the parsed header with the
// Date in Signed, for VerifyCavage. The inbox runs it before reading a
// body. Errors wrap federation.ErrUnauthorized.
func CheckHeaders(r *http.Request, now time.Time) (Params, error) {
	values := r.Header.Values("Signature")
	if len(values) == 0 {
		return Params{}, fmt.Errorf("%w: no Signature header", federation.ErrUnauthorized)
	}
	if len(values) > 1 {
		return Params{}, fmt.Errorf("%w: several Signature headers", federation.ErrUnauthorized)
	}
	p, err := ParseHeader(values[0])
	if err != nil {
		return Params{}, fmt.Errorf("%w: signature header: %v", federation.ErrUnauthorized, err)
	}
	if p.Algorithm != "rsa-sha256" && p.Algorithm != "hs2019" {
		return Params{}, fmt.Errorf("%w: unsupported signature algorithm %q", federation.ErrUnauthorized, p.Algorithm)
	}
	required := []string{httpsig.RequestTarget, "host", "date"}
	if r.Method == http.MethodPost {
		required = append(required, "digest")
	}
	for _, h := range required {
		if !slices.Contains(p.Headers, h) {
			return Params{}, fmt.Errorf("%w: header %q not signed", federation.ErrUnauthorized, h)
		}
	}

	date, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil {
		return Params{}, fmt.Errorf("%w: bad Date header", federation.ErrUnauthorized)
	}
	if now.Sub(date) > MaxAge || date.Sub(now) > MaxFuture {
		return Params{}, fmt.Errorf("%w: Date %s outside the accepted window", federation.ErrUnauthorized, date.UTC().Format(time.RFC3339))
	}
	if p.Created != 0 && p.Created-now.Unix() > cavageSkew {
		return Params{}, fmt.Errorf("%w: created is in the future", federation.ErrUnauthorized)
	}
	if p.Expires != 0 && now.Unix()-p.Expires > cavageSkew {
		return Params{}, fmt.Errorf("%w: signature expired", federation.ErrUnauthorized)
	}
	p.Signed = date
	return p, nil
}

// cavageSkew is the clock skew, in seconds, go-fed's verifier allowed on
// created and expires.
const cavageSkew = 10

// CheckRequest is CheckHeaders and then the Digest against body (Digest
// is signed, so it binds the body to the signature): every check that
// needs no key. Errors wrap federation.ErrUnauthorized, or
// federation.ErrBadRequest for a POST without Digest.
func CheckRequest(r *http.Request, body []byte, now time.Time) (Params, error) {
	p, err := CheckHeaders(r, now)
	if err != nil {
		return Params{}, err
	}
	if err := checkDigest(r, body); err != nil {
		return Params{}, err
	}
	return p, nil
}

// VerifyKnown checks a request that must be signed by one known key: all
// of CheckRequest, then the keyId and the signature, with Go's crypto/rsa.
// Peers that receive crieur's deliveries in the benchmark and the tests
// verify with it.
func VerifyKnown(r *http.Request, body []byte, keyID string, pub *rsa.PublicKey, now time.Time) error {
	p, err := CheckRequest(r, body, now)
	if err != nil {
		return err
	}
	if p.KeyID != keyID {
		return fmt.Errorf("%w: key id %q, want %q", federation.ErrUnauthorized, p.KeyID, keyID)
	}
	key, err := goPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: key %s: %v", federation.ErrUnauthorized, keyID, err)
	}
	if err := VerifyCavage(r, p, key); err != nil {
		return fmt.Errorf("%w: signature by %s does not verify: %v", federation.ErrUnauthorized, keyID, err)
	}
	return nil
}

// checkDigest compares the SHA-256 Digest header with the body. A request
// with a body must carry one; a GET without body may not.
func checkDigest(r *http.Request, body []byte) error {
	values := r.Header.Values("Digest")
	if len(values) == 0 {
		if r.Method == http.MethodPost || len(body) > 0 {
			return fmt.Errorf("%w: no Digest header", federation.ErrBadRequest)
		}
		return nil
	}
	var given []byte
	for _, part := range strings.Split(strings.Join(values, ","), ",") {
		alg, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(alg, "SHA-256") {
			continue
		}
		d, err := base64.StdEncoding.Strict().DecodeString(val)
		if err != nil || len(d) != sha256.Size {
			return fmt.Errorf("%w: malformed SHA-256 digest", federation.ErrUnauthorized)
		}
		given = d
	}
	if given == nil {
		return fmt.Errorf("%w: no SHA-256 digest", federation.ErrUnauthorized)
	}
	sum := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum[:], given) != 1 {
		return fmt.Errorf("%w: digest does not match the body", federation.ErrUnauthorized)
	}
	return nil
}

// SignHash makes the raw RSASSA-PKCS1-v1_5 signature of a SHA-256 hash with
// the signer's engine, outside the sign pool: the benchmark measures the
// engine's rate with it.
func (s *Signer) SignHash(digest []byte) ([]byte, error) { return s.rsa.signSHA256(digest) }
