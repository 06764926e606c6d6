package main

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-fed/httpsig"
)

// Verification limits, Mastodon's where Mastodon has one.
const (
	// sigMaxAge: Mastodon refuses a signed Date older than 12 hours
	// (EXPIRATION_WINDOW_LIMIT).
	sigMaxAge = 12 * time.Hour
	// sigMaxFuture: and one more than an hour ahead (CLOCK_SKEW_MARGIN).
	sigMaxFuture = time.Hour
	// maxSignatureHeader bounds what the parameter parser reads.
	maxSignatureHeader = 8 << 10
	// maxActorBody caps the fetched actor document.
	maxActorBody = 1 << 20
	// keyFetchTimeout bounds the one GET of crieur's actor.
	keyFetchTimeout = 10 * time.Second
)

// requiredSigned are the headers every delivery must sign, as Mastodon
// requires for a POST with a body.
var requiredSigned = []string{httpsig.RequestTarget, "host", "date", "digest"}

var errVerify = errors.New("fanout: verify")

// parseSignatureParams reads a draft-cavage Signature header:
// comma-separated name="value" pairs. Names are case-insensitive; a
// repeated name, an unquoted value or trailing junk is an error.
func parseSignatureParams(h string) (map[string]string, error) {
	if len(h) > maxSignatureHeader {
		return nil, fmt.Errorf("%w: signature header longer than %d bytes", errVerify, maxSignatureHeader)
	}
	out := map[string]string{}
	i := 0
	for {
		for i < len(h) && (h[i] == ' ' || h[i] == '\t' || h[i] == ',') {
			i++
		}
		if i == len(h) {
			break
		}
		eq := strings.IndexByte(h[i:], '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: signature parameter without a value at byte %d", errVerify, i)
		}
		name := strings.ToLower(strings.TrimSpace(h[i : i+eq]))
		if name == "" || strings.ContainsAny(name, " \t,\"") {
			return nil, fmt.Errorf("%w: bad signature parameter name %q", errVerify, name)
		}
		i += eq + 1
		if i >= len(h) || h[i] != '"' {
			return nil, fmt.Errorf("%w: signature parameter %q is not quoted", errVerify, name)
		}
		end := strings.IndexByte(h[i+1:], '"')
		if end < 0 {
			return nil, fmt.Errorf("%w: signature parameter %q: unterminated quote", errVerify, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: signature parameter %q twice", errVerify, name)
		}
		out[name] = h[i+1 : i+1+end]
		i += end + 2
		if i < len(h) && h[i] != ',' && h[i] != ' ' && h[i] != '\t' {
			return nil, fmt.Errorf("%w: junk after signature parameter %q", errVerify, name)
		}
	}
	for _, k := range []string{"keyid", "signature"} {
		if out[k] == "" {
			return nil, fmt.Errorf("%w: signature without %s", errVerify, k)
		}
	}
	return out, nil
}

// publicKey is crieur's key as learnt from its actor document.
type publicKey struct {
	pub   *rsa.PublicKey
	owner string
}

// keyCache fetches each keyId once (an unsigned GET of the keyId URL
// without its fragment, as Mastodon does for an unknown key) and shares
// the result among every inbox server of the run: 2,000 separate fetches
// would load crieur with work that is not the fan-out.
type keyCache struct {
	client *http.Client
	// allowed is crieur's base URL: keys are fetched only from there.
	allowed string
	fetches atomic.Int64
	// slowestNs is the longest key fetch, in nanoseconds: how long a
	// remote server waits for crieur's key while a fan-out runs.
	slowestNs atomic.Int64

	mu      sync.Mutex
	entries map[string]*keyEntry
}

type keyEntry struct {
	ready chan struct{} // closed once key or err is set
	key   publicKey
	err   error
}

func newKeyCache(allowed string) *keyCache {
	return &keyCache{
		client:  &http.Client{Timeout: keyFetchTimeout},
		allowed: allowed,
		entries: map[string]*keyEntry{},
	}
}

// get returns the key for keyID, fetching it the first time. Concurrent
// callers wait for the one fetch. A failed fetch is forgotten so that the
// next delivery tries again.
func (c *keyCache) get(ctx context.Context, keyID string) (publicKey, error) {
	c.mu.Lock()
	e, ok := c.entries[keyID]
	if !ok {
		e = &keyEntry{ready: make(chan struct{})}
		c.entries[keyID] = e
	}
	c.mu.Unlock()
	if !ok {
		e.key, e.err = c.fetch(ctx, keyID)
		if e.err != nil {
			c.mu.Lock()
			delete(c.entries, keyID)
			c.mu.Unlock()
		}
		close(e.ready)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return publicKey{}, fmt.Errorf("%w: waiting for key %s: %v", errVerify, keyID, ctx.Err())
	}
	return e.key, e.err
}

func (c *keyCache) fetch(ctx context.Context, keyID string) (publicKey, error) {
	c.fetches.Add(1)
	u, err := url.Parse(keyID)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return publicKey{}, fmt.Errorf("%w: keyId %q is not an http(s) URL", errVerify, keyID)
	}
	u.Fragment = ""
	actorURL := u.String()
	if !strings.HasPrefix(actorURL, c.allowed+"/") {
		return publicKey{}, fmt.Errorf("%w: keyId %q is not under crieur's base %s", errVerify, keyID, c.allowed)
	}
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, actorURL, nil)
	if err != nil {
		return publicKey{}, fmt.Errorf("%w: key request: %v", errVerify, err)
	}
	req.Header.Set("Accept", "application/activity+json")
	start := time.Now()
	defer func() {
		d := int64(time.Since(start))
		for {
			old := c.slowestNs.Load()
			if d <= old || c.slowestNs.CompareAndSwap(old, d) {
				return
			}
		}
	}()
	resp, err := c.client.Do(req)
	if err != nil {
		return publicKey{}, fmt.Errorf("%w: fetch key %s: %v", errVerify, actorURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxActorBody))
	if err != nil {
		return publicKey{}, fmt.Errorf("%w: read key %s: %v", errVerify, actorURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return publicKey{}, fmt.Errorf("%w: fetch key %s: status %d", errVerify, actorURL, resp.StatusCode)
	}
	return parseActorKey(body, keyID)
}

// parseActorKey takes the RSA key whose id is keyID out of an actor
// document, and checks that the document owns it.
func parseActorKey(body []byte, keyID string) (publicKey, error) {
	var doc struct {
		ID        string `json:"id"`
		PublicKey struct {
			ID           string `json:"id"`
			Owner        string `json:"owner"`
			PublicKeyPem string `json:"publicKeyPem"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return publicKey{}, fmt.Errorf("%w: actor document: %v", errVerify, err)
	}
	pk := doc.PublicKey
	if pk.ID != keyID {
		return publicKey{}, fmt.Errorf("%w: actor's publicKey.id %q is not the keyId %q", errVerify, pk.ID, keyID)
	}
	if pk.Owner == "" || pk.Owner != doc.ID {
		return publicKey{}, fmt.Errorf("%w: key owner %q is not the actor %q", errVerify, pk.Owner, doc.ID)
	}
	block, _ := pem.Decode([]byte(pk.PublicKeyPem))
	if block == nil {
		return publicKey{}, fmt.Errorf("%w: publicKeyPem is not PEM", errVerify)
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		err = fmt.Errorf("PEM block %q", block.Type)
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("%w: public key: %v", errVerify, err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return publicKey{}, fmt.Errorf("%w: public key is %T, not RSA", errVerify, pub)
	}
	return publicKey{pub: rsaPub, owner: doc.ID}, nil
}

// verifyDelivery checks one POST the way Mastodon does before it accepts
// an activity: one Signature header whose signed headers include
// (request-target), host, date and digest; a fresh Date; a Digest that is
// the SHA-256 of the body; and the signature itself, verified by go-fed's
// httpsig with the sender's key. It returns the key's owner and how old
// the signed Date was.
func verifyDelivery(ctx context.Context, r *http.Request, body []byte, keys *keyCache, now time.Time) (string, time.Duration, error) {
	values := r.Header.Values("Signature")
	if len(values) != 1 {
		return "", 0, fmt.Errorf("%w: %d Signature headers", errVerify, len(values))
	}
	params, err := parseSignatureParams(values[0])
	if err != nil {
		return "", 0, err
	}
	if alg := strings.ToLower(params["algorithm"]); alg != "" && alg != "rsa-sha256" && alg != "hs2019" {
		return "", 0, fmt.Errorf("%w: algorithm %q", errVerify, alg)
	}
	signed := strings.Fields(strings.ToLower(params["headers"]))
	for _, h := range requiredSigned {
		if !slices.Contains(signed, h) {
			return "", 0, fmt.Errorf("%w: %q not signed (signed: %q)", errVerify, h, params["headers"])
		}
	}
	date, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil {
		return "", 0, fmt.Errorf("%w: Date %q", errVerify, r.Header.Get("Date"))
	}
	age := now.Sub(date)
	if age > sigMaxAge || -age > sigMaxFuture {
		return "", age, fmt.Errorf("%w: Date %s outside the window (age %s)", errVerify, r.Header.Get("Date"), age)
	}
	if err := checkDigest(r.Header.Values("Digest"), body); err != nil {
		return "", age, err
	}
	v, err := httpsig.NewVerifier(r)
	if err != nil {
		return "", age, fmt.Errorf("%w: httpsig: %v", errVerify, err)
	}
	if v.KeyId() != params["keyid"] {
		return "", age, fmt.Errorf("%w: keyId mismatch", errVerify)
	}
	key, err := keys.get(ctx, v.KeyId())
	if err != nil {
		return "", age, err
	}
	if err := v.Verify(key.pub, httpsig.RSA_SHA256); err != nil {
		return "", age, fmt.Errorf("%w: signature by %s: %v", errVerify, v.KeyId(), err)
	}
	return key.owner, age, nil
}

// checkDigest finds the SHA-256 entry among the Digest header's values
// and compares it with the body. httpsig only checks that the header was
// signed, not that it matches the body.
func checkDigest(values []string, body []byte) error {
	sum := sha256.Sum256(body)
	want := base64.StdEncoding.EncodeToString(sum[:])
	found := false
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			alg, val, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || !strings.EqualFold(alg, "SHA-256") {
				continue
			}
			found = true
			if subtle.ConstantTimeCompare([]byte(val), []byte(want)) == 1 {
				return nil
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: no SHA-256 Digest", errVerify)
	}
	return fmt.Errorf("%w: Digest does not match the body", errVerify)
}
