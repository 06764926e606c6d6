package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/crieur/crieur/federation/signature"
)

// ErrCrossOrigin is returned by FetchActivity when a redirect leaves the
// origin (scheme, host and port) of the URL asked for: a document served
// from elsewhere proves nothing about the URL crieur meant to read.
var ErrCrossOrigin = errors.New("transport: redirect to another origin")

// ErrNotActivityStreams is returned by FetchActivity when the answer's
// Content-Type is not an ActivityStreams JSON type: a server that serves
// user files as plain JSON must not have them read as its actors.
var ErrNotActivityStreams = errors.New("transport: not an ActivityStreams document")

// activityStreamsProfile is the profile that makes application/ld+json an
// ActivityStreams document.
const activityStreamsProfile = "https://www.w3.org/ns/activitystreams"

// Fetched is a remote ActivityStreams document and where it was served
// from.
type Fetched struct {
	Body []byte
	// URL is the URL that answered, after redirects (all on the origin of
	// the URL asked for). Only a document whose id is this URL speaks for
	// itself.
	URL string
	// ContentType is the answer's Content-Type header, an ActivityStreams
	// JSON type (IsActivityContentType).
	ContentType string
}

// FetchActivity fetches an ActivityPub document with a GET, signed when
// sign is not nil (servers in authorized-fetch mode and GoToSocial refuse
// unsigned ones), through the guard and the limits. Redirects are followed
// up to MaxRedirects (ErrTooManyRedirects beyond), each target checked and
// re-signed, with the origin rules on top: a redirect to another origin is
// refused before it is followed (ErrCrossOrigin), and a 2xx answer whose
// Content-Type is not an ActivityStreams JSON type is refused before its
// body is read (ErrNotActivityStreams). A non-2xx answer is a
// *StatusError. Checking that the document's id is Fetched.URL is the
// caller's: only it decodes the body.
func (c *Client) FetchActivity(ctx context.Context, rawURL string, sign *signature.Signer) (*Fetched, error) {
	return c.get(ctx, rawURL, sign)
}

// get does FetchActivity's work, the origin rules always applied: no
// ActivityPub document is fetched without them.
func (c *Client) get(ctx context.Context, rawURL string, sign *signature.Signer) (*Fetched, error) {
	u, err := c.checkURL(rawURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("transport: GET %s: %w", rawURL, err)
	}
	req.Header.Set("Accept", AcceptActivity)
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if sign != nil {
		if err := sign.SignRequest(req, nil); err != nil {
			return nil, err
		}
	}
	// A per-call copy of the client (sharing the Transport) carries the
	// redirect policy that re-signs for the new target.
	hc := *c.http
	hc.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		if len(via) > c.cfg.MaxRedirects {
			return fmt.Errorf("%w (%d)", ErrTooManyRedirects, c.cfg.MaxRedirects)
		}
		if _, err := c.checkURL(next.URL.String()); err != nil {
			return err
		}
		// Refused before the request is made: the other origin never
		// sees crieur's signed GET.
		if !SameOrigin(u, next.URL) {
			return fmt.Errorf("%w: %s to %s", ErrCrossOrigin, rawURL, next.URL.Redacted())
		}
		if sign != nil {
			return sign.SignRequest(next, nil)
		}
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("transport: GET %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		c.drain(resp.Body)
		return nil, &StatusError{URL: rawURL, Status: resp.StatusCode}
	}
	ct := resp.Header.Get("Content-Type")
	if !IsActivityContentType(ct) {
		c.drain(resp.Body)
		return nil, fmt.Errorf("%w: GET %s: Content-Type %q", ErrNotActivityStreams, rawURL, ct)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("transport: GET %s: read body: %w", rawURL, err)
	}
	if int64(len(data)) > c.cfg.MaxBody {
		return nil, fmt.Errorf("%w: GET %s: more than %d bytes", ErrResponseTooLarge, rawURL, c.cfg.MaxBody)
	}
	return &Fetched{Body: data, URL: resp.Request.URL.String(), ContentType: ct}, nil
}

// IsActivityContentType reports whether ct names an ActivityStreams JSON
// document: application/activity+json, or application/ld+json whose
// profile parameter lists the ActivityStreams profile. Plain
// application/json is not one: Mastodon (JsonLdHelper
// #valid_activitypub_content_type?, since CVE-2024-23832) and GoToSocial
// (apiutil.ASContentType, checked in transport.Dereference) both refuse
// it, since any server may serve user files or unrelated APIs as JSON.
// Other parameters (charset) are ignored, as Mastodon does. The profile
// may be quoted or not (GoToSocial accepts both), and may list several
// space-separated profiles (Mastodon reads it so).
func IsActivityContentType(ct string) bool {
	parts := strings.Split(ct, ";")
	switch strings.ToLower(strings.TrimSpace(parts[0])) {
	case "application/activity+json":
		return true
	case "application/ld+json":
	default:
		return false
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "profile") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		for _, prof := range strings.Fields(v) {
			if prof == activityStreamsProfile {
				return true
			}
		}
	}
	return false
}

// SameOrigin reports whether a and b have the same origin: scheme, host
// and port, with the scheme's default port filled in (RFC 6454).
func SameOrigin(a, b *url.URL) bool {
	return a != nil && b != nil &&
		strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		originPort(a) == originPort(b)
}

// originPort is u's port, or its scheme's default.
func originPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}
