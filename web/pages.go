package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/text/language"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/storage"
)

// home is "/": the profile page with the article list.
func (s *server) home(c *gin.Context) {
	s.profilePage(c, s.base+"/")
}

// profilePage renders the bot's profile and its articles, newest first,
// paginated with ?page=N.
func (s *server) profilePage(c *gin.Context, canonical string) {
	n, ok := pageParam(c)
	if !ok {
		s.htmlError(c, http.StatusBadRequest, nil)
		return
	}
	var visible []*articles.Post
	if lib := s.library(); lib != nil {
		visible = lib.Visible(s.now())
	}
	items, pg, ok := paginate(visible, n, s.cfg.PageSize, c.Request.URL.Path)
	if !ok {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	d := s.newPage(s.cfg.SiteLanguage)
	d.Title = s.cfg.DisplayName
	d.Description = strings.Join(d.Site.Bio, " ")
	d.Canonical = canonical
	if n > 1 {
		d.Canonical = canonical + "?page=" + strconv.Itoa(n)
	}
	d.OGType = "profile"
	d.ActivityURL = s.actorID
	d.Items = listItems(items)
	d.Pager = pg
	if lib := s.library(); lib != nil {
		if langs := lib.Languages(s.now()); len(langs) > 1 {
			// Translations are separate articles: a reader may follow
			// only the languages they read.
			for _, l := range langs {
				q := "?" + url.Values{"lang": {l}}.Encode()
				d.Feeds = append(d.Feeds, feedLink{Lang: l, Atom: "/feed.atom" + q, RSS: "/feed.rss" + q})
			}
		}
	}
	s.alternateLink(c, s.actorID)
	allowFormRedirect(c)
	c.Header("Cache-Control", cachePages)
	s.render(c, http.StatusOK, "home", d)
}

// alternateLink announces the ActivityStreams version of a page in a Link
// header too, so a client that got HTML finds the JSON (INTEROP CN-3).
func (s *server) alternateLink(c *gin.Context, id string) {
	c.Header("Link", "<"+id+`>; rel="alternate"; type="application/activity+json"`)
}

// articleHTML renders one language version of an article, or 404/410.
func (s *server) articleHTML(c *gin.Context, slug, lang string) {
	lib := s.library()
	var p *articles.Post
	if lib != nil {
		if got, ok := lib.Get(slug, lang); ok && !got.Date.After(s.now()) {
			p = got
		}
	}
	if p == nil {
		s.htmlError(c, s.missingStatus(c, slug+"/"+lang), nil)
		return
	}
	cpage, ok := commentsParam(c)
	if !ok {
		s.htmlError(c, http.StatusBadRequest, nil)
		return
	}
	noteID := s.base + postURL(p)
	conv, ok := s.conversation(c, noteID, cpage)
	if !ok {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	d := s.newPage(p.Lang)
	d.Title = p.Title
	d.Description = p.Summary
	d.Canonical = noteID
	d.ActivityURL = noteID
	d.OGType = "article"
	av := &articleView{Post: p, Body: safeHTML(p.HTML), Tags: tagLinks(p.Tags)}
	if !p.Lastmod.IsZero() && p.Lastmod.After(p.Date) {
		av.Updated = p.Lastmod
	}
	d.Alternates = append(d.Alternates, langLink{Lang: p.Lang, URL: noteID})
	translations := slices.Clone(lib.TranslationsAt(p, s.now()))
	slices.SortFunc(translations, func(a, b *articles.Post) int { return strings.Compare(a.Lang, b.Lang) })
	for _, t := range translations {
		l := langLink{Lang: t.Lang, URL: s.base + postURL(t)}
		av.Translations = append(av.Translations, l)
		d.Alternates = append(d.Alternates, l)
	}
	d.Article = av
	d.Conversation = conv
	s.alternateLink(c, noteID)
	allowFormRedirect(c)
	c.Header("Cache-Control", cachePages)
	s.render(c, http.StatusOK, "article", d)
}

// missingStatus tells 410 (the ledger says a Delete was sent for this key)
// from 404 (never published, draft, or not yet due).
func (s *server) missingStatus(c *gin.Context, key string) int {
	if s.store == nil {
		return http.StatusNotFound
	}
	e, err := s.store.LedgerEntry(key)
	switch {
	case err == nil && !e.Deleted.IsZero():
		return http.StatusGone
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		_ = c.Error(fmt.Errorf("web: ledger entry %s: %w", key, err))
	}
	return http.StatusNotFound
}

// postRedirect sends /posts/{slug} to the language version the reader
// prefers (Accept-Language), else the site language, else the newest.
func (s *server) postRedirect(c *gin.Context) {
	slug := c.Param("slug")
	addVary(c, "Accept-Language")
	lib := s.library()
	var candidates []*articles.Post
	if lib != nil {
		for _, p := range lib.Visible(s.now()) {
			if p.Slug == slug {
				candidates = append(candidates, p)
			}
		}
	}
	if len(candidates) == 0 {
		s.htmlError(c, s.slugMissingStatus(c, slug), nil)
		return
	}
	// Translations may carry their own slug: the whole group is eligible.
	seen := make(map[string]bool)
	for _, p := range candidates {
		seen[p.Key()] = true
	}
	for _, p := range slices.Clone(candidates) {
		for _, t := range lib.TranslationsAt(p, s.now()) {
			if !seen[t.Key()] {
				seen[t.Key()] = true
				candidates = append(candidates, t)
			}
		}
	}
	best := s.bestLanguage(c.GetHeader("Accept-Language"), candidates)
	c.Header("Cache-Control", cachePages)
	c.Redirect(http.StatusFound, postURL(best))
}

// bestLanguage picks among language versions (newest first) by the
// reader's Accept-Language, falling back to the site language, then to the
// first candidate.
func (s *server) bestLanguage(acceptLanguage string, candidates []*articles.Post) *articles.Post {
	fallback := candidates[0]
	for _, p := range candidates {
		if p.Lang == s.cfg.SiteLanguage {
			fallback = p
			break
		}
	}
	prefs, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(prefs) == 0 {
		return fallback
	}
	var tags []language.Tag
	var tagged []*articles.Post
	for _, p := range candidates {
		t, err := language.Parse(p.Lang)
		if err != nil {
			continue
		}
		tags = append(tags, t)
		tagged = append(tagged, p)
	}
	if len(tags) == 0 {
		return fallback
	}
	_, i, conf := language.NewMatcher(tags).Match(prefs...)
	if conf == language.No || i < 0 || i >= len(tagged) {
		return fallback
	}
	return tagged[i]
}

// slugMissingStatus is 410 when every announced version of slug was
// deleted, else 404.
func (s *server) slugMissingStatus(c *gin.Context, slug string) int {
	if s.store == nil {
		return http.StatusNotFound
	}
	entries, err := s.store.Ledger()
	if err != nil {
		_ = c.Error(fmt.Errorf("web: read ledger: %w", err))
		return http.StatusNotFound
	}
	gone := false
	for _, e := range entries {
		if strings.HasPrefix(e.Key, slug+"/") {
			if e.Deleted.IsZero() {
				return http.StatusNotFound
			}
			gone = true
		}
	}
	if gone {
		return http.StatusGone
	}
	return http.StatusNotFound
}

// tagPage lists the visible articles with one tag.
func (s *server) tagPage(c *gin.Context) {
	raw := c.Param("tag")
	slug := articles.TagSlug(raw)
	if slug == "" {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	if slug != raw {
		// One address per tag: "Framasoft" and "framasoft" are one page.
		c.Redirect(http.StatusMovedPermanently, tagURL(slug))
		return
	}
	n, ok := pageParam(c)
	if !ok {
		s.htmlError(c, http.StatusBadRequest, nil)
		return
	}
	var tagged []*articles.Post
	if lib := s.library(); lib != nil {
		tagged = lib.ByTag(slug, s.now())
	}
	if len(tagged) == 0 {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	items, pg, ok := paginate(tagged, n, s.cfg.PageSize, c.Request.URL.Path)
	if !ok {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	name := slug
	for _, t := range tagged[0].Tags {
		if articles.TagSlug(t) == slug {
			name = strings.TrimPrefix(strings.TrimSpace(t), "#")
			break
		}
	}
	d := s.newPage(s.cfg.SiteLanguage)
	d.Title = d.Tf("tag_title", name)
	d.Canonical = s.base + tagURL(slug)
	d.Items = listItems(items)
	d.Pager = pg
	c.Header("Cache-Control", cachePages)
	s.render(c, http.StatusOK, "tag", d)
}

// tagIndex lists every tag of the visible articles, most used first.
func (s *server) tagIndex(c *gin.Context) {
	d := s.newPage(s.cfg.SiteLanguage)
	d.Title = d.T("tags_title")
	d.Canonical = s.base + "/tags"
	if lib := s.library(); lib != nil {
		for _, t := range lib.Tags(s.now()) {
			if t.Slug == "" {
				continue
			}
			name := strings.TrimPrefix(strings.TrimSpace(t.Name), "#")
			d.Tags = append(d.Tags, tagLink{Name: name, URL: tagURL(t.Slug), Count: t.Count})
		}
	}
	c.Header("Cache-Control", cachePages)
	s.render(c, http.StatusOK, "tags", d)
}

// authorizeInteraction is the target of the WebFinger subscribe template.
// crieur has no local accounts, so it explains how to follow from one's own
// instance instead of failing.
func (s *server) authorizeInteraction(c *gin.Context) {
	d := s.newPage(s.cfg.SiteLanguage)
	d.Title = d.T("interact_title")
	d.Object = strings.TrimPrefix(strings.TrimSpace(c.Query("uri")), "acct:")
	c.Header("Cache-Control", cachePages)
	c.Header("X-Robots-Tag", "noindex")
	s.render(c, http.StatusOK, "interact", d)
}

// pageParam reads ?page=N; absent means 1. ok is false for anything but a
// number from 1 to maxPage.
func pageParam(c *gin.Context) (int, bool) { return pageQuery(c, "page") }

// pageQuery reads the page number in the query parameter name, as
// pageParam does.
func pageQuery(c *gin.Context, name string) (int, bool) {
	v, present := c.GetQuery(name)
	if !present {
		return 1, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, false
	}
	return n, true
}

// paginate cuts one page out of items. Page 1 always exists (it may be
// empty); a later page past the end does not (ok false).
func paginate[T any](items []T, n, size int, path string) ([]T, *pager, bool) {
	pages := max((len(items)+size-1)/size, 1)
	if n > pages {
		return nil, nil, false
	}
	start := (n - 1) * size
	end := min(start+size, len(items))
	pg := &pager{Page: n, Pages: pages}
	link := func(i int) string {
		if i == 1 {
			return path
		}
		return path + "?" + url.Values{"page": {strconv.Itoa(i)}}.Encode()
	}
	if n > 1 {
		pg.PrevURL = link(n - 1)
	}
	if n < pages {
		pg.NextURL = link(n + 1)
	}
	return items[start:end], pg, true
}
