package web

import (
	imgpng "image/png"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestHomeListsVisibleArticlesNewestFirst(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/", "Accept", browserAccept)
	expect(t, r, http.StatusOK, "text/html; charset=utf-8")
	contains(t, r,
		`<html lang="en">`,
		`<h1 id="profile-name">Framasoft reports</h1>`,
		`<p class="bio">Reports and diaries of the association.</p>`,
		`@reports@crieur.example`,
		`value="@reports@crieur.example"`, // the copyable handle
		`Follow from your instance`,
		`<img class="avatar" src="/avatar" alt="Avatar of Framasoft reports"`,
		`<link rel="alternate" type="application/activity+json" href="https://crieur.example/@reports">`,
		// landmarks and the skip link
		`<a class="skip" href="#main">`, `<header class="site">`, `<nav aria-label="Site">`,
		`<main id="main"`, `<footer class="site">`,
		// language and date per article
		`<li lang="it">`, `italiano`, `<time datetime="2024-01-11T08:00:00Z">11 gennaio 2024</time>`,
		// titles are escaped, never markup
		`Tom &amp; Jerry &lt;3: a second article`,
	)
	// One feed per language, so a reader can keep only theirs.
	contains(t, r, `<a href="/feed.atom?lang=fr" type="application/atom+xml">Atom</a>`,
		`<a href="/feed.rss?lang=it" type="application/rss+xml">RSS</a>`,
		`<link rel="alternate" type="application/atom+xml" href="/feed.atom?lang=en" hreflang="en"`)
	lacks(t, r, "A draft nobody may see", "An article from the future", "<b>not bold</b>")
	// Newest first: the page bundle (Feb 15) before the second article (Feb 1).
	order := []string{"/posts/bundle/en", "/posts/second/en", "/posts/ciao/it", "/posts/hello/fr"}
	last := -1
	for _, href := range order {
		i := strings.Index(r.body, `href="`+href+`"`)
		if i < 0 || i < last {
			t.Fatalf("home: %s missing or out of order", href)
		}
		last = i
	}
	// Page size 4 of 6 visible posts: two pages.
	contains(t, r, `Page 1 of 2`, `<a href="/?page=2" rel="next">`)
	lacks(t, r, `rel="prev"`, "/posts/oldest/en")
	if got := r.Header.Get("Link"); !strings.Contains(got, "<https://crieur.example/@reports>") {
		t.Errorf("home Link header = %q", got)
	}
}

func TestHomePagination(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/?page=2")
	expect(t, r, http.StatusOK, "text/html")
	contains(t, r, `Page 2 of 2`, `<a href="/" rel="prev">`, "/posts/hello/en", "/posts/oldest/en",
		`<link rel="canonical" href="https://crieur.example/?page=2">`)
	lacks(t, r, `rel="next"`, "/posts/bundle/en")

	for _, bad := range []string{"/?page=3", "/?page=99"} {
		expect(t, e.get(t, bad), http.StatusNotFound, "text/html")
	}
	for _, bad := range []string{"/?page=0", "/?page=-1", "/?page=abc", "/?page=99999999999999999999"} {
		expect(t, e.get(t, bad), http.StatusBadRequest, "text/html")
	}
}

func TestProfilePageForBrowsers(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/@reports", "Accept", browserAccept)
	expect(t, r, http.StatusOK, "text/html; charset=utf-8")
	if !hasVaryAccept(r) {
		t.Errorf("/@reports HTML: no Vary: Accept (%v)", r.Header.Values("Vary"))
	}
	contains(t, r, `<h1 id="profile-name">Framasoft reports</h1>`,
		`<link rel="alternate" type="application/activity+json" href="https://crieur.example/@reports">`,
		`<link rel="canonical" href="https://crieur.example/@reports">`)
	// The pager stays on the profile URL.
	contains(t, r, `<a href="/@reports?page=2" rel="next">`)
}

func TestArticlePage(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/posts/hello/en", "Accept", browserAccept)
	expect(t, r, http.StatusOK, "text/html; charset=utf-8")
	if !hasVaryAccept(r) {
		t.Errorf("article HTML: no Vary: Accept")
	}
	contains(t, r,
		`<html lang="en">`,
		`<h1 id="post-title">Hello, world</h1>`,
		`<time datetime="2024-01-10T08:00:00Z">10 January 2024</time>`,
		`Updated <time datetime="2024-01-15T09:30:00Z">15 January 2024</time>`,
		`The date comes from the minutes of the meeting.`,
		`<a href="/tags/framasoft" rel="tag">#Framasoft</a>`,
		`<h2 id="a-section">A section</h2>`, // body HTML is markup, not escaped
		`<li>one point one</li>`,
		`<link rel="alternate" type="application/activity+json" href="https://crieur.example/posts/hello/en">`,
		`<link rel="alternate" hreflang="fr" href="https://crieur.example/posts/hello/fr">`,
		`<link rel="alternate" hreflang="it" href="https://crieur.example/posts/ciao/it">`,
		`hreflang="fr" lang="fr" rel="alternate">français</a>`,
		`hreflang="it" lang="it" rel="alternate">italiano</a>`,
		`<dt>Author</dt><dd>Framasoft</dd>`,
		`<a href="https://creativecommons.org/licenses/by-sa/4.0/" rel="license">CC BY-SA 4.0</a>`,
		`<a href="https://framablog.org/hello">`,
		`<li>Illustrations CC-By David Revoy</li>`,
		`<meta property="og:type" content="article">`,
	)
	// Delivery status is for the admin only.
	lacks(t, r, "delivered", "pending", "Pushed")

	fr := e.get(t, "/posts/hello/fr")
	expect(t, fr, http.StatusOK, "text/html")
	contains(t, fr, `<html lang="fr">`, `<h1 id="post-title">Bonjour le monde</h1>`, `Publié le`,
		`10 janvier 2024`, `hreflang="en" lang="en" rel="alternate">English</a>`)

	second := e.get(t, "/posts/second/en")
	contains(t, second, `<h1 id="post-title">Tom &amp; Jerry &lt;3: a second article</h1>`, `<strong>bold</strong>`)
	lacks(t, second, `class="translations"`)
}

func TestArticleContentWarning(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/posts/cw/en")
	expect(t, r, http.StatusOK, "text/html")
	contains(t, r, `<details class="cw">`, `<summary>Content warning: Discusses burnout</summary>`,
		`The body is folded until the reader opens it.`)
	if strings.Index(r.body, "<summary>") > strings.Index(r.body, "The body is folded") {
		t.Errorf("the body is not inside the folded part")
	}
	lacks(t, e.get(t, "/posts/hello/en"), `<details class="cw">`)
}

func TestArticleMissingDraftFutureGone(t *testing.T) {
	e := newTestEnv(t)
	e.publishDeleted(t, "removed/en")
	for _, tc := range []struct {
		path   string
		status int
		text   string
	}{
		{"/posts/nothing/en", http.StatusNotFound, "Page not found"},
		{"/posts/hello/de", http.StatusNotFound, "Page not found"},
		{"/posts/draft/en", http.StatusNotFound, "Page not found"},
		{"/posts/future/en", http.StatusNotFound, "Page not found"},
		{"/posts/removed/en", http.StatusGone, "Article removed"},
		{"/posts/removed", http.StatusGone, "Article removed"},
		{"/posts/hello/en/", http.StatusNotFound, "Page not found"}, // no slash variant
		{"/no/such/page", http.StatusNotFound, "Page not found"},
	} {
		r := e.get(t, tc.path, "Accept", browserAccept)
		expect(t, r, tc.status, "text/html; charset=utf-8")
		contains(t, r, "<h1>"+tc.text+"</h1>", `<main id="main"`)
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=60") {
			t.Errorf("%s: Cache-Control %q", tc.path, cc)
		}
	}
	// The JSON side of a removed Note is 410 with a Tombstone.
	r := e.get(t, "/posts/removed/en", "Accept", "application/activity+json")
	expect(t, r, http.StatusGone, "application/activity+json")
	contains(t, r, `"Tombstone"`)
}

func TestPostRedirectByAcceptLanguage(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		acceptLanguage, want string
	}{
		{"fr-FR,fr;q=0.9,en;q=0.5", "/posts/hello/fr"},
		{"it", "/posts/ciao/it"}, // a translation with its own slug
		{"de-DE, en;q=0.3", "/posts/hello/en"},
		{"de, ja", "/posts/hello/en"}, // nothing matches: the site language
		{"", "/posts/hello/en"},
		{"en-GB", "/posts/hello/en"},
	} {
		r := e.get(t, "/posts/hello", "Accept-Language", tc.acceptLanguage)
		expect(t, r, http.StatusFound, "")
		if loc := r.Header.Get("Location"); loc != tc.want {
			t.Errorf("Accept-Language %q: Location %q, want %q", tc.acceptLanguage, loc, tc.want)
		}
		if !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Accept-Language") {
			t.Errorf("redirect without Vary: Accept-Language")
		}
	}
	// No version in the site language: the first available.
	e2 := newTestEnv(t, func(c *Config) { c.SiteLanguage = "de" })
	r := e2.get(t, "/posts/second")
	if loc := r.Header.Get("Location"); loc != "/posts/second/en" {
		t.Errorf("single version: Location %q", loc)
	}
	r = e2.get(t, "/posts/hello", "Accept-Language", "es")
	if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "/posts/") {
		t.Errorf("fallback: Location %q", loc)
	}
	expect(t, e.get(t, "/posts/draft"), http.StatusNotFound, "text/html")
	expect(t, e.get(t, "/posts/future"), http.StatusNotFound, "text/html")
}

func TestTagPages(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/tags/framasoft")
	expect(t, r, http.StatusOK, "text/html; charset=utf-8")
	contains(t, r, `<h1>Articles tagged “Framasoft”</h1>`, "/posts/hello/en", "/posts/hello/fr", "/posts/ciao/it")
	lacks(t, r, "/posts/second/en")

	news := e.get(t, "/tags/news")
	contains(t, news, "/posts/second/en", "/posts/hello/en")
	lacks(t, news, "/posts/future/en") // future posts keep their tags hidden

	// One address per tag.
	up := e.get(t, "/tags/Framasoft")
	expect(t, up, http.StatusMovedPermanently, "")
	if loc := up.Header.Get("Location"); loc != "/tags/framasoft" {
		t.Errorf("tag redirect to %q", loc)
	}
	expect(t, e.get(t, "/tags/unknown"), http.StatusNotFound, "text/html")

	idx := e.get(t, "/tags")
	expect(t, idx, http.StatusOK, "text/html")
	contains(t, idx, `<a href="/tags/framasoft" rel="tag">#Framasoft</a> <span class="count">(3)</span>`,
		`<a href="/tags/photos" rel="tag">#Photos</a>`)
	if strings.Index(idx.body, "/tags/framasoft") > strings.Index(idx.body, "/tags/photos") {
		t.Errorf("tag index: most used tag not first")
	}
}

func TestAuthorizeInteraction(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/authorize_interaction?uri=acct:someone@elsewhere.example")
	expect(t, r, http.StatusOK, "text/html; charset=utf-8")
	contains(t, r, "Following and interacting", `value="@reports@crieur.example"`, "someone@elsewhere.example")

	xss := e.get(t, "/authorize_interaction?uri=%3Cscript%3Ealert(1)%3C/script%3E")
	expect(t, xss, http.StatusOK, "text/html")
	lacks(t, xss, "<script>")
}

func TestMediaAvatarStatic(t *testing.T) {
	e := newTestEnv(t)
	png, err := os.ReadFile("testdata/posts/bundle/pic.png")
	if err != nil {
		t.Fatal(err)
	}
	r := e.get(t, "/media/bundle/pic.png")
	expect(t, r, http.StatusOK, "image/png")
	if r.body != string(png) {
		t.Errorf("media: body differs from the file")
	}
	// The article links its image under /media/.
	contains(t, e.get(t, "/posts/bundle/en"), `src="/media/bundle/pic.png"`, `alt="A small red square"`)

	for _, p := range []string{
		"/media/bundle/notes.txt",      // not an image
		"/media/bundle/index.en.md",    // the article itself
		"/media/bundle/../hello.en.md", // traversal
		"/media/%2e%2e/outside.png",    // encoded traversal to a real image
		"/media/bundle/..%2f..%2foutside.png",
		"/media/bundle/missing.png",
		"/media/.hidden.png",
	} {
		expect(t, e.get(t, p), http.StatusNotFound, "")
	}

	av := e.get(t, "/avatar")
	expect(t, av, http.StatusOK, "image/svg+xml")
	contains(t, av, "<svg")
	// Servers get the placeholder as a PNG: Mastodon refuses SVG avatars.
	av = e.get(t, strings.TrimPrefix(e.cfg.AvatarURL(), testBase))
	expect(t, av, http.StatusOK, "image/png")
	if img, err := imgpng.Decode(strings.NewReader(av.body)); err != nil || img.Bounds().Dx() < 400 || img.Bounds().Dx() != img.Bounds().Dy() {
		t.Errorf("placeholder avatar for servers: %v", err)
	}

	custom := newTestEnv(t, func(c *Config) { c.AvatarPath = "testdata/posts/bundle/pic.png" })
	av = custom.get(t, "/avatar")
	expect(t, av, http.StatusOK, "image/png")
	if av.body != string(png) {
		t.Errorf("custom avatar: body differs from the file")
	}
	expect(t, custom.get(t, "/header"), http.StatusNotFound, "")
	// The URL federation announces (with the extension) serves it too.
	av = custom.get(t, strings.TrimPrefix(custom.cfg.AvatarURL(), testBase))
	expect(t, av, http.StatusOK, "image/png")
	withHeader := newTestEnv(t, func(c *Config) { c.HeaderPath = "testdata/posts/bundle/pic.png" })
	for _, p := range []string{"/header", "/header.png"} {
		expect(t, withHeader.get(t, p), http.StatusOK, "image/png")
	}
	contains(t, withHeader.get(t, "/"), `<img class="banner" src="/header" alt="">`)

	home := e.get(t, "/")
	css := regexp.MustCompile(`href="(/static/style\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(home.body)
	if css == nil {
		t.Fatalf("home page links no stylesheet")
	}
	st := e.get(t, css[1])
	expect(t, st, http.StatusOK, "text/css; charset=utf-8")
	contains(t, st, "max-width: 70ch", "prefers-color-scheme")
	expect(t, e.get(t, "/static/nothing.css"), http.StatusNotFound, "")
}

func TestConditionalGetAndHead(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/posts/hello/en")
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Fatalf("no ETag on an article page")
	}
	again := e.get(t, "/posts/hello/en", "If-None-Match", etag)
	expect(t, again, http.StatusNotModified, "")
	if again.body != "" {
		t.Errorf("304 with a body")
	}
	head := e.do(t, http.MethodHead, "/posts/hello/en", nil)
	expect(t, head, http.StatusOK, "text/html")
	if head.body != "" {
		t.Errorf("HEAD answered with a body")
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/posts/hello/en")
	if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
	if got := r.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", got)
	}
}
