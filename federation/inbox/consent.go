package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/storage"
)

// Interaction requests: Mastodon's QuoteRequest (FEP-044f) and
// GoToSocial's polite LikeRequest, ReplyRequest and AnnounceRequest, all
// {id, actor, object: our Note, instrument: the quote, reply, Like or
// Announce, embedded or by id}. crieur answers each itself:
//
//   - a request about a Note that is not ours (unknown, deleted, another
//     server's) is ignored and nothing is stored, as Mastodon does
//     (app/lib/activitypub/activity/quote_request.rb returns when the quoted
//     status is not local and distributable);
//   - a request whose id is on another host than its actor, or whose
//     instrument is not the actor's own object about that Note, is refused
//     (403) and nothing is sent: the author did not ask, a Reject would
//     only answer a forger;
//   - a QuoteRequest that the quote policy refuses (-quotes nobody, or
//     followers and the actor is not an accepted follower) gets a Reject,
//     which Mastodon expects (quote_request.rb reject_quote_request!): the
//     quote would stay pending for ever otherwise;
//   - anything else gets an Accept whose result is the authorization's URL,
//     the authorization stored and the Accept queued in one transaction.

// inboxInteractionRequest handles one interaction request of type typ.
func (s *Inbox) inboxInteractionRequest(ctx context.Context, v *Verified, doc map[string]any, actorID, typ string) error {
	kind, ok := documents.RequestKind(typ)
	if !ok {
		return nil
	}
	req := documents.Request{
		ID:         jsonString(doc["id"]),
		Kind:       kind,
		Actor:      actorID,
		Object:     jsonID(doc["object"]),
		Instrument: jsonID(doc["instrument"]),
	}
	if req.ID == "" || req.Object == "" || req.Instrument == "" {
		return fmt.Errorf("%w: inbox: %s by %s without id, object or instrument", federation.ErrBadRequest, typ, actorID)
	}
	if !strings.EqualFold(urlHost(req.ID), urlHost(actorID)) {
		return fmt.Errorf("%w: inbox: %s %s is not on its actor's host (%s)", federation.ErrForbidden, typ, req.ID, actorID)
	}
	if !s.publishedNote(req.Object) {
		s.log.Info("inbox: ignored "+typ+" about a Note that is not ours", "actor", actorID, "object", req.Object)
		return nil
	}
	if err := s.checkInstrument(ctx, req, doc["instrument"]); errors.Is(err, errKeyGone) {
		// The interacting object is gone (404/410): nothing to consent to.
		s.log.Info("inbox: ignored "+typ+" about a gone object", "actor", actorID, "object", req.Instrument)
		return nil
	} else if err != nil {
		return err
	}
	if kind == storage.KindQuote {
		allowed, err := s.quoteAllowed(actorID)
		if err != nil {
			return fmt.Errorf("inbox: %s %s: %w", typ, req.ID, err)
		}
		if !allowed {
			return s.rejectRequest(ctx, v, req)
		}
	}
	return s.grantRequest(ctx, v, req)
}

// publishedNote tells whether id is one of our Notes that is published now:
// BASE/posts/{slug}/{lang}, known to the library and not deleted.
func (s *Inbox) publishedNote(id string) bool {
	rest, ok := strings.CutPrefix(id, s.cfg.BaseURL+"/posts/")
	if !ok {
		return false
	}
	slug, lang, ok := strings.Cut(rest, "/")
	if !ok || slug == "" || lang == "" || strings.ContainsAny(lang, "/?#") {
		return false
	}
	_, err := s.docs.NoteJSON(slug, lang)
	return err == nil
}

// checkInstrument makes sure the interacting object is the requester's
// own and about our Note. An embedded one is believed when its id is on the
// actor's host (the signer's server vouches for its own objects, the rule
// Mastodon applies in quote_request.rb import_instrument); one given by id
// is fetched, signed, under the origin rules.
func (s *Inbox) checkInstrument(ctx context.Context, req documents.Request, raw any) error {
	obj, embedded := raw.(map[string]any)
	if !strings.EqualFold(urlHost(req.Instrument), urlHost(req.Actor)) {
		return fmt.Errorf("%w: inbox: %s instrument %s is not on %s's host", federation.ErrForbidden, req.ID, req.Instrument, req.Actor)
	}
	if !embedded {
		// A failed fetch (other than 404/410) is worth a retry by the
		// sender: the error is not one of the 4xx sentinels.
		var err error
		if obj, err = s.fetchObject(ctx, req.Instrument); err != nil {
			return fmt.Errorf("inbox: %s: fetch instrument: %w", req.ID, err)
		}
	}
	var author, about string
	switch req.Kind {
	case storage.KindQuote:
		author = jsonID(obj["attributedTo"])
		// The first of the names Mastodon reads (status_parser.rb
		// quote_uri) that names our Note.
		for _, k := range []string{"quote", "_misskey_quote", "quoteUrl", "quoteUri"} {
			if about = jsonID(obj[k]); about == req.Object {
				break
			}
		}
	case storage.KindReply:
		author, about = jsonID(obj["attributedTo"]), jsonID(obj["inReplyTo"])
	default: // Like, Announce
		author, about = jsonID(obj["actor"]), jsonID(obj["object"])
	}
	switch {
	case jsonID(obj["id"]) != req.Instrument:
		return fmt.Errorf("%w: inbox: %s instrument has id %q, not %s", federation.ErrBadRequest, req.ID, jsonID(obj["id"]), req.Instrument)
	case author != req.Actor:
		return fmt.Errorf("%w: inbox: %s by %s asks for %s's object %s", federation.ErrForbidden, req.ID, req.Actor, author, req.Instrument)
	case about != req.Object:
		return fmt.Errorf("%w: inbox: %s instrument %s is about %q, not %s", federation.ErrForbidden, req.ID, req.Instrument, about, req.Object)
	}
	return nil
}

// quoteAllowed applies the quote policy to the requester.
func (s *Inbox) quoteAllowed(actorID string) (bool, error) {
	switch s.cfg.QuotePolicy() {
	case documents.QuotesNobody:
		return false, nil
	case documents.QuotesFollowers:
		f, err := s.store.Follower(actorID)
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return f.Status == storage.FollowerAccepted, nil
	}
	return true, nil
}

// grantRequest stores the authorization and queues the Accept in one
// transaction. A request sent again gets the same authorization and a new
// Accept (the first may have been lost).
func (s *Inbox) grantRequest(ctx context.Context, v *Verified, req documents.Request) error {
	inbox, err := s.requesterInbox(ctx, v, req.Actor)
	if err != nil {
		return fmt.Errorf("inbox: accept %s: %w", req.ID, err)
	}
	authID := s.cfg.AuthorizationID(req.Kind, req.Instrument, req.Object)
	act, err := s.docs.AcceptRequest(req, authID)
	if err != nil {
		return fmt.Errorf("inbox: accept %s: %w", req.ID, err)
	}
	a := storage.Authorization{
		ID:                authID,
		Kind:              req.Kind,
		RequestID:         req.ID,
		AcceptID:          act.ID,
		ActorID:           req.Actor,
		InteractingObject: req.Instrument,
		InteractionTarget: req.Object,
		CreatedAt:         s.now(),
	}
	created, err := s.store.GrantAuthorization(a, act, s.requestJobs(act, inbox, req))
	switch {
	case errors.Is(err, storage.ErrRevoked):
		// The interacting object was deleted: its id is never reused.
		s.log.Info("inbox: ignored request about a deleted object", "request", req.ID, "object", req.Instrument)
		return nil
	case errors.Is(err, storage.ErrNotOwner):
		return fmt.Errorf("%w: inbox: accept %s: %v", federation.ErrForbidden, req.ID, err)
	case err != nil:
		return fmt.Errorf("inbox: accept %s: %w", req.ID, err)
	}
	s.queued()
	s.log.Info("inbox: interaction authorized", "kind", req.Kind, "actor", req.Actor, "object", req.Instrument,
		"note", req.Object, "authorization", authID, "accept", act.ID, "again", !created)
	return nil
}

// rejectRequest queues a Reject of the request; nothing else is stored.
func (s *Inbox) rejectRequest(ctx context.Context, v *Verified, req documents.Request) error {
	inbox, err := s.requesterInbox(ctx, v, req.Actor)
	if err != nil {
		return fmt.Errorf("inbox: reject %s: %w", req.ID, err)
	}
	act, err := s.docs.RejectRequest(req)
	if err != nil {
		return fmt.Errorf("inbox: reject %s: %w", req.ID, err)
	}
	if err := s.store.Enqueue(act, s.requestJobs(act, inbox, req)); err != nil {
		return fmt.Errorf("inbox: reject %s: %w", req.ID, err)
	}
	s.queued()
	s.log.Info("inbox: interaction request rejected", "kind", req.Kind, "actor", req.Actor, "note", req.Object,
		"policy", s.cfg.QuotePolicy(), "reject", act.ID)
	return nil
}

// requesterInbox is the requester's personal inbox (Mastodon delivers its
// answer there, GoToSocial has no other), on the actor's host.
func (s *Inbox) requesterInbox(ctx context.Context, v *Verified, actorID string) (string, error) {
	info, err := s.lookupActorInfo(ctx, v, actorID)
	if err != nil {
		return "", err
	}
	if err := sameHostInboxes(actorID, info); err != nil {
		return "", err
	}
	if info.Inbox != "" {
		return info.Inbox, nil
	}
	if info.SharedInbox != "" {
		return info.SharedInbox, nil
	}
	return "", fmt.Errorf("%s has no inbox", actorID)
}

// requestJobs is the one delivery of an answer. Its topic is the
// interacting object, so answers about one object reach the inbox in order.
func (s *Inbox) requestJobs(act storage.Activity, inbox string, req documents.Request) []storage.Job {
	now := s.now()
	return []storage.Job{{
		ActivityID:  act.ID,
		Inbox:       inbox,
		Host:        urlHost(inbox),
		Topic:       req.Instrument,
		State:       storage.JobPending,
		CreatedAt:   now,
		NextAttempt: now,
	}}
}

// revokeAuthorizationsFor revokes the authorizations granted for objectID
// (a quote, reply, Like or Announce) to actorID, its author: to be called
// when actorID deletes or undoes it. Their URLs then answer 410 Gone, which
// is what a server checking an approval later finds (Mastodon's
// verify_quote_service.rb rejects a quote whose stamp no longer answers;
// GoToSocial's status_permitted.go isValidAuthURI likewise).
//
// Nothing is sent. Mastodon sends Delete{QuoteAuthorization} only when the
// quoted author withdraws a standing quote (RevokeQuoteService, handled by
// activity/delete.rb revoke_quote); when the quote itself is deleted it is
// gone with its post on every server, and such a Delete would find nothing.
// GoToSocial has no handling for a revoked authorization at all. Someone
// else's Delete revokes nothing; an unknown object is not an error.
func (s *Inbox) revokeAuthorizationsFor(ctx context.Context, objectID, actorID string) error {
	if objectID == "" || actorID == "" {
		return nil
	}
	revoked, err := s.store.RevokeAuthorizations(objectID, actorID, s.now())
	if err != nil {
		return fmt.Errorf("inbox: revoke authorizations of %s: %w", objectID, err)
	}
	for _, a := range revoked {
		s.log.Info("inbox: authorization revoked", "kind", a.Kind, "actor", actorID, "object", objectID, "authorization", a.ID)
	}
	return nil
}

// revokeActorAuthorizations revokes every authorization granted to actorID:
// to be called when the account is deleted (Delete with object == actor),
// with the same reasons as revokeAuthorizationsFor.
func (s *Inbox) revokeActorAuthorizations(ctx context.Context, actorID string) error {
	if actorID == "" {
		return nil
	}
	revoked, err := s.store.RevokeActorAuthorizations(actorID, s.now())
	if err != nil {
		return fmt.Errorf("inbox: revoke authorizations of %s: %w", actorID, err)
	}
	if len(revoked) > 0 {
		s.log.Info("inbox: authorizations revoked with the account", "actor", actorID, "count", len(revoked))
	}
	return nil
}
