package inbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// InboxMaxBody is the largest inbox POST body accepted (Mastodon's limit
// too). web enforces it while reading; Inbox checks again.
const InboxMaxBody = 1 << 20

// receiveTimeout bounds one request's handling: a key fetch (10 s at
// most), the wait for a slot (DefaultWait) and the state change.
const receiveTimeout = 30 * time.Second

// Precheck makes the checks that need neither the body nor a key, before
// web reads the body: the media type, the declared size, a signature whose
// shape, parameters, signed headers and time window are acceptable, and the
// rate of the keyId's host. An unsigned or malformed request is refused
// without a byte of its body read.
func (s *Inbox) Precheck(r *http.Request) error {
	if r.ContentLength > InboxMaxBody {
		return fmt.Errorf("%w: inbox: declared body of %d bytes, limit %d", federation.ErrTooLarge, r.ContentLength, InboxMaxBody)
	}
	if !inboxMediaType(r.Header.Get("Content-Type")) {
		return fmt.Errorf("%w: inbox content type %q", federation.ErrUnsupportedMediaType, r.Header.Get("Content-Type"))
	}
	keyID, err := s.checkHeaders(r)
	if err != nil {
		return err
	}
	host := urlHost(keyID)
	if name := hostname(host); name != "" && s.blockedHost(name) {
		// Blocked: refused before anything is read or fetched.
		return fmt.Errorf("%w: inbox: %s is blocked", federation.ErrForbidden, name)
	}
	return s.unverified.allow(host, s.now())
}

// checkHeaders is the signature part of Precheck; it returns the keyId the
// signature names.
func (s *Inbox) checkHeaders(r *http.Request) (string, error) {
	if signature.HasRFC9421(r) {
		keyID, err := signature.PrecheckRFC9421(r, signature.Options{Now: s.now, BaseURL: s.cfg.BaseURL})
		if err != nil {
			return "", fmt.Errorf("%w: RFC 9421 signature: %v", federation.ErrUnauthorized, err)
		}
		return keyID, nil
	}
	p, err := signature.CheckHeaders(r, s.now())
	if err != nil {
		return "", err
	}
	return p.KeyID, nil
}

// Receive handles one POST to the actor's or the shared inbox whose body
// was read. The order is fixed, cheapest first, and nothing changes before
// the last step: size and media type; the signature's key-free checks,
// Digest over the raw bytes included; the key (cache, else one shared
// fetch) and the signature (Verify); a signature seen before is a replay;
// the signer's host's rate; a slot; only then the body is decoded, under
// bounds of depth and size; the key's owner must be the activity's actor;
// then the state change. It returns nil for activities it ignores (web
// answers 202: a correctly signed request is never refused, see INTEROP
// #16), and errors wrapping the sentinels otherwise. The state changes:
// Follow, Undo, Delete and Block of followers; replies, mentions, quotes,
// likes and boosts of our Notes and their Undo, Update and Delete
// (interactions.go).
//
// One exception to "owner == actor": a Delete whose actor is its object (an
// account deletion) arrives when the account, and so its key, is already
// gone, so it cannot be verified. When the key URL answers 404/410, the
// sender is one of our followers, the keyId is on the actor's host, and the
// actor URL itself answers 404/410 to our own fetch, the follower is
// dropped. This is what Mastodon does (it accepts such a Delete without a
// key); a forger gains nothing, since what it removes is a follower whose
// account does not resolve any more, and no delivery could reach it anyway.
func (s *Inbox) Receive(ctx context.Context, r *http.Request, body []byte) error {
	// Every wait below (a key fetch, a slot) ends with this request.
	ctx, cancel := context.WithTimeout(ctx, receiveTimeout)
	defer cancel()
	if len(body) > InboxMaxBody {
		return fmt.Errorf("%w: inbox body of %d bytes, limit %d", federation.ErrTooLarge, len(body), InboxMaxBody)
	}
	if !inboxMediaType(r.Header.Get("Content-Type")) {
		return fmt.Errorf("%w: inbox content type %q", federation.ErrUnsupportedMediaType, r.Header.Get("Content-Type"))
	}

	v, err := s.Verify(r.WithContext(ctx), body)
	if err != nil {
		if errors.Is(err, errKeyGone) {
			if doc, derr := decodeActivity(body); derr == nil {
				actorID := jsonID(doc["actor"])
				if jsonString(doc["type"]) == "Delete" && actorID != "" && jsonID(doc["object"]) == actorID {
					return s.inboxDeleteGoneActor(ctx, r, actorID, err)
				}
			}
		}
		s.log.Info("inbox: refused", "err", err)
		return err
	}
	if s.blocked(v.Owner) {
		return fmt.Errorf("%w: inbox: %s is blocked", federation.ErrForbidden, v.Owner)
	}
	if !s.seen.add(v.signature, v.SignedAt.Add(signature.MaxAge), s.now()) {
		return fmt.Errorf("%w: inbox: signature by %s already used (a replay)", federation.ErrUnauthorized, v.KeyID)
	}
	if err := s.verified.allow(urlHost(v.Owner), s.now()); err != nil {
		return err
	}
	release, err := s.takeSlot(ctx)
	if err != nil {
		return err
	}
	defer release()

	doc, err := decodeActivity(body)
	if err != nil {
		return fmt.Errorf("%w: inbox: %v", federation.ErrBadRequest, err)
	}
	typ := jsonString(doc["type"])
	actorID := jsonID(doc["actor"])
	if typ == "" || actorID == "" {
		return fmt.Errorf("%w: inbox: activity without type or actor", federation.ErrBadRequest)
	}
	if v.Owner != actorID {
		return fmt.Errorf("%w: inbox: %s signed by %s, not by its actor %s", federation.ErrForbidden, typ, v.Owner, actorID)
	}
	s.log.Debug("inbox: received", "type", typ, "actor", actorID, "key_id", v.KeyID)

	switch typ {
	case "Follow":
		return s.inboxFollow(ctx, v, doc, actorID)
	case "Undo":
		return s.inboxUndo(ctx, v, doc, actorID)
	case "Delete":
		if object := jsonID(doc["object"]); object != actorID {
			if err := s.deleteInteraction(object, actorID); err != nil {
				return err
			}
			// A deleted reply or quote loses the authorization it was
			// granted (its URL then answers 410).
			return s.revokeAuthorizationsFor(ctx, object, actorID)
		}
		if err := s.deleteInteractionsOf(actorID); err != nil {
			return err
		}
		if err := s.revokeActorAuthorizations(ctx, actorID); err != nil {
			return err
		}
		return s.inboxDropActor(actorID, v.KeyID, v.SignedAt, "Delete")
	case "Flag":
		return s.inboxFlag(doc, actorID)
	case "QuoteRequest", "LikeRequest", "ReplyRequest", "AnnounceRequest":
		return s.inboxInteractionRequest(ctx, v, doc, actorID, typ)
	case "Block":
		if jsonID(doc["object"]) != s.cfg.ActorID() {
			return nil
		}
		return s.inboxDropActor(actorID, "", v.SignedAt, "Block")
	case "Create":
		return s.inboxCreate(v, doc, actorID)
	case "Update":
		return s.inboxUpdate(v, doc, actorID)
	case "Like", "EmojiReact":
		return s.inboxLike(v, doc, actorID)
	case "Announce":
		return s.inboxAnnounce(v, doc, actorID)
	default:
		s.log.Debug("inbox: ignored activity", "type", typ, "actor", actorID)
		return nil
	}
}

// decodeActivity decodes one JSON object from the network (an inbox body,
// a fetched document) once its shape is within bounds.
func decodeActivity(body []byte) (map[string]any, error) {
	if err := checkJSONShape(body); err != nil {
		return nil, err
	}
	return decodeJSONObject(body)
}

// takeSlot waits up to the Inbox's Wait for a slot; the error wraps
// federation.ErrBusy in a RetryError.
func (s *Inbox) takeSlot(ctx context.Context) (release func(), err error) {
	release = func() { <-s.slots }
	select {
	case s.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return release, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, &federation.RetryError{
		Err:   fmt.Errorf("%w: inbox: no slot within %s", federation.ErrBusy, s.wait),
		After: busyRetryAfter,
	}
}

// inboxMediaType accepts both ActivityPub media types with any parameters
// (GoToSocial sends ld+json with a profile) and plain JSON. An unquoted
// profile URL is not a valid parameter value, but senders write it: the
// media type still counts (ParseMediaType returns it with
// ErrInvalidMediaParameter).
func inboxMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return false
	}
	switch mt {
	case "application/activity+json", "application/ld+json", "application/json":
		return true
	}
	return false
}

// inboxFollow stores the follower and, unless approval is manual, enqueues
// the Accept in the same transaction. A repeated Follow updates the Follow
// id and re-sends the Accept (Mastodon does the same): the remote side may
// have lost the first one.
func (s *Inbox) inboxFollow(ctx context.Context, v *Verified, doc map[string]any, actorID string) error {
	followID := jsonString(doc["id"])
	if jsonID(doc["object"]) != s.cfg.ActorID() {
		s.log.Info("inbox: inbox ignored Follow of another actor", "actor", actorID, "object", jsonID(doc["object"]))
		return nil
	}
	if followID == "" {
		// Nothing to Accept: the remote could not match it.
		s.log.Info("inbox: inbox ignored Follow without id", "actor", actorID)
		return nil
	}
	ended, err := s.store.FollowEndedAt(actorID)
	if err != nil {
		return fmt.Errorf("inbox: follow: %w", err)
	}
	if v.SignedAt.Before(ended) {
		// Signed before the Undo, Delete or Block that ended the follow:
		// a replay, or a late retry overtaken by the end.
		s.log.Info("inbox: ignored Follow older than the end of the follow", "actor", actorID, "signed", v.SignedAt, "ended", ended)
		return nil
	}
	info, err := s.lookupActorInfo(ctx, v, actorID)
	if err != nil {
		return fmt.Errorf("inbox: inbox follow: %w", err)
	}
	if err := sameHostInboxes(actorID, info); err != nil {
		return err
	}
	f := storage.Follower{
		ActorID:     actorID,
		Inbox:       info.Inbox,
		SharedInbox: info.SharedInbox,
		FollowID:    followID,
		Handle:      info.Handle,
		Host:        urlHost(actorID),
		Status:      storage.FollowerAccepted,
		CreatedAt:   s.now(),
		SignedAt:    v.SignedAt,
	}
	old, err := s.store.Follower(actorID)
	switch {
	case err == nil:
		if old.SignedAt.After(v.SignedAt) {
			s.log.Info("inbox: ignored Follow older than the one stored", "actor", actorID, "signed", v.SignedAt)
			return nil
		}
		f.CreatedAt = old.CreatedAt
		if s.cfg.ManuallyApprovesFollowers && old.Status != storage.FollowerAccepted {
			f.Status = storage.FollowerPending
		}
	case errors.Is(err, storage.ErrNotFound):
		if s.cfg.ManuallyApprovesFollowers {
			f.Status = storage.FollowerPending
		}
	default:
		return fmt.Errorf("inbox: inbox follow: %w", err)
	}
	if f.Status == storage.FollowerPending {
		if err := s.store.PutFollower(f); err != nil {
			return fmt.Errorf("inbox: inbox follow: %w", err)
		}
		s.log.Info("inbox: follow request waits for approval", "actor", actorID, "handle", f.Handle)
		return nil
	}
	act, jobs, err := s.followReply("Accept", f)
	if err != nil {
		return fmt.Errorf("inbox: inbox follow: %w", err)
	}
	if err := s.store.AcceptFollower(f, act, jobs); err != nil {
		return fmt.Errorf("inbox: inbox follow: %w", err)
	}
	s.queued()
	s.log.Info("inbox: follower accepted", "actor", actorID, "handle", f.Handle, "accept", act.ID, "again", old.ActorID != "")
	return nil
}

// inboxUndo handles Undo{Follow}: the Follow embedded (its actor must be
// the Undo's actor) or by id (it must be the Follow we stored); and the Undo
// of a Like, reaction or Announce kept (embedded or by id, only by its
// author: undoInteraction). Other Undos are ignored: an Undo{Like} by id
// must not unfollow.
func (s *Inbox) inboxUndo(ctx context.Context, v *Verified, doc map[string]any, actorID string) error {
	if o, ok := doc["object"].(map[string]any); !ok || jsonString(o["type"]) != "Follow" {
		handled, err := s.undoInteraction(doc, actorID)
		if handled && err == nil {
			// An undone like or boost loses its authorization too.
			err = s.revokeAuthorizationsFor(ctx, jsonID(doc["object"]), actorID)
		}
		if handled || err != nil || ok {
			return err
		}
	}
	switch o := doc["object"].(type) {
	case map[string]any:
		if a := jsonID(o["actor"]); a != "" && a != actorID {
			return fmt.Errorf("%w: inbox: %s undoes a Follow by %s", federation.ErrForbidden, actorID, a)
		}
		if obj := jsonID(o["object"]); obj != "" && obj != s.cfg.ActorID() {
			return nil
		}
	case string:
		f, err := s.store.Follower(actorID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("inbox: inbox undo: %w", err)
		}
		if f.FollowID != o {
			return nil
		}
	default:
		return nil
	}
	return s.inboxDropActor(actorID, "", v.SignedAt, "Undo")
}

// inboxDropActor removes a follower (and, for a deleted account, its
// cached key) because of an activity the actor signed at signedAt (zero:
// unconditionally). An activity signed before the Follow that made the
// follower is older news and changes nothing; the end is remembered so that
// an older Follow cannot come back (storage.Store.EndFollow).
func (s *Inbox) inboxDropActor(actorID, keyID string, signedAt time.Time, why string) error {
	if f, err := s.store.Follower(actorID); err == nil && !signedAt.IsZero() && f.SignedAt.After(signedAt) {
		s.log.Info("inbox: ignored "+why+" older than the Follow", "actor", actorID, "signed", signedAt, "followed", f.SignedAt)
		return nil
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("inbox: %s: %w", strings.ToLower(why), err)
	}
	removed, err := s.store.EndFollow(actorID, signedAt)
	if err != nil {
		return fmt.Errorf("inbox: inbox %s: %w", strings.ToLower(why), err)
	}
	if keyID != "" {
		if err := s.store.DeleteRemoteKey(keyID); err != nil {
			return fmt.Errorf("inbox: inbox %s: %w", strings.ToLower(why), err)
		}
	}
	s.log.Info("inbox: follower removed", "actor", actorID, "by", why, "was_follower", removed)
	return nil
}

// inboxDeleteGoneActor is the account-deletion exception documented on
// Inbox. verr is the verification error (wrapping errKeyGone).
func (s *Inbox) inboxDeleteGoneActor(ctx context.Context, r *http.Request, actorID string, verr error) error {
	p, err := signature.ParseHeader(r.Header.Get("Signature"))
	if err != nil || !strings.EqualFold(urlHost(p.KeyID), urlHost(actorID)) {
		return verr
	}
	_, err = s.store.Follower(actorID)
	follower := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("inbox: inbox delete: %w", err)
	}
	interacted, err := s.store.HasInteractionsOf(actorID)
	if err != nil {
		return fmt.Errorf("inbox: inbox delete: %w", err)
	}
	if !follower && !interacted {
		// Not ours to forget: answer 202 and change nothing, as
		// Mastodon does for deletions of unknown accounts.
		s.log.Debug("inbox: inbox ignored Delete of an unknown gone actor", "actor", actorID)
		return nil
	}
	// Confirm with our own fetch that the account is gone; the keyId
	// alone is the sender's word.
	if _, err := s.fetchObject(ctx, actorID); !errors.Is(err, errKeyGone) {
		s.log.Info("inbox: inbox refused unverifiable Delete of a live actor", "actor", actorID, "err", verr)
		return verr
	}
	if err := s.deleteInteractionsOf(actorID); err != nil {
		return err
	}
	if err := s.revokeActorAuthorizations(ctx, actorID); err != nil {
		return err
	}
	// No signed time: the account is gone, nothing it signed can follow.
	return s.inboxDropActor(actorID, p.KeyID, time.Time{}, "Delete (account gone)")
}

// followReply builds an Accept or Reject of the follower's Follow, with the
// Follow embedded (id, type, actor, object) so every server can match it,
// and its delivery job to the follower's personal inbox.
func (s *Inbox) followReply(typ string, f storage.Follower) (storage.Activity, []storage.Job, error) {
	id, err := s.followReplyID()
	if err != nil {
		return storage.Activity{}, nil, err
	}
	doc := map[string]any{
		"@context": "https://www.w3.org/ns/activitystreams",
		"id":       id,
		"type":     typ,
		"actor":    s.cfg.ActorID(),
		"to":       []string{f.ActorID},
		"object": map[string]any{
			"id":     f.FollowID,
			"type":   "Follow",
			"actor":  f.ActorID,
			"object": s.cfg.ActorID(),
		},
	}
	data, err := marshalActivityJSON(doc)
	if err != nil {
		return storage.Activity{}, nil, err
	}
	now := s.now()
	act := storage.Activity{ID: id, Type: typ, ObjectID: f.FollowID, Published: now, JSON: data}
	inbox := f.Inbox
	if inbox == "" {
		inbox = f.SharedInbox
	}
	if inbox == "" {
		return storage.Activity{}, nil, fmt.Errorf("inbox: %s for %s: follower has no inbox", typ, f.ActorID)
	}
	job := storage.Job{
		ActivityID:  id,
		Inbox:       inbox,
		Host:        urlHost(inbox),
		Topic:       f.FollowID,
		State:       storage.JobPending,
		CreatedAt:   now,
		NextAttempt: now,
	}
	return act, []storage.Job{job}, nil
}

// followReplyID is a fresh activity id: BASE/activities/<32 hex>.
func (s *Inbox) followReplyID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("inbox: activity id: %w", err)
	}
	return s.cfg.BaseURL + "/activities/" + hex.EncodeToString(b[:]), nil
}

// marshalActivityJSON encodes without HTML escaping (INTEROP #12).
func marshalActivityJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("inbox: encode activity: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// urlHost is the host[:port] of a URL, "" when it has none.
func urlHost(raw string) string {
	if h, ok := plainURLHost(raw); ok {
		return h
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// plainURLHost reads the host[:port] of a plain http(s) URL without
// url.Parse, which allocates a URL and costs microseconds: an inbox request
// asks for four or five hosts (the key's, the actor's, the activity's). It
// answers only for URLs whose every byte is printable ASCII without '%'
// or a backslash, and whose host is letters, digits, dots and dashes with an
// optional numeric port; ok is false otherwise, and url.Parse decides.
// FuzzURLHost checks both agree.
func plainURLHost(raw string) (host string, ok bool) {
	rest, found := strings.CutPrefix(raw, "https://")
	if !found {
		if rest, found = strings.CutPrefix(raw, "http://"); !found {
			return "", false
		}
	}
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '\\' {
			return "", false
		}
		if end == len(rest) && (c == '/' || c == '?' || c == '#') {
			end = i
		}
	}
	host = rest[:end]
	name, port, hasPort := strings.Cut(host, ":")
	if name == "" || (hasPort && port == "") {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return "", false
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", false
		}
	}
	return host, true
}

// sameHostInboxes refuses a follower whose inbox or shared inbox is not on
// its actor's host: crieur would otherwise send the Accept and every
// article to a third party's server on a forger's word (amplification).
func sameHostInboxes(actorID string, info actorInfo) error {
	host := urlHost(actorID)
	for _, in := range []string{info.Inbox, info.SharedInbox} {
		if in != "" && !strings.EqualFold(urlHost(in), host) {
			return fmt.Errorf("%w: inbox: %s names an inbox on another host (%s)", federation.ErrForbidden, actorID, in)
		}
	}
	return nil
}

// hostname is host without its port or IPv6 brackets (URL.Hostname).
func hostname(host string) string { return (&url.URL{Host: host}).Hostname() }
