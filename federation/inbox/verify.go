package inbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// Verified is the result of a successful signature check.
type Verified struct {
	KeyID string
	Owner string // actor id that owns the key
	// SignedAt is the signed time: the Date of a draft-cavage signature,
	// created of an RFC 9421 one.
	SignedAt  time.Time
	key       storage.RemoteKey
	signature []byte // the signature itself, for replay detection
}

// Verify checks the HTTP signature of an incoming request before anything
// changes: first every check that needs no key (signature.CheckRequest),
// then the key (cache, else a signed fetch) and the signature itself, with
// one key refetch when the cached key fails (rotation). Errors wrap
// federation.ErrUnauthorized, or ErrBadRequest for a POST without Digest.
func (s *Inbox) Verify(r *http.Request, body []byte) (*Verified, error) {
	if signature.HasRFC9421(r) {
		return s.verifyRFC9421(r, body)
	}
	p, err := signature.CheckRequest(r, body, s.now())
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	rk, err := s.resolveKey(ctx, p.KeyID, false)
	if err != nil {
		return nil, err
	}
	err = signature.VerifyCavage(r, p, rk.pub)
	if err != nil && !rk.fresh {
		// The cached key failed: the sender may have rotated it. Fetch
		// once more, like Mastodon.
		s.log.Debug("inbox: signature failed with cached key, refetching", "key_id", p.KeyID)
		rk, err = s.resolveKey(ctx, p.KeyID, true)
		if err != nil {
			return nil, err
		}
		err = signature.VerifyCavage(r, p, rk.pub)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: signature by %s does not verify: %v", federation.ErrUnauthorized, p.KeyID, err)
	}
	return &Verified{KeyID: p.KeyID, Owner: rk.rec.Owner, SignedAt: p.Signed, key: rk.rec, signature: []byte(p.Signature)}, nil
}

// verifyRFC9421 checks an RFC 9421 signature (Signature-Input present, as
// Mastodon decides): every key-free check first, then the key through the
// same resolution as draft-cavage, with one refetch when the cached key
// fails. The target URI is rebuilt from crieur's own base URL, never from
// forwarding headers.
func (s *Inbox) verifyRFC9421(r *http.Request, body []byte) (*Verified, error) {
	var rk resolvedKey
	lookup := func(refresh bool) signature.KeyLookup {
		return func(ctx context.Context, keyID string) (*signature.PublicKey, error) {
			if refresh && rk.fresh {
				// Fetched for this very request: a refetch finds the same key.
				return rk.pub, nil
			}
			k, err := s.resolveKey(ctx, keyID, refresh)
			if err != nil {
				return nil, err
			}
			if refresh {
				s.log.Debug("inbox: signature failed with cached key, refetching", "key_id", keyID)
			}
			rk = k
			return k.pub, nil
		}
	}
	res, err := signature.VerifyRFC9421(r, body, signature.Options{
		Key:     lookup(false),
		Refetch: lookup(true),
		Now:     s.now,
		BaseURL: s.cfg.BaseURL,
	})
	if err != nil {
		if errors.Is(err, federation.ErrUnauthorized) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: RFC 9421 signature: %v", federation.ErrUnauthorized, err)
	}
	return &Verified{KeyID: res.KeyID, Owner: rk.rec.Owner, SignedAt: res.Created, key: rk.rec, signature: res.Signature}, nil
}
