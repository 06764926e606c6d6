package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/federation"
)

// dual marks a URL that answers both ActivityStreams JSON and HTML: caches
// must key on Accept, whichever representation this answer is.
func dual(c *gin.Context) { addVary(c, "Accept") }

// writeActivity sends an ActivityStreams document. Always
// application/activity+json: Gin's c.JSON would say application/json, and
// GoToSocial then fails the lookup without a word (INTEROP "Others").
func writeActivity(c *gin.Context, status int, body []byte) {
	cors(c)
	c.Header("Cache-Control", cacheDocuments)
	writeBody(c, status, typeActivityJSON, body)
}

// errNoFederation is the cause logged when a protocol route is hit on a
// server built without documents or inbox (tests of pages only).
var errNoFederation = errors.New("web: no federation service")

// document serves a protocol document built by fn, mapping its error.
func (s *server) document(c *gin.Context, fn func() ([]byte, error)) {
	if s.docs == nil {
		s.jsonError(c, errNoFederation)
		return
	}
	body, err := fn()
	if err != nil {
		s.jsonError(c, err)
		return
	}
	writeActivity(c, http.StatusOK, body)
}

// actor is /@handle: the actor document for fediverse servers, the
// profile page for browsers.
func (s *server) actor(c *gin.Context) {
	dual(c)
	if !wantsActivityJSON(c.Request) {
		s.profilePage(c, s.actorID)
		return
	}
	s.document(c, func() ([]byte, error) { return s.docs.ActorJSON() })
}

// article is /posts/{slug}/{lang}: the Note or the article page. After a
// Delete was announced both answer 410 (the JSON one with the Tombstone).
func (s *server) article(c *gin.Context) {
	dual(c)
	slug, lang := c.Param("slug"), c.Param("lang")
	if !wantsActivityJSON(c.Request) {
		s.articleHTML(c, slug, lang)
		return
	}
	if s.docs == nil {
		s.jsonError(c, errNoFederation)
		return
	}
	body, err := s.docs.NoteJSON(slug, lang)
	if errors.Is(err, federation.ErrGone) {
		if tomb, terr := s.docs.NoteTombstoneJSON(slug, lang); terr == nil {
			writeActivity(c, http.StatusGone, tomb)
			return
		}
	}
	if err != nil {
		s.jsonError(c, err)
		return
	}
	writeActivity(c, http.StatusOK, body)
}

// collectionPage reads ?page=N for a collection: absent is the collection
// itself (0), N >= 1 a page.
func collectionPage(c *gin.Context) (int, error) {
	v, present := c.GetQuery("page")
	if !present {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, fmt.Errorf("web: collection page %q: %w", v, federation.ErrBadRequest)
	}
	return n, nil
}

func (s *server) collection(c *gin.Context, fn func(page int) ([]byte, error)) {
	page, err := collectionPage(c)
	if err != nil {
		s.jsonError(c, err)
		return
	}
	s.document(c, func() ([]byte, error) { return fn(page) })
}

func (s *server) outbox(c *gin.Context) {
	s.collection(c, func(page int) ([]byte, error) { return s.docs.OutboxJSON(page) })
}

func (s *server) followers(c *gin.Context) {
	s.collection(c, func(page int) ([]byte, error) { return s.docs.FollowersJSON(page) })
}

func (s *server) following(c *gin.Context) {
	s.collection(c, func(page int) ([]byte, error) { return s.docs.FollowingJSON(page) })
}

func (s *server) featured(c *gin.Context) {
	s.document(c, func() ([]byte, error) { return s.docs.FeaturedJSON() })
}

// activity is /activities/{id}: a stored outgoing activity.
func (s *server) activity(c *gin.Context) {
	id := c.Param("id")
	s.document(c, func() ([]byte, error) { return s.docs.ActivityJSON(id) })
}

// inbox is POST /@handle/inbox and POST /inbox. The body is read under a
// limit before anything else, then federation verifies and handles it.
// Success is 202: the activity is accepted, its effects (an Accept) go
// through the delivery queue.
func (s *server) inbox(c *gin.Context) {
	c.Header("Cache-Control", cacheNone)
	if s.receiver == nil {
		s.jsonError(c, errNoFederation)
		return
	}
	// The slot is taken before the body is read: a request waiting for
	// one holds only its connection.
	if !s.takeInboxSlot(c.Request.Context()) {
		c.Header("Retry-After", inboxRetryAfter)
		s.jsonStatus(c, http.StatusServiceUnavailable, "busy: retry later", nil)
		return
	}
	defer func() { <-s.inboxSlots }()
	limit := s.cfg.InboxMaxBody
	if c.Request.ContentLength > limit {
		s.jsonError(c, fmt.Errorf("web: inbox: declared body of %d bytes: %w", c.Request.ContentLength, federation.ErrTooLarge))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fmt.Errorf("web: inbox: body over %d bytes: %w", limit, federation.ErrTooLarge)
		} else {
			err = fmt.Errorf("web: inbox: read body: %w: %v", federation.ErrBadRequest, err)
		}
		s.jsonError(c, err)
		return
	}
	if err := s.receiver.Receive(c.Request.Context(), c.Request, body); err != nil {
		s.jsonError(c, err)
		return
	}
	c.Status(http.StatusAccepted)
	c.Writer.WriteHeaderNow()
}

// takeInboxSlot waits up to InboxWait for one of the inbox's slots.
func (s *server) takeInboxSlot(ctx context.Context) bool {
	select {
	case s.inboxSlots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(s.cfg.InboxWait)
	defer t.Stop()
	select {
	case s.inboxSlots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// inboxGet answers GET on an inbox: crieur keeps no readable inbox.
func (s *server) inboxGet(c *gin.Context) {
	c.Header("Allow", http.MethodPost)
	s.jsonStatus(c, http.StatusMethodNotAllowed, "method not allowed", nil)
}
