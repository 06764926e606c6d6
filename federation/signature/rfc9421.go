// RFC 9421 HTTP Message Signatures on
// requests that reach the inbox. crieur keeps sending draft-cavage
// signatures, which every server accepts; this file only reads the
// RFC 9421 ones, which WordPress's ActivityPub plugin sends first and
// Fedify can send, and which current Mastodon accepts.
//
// It depends on the standard library and on github.com/dunglas/httpsfv for
// RFC 8941/9651 structured fields. That library was chosen because the
// fiddly part of RFC 9421 is the structured-field grammar (dictionaries,
// inner lists, parameters, strings with escapes, byte sequences, decimals)
// and httpsfv implements all of it, passes the HTTP WG's structured-field
// test suite, is fuzzed upstream, keeps member and parameter order (the
// signature base depends on it) and has no dependencies. The complete
// RFC 9421 libraries in Go (yaronf/httpsign, remitly-oss/httpsig-go,
// common-fate/httpsig) are not served by the module proxy this project
// builds from, so the signature base (RFC 9421 §2), the fediverse's
// coverage rules and the two RSA algorithms are written here; they are
// short and checked against the RFC's own test vectors.
//
// What is verified, in this order, cheapest first, before any key is
// fetched:
//
//   - Signature-Input and Signature parse as dictionaries, no label twice;
//   - one signature is chosen: Options.Label when set, else the first
//     label whose parameters and coverage are acceptable (see
//     VerifyRFC9421 for why one and only one is tried);
//   - its parameters: keyid (String) and created (Integer) are required,
//     expires (Integer) is optional, alg (String) when present is
//     rsa-v1_5-sha256 or rsa-pss-sha512, and when absent rsa-v1_5-sha256;
//   - created is not more than MaxAge old nor MaxFuture ahead, and the
//     signature has not expired (expires + MaxFuture);
//   - the covered components include @method, the target (@target-uri,
//     or @authority with @path or @request-target) and, for a request
//     with content (POST, PUT, PATCH, or any body), content-digest;
//   - Content-Digest (RFC 9530) matches the raw body for every sha-256 and
//     sha-512 member it has, and has at least one of them;
//   - the signature base can be built (every covered field present);
//   - then the key is looked up and the signature checked, with one
//     refetch of the key when the first one fails (key rotation).
//
// Where the rules come from. Mastodon (app/lib/signed_request.rb,
// HttpMessageSignature) requires keyid and created, @method and
// @target-uri, and content-digest on a POST, checks a sha-256
// Content-Digest, and verifies an RSA key as rsa-v1_5-sha256 whatever alg
// says (app/models/keypair.rb, linzer_public_key). WordPress's plugin
// (includes/signature/class-http-message-signature.php) signs @method
// @target-uri @authority content-digest with created, keyid and
// alg="rsa-v1_5-sha256" under the label "wp", takes a sha-256 or sha-512
// Content-Digest, and without alg picks PKCS#1 v1.5 with SHA-256 for RSA
// keys under 3072 bits. Fedify (packages/fedify/src/sig/http.ts) requires
// keyid and created, checks Content-Digest when covered, and without alg
// takes rsa-v1_5-sha256 for an RSA key. crieur requires the union of the
// coverage rules and takes Mastodon's time window, the one its
// draft-cavage check uses.

package signature

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// Algorithms this package verifies, by their RFC 9421 §6.2.2 names.
const (
	AlgRSAv15SHA256 = "rsa-v1_5-sha256"
	AlgRSAPSSSHA512 = "rsa-pss-sha512"
)

// The time window of a signature: the same as draft-cavage's (MaxAge,
// MaxFuture), which are Mastodon's.
const (
	DefaultMaxAge    = MaxAge
	DefaultMaxFuture = MaxFuture
)

// Bounds on what is parsed, so that a hostile request costs little.
const (
	maxFieldLen   = 8 << 10 // Signature-Input, Signature, Content-Digest each
	maxSignatures = 8       // labels in one Signature-Input
	maxComponents = 32      // covered components in one signature
)

// Causes of a refusal. Every error VerifyRFC9421 returns wraps one of
// these (errors.Is), ErrKey also wraps the lookup's own error.
var (
	// ErrNoSignature: the request carries no Signature-Input, or none
	// under the label asked for.
	ErrNoSignature = errors.New("rfc9421: no signature")
	// ErrMalformed: a header or a parameter does not parse, a label
	// appears twice, a covered component is unknown, repeated or absent
	// from the request.
	ErrMalformed = errors.New("rfc9421: malformed signature")
	// ErrNotCovered: a component or parameter crieur requires is not
	// part of the signature (@method, the target, content-digest,
	// created).
	ErrNotCovered = errors.New("rfc9421: required component not covered")
	// ErrExpired: created is older than MaxAge, or expires has passed.
	ErrExpired = errors.New("rfc9421: signature expired")
	// ErrFuture: created is further than MaxFuture ahead.
	ErrFuture = errors.New("rfc9421: signature created in the future")
	// ErrDigest: Content-Digest is missing, malformed, has no sha-256 or
	// sha-512 member, or does not match the body.
	ErrDigest = errors.New("rfc9421: content digest mismatch")
	// ErrAlgorithm: alg names an algorithm this package does not verify.
	ErrAlgorithm = errors.New("rfc9421: unsupported algorithm")
	// ErrKey: the key lookup failed or returned no key.
	ErrKey = errors.New("rfc9421: key lookup failed")
	// ErrBadSignature: the signature does not verify with the key.
	ErrBadSignature = errors.New("rfc9421: bad signature")
)

// KeyLookup returns the RSA public key named by keyID, prepared by a
// Verifier: draft-cavage and RFC 9421 verify through the same keys.
type KeyLookup func(ctx context.Context, keyID string) (*PublicKey, error)

// Options are the verifier's settings. Key is required.
type Options struct {
	// Key looks up the key named by the signature's keyid; it is called
	// once, after every cheaper check passed.
	Key KeyLookup
	// Refetch, when set, is called once when the signature does not
	// verify with the key Key returned, to bypass a cache after a key
	// rotation (crieur's draft-cavage check does the same).
	Refetch KeyLookup
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// MaxAge is how old created may be; DefaultMaxAge when zero.
	MaxAge time.Duration
	// MaxFuture is how far ahead created may be, and how long after
	// expires a signature is still taken (clock skew); DefaultMaxFuture
	// when zero.
	MaxFuture time.Duration
	// BaseURL is the scheme and authority the server is reached at
	// (crieur's base_url, "https://blog.example"). @target-uri,
	// @authority and @scheme are derived from it when set. When empty
	// they come from the request: r.Host, and https only when r.TLS is
	// set, which is wrong behind a TLS-terminating proxy. Forwarding
	// headers are never trusted.
	BaseURL string
	// Label, when set, is the only signature looked at.
	Label string
}

// Result describes the signature that verified.
type Result struct {
	KeyID     string    // keyid: apply the same key-owner rules as draft-cavage
	Label     string    // the signature's label in Signature-Input
	Alg       string    // the algorithm it verified with
	Created   time.Time // created
	Expires   time.Time // expires, zero when absent
	Nonce     string    // nonce, "" when absent
	Tag       string    // tag, "" when absent
	Signature []byte    // the signature bytes, a key for a replay cache
}

// HasRFC9421 reports whether r carries an RFC 9421 signature, as Mastodon
// decides it: a Signature-Input header is present. Both standards name
// their header Signature, so this is how the inbox picks a verifier.
func HasRFC9421(r *http.Request) bool {
	return len(r.Header.Values("Signature-Input")) > 0
}

// VerifyRFC9421 verifies the RFC 9421 signature of r, whose raw body is
// body, and returns what verified. See the package comment for the
// checks and their order.
//
// Several signatures: one is verified, never more, so that a request
// costs at most one key lookup (and one refetch) whatever it carries.
// With Options.Label set it is that one. Otherwise it is the first label,
// in Signature-Input order, whose parameters, time window, algorithm and
// coverage pass; when none does, the first label's error is returned.
// Mastodon (through the Linzer library) refuses a request with several
// signatures unless told the label, WordPress's plugin and Fedify try
// every label and fetch a key for each: real senders send exactly one
// (WordPress labels it "wp", Fedify and Linzer "sig1"), so picking the
// first usable one accepts all of them, also accepts a request where an
// intermediary appended a signature of its own this package cannot use,
// and keeps the cost of a hostile request bounded.
func VerifyRFC9421(r *http.Request, body []byte, opts Options) (*Result, error) {
	return verify(r, body, opts, AlgRSAv15SHA256)
}

// verify is VerifyRFC9421 with the algorithm assumed when alg is absent
// (tests use rsa-pss-sha512 for the RFC's examples, whose verifier "knows"
// the key is a PSS key).
// PrecheckRFC9421 makes every check of an RFC 9421 signature that needs
// neither the body nor a key (headers parse, one usable signature, its
// parameters, time window, algorithm and coverage) and returns the keyid
// that VerifyRFC9421 would look up. The inbox runs it before reading a
// body; Options.Key is not used.
func PrecheckRFC9421(r *http.Request, opts Options) (keyID string, err error) {
	e, _, err := choose(r, opts, AlgRSAv15SHA256, int(max(r.ContentLength, 0)))
	if err != nil {
		return "", err
	}
	return e.keyID, nil
}

// choose parses the signature headers and picks the one signature that is
// verified: Options.Label, else the first one whose checks pass.
func choose(r *http.Request, opts Options, defaultAlg string, bodyLen int) (*entry, *message, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	maxAge, maxFuture := opts.MaxAge, opts.MaxFuture
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if maxFuture <= 0 {
		maxFuture = DefaultMaxFuture
	}
	msg, err := newMessage(r, opts.BaseURL)
	if err != nil {
		return nil, nil, err
	}
	entries, err := parseSignatures(r.Header)
	if err != nil {
		return nil, nil, err
	}

	t := now()
	var firstErr error
	for i := range entries {
		e := &entries[i]
		if opts.Label != "" && e.label != opts.Label {
			continue
		}
		err := e.err
		if err == nil {
			err = e.check(t, maxAge, maxFuture, defaultAlg, msg, bodyLen)
		}
		if err == nil {
			return e, msg, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("signature %q: %w", e.label, err)
		}
	}
	if firstErr != nil {
		return nil, nil, firstErr
	}
	if opts.Label != "" {
		return nil, nil, fmt.Errorf("%w: no signature labelled %q", ErrNoSignature, opts.Label)
	}
	return nil, nil, fmt.Errorf("%w: empty Signature-Input", ErrNoSignature)
}

func verify(r *http.Request, body []byte, opts Options, defaultAlg string) (*Result, error) {
	if opts.Key == nil {
		return nil, fmt.Errorf("%w: no key lookup configured", ErrKey)
	}
	e, msg, err := choose(r, opts, defaultAlg, len(body))
	if err != nil {
		return nil, err
	}

	if e.covers("content-digest") {
		if err := checkContentDigest(r.Header.Values("Content-Digest"), body); err != nil {
			return nil, fmt.Errorf("signature %q: %w", e.label, err)
		}
	}
	base, err := signatureBase(msg, e.components, e.params)
	if err != nil {
		return nil, fmt.Errorf("signature %q: %w", e.label, err)
	}

	ctx := r.Context()
	pub, err := lookup(ctx, opts.Key, e.keyID)
	if err != nil {
		return nil, err
	}
	err = verifyBytes(e.alg, pub, []byte(base), e.sig)
	if err != nil && opts.Refetch != nil {
		if pub, err = lookup(ctx, opts.Refetch, e.keyID); err != nil {
			return nil, err
		}
		err = verifyBytes(e.alg, pub, []byte(base), e.sig)
	}
	if err != nil {
		return nil, fmt.Errorf("signature %q by %s: %w", e.label, e.keyID, err)
	}

	res := &Result{
		KeyID:     e.keyID,
		Label:     e.label,
		Alg:       e.alg,
		Created:   time.Unix(e.created, 0).UTC(),
		Nonce:     e.nonce,
		Tag:       e.tag,
		Signature: e.sig,
	}
	if e.hasExpires {
		res.Expires = time.Unix(e.expires, 0).UTC()
	}
	return res, nil
}

func lookup(ctx context.Context, f KeyLookup, keyID string) (*PublicKey, error) {
	pub, err := f(ctx, keyID)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKey, keyID, err)
	}
	if pub == nil || pub.pub == nil {
		return nil, fmt.Errorf("%w: %s: no RSA key", ErrKey, keyID)
	}
	return pub, nil
}

// verifyBytes checks sig over base with RFC 9421 §3.3.1 (RSASSA-PSS,
// SHA-512, MGF1 SHA-512, 64-byte salt) or §3.3.2 (RSASSA-PKCS1-v1_5,
// SHA-256). PSS, which no fediverse sender uses, stays with Go.
func verifyBytes(alg string, pub *PublicKey, base, sig []byte) error {
	var err error
	switch alg {
	case AlgRSAv15SHA256:
		h := sha256.Sum256(base)
		err = pub.VerifySHA256(h[:], sig)
	case AlgRSAPSSSHA512:
		h := sha512.Sum512(base)
		err = rsa.VerifyPSS(pub.Public(), crypto.SHA512, h[:], sig, &rsa.PSSOptions{SaltLength: sha512.Size, Hash: crypto.SHA512})
	default:
		return fmt.Errorf("%w: %q", ErrAlgorithm, alg)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// entry is one labelled signature: its Signature-Input member and its
// Signature bytes.
type entry struct {
	label      string
	components []httpsfv.Item // each a String, with its parameters
	params     *httpsfv.Params
	sig        []byte

	keyID, alg, nonce, tag string
	created, expires       int64
	hasExpires             bool

	err error // why this entry cannot be used, found while parsing
}

// covers reports whether the plain component name (no parameters) is
// covered.
func (e *entry) covers(name string) bool {
	for _, c := range e.components {
		if c.Value.(string) == name && len(c.Params.Names()) == 0 {
			return true
		}
	}
	return false
}

// check applies the time window, the algorithm and the coverage rules.
func (e *entry) check(now time.Time, maxAge, maxFuture time.Duration, defaultAlg string, msg *message, bodyLen int) error {
	created := time.Unix(e.created, 0)
	if created.Sub(now) > maxFuture {
		return fmt.Errorf("%w: created %s is more than %s ahead", ErrFuture, created.UTC().Format(time.RFC3339), maxFuture)
	}
	if now.Sub(created) > maxAge {
		return fmt.Errorf("%w: created %s is more than %s old", ErrExpired, created.UTC().Format(time.RFC3339), maxAge)
	}
	if e.hasExpires {
		expires := time.Unix(e.expires, 0)
		if now.Sub(expires) > maxFuture {
			return fmt.Errorf("%w: expired at %s", ErrExpired, expires.UTC().Format(time.RFC3339))
		}
	}
	if e.alg == "" {
		e.alg = defaultAlg
	}
	if e.alg != AlgRSAv15SHA256 && e.alg != AlgRSAPSSSHA512 {
		return fmt.Errorf("%w: %q", ErrAlgorithm, e.alg)
	}

	// Coverage: at least what Mastodon requires (app/lib/signed_request.rb,
	// HttpMessageSignature#verify_signature_strength!): @method, the
	// target, and content-digest for a POST. @authority with @path (or
	// @request-target) names the same resource as @target-uri but for
	// the scheme, which the TLS connection fixes.
	if !e.covers("@method") {
		return fmt.Errorf("%w: @method", ErrNotCovered)
	}
	if !e.covers("@target-uri") && !(e.covers("@authority") && (e.covers("@path") || e.covers("@request-target"))) {
		return fmt.Errorf("%w: @target-uri (or @authority and @path)", ErrNotCovered)
	}
	if hasContent(msg.method, bodyLen) && !e.covers("content-digest") {
		return fmt.Errorf("%w: content-digest", ErrNotCovered)
	}
	return nil
}

// hasContent reports whether a request must prove its body with a covered
// Content-Digest: a method that carries content, or any body at all.
func hasContent(method string, bodyLen int) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return true
	}
	return bodyLen > 0
}

// parseSignatures parses Signature-Input and Signature into one entry per
// Signature-Input member, in order. An error here concerns the whole
// request; an entry's own problem is kept in entry.err.
func parseSignatures(h http.Header) ([]entry, error) {
	inputs := h.Values("Signature-Input")
	sigs := h.Values("Signature")
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: no Signature-Input header", ErrNoSignature)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: Signature-Input without Signature", ErrMalformed)
	}
	inDict, err := parseDict("Signature-Input", inputs)
	if err != nil {
		return nil, err
	}
	sigDict, err := parseDict("Signature", sigs)
	if err != nil {
		return nil, err
	}
	names := inDict.Names()
	if len(names) > maxSignatures || len(sigDict.Names()) > maxSignatures {
		return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformed, maxSignatures)
	}
	entries := make([]entry, 0, len(names))
	for _, label := range names {
		in, _ := inDict.Get(label)
		sig, _ := sigDict.Get(label)
		e := parseEntry(label, in, sig)
		entries = append(entries, e)
	}
	return entries, nil
}

// parseDict parses a dictionary field, refusing what RFC 8941 would let
// through silently: a member name given twice (the parser keeps the last
// one, another reader may keep the first) and a field too long to be real.
func parseDict(name string, values []string) (*httpsfv.Dictionary, error) {
	n := 0
	for _, v := range values {
		n += len(v) + 2
	}
	if n > maxFieldLen {
		return nil, fmt.Errorf("%w: %s longer than %d bytes", ErrMalformed, name, maxFieldLen)
	}
	d, err := httpsfv.UnmarshalDictionary(values)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	if members := countMembers(strings.Join(values, ", ")); members != len(d.Names()) {
		return nil, fmt.Errorf("%w: %s names a member twice", ErrMalformed, name)
	}
	return d, nil
}

// countMembers counts the top-level members of a dictionary or list that
// httpsfv has already parsed: the commas outside strings, display strings
// and inner lists, plus one.
func countMembers(s string) int {
	if strings.Trim(s, " \t") == "" {
		return 0
	}
	n, depth := 1, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '%':
			if i+1 < len(s) && s[i+1] == '"' {
				for i += 2; i < len(s) && s[i] != '"'; i++ {
				}
			}
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		}
	}
	return n
}

// parseEntry reads one Signature-Input member and its Signature member.
func parseEntry(label string, in httpsfv.Member, sig httpsfv.Member) entry {
	e := entry{label: label}
	fail := func(format string, args ...any) entry {
		e.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
		return e
	}
	il, ok := in.(httpsfv.InnerList)
	if !ok {
		return fail("Signature-Input member is not an inner list")
	}
	if sig == nil {
		return fail("no Signature member with this label")
	}
	sigItem, ok := sig.(httpsfv.Item)
	if !ok {
		return fail("Signature member is not a byte sequence")
	}
	if e.sig, ok = sigItem.Value.([]byte); !ok || len(e.sig) == 0 {
		return fail("Signature member is not a byte sequence")
	}
	if len(il.Items) > maxComponents {
		return fail("more than %d covered components", maxComponents)
	}
	seen := map[string]bool{}
	for _, c := range il.Items {
		name, ok := c.Value.(string)
		if !ok {
			return fail("covered component %v is not a string", c.Value)
		}
		if err := checkComponent(name, c.Params); err != nil {
			e.err = err
			return e
		}
		id, err := httpsfv.Marshal(c)
		if err != nil {
			return fail("covered component %q: %v", name, err)
		}
		if seen[id] {
			return fail("component %s covered twice", id)
		}
		seen[id] = true
	}
	e.components = il.Items
	e.params = il.Params

	var hasCreated bool
	for _, k := range il.Params.Names() {
		v, _ := il.Params.Get(k)
		var ok bool
		switch k {
		case "created":
			e.created, ok = v.(int64)
			hasCreated = true
		case "expires":
			e.expires, ok = v.(int64)
			e.hasExpires = true
		case "keyid":
			e.keyID, ok = v.(string)
		case "alg":
			e.alg, ok = v.(string)
		case "nonce":
			e.nonce, ok = v.(string)
		case "tag":
			e.tag, ok = v.(string)
		default:
			ok = true // unknown parameters are signed, and otherwise ignored
		}
		if !ok {
			return fail("parameter %s has the wrong type", k)
		}
	}
	if e.keyID == "" {
		return fail("no keyid")
	}
	if !hasCreated {
		e.err = fmt.Errorf("%w: created parameter", ErrNotCovered)
		return e
	}
	if e.hasExpires && e.expires < e.created {
		return fail("expires before created")
	}
	return e
}

// checkComponent accepts the component identifiers this package can
// derive: the request's derived components and HTTP fields by their
// lowercase names, without parameters but @query-param's name.
func checkComponent(name string, params *httpsfv.Params) error {
	pnames := params.Names()
	switch name {
	case "@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query":
	case "@query-param":
		if len(pnames) != 1 || pnames[0] != "name" {
			return fmt.Errorf("%w: @query-param takes one name parameter", ErrMalformed)
		}
		if v, _ := params.Get("name"); !isString(v) {
			return fmt.Errorf("%w: @query-param name is not a string", ErrMalformed)
		}
		return nil
	default:
		if strings.HasPrefix(name, "@") {
			return fmt.Errorf("%w: unknown or response-only component %q", ErrMalformed, name)
		}
		if !isFieldName(name) {
			return fmt.Errorf("%w: component %q is not a lowercase field name", ErrMalformed, name)
		}
	}
	if len(pnames) > 0 {
		// sf, key, bs, req, tr: not used by fediverse senders.
		return fmt.Errorf("%w: component %q: unsupported parameter %q", ErrMalformed, name, pnames[0])
	}
	return nil
}

func isString(v any) bool { _, ok := v.(string); return ok }

// isFieldName reports whether s is a lowercase HTTP field name (a token
// without upper-case letters).
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
