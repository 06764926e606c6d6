package web

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// errorStatus maps an error from federation, storage or the request body to
// an HTTP status and a short message that is safe to send: the error's own
// text never reaches a client (it may name files, hosts or keys).
func errorStatus(err error) (int, string) {
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.As(err, &tooBig), errors.Is(err, federation.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "request body too large"
	case errors.Is(err, federation.ErrBadRequest):
		return http.StatusBadRequest, "bad request"
	case errors.Is(err, federation.ErrUnauthorized):
		return http.StatusUnauthorized, "signature missing or not valid"
	case errors.Is(err, federation.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, federation.ErrNotFound), errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, federation.ErrGone):
		return http.StatusGone, "gone"
	case errors.Is(err, federation.ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, "unsupported media type"
	case errors.Is(err, federation.ErrRateLimited):
		return http.StatusTooManyRequests, "too many requests from your server: retry later"
	case errors.Is(err, federation.ErrBusy):
		return http.StatusServiceUnavailable, "busy: retry later"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

// errorBody is the JSON error document: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// jsonError answers a protocol request that failed, and returns the status
// it chose. The cause is attached to the Gin context so the request log
// line carries it: the failure is logged once, where the request ends.
func (s *server) jsonError(c *gin.Context, err error) int {
	status, msg := errorStatus(err)
	var retry *federation.RetryError
	if errors.As(err, &retry) {
		c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.After.Seconds())))))
	}
	s.jsonStatus(c, status, msg, err)
	return status
}

// jsonStatus answers with a status and a safe message; cause (may be nil)
// goes to the log only.
func (s *server) jsonStatus(c *gin.Context, status int, msg string, cause error) {
	if cause != nil {
		_ = c.Error(cause)
	}
	cache := cacheErrors
	if status >= 500 || c.Request.Method == http.MethodPost {
		cache = cacheNone
	}
	c.Header("Cache-Control", cache)
	writeJSON(c, status, typeJSON, errorBody{Error: msg})
}

// htmlError renders the HTML error page for status; cause (may be nil) goes
// to the log only.
func (s *server) htmlError(c *gin.Context, status int, cause error) {
	if cause != nil {
		_ = c.Error(cause)
	}
	cache := cacheErrors
	if status >= 500 {
		cache = cacheNone
	}
	c.Header("Cache-Control", cache)
	d := s.newPage(s.cfg.SiteLanguage)
	d.Status = status
	switch status {
	case http.StatusNotFound:
		d.Title = d.T("notfound_title")
		d.Message = d.T("notfound_text")
	case http.StatusGone:
		d.Title = d.T("gone_title")
		d.Message = d.T("gone_text")
	case http.StatusBadRequest:
		d.Title = d.T("badrequest_title")
		d.Message = d.T("badrequest_text")
	case http.StatusMethodNotAllowed:
		d.Title = d.T("notallowed_title")
		d.Message = d.T("notallowed_text")
	default:
		d.Title = d.T("error_title")
		d.Message = d.T("error_text")
	}
	s.render(c, status, "error", d)
}

// notFound answers unknown routes: HTML for people, JSON for protocol
// clients (an HTML error page to a JSON request is a classic mistake).
func (s *server) notFound(c *gin.Context) {
	if wantsActivityJSON(c.Request) {
		s.jsonStatus(c, http.StatusNotFound, "not found", nil)
		return
	}
	s.htmlError(c, http.StatusNotFound, nil)
}

func (s *server) methodNotAllowed(c *gin.Context) {
	if wantsActivityJSON(c.Request) {
		s.jsonStatus(c, http.StatusMethodNotAllowed, "method not allowed", nil)
		return
	}
	s.htmlError(c, http.StatusMethodNotAllowed, nil)
}
