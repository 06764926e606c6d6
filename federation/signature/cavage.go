package signature

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// VerifyCavage checks the draft-cavage-http-signatures-12 signature of r,
// parsed into p by CheckHeaders or CheckRequest (which make the checks
// that need no key), with pub. (request-target) is tried with the query
// and, when there is one and that fails, without it, as Mastodon and
// GoToSocial do.
//
// It builds the signing string as go-fed's verifier did, which crieur used
// before, so that what verified then verifies now: see cavageSigningString.
// Unlike go-fed it reads the one Signature header CheckHeaders parsed and
// never an Authorization header.
func VerifyCavage(r *http.Request, p Params, pub *PublicKey) error {
	if p.Algorithm != "rsa-sha256" && p.Algorithm != "hs2019" {
		return fmt.Errorf("unsupported signature algorithm %q", p.Algorithm)
	}
	// go-fed decoded with the padded standard alphabet, not strictly.
	sig, err := base64.StdEncoding.DecodeString(p.Signature)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	err = verifyCavageString(r, p, pub, sig, true)
	if err == nil || r.URL.RawQuery == "" {
		return err
	}
	if verifyCavageString(r, p, pub, sig, false) == nil {
		return nil
	}
	return err
}

func verifyCavageString(r *http.Request, p Params, pub *PublicKey, sig []byte, withQuery bool) error {
	s, err := cavageSigningString(r, p, withQuery)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(s)
	return pub.VerifySHA256(sum[:], sig)
}

// cavageSigningString is the draft-cavage signing string of r over
// p.Headers, byte for byte what go-fed v1.1.0 builds (signatureString and
// addRequestTarget), one line per signed name, joined with "\n":
//
//   - (request-target): the method in lower case, a space, r.URL.Path (the
//     decoded path, as go-fed reads it) and "?" RawQuery when there is
//     one and withQuery;
//   - (created), (expires): the parameter's decimal value; signing one
//     that is absent (or 0) is an error;
//   - host: r.Host, as the server saw it (go-fed copied it into the header
//     map when the map had none, which a server's request never has); the
//     Host header only when r.Host is empty;
//   - any other name: the header's values (looked up by the canonical
//     name, an absent header is an error), each trimmed of white space,
//     joined with ", ".
func cavageSigningString(r *http.Request, p Params, withQuery bool) ([]byte, error) {
	if len(p.Headers) == 0 {
		return nil, errors.New("no signed headers") // ParseHeader never gives none
	}
	b := make([]byte, 0, 256)
	for i, name := range p.Headers {
		name = strings.ToLower(name)
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, name...)
		b = append(b, ": "...)
		switch name {
		case "(request-target)":
			b = append(b, strings.ToLower(r.Method)...)
			b = append(b, ' ')
			b = append(b, r.URL.Path...)
			if withQuery && r.URL.RawQuery != "" {
				b = append(b, '?')
				b = append(b, r.URL.RawQuery...)
			}
		case "(created)", "(expires)":
			v := p.Created
			if name == "(expires)" {
				v = p.Expires
			}
			if v == 0 {
				return nil, fmt.Errorf("%s signed without its parameter", name)
			}
			b = strconv.AppendInt(b, v, 10)
		case "host":
			if r.Host != "" {
				b = append(b, strings.TrimSpace(r.Host)...)
				break
			}
			fallthrough
		default:
			values, ok := r.Header[textproto.CanonicalMIMEHeaderKey(name)]
			if !ok {
				return nil, fmt.Errorf("signed header %q missing", name)
			}
			for j, v := range values {
				if j > 0 {
					b = append(b, ", "...)
				}
				b = append(b, strings.TrimSpace(v)...)
			}
		}
	}
	return b, nil
}
