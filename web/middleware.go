package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// recovery turns a panicking handler into a 500 and one log line with the
// stack, instead of a dropped connection. http.ErrAbortHandler keeps its
// meaning (abort the response silently).
func (s *server) recovery(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			panic(v)
		}
		s.log.Error("web: handler panicked",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Any("panic", v),
			slog.String("stack", string(debug.Stack())))
		if !c.Writer.Written() {
			c.Header("Cache-Control", cacheNone)
			c.Data(http.StatusInternalServerError, typeText, []byte("internal error\n"))
		}
		c.Abort()
	}()
	c.Next()
}

// requestLog writes one structured line per request, with the cause of a
// failure when a handler attached one (see jsonError/htmlError): each
// failure is logged once, here. Hooks.Request counts the request here too.
func (s *server) requestLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	elapsed := time.Since(start)
	if s.hooks.Request != nil {
		// FullPath is the matched route's template ("" for none): the
		// group comes from a map filled once, no URL is ever a label.
		s.hooks.Request(s.groups[c.FullPath()], status, elapsed)
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Int("bytes", max(c.Writer.Size(), 0)),
		slog.Duration("duration", elapsed),
		slog.String("remote", c.Request.RemoteAddr),
		slog.String("user_agent", c.Request.UserAgent()),
	}
	if q := c.Request.URL.RawQuery; q != "" {
		attrs = append(attrs, slog.String("query", q))
	}
	if err := c.Errors.Last(); err != nil {
		attrs = append(attrs, slog.String("error", err.Err.Error()))
	}
	s.log.LogAttrs(c.Request.Context(), level, "web: request", attrs...)
}

// securityHeaders are sent with every answer. The CSP matters for HTML: the
// article body is sanitised by posts, and the policy is the second fence.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	h.Set("Content-Security-Policy", csp("'self'"))
	c.Next()
}

// csp is the page policy with the given form-action sources.
func csp(formAction string) string {
	return "default-src 'none'; img-src 'self' https: data:; style-src 'self'; " +
		"base-uri 'none'; form-action " + formAction + "; frame-ancestors 'none'"
}

// allowFormRedirect is for pages with the visit form: browsers check
// form-action on every redirect of a form's submission too, and the form's
// answer is a 303 to the visitor's own server, any https host. Only the
// form's target is ours; scripts, frames and the rest stay refused.
func allowFormRedirect(c *gin.Context) {
	c.Header("Content-Security-Policy", csp("'self' https:"))
}

// addVary appends a value to the Vary header once.
func addVary(c *gin.Context, value string) {
	h := c.Writer.Header()
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), value) {
				return
			}
		}
	}
	h.Add("Vary", value)
}

// writeBody sends a complete body. Successful GET/HEAD answers get a strong
// ETag (the body is byte-exact) and If-None-Match is honoured, so feed
// readers and fediverse servers that poll pay little.
func writeBody(c *gin.Context, status int, contentType string, body []byte) {
	h := c.Writer.Header()
	h.Set("Content-Type", contentType)
	if status == http.StatusOK && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) {
		sum := sha256.Sum256(body)
		etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
		h.Set("ETag", etag)
		if etagMatches(c.Request.Header.Get("If-None-Match"), etag) {
			h.Del("Content-Type")
			c.Status(http.StatusNotModified)
			c.Writer.WriteHeaderNow()
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.Status(status)
	c.Writer.WriteHeaderNow()
	if c.Request.Method != http.MethodHead {
		_, _ = c.Writer.Write(body)
	}
}

// etagMatches implements the weak comparison If-None-Match asks for.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// encodeJSON encodes v without HTML escaping: '<' and '&' stay readable in
// content and URLs, and byte counts stay honest (INTEROP #12).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("web: encode json: %w", err)
	}
	return buf.Bytes(), nil
}

// writeJSON encodes v and sends it with the given content type. Gin's c.JSON
// is never used: it would send application/json for ActivityStreams.
func writeJSON(c *gin.Context, status int, contentType string, v any) {
	body, err := encodeJSON(v)
	if err != nil {
		_ = c.Error(err)
		c.Header("Cache-Control", cacheNone)
		c.Data(http.StatusInternalServerError, typeJSON, []byte(`{"error":"internal error"}`+"\n"))
		return
	}
	writeBody(c, status, contentType, body)
}
