package web

import (
	"encoding/xml"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/storage"
)

// Namespaces written in the feeds.
const (
	nsAtom    = "http://www.w3.org/2005/Atom"
	nsContent = "http://purl.org/rss/1.0/modules/content/"
	nsDC      = "http://purl.org/dc/elements/1.1/"
	// nsThr is the Atom threading extension (RFC 4685).
	nsThr = "http://purl.org/syndication/thread/1.0"
)

// Atom 1.0 (RFC 4287) as written by crieur.
type atomFeed struct {
	XMLName   xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	NSThr     string      `xml:"xmlns:thr,attr"`
	Lang      string      `xml:"xml:lang,attr,omitempty"`
	ID        string      `xml:"id"`
	Title     string      `xml:"title"`
	Subtitle  string      `xml:"subtitle,omitempty"`
	Updated   string      `xml:"updated"`
	Links     []atomLink  `xml:"link"`
	Author    atomPerson  `xml:"author"`
	Generator atomGen     `xml:"generator"`
	Icon      string      `xml:"icon,omitempty"`
	Entries   []atomEntry `xml:"entry"`
}

type atomLink struct {
	Rel      string `xml:"rel,attr,omitempty"`
	Type     string `xml:"type,attr,omitempty"`
	Href     string `xml:"href,attr"`
	HrefLang string `xml:"hreflang,attr,omitempty"`
	// Count is RFC 4685's thr:count on a replies link.
	Count string `xml:"thr:count,attr,omitempty"`
}

type atomPerson struct {
	Name string `xml:"name"`
	URI  string `xml:"uri,omitempty"`
}

type atomGen struct {
	URI     string `xml:"uri,attr,omitempty"`
	Version string `xml:"version,attr,omitempty"`
	Name    string `xml:",chardata"`
}

type atomText struct {
	Type string `xml:"type,attr,omitempty"`
	Body string `xml:",chardata"`
}

type atomCategory struct {
	Term  string `xml:"term,attr"`
	Label string `xml:"label,attr,omitempty"`
}

type atomEntry struct {
	Lang       string         `xml:"xml:lang,attr,omitempty"`
	ID         string         `xml:"id"`
	Title      string         `xml:"title"`
	Updated    string         `xml:"updated"`
	Published  string         `xml:"published"`
	Links      []atomLink     `xml:"link"`
	Author     *atomPerson    `xml:"author,omitempty"`
	Rights     string         `xml:"rights,omitempty"`
	Summary    *atomText      `xml:"summary,omitempty"`
	Content    atomText       `xml:"content"`
	Categories []atomCategory `xml:"category"`
}

// RSS 2.0 as written by crieur, with the atom (self link), content
// (content:encoded) and dc (dc:language per item) extensions.
type rssDoc struct {
	XMLName   xml.Name   `xml:"rss"`
	Version   string     `xml:"version,attr"`
	NSAtom    string     `xml:"xmlns:atom,attr"`
	NSContent string     `xml:"xmlns:content,attr"`
	NSDC      string     `xml:"xmlns:dc,attr"`
	Channel   rssChannel `xml:"channel"`
}

type rssChannel struct {
	Title         string    `xml:"title"`
	Link          string    `xml:"link"`
	Description   string    `xml:"description"`
	Language      string    `xml:"language,omitempty"`
	Generator     string    `xml:"generator"`
	LastBuildDate string    `xml:"lastBuildDate"`
	AtomLink      atomLink  `xml:"atom:link"`
	Image         *rssImage `xml:"image,omitempty"`
	Items         []rssItem `xml:"item"`
}

type rssImage struct {
	URL   string `xml:"url"`
	Title string `xml:"title"`
	Link  string `xml:"link"`
}

type rssGUID struct {
	IsPermaLink string `xml:"isPermaLink,attr"`
	Value       string `xml:",chardata"`
}

type rssCDATA struct {
	Body string `xml:",cdata"`
}

type rssItem struct {
	Title       string   `xml:"title"`
	Link        string   `xml:"link"`
	Comments    string   `xml:"comments,omitempty"`
	GUID        rssGUID  `xml:"guid"`
	PubDate     string   `xml:"pubDate"`
	Description string   `xml:"description,omitempty"`
	Content     rssCDATA `xml:"content:encoded"`
	Categories  []string `xml:"category"`
	Language    string   `xml:"dc:language"`
}

// feedPosts is the newest visible posts for a feed, filtered by ?lang= when
// given; ok is false when the filter is not a plausible language code.
func (s *server) feedPosts(c *gin.Context) (ps []*articles.Post, lang string, ok bool) {
	lang = strings.TrimSpace(c.Query("lang"))
	if lang != "" && !plausibleLang(lang) {
		return nil, "", false
	}
	lib := s.library()
	if lib == nil {
		return nil, lang, true
	}
	for _, p := range lib.Visible(s.now()) {
		if lang != "" && !strings.EqualFold(p.Lang, lang) {
			continue
		}
		ps = append(ps, p)
		if len(ps) == feedItems {
			break
		}
	}
	return ps, lang, true
}

// plausibleLang accepts language tags like "fr" or "pt-BR": letters,
// digits and dashes, short.
func plausibleLang(s string) bool {
	if len(s) < 2 || len(s) > 35 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// updatedTimes gives, per post key, the last time the post changed: its
// date, the editor's lastmod, or the Update the ledger recorded.
func (s *server) updatedTimes(c *gin.Context, ps []*articles.Post) map[string]time.Time {
	out := make(map[string]time.Time, len(ps))
	for _, p := range ps {
		t := p.Date
		if p.Lastmod.After(t) {
			t = p.Lastmod
		}
		out[p.Key()] = t
	}
	if s.store == nil || len(ps) == 0 {
		return out
	}
	entries, err := s.store.Ledger()
	if err != nil {
		// The feed is still right without the ledger's edit times.
		_ = c.Error(fmt.Errorf("web: read ledger for feed: %w", err))
		return out
	}
	for _, e := range entries {
		if t, ok := out[e.Key]; ok && e.Updated.After(t) {
			out[e.Key] = e.Updated
		}
	}
	return out
}

// feedSelf is the feed's own URL, with its language filter.
func (s *server) feedSelf(path, lang string) string {
	if lang == "" {
		return s.base + path
	}
	return s.base + path + "?" + url.Values{"lang": {lang}}.Encode()
}

func (s *server) feedTitle(lang string) string {
	if lang == "" {
		return s.cfg.DisplayName
	}
	return s.cfg.DisplayName + " (" + languageName(lang) + ")"
}

// atomFeed serves /feed.atom.
func (s *server) atomFeed(c *gin.Context) {
	ps, lang, ok := s.feedPosts(c)
	if !ok {
		s.htmlError(c, http.StatusBadRequest, nil)
		return
	}
	updated := s.updatedTimes(c, ps)
	feedLang := lang
	if feedLang == "" {
		feedLang = s.cfg.SiteLanguage
	}
	f := atomFeed{
		NSThr:    nsThr,
		Lang:     feedLang,
		ID:       s.feedSelf("/feed.atom", lang),
		Title:    s.feedTitle(lang),
		Subtitle: strings.Join(strings.Fields(s.cfg.Bio), " "),
		Links: []atomLink{
			{Rel: "self", Type: "application/atom+xml", Href: s.feedSelf("/feed.atom", lang)},
			{Rel: "alternate", Type: "text/html", Href: s.base + "/"},
		},
		Author:    atomPerson{Name: s.cfg.DisplayName, URI: s.actorID},
		Generator: atomGen{Name: s.cfg.Software, Version: s.cfg.Version, URI: s.cfg.Repository},
		Icon:      s.base + "/avatar",
	}
	var newest time.Time
	for _, p := range ps {
		id := s.base + postURL(p)
		u := updated[p.Key()]
		newest = maxTime(newest, u)
		e := atomEntry{
			Lang:      p.Lang,
			ID:        id,
			Title:     p.Title,
			Updated:   u.UTC().Format(time.RFC3339),
			Published: p.Date.UTC().Format(time.RFC3339),
			Links: []atomLink{
				{Rel: "alternate", Type: "text/html", Href: id, HrefLang: p.Lang},
				// RFC 4685: where the entry's replies are read, and how
				// many; feed readers that know it show the count.
				{Rel: "replies", Type: "text/html", Href: id + "#comments", Count: strconv.Itoa(s.replyCount(c, id))},
			},
			Content: atomText{Type: "html", Body: s.absoluteHTML(p.HTML)},
		}
		if a := p.Attribution.Author; a != "" {
			e.Author = &atomPerson{Name: a}
		}
		if l := p.Attribution.Licence; l != "" {
			e.Rights = l
		}
		if p.Summary != "" {
			e.Summary = &atomText{Type: "text", Body: p.Summary}
		}
		for _, t := range p.Tags {
			if slug := articles.TagSlug(t); slug != "" {
				e.Categories = append(e.Categories, atomCategory{Term: slug, Label: t})
			}
		}
		f.Entries = append(f.Entries, e)
	}
	f.Updated = s.feedUpdated(newest).Format(time.RFC3339)
	s.writeXML(c, typeAtom, f)
}

// replyCount is how many public replies the Note id has (0 when storage
// fails: a feed is not refused for a count).
func (s *server) replyCount(c *gin.Context, id string) int {
	if s.store == nil {
		return 0
	}
	counts, err := s.store.InteractionCounts(id)
	if err != nil {
		_ = c.Error(err)
		return 0
	}
	return counts[storage.KindReply]
}

// rssFeed serves /feed.rss.
func (s *server) rssFeed(c *gin.Context) {
	ps, lang, ok := s.feedPosts(c)
	if !ok {
		s.htmlError(c, http.StatusBadRequest, nil)
		return
	}
	updated := s.updatedTimes(c, ps)
	chLang := lang
	if chLang == "" {
		chLang = s.cfg.SiteLanguage
	}
	description := strings.Join(strings.Fields(s.cfg.Bio), " ")
	if description == "" {
		description = s.cfg.DisplayName
	}
	ch := rssChannel{
		Title:       s.feedTitle(lang),
		Link:        s.base + "/",
		Description: rssHTMLText(description),
		Language:    chLang,
		Generator:   s.cfg.Software + " " + s.cfg.Version,
		AtomLink:    atomLink{Rel: "self", Type: "application/rss+xml", Href: s.feedSelf("/feed.rss", lang)},
		Image:       &rssImage{URL: s.base + "/avatar", Title: s.feedTitle(lang), Link: s.base + "/"},
	}
	var newest time.Time
	for _, p := range ps {
		id := s.base + postURL(p)
		newest = maxTime(newest, updated[p.Key()])
		it := rssItem{
			Title:       p.Title,
			Link:        id,
			Comments:    id + "#comments",
			GUID:        rssGUID{IsPermaLink: "true", Value: id},
			PubDate:     p.Date.Format(time.RFC1123Z),
			Description: rssHTMLText(p.Summary),
			Content:     rssCDATA{Body: s.absoluteHTML(p.HTML)},
			Language:    p.Lang,
		}
		for _, t := range p.Tags {
			if strings.TrimSpace(t) != "" {
				it.Categories = append(it.Categories, t)
			}
		}
		ch.Items = append(ch.Items, it)
	}
	ch.LastBuildDate = s.feedUpdated(newest).Format(time.RFC1123Z)
	s.writeXML(c, typeRSS, rssDoc{
		Version: "2.0", NSAtom: nsAtom, NSContent: nsContent, NSDC: nsDC, Channel: ch,
	})
}

// rssHTMLText makes editor text fit an RSS element that readers decode as
// HTML (description): escaped once for HTML here, once more for XML by the
// encoder, so a reader shows "<b>" instead of making it bold.
func rssHTMLText(s string) string { return html.EscapeString(s) }

// feedUpdated is the newest entry's time; an empty feed uses the current
// time, since Atom requires an updated element.
func (s *server) feedUpdated(newest time.Time) time.Time {
	if newest.IsZero() {
		return s.now().UTC().Truncate(time.Second)
	}
	return newest.UTC()
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// absoluteHTML makes root-relative links and images of an article absolute:
// a feed reader has no page URL to resolve them against.
func (s *server) absoluteHTML(h string) string {
	// Comparisons run in argument order: protocol-relative URLs ("//host")
	// match first and stay as they are.
	return strings.NewReplacer(
		`href="//`, `href="//`,
		`src="//`, `src="//`,
		`href="/`, `href="`+s.base+`/`,
		`src="/`, `src="`+s.base+`/`,
	).Replace(h)
}

// writeXML encodes a feed with the XML declaration.
func (s *server) writeXML(c *gin.Context, contentType string, v any) {
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		s.htmlError(c, http.StatusInternalServerError, fmt.Errorf("web: encode feed: %w", err))
		return
	}
	c.Header("Cache-Control", cachePages)
	c.Header("Access-Control-Allow-Origin", "*")
	writeBody(c, http.StatusOK, contentType, append([]byte(xml.Header), append(body, '\n')...))
}
