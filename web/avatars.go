package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/storage"
)

// Remote avatars are fetched once, in the background, kept in storage
// and served by crieur at /avatars/<key>: a reader's browser never calls a
// third-party server, which would learn who reads what, and a page never
// waits for one.
const (
	// avatarFetchers is how many avatars are fetched at once.
	avatarFetchers = 4
	// avatarQueue bounds the avatars waiting for a fetcher; more are
	// left for a later page view, so a thread of a thousand authors
	// costs a few goroutines, not a thousand.
	avatarQueue = 256
	// avatarRetry is how long a refused or failed avatar stays a
	// placeholder before it is asked for again (the server may have been
	// down).
	avatarRetry = 24 * time.Hour
	// cacheAvatars: the URL names the remote URL, whose bytes are kept
	// and never fetched again, so the answer never changes.
	cacheAvatars = "public, max-age=31536000, immutable"
)

// FetchImageFunc fetches an image through the guarded client
// (transport.Client.FetchImage in cmd/crieur): its bytes and media type.
type FetchImageFunc func(ctx context.Context, rawURL string) (body []byte, contentType string, err error)

// avatarCache knows which remote avatars are kept and fetches the others
// in the background, bounded.
type avatarCache struct {
	store *storage.Store
	fetch FetchImageFunc // nil: no fetch, placeholders only
	log   *slog.Logger
	now   func() time.Time
	ctx   context.Context

	mu      sync.Mutex
	pending map[string]bool // keys queued or being fetched
	queue   chan string     // remote URLs waiting for a fetcher
	start   sync.Once
}

func newAvatarCache(store *storage.Store, fetch FetchImageFunc, ctx context.Context, log *slog.Logger, now func() time.Time) *avatarCache {
	if ctx == nil {
		ctx = context.Background()
	}
	return &avatarCache{
		store: store, fetch: fetch, log: log, now: now, ctx: ctx,
		pending: map[string]bool{}, queue: make(chan string, avatarQueue),
	}
}

// avatarKey names a remote avatar URL in storage and in crieur's URL: a
// digest, so the URL carries nothing remote.
func avatarKey(remote string) string {
	sum := sha256.Sum256([]byte(remote))
	return hex.EncodeToString(sum[:16])
}

// shortDigest is a short stable name for a remote id (HTML anchors).
func shortDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// url returns crieur's URL of the remote avatar when it is kept, else ""
// (the page shows initials) after queueing a fetch when none was tried
// recently. It never waits for the network.
func (a *avatarCache) url(remote string) string {
	if a == nil || a.store == nil || httpLink(remote) == "" {
		return ""
	}
	key := avatarKey(remote)
	info, err := a.store.AvatarInfo(key)
	switch {
	case err == nil && info.Refused == "":
		return "/avatars/" + key
	case err == nil && a.now().Sub(info.FetchedAt) < avatarRetry:
		return ""
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		a.log.Warn("web: avatar look-up", slog.String("error", err.Error()))
		return ""
	}
	a.schedule(key, remote)
	return ""
}

// schedule queues a fetch unless it is queued already or the queue is
// full (then a later view asks again).
func (a *avatarCache) schedule(key, remote string) {
	if a.fetch == nil {
		return
	}
	a.start.Do(func() {
		for range avatarFetchers {
			go a.fetcher()
		}
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending[key] {
		return
	}
	select {
	case a.queue <- remote:
		a.pending[key] = true
	default:
	}
}

// fetcher fetches queued avatars until the context ends, and records each
// outcome: the image, or why it was refused (too large, not an image, a
// private address, an error status), so the page shows a placeholder
// without asking again before avatarRetry.
func (a *avatarCache) fetcher() {
	for {
		var remote string
		select {
		case <-a.ctx.Done():
			return
		case remote = <-a.queue:
		}
		key := avatarKey(remote)
		body, ct, err := a.fetch(a.ctx, remote)
		rec := storage.Avatar{URL: remote, ContentType: ct, FetchedAt: a.now()}
		if err != nil {
			rec = storage.Avatar{URL: remote, FetchedAt: a.now(), Refused: err.Error()}
			body = nil
			a.log.Info("web: avatar refused", slog.String("url", remote), slog.String("error", err.Error()))
		}
		if err := a.store.PutAvatar(key, rec, body); err != nil {
			a.log.Warn("web: keep avatar", slog.String("url", remote), slog.String("error", err.Error()))
		}
		a.mu.Lock()
		delete(a.pending, key)
		a.mu.Unlock()
	}
}

// avatarImage is /avatars/<key>: a kept remote avatar, with the type it
// was checked to be, cached for good. nosniff (on every answer) keeps a
// browser from reading it as anything else.
func (s *server) avatarImage(c *gin.Context) {
	key := c.Param("key")
	if len(key) != 32 || s.store == nil {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	info, body, err := s.store.AvatarImage(key)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			_ = c.Error(err)
		}
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	c.Header("Cache-Control", cacheAvatars)
	// An image is never a document: even opened on its own, nothing in
	// it may run or load.
	c.Header("Content-Security-Policy", "default-src 'none'; sandbox")
	writeBody(c, http.StatusOK, info.ContentType, body)
}
