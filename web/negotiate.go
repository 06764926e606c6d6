package web

import (
	"net/http"
	"strconv"
	"strings"
)

// activityStreamsProfile is the JSON-LD profile that marks an
// application/ld+json request or document as ActivityStreams.
const activityStreamsProfile = "https://www.w3.org/ns/activitystreams"

// Media types crieur serves.
const (
	typeActivityJSON = "application/activity+json; charset=utf-8"
	typeJRD          = "application/jrd+json; charset=utf-8"
	typeJSON         = "application/json; charset=utf-8"
	typeHTML         = "text/html; charset=utf-8"
	typeXRD          = "application/xrd+xml; charset=utf-8"
	typeAtom         = "application/atom+xml; charset=utf-8"
	typeRSS          = "application/rss+xml; charset=utf-8"
	typeText         = "text/plain; charset=utf-8"
)

// wantsActivityJSON is the one content negotiation helper: it reports whether
// the request prefers an ActivityStreams document over HTML. All Accept
// headers count (a client may send several); q-values are honoured, so
// "text/html, application/activity+json;q=0.1" gets HTML.
func wantsActivityJSON(r *http.Request) bool {
	return prefersActivityJSON(r.Header.Values("Accept"))
}

// prefersActivityJSON decides on raw Accept header values.
//
// A media range counts for ActivityStreams when it is
// application/activity+json, or application/ld+json whose profile (quoted or
// not; a JSON-LD profile may list several URIs) names ActivityStreams, or
// application/ld+json without a profile (only JSON-LD clients send that; the
// rule INTEROP CN-1 states). Wildcards never count for ActivityStreams: a
// browser's "*/*" must get HTML. For HTML the most specific matching range
// decides (text/html or application/xhtml+xml, then text/*, then */*), as
// RFC 9110 §12.5.1 says. JSON wins when it is acceptable (q > 0) and at least
// as preferred as HTML; a client that names ActivityStreams explicitly at the
// same weight as HTML is a fediverse client.
func prefersActivityJSON(headers []string) bool {
	apQ := 0.0
	// htmlQ[i] is the best q seen at specificity i (0: */*, 1: text/*,
	// 2: an explicit HTML type); -1 when no range of that specificity.
	htmlQ := [3]float64{-1, -1, -1}
	for _, h := range headers {
		for _, rng := range splitOutsideQuotes(h, ',') {
			mt, params, ok := parseMediaRange(rng)
			if !ok {
				continue
			}
			q, ok := parseQ(params["q"])
			if !ok {
				continue
			}
			switch {
			case isActivityStreams(mt, params):
				apQ = max(apQ, q)
			case mt == "text/html" || mt == "application/xhtml+xml":
				htmlQ[2] = max(htmlQ[2], q)
			case mt == "text/*":
				htmlQ[1] = max(htmlQ[1], q)
			case mt == "*/*":
				htmlQ[0] = max(htmlQ[0], q)
			}
		}
	}
	html := 0.0
	for i := len(htmlQ) - 1; i >= 0; i-- {
		if htmlQ[i] >= 0 {
			html = htmlQ[i]
			break
		}
	}
	return apQ > 0 && apQ >= html
}

// isActivityStreams reports whether a parsed media range names the
// ActivityStreams JSON serialisation.
func isActivityStreams(mt string, params map[string]string) bool {
	switch mt {
	case "application/activity+json":
		return true
	case "application/ld+json":
		profile, ok := params["profile"]
		if !ok {
			return true
		}
		for _, p := range strings.Fields(profile) {
			p = strings.TrimRight(p, "#/")
			if p == activityStreamsProfile || p == "http://www.w3.org/ns/activitystreams" {
				return true
			}
		}
	}
	return false
}

// parseMediaRange splits "type/subtype; k=v; k2=\"v 2\"" into a lower-case
// media type and parameters (lower-case names, unquoted values; the first of
// a repeated name wins). It is lenient where clients are sloppy: unquoted
// URLs as values (mime.ParseMediaType refuses the ':' and '/' in them),
// spaces around '=' and empty parameters.
func parseMediaRange(s string) (string, map[string]string, bool) {
	parts := splitOutsideQuotes(s, ';')
	if len(parts) == 0 {
		return "", nil, false
	}
	mt := strings.ToLower(strings.TrimSpace(parts[0]))
	slash := strings.IndexByte(mt, '/')
	if slash <= 0 || slash == len(mt)-1 || strings.ContainsAny(mt, " \t\"") {
		return "", nil, false
	}
	params := make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		name, value, found := strings.Cut(p, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !found || name == "" {
			continue
		}
		if _, dup := params[name]; dup {
			continue
		}
		params[name] = unquote(strings.TrimSpace(value))
	}
	return mt, params, true
}

// parseQ reads a q-value; empty means 1. Values outside [0, 1] or not
// numbers make the whole range invalid, so it is ignored.
func parseQ(s string) (float64, bool) {
	if s == "" {
		return 1, true
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil || !(q >= 0 && q <= 1) {
		return 0, false
	}
	return q, true
}

// splitOutsideQuotes splits s at sep, except inside double-quoted strings
// (where a backslash escapes the next byte). Empty pieces are dropped.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			if p := strings.TrimSpace(s[start:i]); p != "" {
				out = append(out, p)
			}
			start = i + 1
		}
	}
	if start < len(s) {
		if p := strings.TrimSpace(s[start:]); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// unquote removes the quotes of a quoted-string and its backslash escapes;
// a token is returned as it is.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
