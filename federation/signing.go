package federation

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-fed/httpsig"
)

// Signer signs outgoing requests with the bot's key (draft-cavage,
// rsa-sha256). It is safe for concurrent use: every call builds its own
// go-fed signer, because go-fed signers are not safe for concurrent use and a
// shared mutex would serialise the delivery workers' RSA operations.
type Signer struct {
	keyID string
	key   *rsa.PrivateKey
	now   func() time.Time
}

// NewSigner returns a Signer for keyID (BASE/@handle#main-key) and key. now
// may be nil (time.Now).
func NewSigner(keyID string, key *rsa.PrivateKey, now func() time.Time) (*Signer, error) {
	if keyID == "" {
		return nil, errors.New("federation: new signer: empty key id")
	}
	if key == nil {
		return nil, errors.New("federation: new signer: nil key")
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{keyID: keyID, key: key, now: now}, nil
}

// KeyID is the key id written into signatures.
func (s *Signer) KeyID() string { return s.keyID }

// Headers signed on outgoing requests (INTEROP: POST signs digest too).
var (
	postSignedHeaders = []string{httpsig.RequestTarget, "host", "date", "digest"}
	getSignedHeaders  = []string{httpsig.RequestTarget, "host", "date"}
)

// SignRequest sets Host, a fresh Date and (for a body) Digest, and signs the
// request. Call it once per attempt, just before sending: a retried request
// must carry a fresh Date. body must be the exact bytes that will be sent;
// nil means no body (GET).
func (s *Signer) SignRequest(req *http.Request, body []byte) error {
	if req.URL == nil || req.URL.Host == "" {
		return errors.New("federation: sign request: no host in URL")
	}
	// Go keeps the host in req.Host; go-fed reads the header map.
	req.Header.Set("Host", req.URL.Host)
	req.Host = req.URL.Host
	req.Header.Set("Date", s.now().UTC().Format(http.TimeFormat))
	// go-fed refuses to sign when Digest is already present (a retry).
	req.Header.Del("Signature")
	req.Header.Del("Digest")
	headers := getSignedHeaders
	if body != nil {
		headers = postSignedHeaders
	}
	signer, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256, headers, httpsig.Signature, 0)
	if err != nil {
		return fmt.Errorf("federation: sign request: %w", err)
	}
	if err := signer.SignRequest(s.key, s.keyID, req, body); err != nil {
		return fmt.Errorf("federation: sign request: %w", err)
	}
	return nil
}
