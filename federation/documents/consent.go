package documents

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// QuotePolicy says who may quote crieur's Notes. Every quote is answered by
// crieur itself (there is no admin queue), so the choice is who gets an
// Accept and who a Reject.
type QuotePolicy string

const (
	QuotesAuto      QuotePolicy = "auto"      // anyone: every QuoteRequest is accepted
	QuotesFollowers QuotePolicy = "followers" // accepted followers only
	QuotesNobody    QuotePolicy = "nobody"    // every QuoteRequest is rejected
)

// ParseQuotePolicy reads a -quotes setting; "" is QuotesAuto.
func ParseQuotePolicy(v string) (QuotePolicy, error) {
	switch p := QuotePolicy(strings.ToLower(strings.TrimSpace(v))); p {
	case "":
		return QuotesAuto, nil
	case QuotesAuto, QuotesFollowers, QuotesNobody:
		return p, nil
	}
	return "", fmt.Errorf("documents: quote policy %q: want auto, followers or nobody", v)
}

// QuotePolicy is the policy crieur applies to QuoteRequests: Quotes,
// QuotesAuto when unset.
func (c Config) QuotePolicy() QuotePolicy {
	if c.Quotes == "" {
		return QuotesAuto
	}
	return c.Quotes
}

// InteractionPolicy is the interactionPolicy of every Note: anyone may
// like, reply and boost without asking; quotes as configured.
//
// GoToSocial (docs/federation/interaction_policy.md; internal/typeutils
// internaltoas.go InteractionPolicyToASInteractionPolicy) reads canLike,
// canReply and canAnnounce. Up to v0.19 it knows only always and
// approvalRequired, from v0.20 it writes both pairs and reads the new one
// (automaticApproval, manualApproval): a policy in the new words only made
// a real v0.19.2 store empty rules and refuse its users' likes, boosts and
// replies with 403, so both are written. manualApproval and
// approvalRequired are left out: absent means nobody needs approval.
//
// Mastodon 4.5 reads only canQuote.automaticApproval (and manualApproval),
// understanding Public, the author's followers collection and the author's
// own id, which means nobody else (app/lib/activitypub/parser/
// status_parser.rb quote_subpolicy); a Note without canQuote cannot be
// quoted from Mastodon at all.
func (c Config) InteractionPolicy() map[string]any {
	open := func() map[string]any {
		return map[string]any{"automaticApproval": []string{Public}, "always": []string{Public}}
	}
	var quoters string
	switch c.QuotePolicy() {
	case QuotesFollowers:
		quoters = c.FollowersURL()
	case QuotesNobody:
		quoters = c.ActorID()
	default:
		quoters = Public
	}
	return map[string]any{
		"canLike":     open(),
		"canReply":    open(),
		"canAnnounce": open(),
		"canQuote":    map[string]any{"automaticApproval": []string{quoters}},
	}
}

// AuthorizationID is the URL of the authorization crieur grants for one
// interaction (kind, the interacting object, our Note): a digest of the
// three, so that a request sent twice, or two at once, names one
// authorization and one URL, without a lookup first. Remote ids are never
// reused (a deleted id is refused for ever), so neither is this one.
func (c Config) AuthorizationID(kind storage.InteractionKind, object, target string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(object))
	h.Write([]byte{0})
	h.Write([]byte(target))
	return c.BaseURL + "/authorizations/" + hex.EncodeToString(h.Sum(nil)[:16])
}

// AuthorizationPath is the path of AuthorizationID under BaseURL, for web.
const AuthorizationPath = "/authorizations/"

// RequestKind maps the interaction requests crieur answers to the kind of
// interaction they ask for: Mastodon's QuoteRequest (FEP-044f) and
// GoToSocial's polite LikeRequest, ReplyRequest and AnnounceRequest.
func RequestKind(typ string) (storage.InteractionKind, bool) {
	switch typ {
	case "QuoteRequest":
		return storage.KindQuote, true
	case "LikeRequest":
		return storage.KindLike, true
	case "ReplyRequest":
		return storage.KindReply, true
	case "AnnounceRequest":
		return storage.KindAnnounce, true
	}
	return "", false
}

// requestType is the request type asking for kind.
func requestType(kind storage.InteractionKind) string {
	switch kind {
	case storage.KindQuote:
		return "QuoteRequest"
	case storage.KindLike:
		return "LikeRequest"
	case storage.KindReply:
		return "ReplyRequest"
	case storage.KindAnnounce:
		return "AnnounceRequest"
	}
	return ""
}

// authorizationType is the type of the authorization granted for kind:
// Mastodon's QuoteAuthorization (app/serializers/activitypub/
// quote_authorization_serializer.rb), GoToSocial's LikeAuthorization,
// ReplyAuthorization and AnnounceAuthorization (internal/typeutils
// internaltoas.go InteractionReqToASAuthorization). GoToSocial checks that
// the type matches the interaction (internal/federation/dereferencing
// status_permitted.go isValidAuthorization).
func authorizationType(kind storage.InteractionKind) string {
	switch kind {
	case storage.KindQuote:
		return "QuoteAuthorization"
	case storage.KindLike:
		return "LikeAuthorization"
	case storage.KindReply:
		return "ReplyAuthorization"
	case storage.KindAnnounce:
		return "AnnounceAuthorization"
	}
	return ""
}

// Request is an interaction request as crieur answers it: the ids only,
// checked by the inbox before anything is built.
type Request struct {
	ID         string                  // the request activity's id
	Kind       storage.InteractionKind // what it asks for
	Actor      string                  // who asks: the interacting object's author
	Object     string                  // our Note
	Instrument string                  // the interacting object (quote, reply, Like, Announce)
}

// embeddedRequest is the request as Accept and Reject carry it: id, type,
// actor, object and instrument by id, the barebones form GoToSocial
// sends (InteractionReqToASAccept) and Mastodon embeds
// (accept_quote_request_serializer.rb, QuoteRequestSerializer).
func (r Request) embedded() map[string]any {
	return map[string]any{
		"id":         r.ID,
		"type":       requestType(r.Kind),
		"actor":      r.Actor,
		"object":     r.Object,
		"instrument": r.Instrument,
	}
}

// AuthorizationDocument is the authorization's body without @context:
// {id, type, attributedTo: the bot, interactingObject, interactionTarget}.
// FEP-044f forbids embedding interactingObject: ids only.
func (s *Builder) AuthorizationDocument(a storage.Authorization) map[string]any {
	return map[string]any{
		"id":                a.ID,
		"type":              authorizationType(a.Kind),
		"attributedTo":      s.cfg.ActorID(),
		"interactingObject": a.InteractingObject,
		"interactionTarget": a.InteractionTarget,
	}
}

// AuthorizationJSON is the authorization served at its id. A revoked one is
// federation.ErrGone (web then serves AuthorizationTombstoneJSON with 410),
// an unknown one federation.ErrNotFound.
func (s *Builder) AuthorizationJSON(id string) ([]byte, error) {
	a, err := s.authorization(id)
	if err != nil {
		return nil, err
	}
	if !a.RevokedAt.IsZero() {
		return nil, fmt.Errorf("documents: authorization %s revoked: %w", id, federation.ErrGone)
	}
	return encodeDocument(document(s.AuthorizationDocument(a)))
}

// AuthorizationTombstoneJSON is the body served with 410 at a revoked
// authorization's id; federation.ErrNotFound when it is not revoked.
func (s *Builder) AuthorizationTombstoneJSON(id string) ([]byte, error) {
	a, err := s.authorization(id)
	if err != nil {
		return nil, err
	}
	if a.RevokedAt.IsZero() {
		return nil, fmt.Errorf("documents: authorization tombstone %s: %w", id, federation.ErrNotFound)
	}
	return encodeDocument(document{
		"id":         a.ID,
		"type":       "Tombstone",
		"formerType": authorizationType(a.Kind),
		"deleted":    a.RevokedAt.UTC().Format(time.RFC3339),
	})
}

func (s *Builder) authorization(id string) (storage.Authorization, error) {
	a, err := s.store.Authorization(id)
	if errors.Is(err, storage.ErrNotFound) {
		return a, fmt.Errorf("documents: authorization %s: %w", id, federation.ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("documents: authorization %s: %w", id, err)
	}
	return a, nil
}

// AcceptRequest builds the Accept of an interaction request, addressed to
// the requester only: {id, type: Accept, actor: the bot, to: [requester],
// object: the request embedded, result: the authorization's URL}.
// Mastodon takes result as the quote's approval_uri and requires it on the
// Accept actor's host (app/lib/activitypub/activity/accept.rb
// accept_quote!); GoToSocial requires exactly one result and records it as
// the interaction's approval (internal/federation/federatingdb/accept.go
// parseAcceptInteractionRequestable).
func (s *Builder) AcceptRequest(r Request, authorizationID string) (storage.Activity, error) {
	return s.answerRequest("Accept", r, authorizationID)
}

// RejectRequest builds the Reject of an interaction request: the Accept's
// shape without result. Mastodon marks the quote rejected
// (app/lib/activitypub/activity/reject.rb); without an answer it would stay
// pending for ever.
func (s *Builder) RejectRequest(r Request) (storage.Activity, error) {
	return s.answerRequest("Reject", r, "")
}

func (s *Builder) answerRequest(typ string, r Request, result string) (storage.Activity, error) {
	if requestType(r.Kind) == "" || r.ID == "" || r.Actor == "" {
		return storage.Activity{}, fmt.Errorf("documents: build %s of request %q: incomplete request", typ, r.ID)
	}
	now := s.now().UTC().Truncate(time.Second)
	id := s.NewActivityID()
	d := document{
		"id":        id,
		"type":      typ,
		"actor":     s.cfg.ActorID(),
		"published": now.Format(time.RFC3339),
		"to":        []string{r.Actor},
		"object":    r.embedded(),
	}
	if result != "" {
		d["result"] = result
	}
	body, err := encodeDocument(d)
	if err != nil {
		return storage.Activity{}, fmt.Errorf("documents: build %s of request %s: %w", typ, r.ID, err)
	}
	return storage.Activity{ID: id, Type: typ, ObjectID: r.ID, Published: now, JSON: body}, nil
}
