package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/inbox"
	"github.com/crieur/crieur/federation/moderation"
	"github.com/crieur/crieur/federation/publish"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/metrics"
	"github.com/crieur/crieur/storage"
	"github.com/crieur/crieur/web"
)

// Server timeouts: slow clients cannot hold connections forever, and a
// shutdown never waits longer than shutdownGrace.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownGrace     = 15 * time.Second
	storeOpenTimeout  = 2 * time.Second
	inboxMaxBody      = 1 << 20
)

// app is the wired set of rooms. Admin commands build it without serving.
type app struct {
	cfg     config
	log     *slog.Logger
	store   *storage.Store
	watcher *articles.Watcher
	docs    *documents.Builder
	inbox   *inbox.Inbox
	signer  *signature.Signer
	// verifier checks incoming signatures (inbox).
	verifier *signature.Verifier
	pub      *publish.Publisher
	del      *delivery.Deliverer
	blocks   *moderation.Blocklist
	// client is the one guarded outgoing client; web fetches remote
	// avatars through it.
	client *transport.Client
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// appOptions are what serve adds to the rooms admin commands build too.
type appOptions struct {
	// onDelivered is told of every delivery's outcome (the metrics).
	onDelivered func(delivery.Result)
}

// openApp builds storage → posts → federation in that order. The caller
// must call close.
func openApp(cfg config, log *slog.Logger, opts appOptions) (*app, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	store, key, created, err := openData(cfg)
	if err != nil {
		return nil, err
	}
	w, err := articles.NewWatcher(cfg.PostsDir, articles.WatchOptions{
		Options: articles.Options{DefaultLanguage: cfg.Language},
		Logger:  log.With("room", "posts"),
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	fields := make([]documents.Field, 0, len(cfg.Fields))
	for _, f := range cfg.Fields {
		k, v, _ := strings.Cut(f, "=")
		fields = append(fields, documents.Field{Name: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
	}
	fcfg := documents.Config{
		BaseURL:                   cfg.BaseURL,
		Handle:                    cfg.Handle,
		DisplayName:               cfg.DisplayName,
		Bio:                       cfg.Bio,
		Fields:                    fields,
		ManuallyApprovesFollowers: cfg.ManualApprove,
		Discoverable:              true,
		Indexable:                 true,
		ShowFollowers:             cfg.ShowFollowers,
		LedeOnly:                  cfg.LedeOnly,
		Quotes:                    cfg.Quotes,
		Created:                   created,
		Software:                  "crieur",
		Version:                   version,
	}
	// The actor points at the images exactly where web serves them.
	wc := webConfig(cfg)
	fcfg.AvatarURL, fcfg.AvatarType = wc.AvatarURL(), wc.AvatarType()
	fcfg.HeaderURL, fcfg.HeaderType = wc.HeaderURL(), wc.HeaderType()
	blocks, err := moderation.New(store, fcfg.Host())
	if err != nil {
		store.Close()
		return nil, err
	}
	client := transport.NewClient(transport.ClientConfig{
		Blocked:       blocks.Host,
		UserAgent:     fmt.Sprintf("crieur/%s (+%s)", version, cfg.BaseURL),
		AllowPrefixes: allowPrefixes(cfg.AllowPrivate),
	})
	docs, err := documents.New(fcfg, documents.Deps{
		Store:  store,
		Posts:  w.Library,
		Key:    &key.PublicKey,
		Logger: log.With("room", "documents"),
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	signer, err := signature.NewSignerEngine(fcfg.KeyID(), key, nil, cfg.RSA)
	if err != nil {
		store.Close()
		return nil, err
	}
	// The same setting chooses what verifies incoming signatures.
	verifier, err := signature.NewVerifier(cfg.RSA)
	if err != nil {
		store.Close()
		return nil, err
	}
	del := delivery.NewDeliverer(store, client, signer, delivery.Options{
		Workers:    cfg.Workers,
		PerHost:    cfg.PerHost,
		MaxAge:     cfg.RetryFor,
		KeepFailed: cfg.KeepFailed,
		Logger:     log.With("room", "delivery"),
		OnDone:     opts.onDelivered,
	})
	in, err := inbox.New(inbox.Deps{
		Docs:     docs,
		Store:    store,
		Signer:   signer,
		Verifier: verifier,
		Client:   client,
		Logger:   log.With("room", "inbox"),
		// Blocks apply at once: the inbox asks the live list every time.
		Blocked:     blocks.Actor,
		BlockedHost: blocks.Host,
		// An Accept queued by the inbox goes out now, not at the
		// Deliverer's next wake-up.
		Queued: del.Wake,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	pub := publish.NewPublisher(docs, del, publish.Options{
		Logger: log.With("room", "publisher"),
	})
	return &app{cfg: cfg, log: log, store: store, watcher: w, docs: docs, inbox: in, signer: signer, verifier: verifier, pub: pub, del: del, blocks: blocks, client: client}, nil
}

func (a *app) close() error { return a.store.Close() }

func webConfig(cfg config) web.Config {
	return web.Config{
		BaseURL:      cfg.BaseURL,
		Handle:       cfg.Handle,
		DisplayName:  cfg.DisplayName,
		Bio:          cfg.Bio,
		SiteLanguage: cfg.Language,
		Software:     "crieur",
		Version:      version,
		InboxMaxBody: inboxMaxBody,
		AvatarPath:   cfg.Avatar,
		HeaderPath:   cfg.Header,
		// Read at start: a replaced image reaches followers' servers
		// with the next start, which also sends them the new profile.
		AvatarVersion: web.ImageVersion(cfg.Avatar),
		HeaderVersion: web.ImageVersion(cfg.Header),
	}
}

// allowPrefixes lists the address ranges the outgoing client may reach in
// spite of its guard. Only -allow-private opens them.
func allowPrefixes(allowPrivate bool) []netip.Prefix {
	if !allowPrivate {
		return nil
	}
	var out []netip.Prefix
	for _, p := range []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// Garbage collector defaults of a running crieur, unless GOGC or GOMEMLIMIT
// say otherwise. A fan-out keeps thousands of connections (buffers,
// goroutine stacks) live, and every collection scans them. Measured on a
// 10,000-follower fan-out (2 cores): GOGC=200 ran 3 collections instead of
// 7 (GC CPU 51 ms instead of 98 ms, 1-3% of the fan-out) at the same peak
// RSS (~180-195 MiB, mostly those connections); GOGC=400 saved little
// more CPU but let the heap reach 417 MiB on a second fan-out in the same
// process. The soft limit makes the collector work harder before the heap
// passes it, so a larger GOGC cannot run a small server out of memory.
const (
	serveGCPercent   = 200
	serveMemoryLimit = 512 << 20
)

// tuneGC applies the defaults above where the environment sets nothing.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("serve", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	tuneGC(getenv)
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "crieur serve: unexpected arguments %q\n", rest)
		return errUsage
	}
	log := newLogger(cfg, stderr)
	// Metrics only when asked for: without -metrics nothing is counted.
	var met *metrics.Metrics
	var opts appOptions
	var hooks web.Hooks
	if cfg.Metrics != "" {
		met = metrics.New(log.With("room", "metrics"))
		opts.onDelivered = met.Delivered
		hooks = met.WebHooks()
	}
	a, err := openApp(cfg, log, opts)
	if err != nil {
		return err
	}
	defer a.close()
	if met != nil {
		met.ReadStore(a.store)
		met.CountSignatures(a.signer.Signed, a.verifier.Verifications)
	}
	if err := recordIdentity(a.store, cfg); err != nil {
		return err
	}
	for _, p := range a.watcher.Library().Problems() {
		log.Warn("article not published", "problem", p.Error())
	}
	// The first reconcile runs before the server answers and before the
	// watcher's first reload: on a first start the back catalogue is what
	// posts/ held when crieur started, and an article dropped once crieur
	// answers is news for its followers. Left to the publisher's loop, it
	// raced that reload and could take such an article in undelivered.
	if err := a.pub.Reconcile(ctx); err != nil {
		log.Error("publisher: reconcile", "err", err)
	}

	gin.SetMode(gin.ReleaseMode)
	handler := web.New(webConfig(cfg), web.Deps{
		Posts:    a.watcher.Library,
		Docs:     a.docs,
		Inbox:    a.inbox,
		Store:    a.store,
		Logger:   log.With("room", "web"),
		PostsDir: cfg.PostsDir,
		// Remote avatars, fetched in the background through the guard
		// and served by crieur; the fetchers end with the server.
		FetchImage: func(ctx context.Context, u string) ([]byte, string, error) {
			img, err := a.client.FetchImage(ctx, u)
			if err != nil {
				return nil, "", err
			}
			return img.Body, img.ContentType, nil
		},
		// The visitor's forms read their server's WebFinger and NodeInfo
		// through the same guard; its refusals become ErrForbidden, which
		// web tells apart from a dead server.
		FetchJSON: func(ctx context.Context, u string) ([]byte, string, error) {
			f, err := a.client.FetchJSON(ctx, u)
			if transport.IsRefused(err) {
				return nil, "", fmt.Errorf("%w: %w", federation.ErrForbidden, err)
			}
			if err != nil {
				return nil, "", err
			}
			return f.Body, f.URL, nil
		},
		BlockedHost: a.blocks.Host,
		Context:     ctx,
		Hooks:       hooks,
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	adminLn, err := listenAdmin(cfg.sockPath())
	if err != nil {
		ln.Close()
		return err
	}
	// serving is true while the web server answers (for /healthz).
	var serving atomic.Bool
	var metricsSrv *http.Server
	var metricsLn net.Listener
	if met != nil {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics); err != nil {
			ln.Close()
			adminLn.Close()
			return fmt.Errorf("listen on %s for -metrics: %w", cfg.Metrics, err)
		}
		metricsSrv = &http.Server{
			Handler:           met.Handler(health(a.store, &serving)),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	adminSrv := &http.Server{Handler: newAdminHandler(ctx, a), ReadHeaderTimeout: readHeaderTimeout}
	var wg sync.WaitGroup
	errc := make(chan error, 6)
	goRun := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	events := a.watcher.Subscribe()
	goRun("posts watcher", func() error { return a.watcher.Run(ctx) })
	goRun("delivery", func() error { return a.del.Run(ctx) })
	goRun("publisher", func() error { return a.pub.Run(ctx, events) })
	serving.Store(true)
	goRun("http server", func() error { return srv.Serve(ln) })
	goRun("admin socket", func() error { return adminSrv.Serve(adminLn) })
	if metricsSrv != nil {
		goRun("metrics server", func() error { return metricsSrv.Serve(metricsLn) })
		log.Info("metrics", "listen", metricsLn.Addr().String())
		if h, _, _ := net.SplitHostPort(cfg.Metrics); !privateHost(h) {
			log.Warn("the metrics listener is not on loopback or a private address: it is not meant for the internet", "listen", cfg.Metrics)
		}
	}

	fmt.Fprintf(stdout, "crieur: serving %s as @%s@%s on http://%s\n", cfg.BaseURL, cfg.Handle, a.docs.Config().Host(), ln.Addr())
	log.Info("serving", "base_url", cfg.BaseURL, "listen", ln.Addr().String(), "posts", cfg.PostsDir, "data", cfg.DataDir)
	if engine, why := a.signer.Engine(); why != "" {
		log.Info("signing with Go's RSA: OpenSSL is not available", "engine", engine, "reason", why)
	} else {
		log.Info("signing", "engine", engine)
	}
	if engine, why := a.verifier.Engine(); why != "" {
		log.Info("verifying with Go's RSA: OpenSSL is not available", "engine", engine, "reason", why)
	} else {
		log.Info("verifying", "engine", engine)
	}
	for _, img := range []struct{ name, file string }{{"avatar", cfg.Avatar}, {"header", cfg.Header}} {
		if strings.EqualFold(filepath.Ext(img.file), ".svg") {
			// Mastodon refuses SVG for both, GoToSocial cannot decode it.
			log.Warn("an SVG "+img.name+" shows on the web pages only: fediverse servers take PNG, JPEG, GIF or WebP", "file", img.file)
		}
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("stopping", "err", runErr)
	}
	serving.Store(false)
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	_ = adminSrv.Shutdown(sctx)
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(sctx)
	}
	wg.Wait()
	os.Remove(cfg.sockPath())
	return runErr
}

// health is /healthz's check: the web server is serving and the store
// answers a read within the request's deadline.
func health(store *storage.Store, serving *atomic.Bool) func(context.Context) error {
	return func(ctx context.Context) error {
		if !serving.Load() {
			return errors.New("not serving: the web server is starting or shutting down")
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := store.Meta("health")
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			return nil
		case <-ctx.Done():
			return errors.New("store: no answer in time")
		}
	}
}

// privateHost tells whether a listener's host is loopback or a private
// address (or a name, which the admin chose). Empty and unspecified
// addresses listen on every interface.
func privateHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host != ""
	}
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
}
