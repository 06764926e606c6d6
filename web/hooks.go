package web

import (
	"net/http"
	"time"
)

// RouteGroup is the kind of route a request matched, for counting: a small
// fixed set, never a URL.
type RouteGroup uint8

const (
	RouteOther       RouteGroup = iota // no route matched (404, 405)
	RoutePage                          // HTML pages (an article also serves its Note)
	RouteFeed                          // Atom and RSS
	RouteMedia                         // images, media beside articles, static files
	RouteDiscovery                     // WebFinger, host-meta, NodeInfo
	RouteActivityPub                   // the actor, its collections, activities, authorizations
	RouteInbox                         // the inboxes (POST, and GET's 405)
	NumRouteGroups                     // how many groups there are
)

// String is the group's label value.
func (g RouteGroup) String() string {
	switch g {
	case RoutePage:
		return "page"
	case RouteFeed:
		return "feed"
	case RouteMedia:
		return "media"
	case RouteDiscovery:
		return "discovery"
	case RouteActivityPub:
		return "activitypub"
	case RouteInbox:
		return "inbox"
	default:
		return "other"
	}
}

// InboxOutcome is what became of one POST to an inbox: accepted, or the
// class of its refusal, as errorStatus maps it to HTTP.
type InboxOutcome uint8

const (
	InboxAccepted             InboxOutcome = iota // 202
	InboxBadRequest                               // 400
	InboxUnauthorized                             // 401: signature missing or not valid
	InboxForbidden                                // 403: blocked, or the key's owner is not the actor
	InboxNotFound                                 // 404
	InboxGone                                     // 410
	InboxTooLarge                                 // 413
	InboxUnsupportedMediaType                     // 415
	InboxRateLimited                              // 429
	InboxBusy                                     // 503
	InboxError                                    // 500 and anything else
	NumInboxOutcomes                              // how many outcomes there are
)

// String is the outcome's label value.
func (o InboxOutcome) String() string {
	switch o {
	case InboxAccepted:
		return "accepted"
	case InboxBadRequest:
		return "bad_request"
	case InboxUnauthorized:
		return "unauthorized"
	case InboxForbidden:
		return "forbidden"
	case InboxNotFound:
		return "not_found"
	case InboxGone:
		return "gone"
	case InboxTooLarge:
		return "too_large"
	case InboxUnsupportedMediaType:
		return "unsupported_media_type"
	case InboxRateLimited:
		return "rate_limited"
	case InboxBusy:
		return "busy"
	default:
		return "error"
	}
}

// inboxOutcome classes an inbox answer by its status, which errorStatus
// chose from the error's sentinel.
func inboxOutcome(status int) InboxOutcome {
	switch status {
	case http.StatusAccepted, http.StatusOK:
		return InboxAccepted
	case http.StatusBadRequest:
		return InboxBadRequest
	case http.StatusUnauthorized:
		return InboxUnauthorized
	case http.StatusForbidden:
		return InboxForbidden
	case http.StatusNotFound:
		return InboxNotFound
	case http.StatusGone:
		return InboxGone
	case http.StatusRequestEntityTooLarge:
		return InboxTooLarge
	case http.StatusUnsupportedMediaType:
		return InboxUnsupportedMediaType
	case http.StatusTooManyRequests:
		return InboxRateLimited
	case http.StatusServiceUnavailable:
		return InboxBusy
	default:
		return InboxError
	}
}

// Hooks let the caller count what the web room answers (cmd/crieur wires
// them to its metrics). A nil field counts nothing. They run on every
// request, after the answer is written: they must be cheap and must not
// block.
type Hooks struct {
	// Request is told of every request: its route group, its status and
	// how long the handlers took.
	Request func(group RouteGroup, status int, elapsed time.Duration)
	// Inbox is told of every POST to an inbox, once its outcome is known.
	Inbox func(InboxOutcome)
}
