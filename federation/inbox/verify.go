package inbox

import (
	"fmt"
	"net/http"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// Verified is the result of a successful signature check.
type Verified struct {
	KeyID string
	Owner string // actor id that owns the key
	key   storage.RemoteKey
}

// Verify checks the HTTP signature of an incoming request before anything
// changes: first every check that needs no key (signature.CheckRequest),
// then the key (cache, else a signed fetch) and the signature itself, with
// one key refetch when the cached key fails (rotation). Errors wrap
// federation.ErrUnauthorized, or ErrBadRequest for a POST without Digest.
func (s *Inbox) Verify(r *http.Request, body []byte) (*Verified, error) {
	p, err := signature.CheckRequest(r, body, s.now())
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	rk, err := s.resolveKey(ctx, p.KeyID, false)
	if err != nil {
		return nil, err
	}
	err = signature.VerifyCavage(r, rk.pub)
	if err != nil && !rk.fresh {
		// The cached key failed: the sender may have rotated it. Fetch
		// once more, like Mastodon.
		s.log.Info("inbox: signature failed with cached key, refetching", "key_id", p.KeyID)
		rk, err = s.resolveKey(ctx, p.KeyID, true)
		if err != nil {
			return nil, err
		}
		err = signature.VerifyCavage(r, rk.pub)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: signature by %s does not verify: %v", federation.ErrUnauthorized, p.KeyID, err)
	}
	return &Verified{KeyID: p.KeyID, Owner: rk.rec.Owner, key: rk.rec}, nil
}
