package web

import (
	"encoding/xml"
	"fmt"
	nethtml "golang.org/x/net/html"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// Reader-side views of the feeds, with full namespaces: parsing into them
// proves the namespace declarations are right, not just the element names.
type atomBack struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	ID      string   `xml:"http://www.w3.org/2005/Atom id"`
	Title   string   `xml:"http://www.w3.org/2005/Atom title"`
	Updated string   `xml:"http://www.w3.org/2005/Atom updated"`
	Links   []struct {
		Rel  string `xml:"rel,attr"`
		Type string `xml:"type,attr"`
		Href string `xml:"href,attr"`
	} `xml:"http://www.w3.org/2005/Atom link"`
	Author struct {
		Name string `xml:"http://www.w3.org/2005/Atom name"`
	} `xml:"http://www.w3.org/2005/Atom author"`
	Entries []struct {
		Lang      string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
		ID        string `xml:"http://www.w3.org/2005/Atom id"`
		Title     string `xml:"http://www.w3.org/2005/Atom title"`
		Updated   string `xml:"http://www.w3.org/2005/Atom updated"`
		Published string `xml:"http://www.w3.org/2005/Atom published"`
		Links     []struct {
			Rel   string `xml:"rel,attr"`
			Href  string `xml:"href,attr"`
			Count string `xml:"http://purl.org/syndication/thread/1.0 count,attr"`
		} `xml:"http://www.w3.org/2005/Atom link"`
		Summary string `xml:"http://www.w3.org/2005/Atom summary"`
		Content struct {
			Type string `xml:"type,attr"`
			Body string `xml:",chardata"`
		} `xml:"http://www.w3.org/2005/Atom content"`
		Categories []struct {
			Term string `xml:"term,attr"`
		} `xml:"http://www.w3.org/2005/Atom category"`
	} `xml:"http://www.w3.org/2005/Atom entry"`
}

type rssBack struct {
	XMLName xml.Name `xml:"rss"`
	Version string   `xml:"version,attr"`
	Channel struct {
		// Self comes before Link: encoding/xml gives an element to the
		// first field that matches, and a field without a namespace
		// matches every namespace.
		Self struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"http://www.w3.org/2005/Atom link"`
		Title         string `xml:"title"`
		Link          string `xml:"link"`
		Description   string `xml:"description"`
		Language      string `xml:"language"`
		LastBuildDate string `xml:"lastBuildDate"`
		Items         []struct {
			Title string `xml:"title"`
			Link  string `xml:"link"`
			GUID  struct {
				IsPermaLink string `xml:"isPermaLink,attr"`
				Value       string `xml:",chardata"`
			} `xml:"guid"`
			PubDate     string   `xml:"pubDate"`
			Description string   `xml:"description"`
			Content     string   `xml:"http://purl.org/rss/1.0/modules/content/ encoded"`
			Categories  []string `xml:"category"`
			Language    string   `xml:"http://purl.org/dc/elements/1.1/ language"`
		} `xml:"item"`
	} `xml:"channel"`
}

func parseAtom(t *testing.T, r response) atomBack {
	t.Helper()
	expect(t, r, http.StatusOK, "application/atom+xml; charset=utf-8")
	var f atomBack
	if err := xml.Unmarshal([]byte(r.body), &f); err != nil {
		t.Fatalf("atom feed does not parse: %v", err)
	}
	return f
}

func parseRSS(t *testing.T, r response) rssBack {
	t.Helper()
	expect(t, r, http.StatusOK, "application/rss+xml; charset=utf-8")
	var f rssBack
	if err := xml.Unmarshal([]byte(r.body), &f); err != nil {
		t.Fatalf("rss feed does not parse: %v", err)
	}
	return f
}

// visibleIDs are the Note URLs of the visible testdata posts, newest first,
// from the library itself.
func (e *testEnv) visibleIDs(lang string) []string {
	var ids []string
	for _, p := range e.lib.Visible(testNow) {
		if lang == "" || p.Lang == lang {
			ids = append(ids, testBase+"/posts/"+p.Slug+"/"+p.Lang)
		}
	}
	return ids
}

func TestAtomFeed(t *testing.T) {
	e := newTestEnv(t)
	f := parseAtom(t, e.get(t, "/feed.atom"))
	want := e.visibleIDs("")
	if len(f.Entries) != len(want) {
		t.Fatalf("atom: %d entries, want %d", len(f.Entries), len(want))
	}
	if f.ID == "" || f.Title != "Framasoft reports" || f.Author.Name != "Framasoft reports" || f.Lang != "en" {
		t.Errorf("atom feed head: id %q title %q author %q lang %q", f.ID, f.Title, f.Author.Name, f.Lang)
	}
	rels := map[string]string{}
	for _, l := range f.Links {
		rels[l.Rel] = l.Href
	}
	if rels["self"] != testBase+"/feed.atom" || rels["alternate"] != testBase+"/" {
		t.Errorf("atom links: %v", rels)
	}
	feedUpdated, err := time.Parse(time.RFC3339, f.Updated)
	if err != nil {
		t.Fatalf("atom updated %q: %v", f.Updated, err)
	}
	langs := map[string]bool{}
	for i, en := range f.Entries {
		if en.ID != want[i] || len(en.Links) == 0 || en.Links[0].Rel != "alternate" || en.Links[0].Href != want[i] {
			t.Errorf("entry %d: id %q links %v, want %q", i, en.ID, en.Links, want[i])
		}
		pub, err1 := time.Parse(time.RFC3339, en.Published)
		upd, err2 := time.Parse(time.RFC3339, en.Updated)
		if err1 != nil || err2 != nil {
			t.Fatalf("entry %d dates: %v %v", i, err1, err2)
		}
		if upd.Before(pub) || upd.After(feedUpdated) {
			t.Errorf("entry %d: updated %v, published %v, feed updated %v", i, upd, pub, feedUpdated)
		}
		if en.Content.Type != "html" || en.Content.Body == "" || en.Title == "" || en.Lang == "" {
			t.Errorf("entry %d: content type %q, title %q, lang %q", i, en.Content.Type, en.Title, en.Lang)
		}
		langs[en.Lang] = true
	}
	if !langs["en"] || !langs["fr"] || !langs["it"] {
		t.Errorf("atom languages: %v", langs)
	}
	hello := f.Entries[indexOf(want, testBase+"/posts/hello/en")]
	if hello.Updated != "2024-01-15T09:30:00Z" || hello.Published != "2024-01-10T08:00:00Z" {
		t.Errorf("hello dates: updated %s published %s", hello.Updated, hello.Published)
	}
	if len(hello.Categories) != 2 || hello.Categories[0].Term != "framasoft" {
		t.Errorf("hello categories: %+v", hello.Categories)
	}
	if !strings.Contains(hello.Content.Body, `<h2 id="a-section">A section</h2>`) ||
		!strings.Contains(hello.Content.Body, `href="https://crieur.example/posts/second/en"`) {
		t.Errorf("hello content not absolute HTML: %s", hello.Content.Body)
	}
	second := f.Entries[indexOf(want, testBase+"/posts/second/en")]
	if second.Title != "Tom & Jerry <3: a second article" {
		t.Errorf("second title round trip: %q", second.Title)
	}
}

func TestRSSFeed(t *testing.T) {
	e := newTestEnv(t)
	f := parseRSS(t, e.get(t, "/feed.rss"))
	want := e.visibleIDs("")
	if f.Version != "2.0" || f.Channel.Self.Rel != "self" || f.Channel.Self.Href != testBase+"/feed.rss" {
		t.Errorf("rss head: version %q self %+v", f.Version, f.Channel.Self)
	}
	if f.Channel.Title == "" || f.Channel.Link != testBase+"/" || f.Channel.Description == "" || f.Channel.Language != "en" {
		t.Errorf("rss channel: %+v", f.Channel)
	}
	if _, err := time.Parse(time.RFC1123Z, f.Channel.LastBuildDate); err != nil {
		t.Errorf("lastBuildDate %q: %v", f.Channel.LastBuildDate, err)
	}
	if len(f.Channel.Items) != len(want) {
		t.Fatalf("rss: %d items, want %d", len(f.Channel.Items), len(want))
	}
	var prev time.Time
	for i, it := range f.Channel.Items {
		if it.Link != want[i] || it.GUID.Value != want[i] || it.GUID.IsPermaLink != "true" {
			t.Errorf("item %d: link %q guid %+v, want %q", i, it.Link, it.GUID, want[i])
		}
		d, err := time.Parse(time.RFC1123Z, it.PubDate)
		if err != nil {
			t.Fatalf("item %d pubDate %q: %v", i, it.PubDate, err)
		}
		if i > 0 && d.After(prev) {
			t.Errorf("item %d newer than item %d", i, i-1)
		}
		prev = d
		if it.Content == "" || it.Language == "" || it.Title == "" {
			t.Errorf("item %d: content %d bytes, language %q", i, len(it.Content), it.Language)
		}
	}
	it := f.Channel.Items[indexOf(want, testBase+"/posts/hello/fr")]
	if it.Language != "fr" || len(it.Categories) != 2 || it.Description != "Un premier article, en trois langues." {
		t.Errorf("hello/fr item: %+v", it)
	}
	bundle := f.Channel.Items[indexOf(want, testBase+"/posts/bundle/en")]
	if !strings.Contains(bundle.Content, `src="https://crieur.example/media/bundle/pic.png"`) {
		t.Errorf("bundle content keeps a relative image: %s", bundle.Content)
	}
}

func TestFeedLanguageFilter(t *testing.T) {
	e := newTestEnv(t)
	a := parseAtom(t, e.get(t, "/feed.atom?lang=fr"))
	if len(a.Entries) != len(e.visibleIDs("fr")) || len(a.Entries) == 0 {
		t.Fatalf("atom fr: %d entries", len(a.Entries))
	}
	for _, en := range a.Entries {
		if en.Lang != "fr" {
			t.Errorf("atom fr: entry in %q", en.Lang)
		}
	}
	if a.Lang != "fr" || a.ID != testBase+"/feed.atom?lang=fr" {
		t.Errorf("atom fr: lang %q id %q", a.Lang, a.ID)
	}
	r := parseRSS(t, e.get(t, "/feed.rss?lang=it"))
	if len(r.Channel.Items) != 1 || r.Channel.Items[0].Language != "it" || r.Channel.Language != "it" {
		t.Errorf("rss it: %+v", r.Channel)
	}
	if r.Channel.Self.Href != testBase+"/feed.rss?lang=it" {
		t.Errorf("rss it self: %q", r.Channel.Self.Href)
	}
	// A language with no posts is an empty, valid feed.
	empty := parseAtom(t, e.get(t, "/feed.atom?lang=de"))
	if len(empty.Entries) != 0 {
		t.Errorf("atom de: %d entries", len(empty.Entries))
	}
	if _, err := time.Parse(time.RFC3339, empty.Updated); err != nil {
		t.Errorf("empty feed updated %q: %v", empty.Updated, err)
	}
	expect(t, e.get(t, "/feed.rss?lang=%3Cx%3E"), http.StatusBadRequest, "")
}

func TestFeedsLimitAndLedgerUpdates(t *testing.T) {
	e := newTestEnv(t)
	// An Update recorded in the ledger moves the entry's updated time.
	edited := testNow.Add(-2 * time.Hour).UTC().Truncate(time.Second)
	_, err := e.store.Publish(ledgerEntry("second/en", edited), activityFor("second/en"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := parseAtom(t, e.get(t, "/feed.atom"))
	want := e.visibleIDs("")
	got := f.Entries[indexOf(want, testBase+"/posts/second/en")].Updated
	if got != edited.Format(time.RFC3339) {
		t.Errorf("second/en updated %s, want %s from the ledger", got, edited.Format(time.RFC3339))
	}
	if f.Updated != edited.Format(time.RFC3339) {
		t.Errorf("feed updated %s, want %s", f.Updated, edited.Format(time.RFC3339))
	}
}

func TestFeedsCarryTheLatest50(t *testing.T) {
	dir := t.TempDir()
	start := testNow.Add(-100 * 24 * time.Hour)
	for i := range 55 {
		body := fmt.Sprintf("---\ntitle: \"Article %02d\"\ndate: %s\nslug: a%02d\n---\n\nBody %d.\n",
			i, start.Add(time.Duration(i)*24*time.Hour).Format(time.RFC3339), i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("a%02d.en.md", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newTestEnvDir(t, dir)
	a := parseAtom(t, e.get(t, "/feed.atom"))
	r := parseRSS(t, e.get(t, "/feed.rss"))
	if len(a.Entries) != 50 || len(r.Channel.Items) != 50 {
		t.Fatalf("feeds: %d atom entries, %d rss items, want 50", len(a.Entries), len(r.Channel.Items))
	}
	if a.Entries[0].Title != "Article 54" || a.Entries[49].Title != "Article 05" {
		t.Errorf("atom window: first %q last %q", a.Entries[0].Title, a.Entries[49].Title)
	}
	if r.Channel.Items[0].Title != "Article 54" {
		t.Errorf("rss first item %q", r.Channel.Items[0].Title)
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	panic("indexOf: " + s + " not in list")
}

// RSS readers decode <description> as HTML: the editor's summary and bio
// must come out as the text they typed, never as live markup. Atom says
// type="text" and needs no second escape.
func TestFeedDescriptionsAreText(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Bio = `Reports <script>alert(1)</script> & more` })
	f := parseRSS(t, e.get(t, "/feed.rss"))
	// What a reader shows: the element's text, decoded as HTML.
	shown := func(s string) string {
		doc, err := nethtml.Parse(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		var walk func(*nethtml.Node)
		walk = func(n *nethtml.Node) {
			if n.Type == nethtml.ElementNode && n.Data != "html" && n.Data != "head" && n.Data != "body" {
				t.Errorf("description %q is markup: a <%s> element", s, n.Data)
			}
			if n.Type == nethtml.TextNode {
				b.WriteString(n.Data)
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		return b.String()
	}
	if got := shown(f.Channel.Description); got != "Reports <script>alert(1)</script> & more" {
		t.Errorf("channel description shows %q", got)
	}
	want := e.visibleIDs("")
	second := f.Channel.Items[indexOf(want, testBase+"/posts/second/en")]
	if got := shown(second.Description); got != "Escaping matters: <b>not bold</b> & friends." {
		t.Errorf("second/en description shows %q", got)
	}
	a := parseAtom(t, e.get(t, "/feed.atom"))
	if s := a.Entries[indexOf(want, testBase+"/posts/second/en")].Summary; s != "Escaping matters: <b>not bold</b> & friends." {
		t.Errorf("atom summary (type text) %q", s)
	}
}

// TestFeedsLinkReplies: each Atom entry links its comments with the
// count of public replies (RFC 4685), each RSS item names its comments.
func TestFeedsLinkReplies(t *testing.T) {
	e := newTestEnv(t)
	note := testBase + "/posts/hello/en"
	for i, kind := range []storage.InteractionKind{storage.KindReply, storage.KindReply, storage.KindMention, storage.KindLike} {
		_, err := e.store.PutInteraction(storage.Interaction{
			ID: fmt.Sprintf("https://social.example/notes/%d", i), Kind: kind, NoteID: note, InReplyTo: note,
			Actor: storage.RemoteActor{ID: fmt.Sprintf("https://social.example/users/%d", i)}, Published: testNow,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := e.get(t, "/feed.atom")
	contains(t, r, `xmlns:thr="http://purl.org/syndication/thread/1.0"`)
	f := parseAtom(t, r)
	found := false
	for _, en := range f.Entries {
		want := "0"
		if en.ID == note {
			want, found = "2", true
		}
		if len(en.Links) != 2 || en.Links[1].Rel != "replies" || en.Links[1].Href != en.ID+"#comments" || en.Links[1].Count != want {
			t.Errorf("entry %s: links %+v, want a replies link counting %s", en.ID, en.Links, want)
		}
	}
	if !found {
		t.Fatalf("no entry for %s", note)
	}
	contains(t, e.get(t, "/feed.rss"), "<comments>"+note+"#comments</comments>")
}
