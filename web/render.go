package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/articles"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

//go:embed static/style.css
var styleCSS []byte

//go:embed static/avatar.svg
var avatarSVG []byte

// avatarPNG is avatar.svg drawn at 400×400 (rsvg-convert -w 400 -h 400),
// the placeholder other servers get.
//
//go:embed static/avatar.png
var avatarPNG []byte

// pageNames are the page templates; each is parsed together with base.html
// (the one layout) and partials.html.
var pageNames = []string{"home", "article", "tag", "tags", "error", "interact", "visit"}

// parsePages parses every page once at start. The templates are embedded,
// so a parse error is a programming error caught by any test: panic.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"date": formatDate,
		// UTC: html/template would write the '+' of an offset as &#43;.
		"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"langName": languageName,
		// commentData hands a comment template the page too (its
		// language and strings).
		"commentData": func(p *page, c *commentView) commentData { return commentData{Page: p, Comment: c} },
	}
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t := template.New(name).Funcs(funcs)
		out[name] = template.Must(t.ParseFS(templateFS,
			"templates/base.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return out
}

// site is what every page shows about the bot.
type site struct {
	Name      string
	Bio       []string // paragraphs
	Handle    string
	Acct      string // @handle@host
	ActorURL  string
	HomeURL   string
	AvatarURL string
	HeaderURL string
	CSSURL    string
	Software  string
	Version   string
	Lang      string
}

// page is the data of one HTML page; each template uses the fields it needs.
type page struct {
	Lang        string // <html lang>
	Title       string // <title> and the h1
	Description string
	Canonical   string
	// ActivityURL is the ActivityStreams id of what the page shows, for
	// <link rel="alternate" type="application/activity+json">.
	ActivityURL string
	Alternates  []langLink // hreflang alternates, self included
	OGType      string
	Site        *site
	Status      int
	Message     string

	Items   []listItem
	Pager   *pager
	Article *articleView
	// Conversation is the replies, counts and reply link under an article.
	Conversation *conversationView
	Tags         []tagLink
	Object       string     // the uri asked about on /authorize_interaction
	Feeds        []feedLink // per-language feeds, on the home page
	// Visit is the form that sends a visitor to their own server, with
	// its refusal when one was typed.
	Visit *visitView
}

// commentData is what the "comment" template gets.
type commentData struct {
	Page    *page
	Comment *commentView
}

// feedLink points at the feeds of one language.
type feedLink struct {
	Lang, Atom, RSS string
}

// T is a chrome text in the page language.
func (p *page) T(key string) string { return message(p.Lang, key) }

// Tf is a chrome text with arguments.
func (p *page) Tf(key string, args ...any) string { return fmt.Sprintf(message(p.Lang, key), args...) }

// langLink points at one language version.
type langLink struct {
	Lang string
	URL  string
}

// tagLink points at a tag page.
type tagLink struct {
	Name  string
	URL   string
	Count int
}

// listItem is one article in a listing.
type listItem struct {
	Title   string
	URL     string
	Lang    string
	Date    time.Time
	Summary string
	Tags    []tagLink
}

// pager links the pages of a listing.
type pager struct {
	Page, Pages int
	PrevURL     string // newer articles; empty on the first page
	NextURL     string // older articles; empty on the last page
}

// articleView is the article page's own data.
type articleView struct {
	Post         *articles.Post
	Body         template.HTML // post.HTML, sanitised by posts
	Updated      time.Time     // zero when never edited
	Tags         []tagLink
	Translations []langLink
}

func (s *server) site() *site {
	var bio []string
	for _, p := range strings.Split(strings.ReplaceAll(s.cfg.Bio, "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			bio = append(bio, p)
		}
	}
	st := &site{
		Name:      s.cfg.DisplayName,
		Bio:       bio,
		Handle:    s.cfg.Handle,
		Acct:      "@" + s.acct,
		ActorURL:  s.actorID,
		HomeURL:   s.base + "/",
		AvatarURL: versioned("/avatar", s.cfg.AvatarVersion),
		CSSURL:    s.cssURL,
		Software:  s.cfg.Software,
		Version:   s.cfg.Version,
		Lang:      s.cfg.SiteLanguage,
	}
	if s.cfg.HeaderPath != "" {
		st.HeaderURL = versioned("/header", s.cfg.HeaderVersion)
	}
	return st
}

func (s *server) newPage(lang string) *page {
	return &page{Lang: lang, Site: s.site(), OGType: "website", Status: http.StatusOK}
}

// render executes a page into a buffer first, so a template failure becomes
// a clean 500 instead of half a page.
func (s *server) render(c *gin.Context, status int, name string, d *page) {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "base", d); err != nil {
		_ = c.Error(fmt.Errorf("web: render %s: %w", name, err))
		c.Header("Cache-Control", cacheNone)
		c.Data(http.StatusInternalServerError, typeText, []byte("internal error\n"))
		return
	}
	writeBody(c, status, typeHTML, buf.Bytes())
}

// postURL is the path of one language version's page (and Note id path).
func postURL(p *articles.Post) string {
	return "/posts/" + url.PathEscape(p.Slug) + "/" + url.PathEscape(p.Lang)
}

// tagURL is the path of a tag page.
func tagURL(tag string) string { return "/tags/" + url.PathEscape(articles.TagSlug(tag)) }

func tagLinks(tags []string) []tagLink {
	out := make([]tagLink, 0, len(tags))
	for _, t := range tags {
		if articles.TagSlug(t) == "" {
			continue
		}
		out = append(out, tagLink{Name: t, URL: tagURL(t)})
	}
	return out
}

func listItems(ps []*articles.Post) []listItem {
	out := make([]listItem, 0, len(ps))
	for _, p := range ps {
		out = append(out, listItem{
			Title: p.Title, URL: postURL(p), Lang: p.Lang, Date: p.Date,
			Summary: p.Summary, Tags: tagLinks(p.Tags),
		})
	}
	return out
}

// safeHTML marks an article body as trusted markup: posts sanitised it
// (bluemonday) when parsing. It is the only template.HTML conversion here;
// every other value is escaped by html/template.
func safeHTML(s string) template.HTML { return template.HTML(s) }
