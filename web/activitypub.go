package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// noteCollection serves a Note's replies, likes or shares collection at
// its own id. A browser asking for one is sent to the article's
// comments: that is where people read them.
func (s *server) noteCollection(c *gin.Context, fn func(slug, lang string, page int) ([]byte, error)) {
	dual(c)
	slug, lang := c.Param("slug"), c.Param("lang")
	if !wantsActivityJSON(c.Request) {
		c.Header("Cache-Control", cachePages)
		c.Redirect(http.StatusSeeOther, "/posts/"+url.PathEscape(slug)+"/"+url.PathEscape(lang)+"#comments")
		return
	}
	s.collection(c, func(page int) ([]byte, error) { return fn(slug, lang, page) })
}

// replies is NoteID/replies: the public replies, paged (?page=N).
func (s *server) replies(c *gin.Context) {
	s.noteCollection(c, func(slug, lang string, page int) ([]byte, error) {
		return s.docs.RepliesJSON(slug, lang, page)
	})
}

// likes is NoteID/likes: a count, no pages.
func (s *server) likes(c *gin.Context) {
	s.noteCollection(c, func(slug, lang string, page int) ([]byte, error) {
		if page > 0 {
			return nil, fmt.Errorf("web: likes page %d: %w", page, federation.ErrNotFound)
		}
		return s.docs.LikesJSON(slug, lang)
	})
}

// shares is NoteID/shares: a count, no pages.
func (s *server) shares(c *gin.Context) {
	s.noteCollection(c, func(slug, lang string, page int) ([]byte, error) {
		if page > 0 {
			return nil, fmt.Errorf("web: shares page %d: %w", page, federation.ErrNotFound)
		}
		return s.docs.SharesJSON(slug, lang)
	})
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

// inbox is POST /@handle/inbox and POST /inbox. The checks that need no
// body come first (inbox.Precheck: an unsigned request is refused before a
// byte of its body is read), then the body is read under a size limit, a
// deadline and the server's budget of bytes being read, holding no slot: a
// slow sender costs only its own connection. Then the inbox verifies and
// handles it. Success is 202: the activity is accepted, its effects (an
// Accept) go through the delivery queue.
func (s *server) inbox(c *gin.Context) {
	c.Header("Cache-Control", cacheNone)
	if s.receiver == nil {
		s.inboxRefused(c, errNoFederation)
		return
	}
	if c.Request.ContentLength > s.cfg.InboxMaxBody {
		s.inboxRefused(c, fmt.Errorf("web: inbox: declared body of %d bytes: %w", c.Request.ContentLength, federation.ErrTooLarge))
		return
	}
	if err := s.receiver.Precheck(c.Request); err != nil {
		s.inboxRefused(c, err)
		return
	}
	body, err := s.readInboxBody(c)
	defer s.inboxBytes.Add(-int64(cap(body)))
	if err != nil {
		s.inboxRefused(c, err)
		return
	}
	if err := s.receiver.Receive(c.Request.Context(), c.Request, body); err != nil {
		s.inboxRefused(c, err)
		return
	}
	c.Status(http.StatusAccepted)
	c.Writer.WriteHeaderNow()
	if s.hooks.Inbox != nil {
		s.hooks.Inbox(InboxAccepted)
	}
}

// inboxRefused answers an inbox POST that failed and counts its outcome.
func (s *server) inboxRefused(c *gin.Context, err error) {
	status := s.jsonError(c, err)
	if s.hooks.Inbox != nil {
		s.hooks.Inbox(inboxOutcome(status))
	}
}

// readInboxBody reads the body within InboxReadTimeout and InboxMaxBody,
// charging every byte to the server's budget (InboxBodyBudget) as it
// arrives: bodies being read never hold more memory than the budget,
// whatever their number, and a sender that trickles holds only what it
// sent. The caller releases cap(body) from the budget, also on error.
func (s *server) readInboxBody(c *gin.Context) ([]byte, error) {
	limit := s.cfg.InboxMaxBody
	rc := http.NewResponseController(c.Writer)
	if err := rc.SetReadDeadline(time.Now().Add(s.cfg.InboxReadTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("web: inbox: read deadline: %w", err)
	}
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	r := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			// One allocation when the length is declared; doubling from
			// 4 KiB otherwise. limit+1 lets MaxBytesReader see an excess.
			grow := min(max(cap(buf), 4<<10), int(limit)+1-cap(buf))
			if cap(buf) == 0 && c.Request.ContentLength > 0 {
				grow = int(c.Request.ContentLength) + 1
			}
			if grow <= 0 {
				return buf, fmt.Errorf("web: inbox: body over %d bytes: %w", limit, federation.ErrTooLarge)
			}
			if s.inboxBytes.Add(int64(grow)) > s.cfg.InboxBodyBudget {
				s.inboxBytes.Add(-int64(grow))
				return buf, &federation.RetryError{
					Err:   fmt.Errorf("web: inbox: %w: bodies being read fill the budget of %d bytes", federation.ErrBusy, s.cfg.InboxBodyBudget),
					After: inboxBusyRetryAfter,
				}
			}
			buf = append(buf[:cap(buf)], make([]byte, grow)...)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return buf, fmt.Errorf("web: inbox: body over %d bytes: %w", limit, federation.ErrTooLarge)
			}
			return buf, fmt.Errorf("web: inbox: read body: %w: %v", federation.ErrBadRequest, err)
		}
	}
}

// inboxGet answers GET on an inbox: crieur keeps no readable inbox.
func (s *server) inboxGet(c *gin.Context) {
	c.Header("Allow", http.MethodPost)
	s.jsonStatus(c, http.StatusMethodNotAllowed, "method not allowed", nil)
}
