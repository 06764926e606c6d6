package inbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// errKeyGone marks a key whose URL answers 404 or 410: the account is
// probably deleted. Inbox uses it for the account-deletion exception.
var errKeyGone = errors.New("inbox: remote key gone")

// resolvedKey is a usable remote key and where it came from.
type resolvedKey struct {
	rec   storage.RemoteKey
	pub   *signature.PublicKey
	fresh bool // fetched during this call, not from the cache
}

// parseKey reads a publicKeyPem and prepares it for verification, once
// per PEM text: parsing and importing a key into OpenSSL cost about half a
// verification, and the same senders sign request after request.
func (s *Inbox) parseKey(pemText string) (*signature.PublicKey, error) {
	if k := s.ready.get(pemText); k != nil {
		return k, nil
	}
	pub, err := signature.ParsePublicKeyPEM(pemText)
	if err != nil {
		return nil, err
	}
	k, err := s.verify.Key(pub)
	if err != nil {
		return nil, err
	}
	s.ready.put(pemText, k)
	return k, nil
}

// readyKeysMax bounds readyKeys: an RSA-2048 key ready for verification
// holds about 2 KiB with its PEM text (and OpenSSL's copy), so at most
// about 16 MiB, the size of storage's memo of remote keys.
const readyKeysMax = 8192

// readyKeys maps PEM texts to their parsed keys. A PEM text always gives
// the same key, so nothing is ever stale: the map is only bounded, and a
// full one drops an eighth of its entries.
type readyKeys struct {
	mu  sync.Mutex
	m   map[string]*signature.PublicKey
	max int
}

func newReadyKeys(max int) *readyKeys {
	return &readyKeys{m: make(map[string]*signature.PublicKey), max: max}
}

func (r *readyKeys) get(pemText string) *signature.PublicKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[pemText]
}

func (r *readyKeys) put(pemText string, k *signature.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) >= r.max {
		n := r.max / 8
		for p := range r.m {
			delete(r.m, p)
			if n--; n <= 0 {
				break
			}
		}
	}
	r.m[pemText] = k
}

// resolveKey returns the public key for keyID: from the cache unless
// refresh, else by a signed GET of the keyId URL through the key pool (one
// fetch per key at a time, a bound on fetches at once and on their time,
// and a refresh at most once per key per keyRefetchEvery). Failures wrap
// federation.ErrUnauthorized (a keyId we cannot use is the sender's
// problem, not a 500), plus errKeyGone when the key URL answers 404/410;
// ErrBusy when no fetch could be had within ctx; storage failures are
// returned as they are.
func (s *Inbox) resolveKey(ctx context.Context, keyID string, refresh bool) (resolvedKey, error) {
	if !refresh {
		rec, err := s.store.RemoteKey(keyID)
		switch {
		case err == nil:
			if pub, perr := s.parseKey(rec.PublicKeyPEM); perr == nil {
				return resolvedKey{rec: rec, pub: pub}, nil
			}
			// An unusable cached key is refetched below.
		case errors.Is(err, storage.ErrNotFound):
		default:
			return resolvedKey{}, fmt.Errorf("inbox: resolve key %s: %w", keyID, err)
		}
	}
	rk, err := s.keys.fetch(ctx, keyID, refresh, func(ctx context.Context) (resolvedKey, error) {
		rec, pub, err := s.fetchKey(ctx, keyID)
		if err != nil {
			return resolvedKey{}, err
		}
		s.log.Debug("inbox: fetched remote key", "key_id", keyID, "owner", rec.Owner, "inbox", rec.Inbox)
		if old, err := s.store.RemoteKey(keyID); refresh && err == nil && !samePublicKey(old.PublicKeyPEM, rec.PublicKeyPEM) {
			s.keys.rotated(keyID)
		}
		if err := s.store.PutRemoteKey(rec); err != nil {
			// Verification can go on; the next request fetches again.
			s.log.Warn("inbox: cache remote key", "key_id", keyID, "err", err)
		}
		return resolvedKey{rec: rec, pub: pub, fresh: true}, nil
	})
	if errors.Is(err, errRefetchThrottled) {
		return resolvedKey{}, fmt.Errorf("%w: %w", federation.ErrUnauthorized, err)
	}
	return rk, err
}

// fetchKey dereferences keyID. The document may be the actor itself (with
// publicKey as one object or an array: the entry whose id is keyID), a stub
// holding publicKey (GoToSocial's …/main-key), or a bare key with an owner.
// The owner's host must be the keyId's host, and the key is believed only
// from its owner's actor document as served from the owner's own id
// (fetchObject's origin rule): that is the document itself when its id is
// the URL it was served from and it is the owner, else the owner fetched
// by its id. That document must list keyID; its publicKeyPem is the key
// (a key document served from its own id may give it when the entry does
// not, and may not contradict it). A document served from another path of
// the same host (an upload, a redirect target) so speaks for nobody.
func (s *Inbox) fetchKey(ctx context.Context, keyID string) (storage.RemoteKey, *signature.PublicKey, error) {
	fail := func(format string, args ...any) (storage.RemoteKey, *signature.PublicKey, error) {
		return storage.RemoteKey{}, nil, fmt.Errorf("%w: key %s: %s", federation.ErrUnauthorized, keyID, fmt.Sprintf(format, args...))
	}
	ku, err := url.Parse(keyID)
	if err != nil || (ku.Scheme != "http" && ku.Scheme != "https") || ku.Host == "" {
		return fail("keyId is not an http(s) URL")
	}
	fetchURL := *ku
	fetchURL.Fragment = ""
	fetchURL.RawFragment = ""
	doc, err := s.fetchDocument(ctx, fetchURL.String())
	if err != nil {
		return storage.RemoteKey{}, nil, fmt.Errorf("%w: key %s: %w", federation.ErrUnauthorized, keyID, err)
	}

	var keyDoc, actor map[string]any
	var owner string
	docID := jsonID(doc.obj["id"])
	if k, ok := findPublicKey(doc.obj, keyID); ok {
		keyDoc = k
		owner = jsonID(k["owner"])
		if owner == "" {
			owner = docID
		}
		if docID != owner {
			return fail("key owner %q is not the document %q", owner, docID)
		}
		if doc.servedFromID() {
			actor = doc.obj
		}
	} else if docID == keyID && jsonString(doc.obj["publicKeyPem"]) != "" {
		keyDoc = doc.obj
		owner = jsonID(doc.obj["owner"])
	} else {
		return fail("document does not hold that key")
	}
	if owner == "" {
		return fail("key has no owner")
	}
	ou, err := url.Parse(owner)
	if err != nil || !strings.EqualFold(ou.Host, ku.Host) {
		return fail("owner %q is not on the key's host", owner)
	}
	if actor == nil {
		actor, err = s.fetchObject(ctx, owner)
		if err != nil {
			return storage.RemoteKey{}, nil, fmt.Errorf("%w: key %s: owner: %w", federation.ErrUnauthorized, keyID, err)
		}
		if jsonID(actor["id"]) != owner {
			return fail("owner document has id %q", jsonID(actor["id"]))
		}
	}
	listed, ok := findPublicKey(actor, keyID)
	if !ok {
		return fail("owner %s does not list the key", owner)
	}
	pemText := jsonString(listed["publicKeyPem"])
	switch keyPEM := jsonString(keyDoc["publicKeyPem"]); {
	case pemText == "" && doc.servedFromID():
		pemText = keyPEM
	case pemText == "":
		return fail("owner %s lists the key without its publicKeyPem", owner)
	case keyPEM != "" && !samePublicKey(keyPEM, pemText):
		return fail("the key document and owner %s give different keys", owner)
	}
	pub, err := s.parseKey(pemText)
	if err != nil {
		return fail("publicKeyPem: %v", err)
	}
	info := remoteActorInfo(actor)
	return storage.RemoteKey{
		KeyID:        keyID,
		Owner:        owner,
		PublicKeyPEM: pemText,
		Inbox:        info.Inbox,
		SharedInbox:  info.SharedInbox,
		Handle:       info.Handle,
		Name:         info.Name,
		URL:          info.URL,
		Avatar:       info.Avatar,
		FetchedAt:    s.now(),
	}, pub, nil
}

// samePublicKey reports whether two PEM texts hold the same key (one may
// be PKCS#1 and the other PKIX).
func samePublicKey(a, b string) bool {
	if a == b {
		return true
	}
	ka, err := signature.ParsePublicKeyPEM(a)
	if err != nil {
		return false
	}
	kb, err := signature.ParsePublicKeyPEM(b)
	return err == nil && ka.Equal(kb)
}

// remoteDoc is a fetched JSON object and the URL that served it.
type remoteDoc struct {
	obj map[string]any
	url string // after redirects, all on the origin asked for
}

// servedFromID reports whether the document speaks for its own id: it
// was served from exactly that URL (a fragment in the id names a part of
// the document, so it is left out of the comparison).
func (d remoteDoc) servedFromID() bool {
	id, err := url.Parse(jsonID(d.obj["id"]))
	if err != nil || id.Host == "" {
		return false
	}
	id.Fragment, id.RawFragment = "", ""
	return sameURL(id.String(), d.url)
}

// sameURL compares two absolute URLs, scheme and host case-insensitively,
// the rest exactly.
func sameURL(a, b string) bool {
	ua, err := url.Parse(a)
	if err != nil {
		return false
	}
	ub, err := url.Parse(b)
	if err != nil {
		return false
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		ua.EscapedPath() == ub.EscapedPath() && ua.RawQuery == ub.RawQuery && ua.Fragment == ub.Fragment &&
		ua.User == nil && ub.User == nil
}

// fetchObject GETs a remote ActivityStreams object (signed) and believes
// it only when its id is the URL it was finally served from: redirects
// must stay on the origin asked for, the Content-Type must be an
// ActivityStreams JSON type (transport.FetchActivity checks both), and a
// document whose id names another URL is refused, since any path of a
// server (an upload, a redirect) could then speak for its actors. Every
// remote object the inbox dereferences comes through here. A 404/410
// answer wraps errKeyGone.
func (s *Inbox) fetchObject(ctx context.Context, rawURL string) (map[string]any, error) {
	doc, err := s.fetchDocument(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	if !doc.servedFromID() {
		return nil, fmt.Errorf("inbox: GET %s: document id %q is not the URL it was served from, %s", rawURL, jsonID(doc.obj["id"]), doc.url)
	}
	return doc.obj, nil
}

// fetchDocument GETs an ActivityStreams document (signed) under the
// transport's origin rules and decodes it as one JSON object, without
// judging its id: fetchKey reads GoToSocial's key stubs, whose id is their
// actor's, and believes them only through the owner. A 404/410 answer
// wraps errKeyGone.
func (s *Inbox) fetchDocument(ctx context.Context, rawURL string) (remoteDoc, error) {
	f, err := s.client.FetchActivity(ctx, rawURL, s.signer)
	if err != nil {
		switch st := transport.HTTPStatus(err); st {
		case http.StatusGone, http.StatusNotFound:
			return remoteDoc{}, fmt.Errorf("%w: %w", errKeyGone, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			// Servers that check signed GETs (GoToSocial, Mastodon in
			// secure mode) refuse ours when they know crieur by another
			// key, for good: every Follow from there is then refused.
			// That is the admin's to see, not a debug detail.
			s.log.Warn("inbox: a server refused crieur's signed GET: it may know crieur by another key (a lost or replaced actor.pem), or block it",
				"url", rawURL, "status", st)
		}
		return remoteDoc{}, err
	}
	obj, err := decodeActivity(f.Body)
	if err != nil {
		return remoteDoc{}, fmt.Errorf("inbox: GET %s: %w", rawURL, err)
	}
	return remoteDoc{obj: obj, url: f.URL}, nil
}

// actorInfo is what the inbox needs to know about a remote actor: where to
// deliver, and how to show it as an interaction's author.
type actorInfo struct {
	Inbox, SharedInbox, Handle string
	Name, URL, Avatar          string // plain-text display name, profile page, avatar URL
}

// maxNameRunes bounds a remote display name kept for display.
const maxNameRunes = 100

// remoteActorInfo reads inbox, endpoints.sharedInbox, the
// preferredUsername@host handle, the display name (as plain text: names
// are shown on crieur's pages and in admin output), the profile page (url)
// and the avatar (icon.url) from an actor document. Only http(s) URLs are
// kept.
func remoteActorInfo(actor map[string]any) actorInfo {
	var info actorInfo
	if u := jsonID(actor["inbox"]); isHTTPURL(u) {
		info.Inbox = u
	}
	if ep, ok := actor["endpoints"].(map[string]any); ok {
		if u := jsonID(ep["sharedInbox"]); isHTTPURL(u) {
			info.SharedInbox = u
		}
	}
	if name := jsonString(actor["preferredUsername"]); name != "" {
		if u, err := url.Parse(jsonID(actor["id"])); err == nil && u.Hostname() != "" {
			info.Handle = plainText(name, maxNameRunes) + "@" + u.Hostname()
		}
	}
	info.Name = plainText(jsonString(actor["name"]), maxNameRunes)
	info.URL = linkHref(actor["url"])
	info.Avatar = imageURL(actor["icon"])
	return info
}

// actorInfoOf is the actorInfo a cached key carries.
func actorInfoOf(k storage.RemoteKey) actorInfo {
	return actorInfo{Inbox: k.Inbox, SharedInbox: k.SharedInbox, Handle: k.Handle, Name: k.Name, URL: k.URL, Avatar: k.Avatar}
}

// lookupActorInfo returns the inbox data of actorID: from the cached key of
// the verified request when it has them, else by fetching the actor.
func (s *Inbox) lookupActorInfo(ctx context.Context, v *Verified, actorID string) (actorInfo, error) {
	if v != nil && v.Owner == actorID && v.key.Inbox != "" {
		return actorInfoOf(v.key), nil
	}
	doc, err := s.fetchObject(ctx, actorID)
	if err != nil {
		return actorInfo{}, fmt.Errorf("inbox: fetch actor %s: %w", actorID, err)
	}
	if jsonID(doc["id"]) != actorID {
		return actorInfo{}, fmt.Errorf("inbox: fetch actor %s: document has id %q", actorID, jsonID(doc["id"]))
	}
	info := remoteActorInfo(doc)
	if info.Inbox == "" {
		return actorInfo{}, fmt.Errorf("inbox: fetch actor %s: no inbox", actorID)
	}
	return info, nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// findPublicKey returns the entry of doc.publicKey (one object or an array
// of them) whose id is exactly keyID.
func findPublicKey(doc map[string]any, keyID string) (map[string]any, bool) {
	var list []any
	switch v := doc["publicKey"].(type) {
	case map[string]any:
		list = []any{v}
	case []any:
		list = v
	}
	for _, e := range list {
		if k, ok := e.(map[string]any); ok && jsonID(k["id"]) == keyID {
			return k, true
		}
	}
	return nil, false
}

// decodeJSONObject decodes exactly one JSON object: trailing data, arrays
// and scalars are refused.
func decodeJSONObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode JSON: trailing data")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("decode JSON: not an object")
	}
	return obj, nil
}

// jsonString returns v when it is a string.
func jsonString(v any) string {
	s, _ := v.(string)
	return s
}

// jsonID returns v when it is a string, or v.id when it is an object: an
// ActivityStreams reference may be either.
func jsonID(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case map[string]any:
		s, _ := t["id"].(string)
		return s
	}
	return ""
}
