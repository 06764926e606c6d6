// Package web owns crieur's HTTP face: the Gin routes, content negotiation
// between ActivityStreams JSON (for fediverse servers) and HTML (for people),
// the HTML pages and their embedded templates and CSS, the Atom and RSS feeds,
// and the discovery documents (WebFinger, host-meta, NodeInfo). It reads posts
// and storage and asks federation for protocol documents and inbox handling;
// it maps their errors to HTTP status codes in one place (errors.go).
package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/inbox"
	"github.com/crieur/crieur/storage"
)

// Defaults for zero Config fields.
const (
	// DefaultPageSize is how many articles a listing page shows.
	DefaultPageSize = 10
	// DefaultInboxBodyBudget bounds the memory of inbox bodies being read
	// at once: 1,000 Follows at once held 300 MiB of RSS without a bound.
	// A request that finds it full is answered 503 with Retry-After
	// (every server retries those).
	DefaultInboxBodyBudget = 64 << 20
	// DefaultInboxReadTimeout is how long a sender has to send its whole
	// body once its headers passed: real ones take milliseconds.
	DefaultInboxReadTimeout = 10 * time.Second
	// inboxBusyRetryAfter is the Retry-After of that 503.
	inboxBusyRetryAfter = 30 * time.Second
	// DefaultInboxMaxBody caps an inbox POST body. Mastodon's own limit is
	// about 1 MiB; real activities are a few KiB.
	DefaultInboxMaxBody = 1 << 20
	// feedItems is how many entries the Atom and RSS feeds carry.
	feedItems = 50
	// maxPage bounds ?page=N so a silly number cannot cost anything.
	maxPage = 1_000_000
)

// Cache lifetimes. They are modest on purpose: an edited article or a new
// follower count should show within minutes, and a reverse proxy may cache.
const (
	cachePages     = "public, max-age=300"
	cacheDocuments = "public, max-age=180"
	cacheDiscovery = "public, max-age=3600"
	cacheStatic    = "public, max-age=86400"
	cacheErrors    = "public, max-age=60"
	cacheNone      = "no-store"
)

// Config is what the web room needs to know about the site. Build it once in
// cmd/crieur.
type Config struct {
	// BaseURL is scheme://host[:port] without a trailing slash; every id and
	// link is built from it.
	BaseURL string
	// Handle is the bot's preferredUsername, e.g. "reports".
	Handle      string
	DisplayName string
	// Bio is plain text; blank lines separate paragraphs.
	Bio string
	// SiteLanguage is the language of the home, tag and error pages and the
	// fallback for /posts/{slug} (ISO 639-1, e.g. "fr"). Default "en".
	SiteLanguage string
	// Software and Version are shown in NodeInfo and the generator of feeds.
	Software string
	Version  string
	// Repository and Homepage of the software, for NodeInfo 2.1. Empty
	// Repository defaults to the module's home; empty Homepage is omitted.
	Repository string
	Homepage   string
	// PageSize is how many articles a listing page shows (default 10).
	PageSize int
	// InboxMaxBody caps inbox POST bodies (default 1 MiB); larger → 413.
	InboxMaxBody int64
	// InboxBodyBudget bounds the bytes of inbox bodies being read at once
	// (DefaultInboxBodyBudget); InboxReadTimeout is the time a sender has
	// for its body (DefaultInboxReadTimeout).
	InboxBodyBudget  int64
	InboxReadTimeout time.Duration
	// AvatarPath is an image file served at /avatar; empty serves the
	// embedded placeholder SVG.
	AvatarPath string
	// HeaderPath is an image file served at /header; empty means no header.
	HeaderPath string
	// AvatarVersion and HeaderVersion name the images' current content
	// (ImageVersion) and go into their URLs as ?v=: Mastodon keeps a copy
	// of a remote avatar by its URL and never fetches the same URL again,
	// so a replaced image must come with a new URL.
	AvatarVersion, HeaderVersion string
}

// ImageVersion is a short digest of an image file's content, for
// Config.AvatarVersion and HeaderVersion; "" when it cannot be read (the
// image is then not served either).
func ImageVersion(file string) string {
	if file == "" {
		return ""
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// versioned adds ?v=version to an image URL.
func versioned(u, version string) string {
	if version == "" {
		return u
	}
	return u + "?v=" + version
}

// AvatarURL is the absolute URL of the avatar, for documents.Config:
// BASE/avatar.<ext> for a configured image (some clients guess the type from
// the extension), BASE/avatar.png for the placeholder: servers take no SVG
// avatar (Mastodon refuses it, GoToSocial cannot decode it), so they get a
// PNG of it; browsers get the SVG at BASE/avatar.
func (c Config) AvatarURL() string {
	base := strings.TrimRight(c.BaseURL, "/")
	if c.AvatarPath == "" {
		return base + "/avatar.png"
	}
	return versioned(base+"/avatar"+imageExt(c.AvatarPath), c.AvatarVersion)
}

// AvatarType is the media type served at AvatarURL, for documents.Config.
func (c Config) AvatarType() string {
	if c.AvatarPath == "" {
		return "image/png"
	}
	return imageType(c.AvatarPath)
}

// HeaderURL is the absolute URL of the header image, empty when there is none.
func (c Config) HeaderURL() string {
	if c.HeaderPath == "" {
		return ""
	}
	return versioned(strings.TrimRight(c.BaseURL, "/")+"/header"+imageExt(c.HeaderPath), c.HeaderVersion)
}

// imageExt is the lower-case extension of a configured image file, empty
// when there is none or it is not a known image type.
func imageExt(file string) string {
	if imageType(file) == "" {
		return ""
	}
	return strings.ToLower(path.Ext(file))
}

// HeaderType is the media type served at HeaderURL, empty when there is none.
func (c Config) HeaderType() string {
	if c.HeaderPath == "" {
		return ""
	}
	return imageType(c.HeaderPath)
}

// Deps are the values the handlers work with, built once in cmd/crieur.
type Deps struct {
	// Posts returns the current library snapshot (articles.Watcher.Library).
	Posts  func() *articles.Library
	Docs   *documents.Builder // nil: protocol routes answer 503 (tests of pages)
	Inbox  *inbox.Inbox
	Store  *storage.Store
	Logger *slog.Logger
	Now    func() time.Time
	// PostsDir is the posts folder; images beside articles are served
	// from it under /media/.
	PostsDir string
	// FetchImage fetches a remote avatar through the guarded client; nil
	// shows every remote avatar as a placeholder.
	FetchImage FetchImageFunc
	// FetchJSON reads the visitor's server's WebFinger and NodeInfo
	// through the guarded client, for the follow and interaction forms;
	// nil answers every form with the address to copy.
	FetchJSON FetchJSONFunc
	// BlockedHost reports a domain the admin blocked (and its
	// subdomains): the forms refuse to send a visitor there.
	BlockedHost func(host string) bool
	// Context ends the background avatar fetchers (the server's life);
	// nil is context.Background().
	Context context.Context
	// Hooks count requests and inbox outcomes; the zero value counts
	// nothing.
	Hooks Hooks
}

// server holds everything the handlers share. It is built once by New and
// never changes afterwards, so handlers need no locking.
type server struct {
	cfg      Config
	base     string // BaseURL without trailing slash
	host     string // host[:port] of BaseURL, for acct: handles
	acct     string // handle@host
	actorID  string
	posts    func() *articles.Library
	docs     *documents.Builder
	receiver *inbox.Inbox
	store    *storage.Store
	log      *slog.Logger
	now      func() time.Time
	postsDir string
	pages    map[string]*template.Template
	cssURL   string // /static/style.css?v=<hash>, so browsers refetch on change
	// inboxBytes is what the inbox bodies being read hold now.
	inboxBytes *atomic.Int64
	// avatars are the remote authors' avatars, served by crieur.
	avatars *avatarCache
	// fetchJSON and blockedHost serve the visitor's forms (visit.go).
	fetchJSON   FetchJSONFunc
	blockedHost func(host string) bool
	visitSlots  chan struct{} // visitLookups at once
	// hooks count requests; groups is each route's group by its
	// template (gin's FullPath), filled by routes.
	hooks  Hooks
	groups map[string]RouteGroup
}

// New builds the HTTP handler: a gin.Engine made with gin.New() (gin mode is
// set by cmd), with its own panic recovery and slog request logging.
func New(cfg Config, deps Deps) http.Handler {
	s := newServer(cfg, deps)
	e := gin.New()
	// Serve every object at exactly its id: no redirect to a slash variant
	// and no case "fixing" (INTEROP CN-2).
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	// crieur reads no client address from headers; trusting no proxy
	// keeps gin from believing a forged X-Forwarded-For.
	_ = e.SetTrustedProxies(nil)
	e.Use(s.recovery, s.requestLog, securityHeaders)
	e.NoRoute(s.notFound)
	e.NoMethod(s.methodNotAllowed)
	s.routes(e)
	return e
}

func newServer(cfg Config, deps Deps) *server {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.InboxMaxBody <= 0 {
		cfg.InboxMaxBody = DefaultInboxMaxBody
	}
	if cfg.InboxBodyBudget <= 0 {
		cfg.InboxBodyBudget = DefaultInboxBodyBudget
	}
	if cfg.InboxReadTimeout <= 0 {
		cfg.InboxReadTimeout = DefaultInboxReadTimeout
	}
	if cfg.SiteLanguage == "" {
		cfg.SiteLanguage = "en"
	}
	if cfg.Software == "" {
		cfg.Software = "crieur"
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Repository == "" {
		cfg.Repository = "https://github.com/crieur/crieur"
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = cfg.Handle
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	host := cfg.BaseURL
	if u, err := url.Parse(cfg.BaseURL); err == nil && u.Host != "" {
		host = u.Host
	}
	sum := sha256.Sum256(styleCSS)
	s := &server{
		cfg:      cfg,
		base:     cfg.BaseURL,
		host:     host,
		acct:     cfg.Handle + "@" + host,
		actorID:  cfg.BaseURL + "/@" + cfg.Handle,
		posts:    deps.Posts,
		docs:     deps.Docs,
		receiver: deps.Inbox,
		store:    deps.Store,
		log:      logger,
		now:      now,
		postsDir: deps.PostsDir,
		cssURL:   "/static/style.css?v=" + hex.EncodeToString(sum[:6]),

		inboxBytes: new(atomic.Int64),
		avatars:    newAvatarCache(deps.Store, deps.FetchImage, deps.Context, logger, now),

		fetchJSON:   deps.FetchJSON,
		blockedHost: deps.BlockedHost,
		visitSlots:  make(chan struct{}, visitLookups),

		hooks:  deps.Hooks,
		groups: map[string]RouteGroup{},
	}
	s.pages = parsePages()
	return s
}

func (s *server) routes(e *gin.Engine) {
	// group is the route group of the routes registered next.
	group := RoutePage
	get := func(path string, h gin.HandlerFunc) {
		e.GET(path, h)
		e.HEAD(path, h)
		s.groups[path] = group
	}
	actor := "/@" + s.cfg.Handle

	// People.
	get("/", s.home)
	get("/posts/:slug", s.postRedirect)
	get("/posts/:slug/:lang", s.article)
	get("/posts/:slug/:lang/replies", s.replies)
	get("/posts/:slug/:lang/likes", s.likes)
	get("/posts/:slug/:lang/shares", s.shares)
	get("/tags", s.tagIndex)
	get("/tags/:tag", s.tagPage)
	get("/authorize_interaction", s.authorizeInteraction)
	get(visitPath, s.visitPage)
	e.POST(visitPath, s.visit)
	group = RouteFeed
	get("/feed.atom", s.atomFeed)
	get("/feed.rss", s.rssFeed)
	group = RouteMedia
	get("/avatars/:key", s.avatarImage)
	get("/avatar", s.avatar)
	get("/header", s.header)
	// The same images under their extension (Config.AvatarURL/HeaderURL).
	if ext := imageExt(s.cfg.AvatarPath); ext != "" {
		get("/avatar"+ext, s.avatar)
	} else if s.cfg.AvatarPath == "" {
		get("/avatar.png", s.defaultAvatarPNG)
	}
	if ext := imageExt(s.cfg.HeaderPath); ext != "" {
		get("/header"+ext, s.header)
	}
	get("/media/*path", s.media)
	get("/static/*path", s.static)

	// Discovery.
	group = RouteDiscovery
	get("/.well-known/webfinger", s.webfinger)
	get("/.well-known/host-meta", s.hostMeta)
	get("/.well-known/host-meta.json", s.hostMetaJSON)
	get("/.well-known/nodeinfo", s.nodeinfoLinks)
	get("/nodeinfo/2.0", s.nodeinfo20)
	get("/nodeinfo/2.1", s.nodeinfo21)

	// ActivityPub.
	group = RouteActivityPub
	get(actor, s.actor)
	get(actor+"/outbox", s.outbox)
	get(actor+"/followers", s.followers)
	get(actor+"/following", s.following)
	get(actor+"/featured", s.featured)
	get("/activities/:id", s.activity)
	get(documents.AuthorizationPath+":id", s.authorization)
	group = RouteInbox
	for _, inbox := range []string{actor + "/inbox", "/inbox"} {
		e.POST(inbox, s.inbox)
		get(inbox, s.inboxGet)
	}
}

// library is the current posts snapshot; nil-safe for a server started
// without posts.
func (s *server) library() *articles.Library {
	if s.posts == nil {
		return nil
	}
	return s.posts()
}
