package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/federation"
)

// authorization is /authorizations/{id}: the QuoteAuthorization,
// LikeAuthorization, ReplyAuthorization or AnnounceAuthorization crieur
// granted, at exactly its id, for the servers that check an approval
// (Mastodon refuses to show a quote whose stamp does not dereference).
// A revoked one answers 410 with a Tombstone. A browser is sent to the
// article the interaction is about: the document means nothing to a person.
func (s *server) authorization(c *gin.Context) {
	dual(c)
	if s.docs == nil {
		s.jsonError(c, errNoFederation)
		return
	}
	id := s.base + "/authorizations/" + c.Param("id")
	if !wantsActivityJSON(c.Request) {
		s.authorizationHTML(c, id)
		return
	}
	body, err := s.docs.AuthorizationJSON(id)
	if errors.Is(err, federation.ErrGone) {
		if tomb, terr := s.docs.AuthorizationTombstoneJSON(id); terr == nil {
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

// authorizationHTML redirects a standing authorization to its Note's page
// (the Note's id is the article's URL); error pages otherwise.
func (s *server) authorizationHTML(c *gin.Context, id string) {
	a, err := s.docs.Store().Authorization(id)
	if err != nil {
		status, _ := errorStatus(err)
		s.htmlError(c, status, fmt.Errorf("web: authorization page: %w", err))
		return
	}
	if !a.RevokedAt.IsZero() {
		s.htmlError(c, http.StatusGone, nil)
		return
	}
	c.Header("Cache-Control", cacheDocuments)
	c.Redirect(http.StatusSeeOther, a.InteractionTarget)
}
