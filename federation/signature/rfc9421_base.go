// The RFC 9421 signature base: the request as the covered components see
// it (RFC 9421 section 2), and the Content-Digest check (RFC 9530).

package signature

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// message is what the derived components are computed from.
type message struct {
	r             *http.Request
	method        string
	scheme        string
	authority     string // normalised: lower case, no default port
	requestTarget string // as on the request line
	targetURI     string
	path, query   string // raw; query without "?"
}

func newMessage(r *http.Request, baseURL string) (*message, error) {
	m := &message{r: r, method: r.Method}
	m.scheme, m.authority = "http", r.Host
	if r.TLS != nil {
		m.scheme = "https"
	}
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("rfc9421: BaseURL %q is not an http(s) URL", baseURL)
		}
		m.scheme, m.authority = u.Scheme, u.Host
	}
	m.authority = normalizeAuthority(m.scheme, m.authority)

	rt := r.RequestURI
	if rt == "" && r.URL != nil {
		rt = r.URL.RequestURI() // a request built in a program, not read from the wire
	}
	m.requestTarget = rt
	switch {
	case strings.HasPrefix(rt, "/"):
		m.path, m.query, _ = strings.Cut(rt, "?")
		m.targetURI = m.scheme + "://" + m.authority + rt
	case r.URL != nil && r.URL.IsAbs():
		// absolute-form, as sent to a proxy
		m.path, m.query = r.URL.EscapedPath(), r.URL.RawQuery
		m.targetURI = rt
	default:
		m.path = rt
		m.targetURI = m.scheme + "://" + m.authority + rt
	}
	if m.path == "" {
		m.path = "/"
	}
	return m, nil
}

// normalizeAuthority lower-cases host[:port] and drops the scheme's
// default port (RFC 9110 §4.2.3, as RFC 9421 §2.2.3 asks).
func normalizeAuthority(scheme, a string) string {
	a = strings.ToLower(a)
	if (scheme == "https" && strings.HasSuffix(a, ":443")) || (scheme == "http" && strings.HasSuffix(a, ":80")) {
		a = a[:strings.LastIndexByte(a, ':')]
	}
	return a
}

// componentValue derives one covered component (RFC 9421 §2.1, §2.2).
func (m *message) componentValue(name string, params *httpsfv.Params) (string, error) {
	switch name {
	case "@method":
		return m.method, nil
	case "@target-uri":
		return m.targetURI, nil
	case "@authority":
		return m.authority, nil
	case "@scheme":
		return m.scheme, nil
	case "@request-target":
		return m.requestTarget, nil
	case "@path":
		return m.path, nil
	case "@query":
		return "?" + m.query, nil
	case "@query-param":
		v, _ := params.Get("name")
		return m.queryParam(v.(string))
	}
	var values []string
	if name == "host" && len(m.r.Header.Values("Host")) == 0 {
		// Go's server moves Host out of the header map.
		if m.r.Host != "" {
			values = []string{m.r.Host}
		}
	} else {
		values = m.r.Header.Values(name)
	}
	if len(values) == 0 {
		return "", fmt.Errorf("%w: covered field %q is absent", ErrMalformed, name)
	}
	// Header.Values returns the map's own slice: trim into a copy.
	trimmed := make([]string, len(values))
	for i, v := range values {
		trimmed[i] = strings.Trim(v, " \t")
	}
	return strings.Join(trimmed, ", "), nil
}

// queryParam is the value of the query parameter whose encoded name is
// name (RFC 9421 §2.2.8): the query is parsed as
// application/x-www-form-urlencoded, then names and values re-encoded.
// A parameter that is absent or appears more than once is an error.
func (m *message) queryParam(name string) (string, error) {
	var value string
	found := 0
	for _, pair := range strings.Split(m.query, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if formEncode(formDecode(k)) == name {
			value = formEncode(formDecode(v))
			found++
		}
	}
	switch found {
	case 0:
		return "", fmt.Errorf("%w: query parameter %q is absent", ErrMalformed, name)
	case 1:
		return value, nil
	}
	return "", fmt.Errorf("%w: query parameter %q appears %d times", ErrMalformed, name, found)
}

// formDecode is the WHATWG application/x-www-form-urlencoded decoding of
// one name or value: '+' is a space, %XX a byte, a stray '%' itself.
func formDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// formEncode percent-encodes every byte but ASCII letters, digits and
// "*-._", a space as %20 (RFC 9421 §2.2.8's examples).
func formEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("*-._", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// signatureBase builds the signature base of RFC 9421 §2.5: one line per
// covered component, `"name";params: value`, then the
// "@signature-params" line, the covered components and the parameters
// serialised as an inner list. Serialisations are httpsfv's, which are
// RFC 8941's canonical ones, as the RFC requires: a sender whose header
// has extra spaces still signed the canonical form.
func signatureBase(m *message, components []httpsfv.Item, params *httpsfv.Params) (string, error) {
	var b strings.Builder
	for _, c := range components {
		id, err := httpsfv.Marshal(c)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		v, err := m.componentValue(c.Value.(string), c.Params)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("%w: component %s has a line break", ErrMalformed, id)
		}
		b.WriteString(id)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	sp, err := httpsfv.Marshal(httpsfv.List{httpsfv.InnerList{Items: components, Params: params}})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(sp)
	return b.String(), nil
}

// checkContentDigest checks Content-Digest (RFC 9530) against the raw
// body: at least one sha-256 or sha-512 member, and every such member
// right. Other algorithms are ignored, as RFC 9530 lets a recipient do.
// Mastodon requires sha-256; WordPress and Fedify take either.
func checkContentDigest(values []string, body []byte) error {
	if len(values) == 0 {
		return fmt.Errorf("%w: no Content-Digest header", ErrDigest)
	}
	d, err := parseDict("Content-Digest", values)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDigest, err)
	}
	checked := 0
	for _, alg := range d.Names() {
		var sum []byte
		switch alg {
		case "sha-256":
			s := sha256.Sum256(body)
			sum = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			sum = s[:]
		default:
			continue
		}
		m, _ := d.Get(alg)
		item, ok := m.(httpsfv.Item)
		if !ok {
			return fmt.Errorf("%w: %s is not a byte sequence", ErrDigest, alg)
		}
		given, ok := item.Value.([]byte)
		if !ok {
			return fmt.Errorf("%w: %s is not a byte sequence", ErrDigest, alg)
		}
		if subtle.ConstantTimeCompare(given, sum) != 1 {
			return fmt.Errorf("%w: %s does not match the body", ErrDigest, alg)
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("%w: no sha-256 or sha-512 digest", ErrDigest)
	}
	return nil
}
