package documents

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vocab "github.com/go-ap/activitypub"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// noteFields is INTEROP.md's Note list (7a, 7b): the fields every Note has.
var noteFields = map[string]fieldKind{
	"id": kURL, "type": kString, "attributedTo": kURL, "published": kTime, "url": kURL,
	"to": kArray, "cc": kArray, "content": kString, "contentMap": kObject,
	"sensitive": kBool, "tag": kArray, "attachment": kArray,
}

// checkNote checks the rules every Note follows, whatever the post.
func checkNote(t *testing.T, s *Builder, p *articles.Post, n map[string]any) {
	t.Helper()
	what := "note " + p.Key()
	checkFields(t, what, n, noteFields)
	id := s.cfg.NoteID(p.Slug, p.Lang)
	if n["id"] != id || n["url"] != id || n["type"] != "Note" || n["attributedTo"] != s.cfg.ActorID() {
		t.Errorf("%s: id %v url %v type %v attributedTo %v", what, n["id"], n["url"], n["type"], n["attributedTo"])
	}
	if to, _ := n["to"].([]any); len(to) != 1 || to[0] != Public {
		t.Errorf("%s: to = %v", what, n["to"])
	}
	if cc, _ := n["cc"].([]any); len(cc) != 1 || cc[0] != s.cfg.FollowersURL() {
		t.Errorf("%s: cc = %v", what, n["cc"])
	}
	// One language per Note: contentMap has exactly that key, and its
	// value is content byte for byte (GoToSocial compares them).
	cm, _ := n["contentMap"].(map[string]any)
	if len(cm) != 1 || cm[p.Lang] == nil || cm[p.Lang] != n["content"] {
		t.Errorf("%s: contentMap %v does not hold exactly content under %q", what, keys(cm), p.Lang)
	}
	for _, k := range []string{"name", "inReplyTo", "_misskey_content", "source"} {
		if _, ok := n[k]; ok {
			t.Errorf("%s: has %s", what, k)
		}
	}
	content, _ := n["content"].(string)
	if prob := mastodonSafeProblems(content); len(prob) > 0 {
		t.Errorf("%s: content not Mastodon-safe: %v", what, prob)
	}
	if len(content) > maxFullContent+10_000 {
		t.Errorf("%s: content is %d bytes", what, len(content))
	}
	if att, _ := n["attachment"].([]any); len(att) > 4 {
		t.Errorf("%s: %d attachments", what, len(att))
	}
	for _, a := range n["attachment"].([]any) {
		am := a.(map[string]any)
		if u, _ := am["url"].(string); !strings.HasPrefix(u, "https://") || am["type"] != "Image" {
			t.Errorf("%s: attachment %v", what, am)
		}
	}
	for _, tg := range n["tag"].([]any) {
		tm := tg.(map[string]any)
		name, _ := tm["name"].(string)
		href, _ := tm["href"].(string)
		if tm["type"] != "Hashtag" || !strings.HasPrefix(name, "#") || strings.ContainsAny(name, " \t") ||
			!strings.HasPrefix(href, s.cfg.BaseURL+"/tags/") {
			t.Errorf("%s: tag %v", what, tm)
		}
		if !strings.Contains(content, `<a href="`+href+`" class="mention hashtag" rel="tag">#<span>`+strings.TrimPrefix(name, "#")+`</span></a>`) {
			t.Errorf("%s: no hashtag link for %s in content", what, name)
		}
	}
	if _, ok := n["summary"]; ok != (p.ContentWarning != "") {
		t.Errorf("%s: summary present = %v with content warning %q", what, ok, p.ContentWarning)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func mustPost(t *testing.T, s *Builder, slug, lang string) *articles.Post {
	t.Helper()
	p, ok := s.vocabLibrary().Get(slug, lang)
	if !ok {
		t.Fatalf("no post %s/%s", slug, lang)
	}
	return p
}

func TestNoteJSONGolden(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	// The ledger says when it was announced and last edited.
	entry := storage.LedgerEntry{
		Key: "sample/en", NoteID: s.cfg.NoteID("sample", "en"), Hash: "h", Pushed: true,
		Published: time.Date(2023, 12, 12, 9, 0, 5, 0, time.UTC),
		Updated:   time.Date(2023, 12, 21, 8, 0, 0, 0, time.UTC),
	}
	act, _, err := s.BuildActivity("Create", s.cfg.NoteID("sample", "en"), []string{Public}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Publish(entry, act, nil); err != nil {
		t.Fatal(err)
	}
	b, err := s.NoteJSON("sample", "en")
	if err != nil {
		t.Fatal(err)
	}
	checkContext(t, "note", b)
	checkGoldenJSON(t, "golden_note_sample_en.json", b)
	n := decodeJSON(t, b)
	p := mustPost(t, s, "sample", "en")
	checkNote(t, s, p, n)
	if n["published"] != "2023-12-12T09:00:05Z" || n["updated"] != "2023-12-21T08:00:00Z" {
		t.Errorf("published/updated = %v / %v, want the ledger's", n["published"], n["updated"])
	}
	if n["sensitive"] != false {
		t.Errorf("sensitive = %v", n["sensitive"])
	}
	if strings.Contains(string(b), `\u003c`) {
		t.Errorf("HTML escaped in JSON")
	}
	content := n["content"].(string)
	for _, want := range []string{
		`<p><strong>Sample report: &lt;figures&gt; &amp; more</strong></p>`,
		`<p><strong>A heading</strong></p>`,
		`<a href="https://blog.example/posts/other/en" rel="nofollow noopener">relative link</a>`,
		`<p><em>Illustration: a duck riding an elephant – CC-By David Revoy</em></p>`,
		`<p><strong>Service</strong> · <strong>Visits</strong></p><p>Framadate · 33,785,780</p>`,
		`<ul><li>one</li><li>two<ul><li>two and a half<ol><li>deep</li></ol></li></ul></li></ul>`,
		// Translations: French is visible, Italian is not due yet.
		`<p>Also in: <a href="https://blog.example/posts/sample/fr" lang="fr" hreflang="fr">Français</a></p>`,
		`<p>Framasoft · <a href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA 4.0</a> · Illustrations CC-By David Revoy · <a href="https://framablog.org/2023/12/12/sample/">framablog.org</a></p>`,
	} {
		if !strings.Contains(content, want) {
			t.Errorf("content lacks %s", want)
		}
	}
	if strings.Contains(content, "/sample/it") || strings.Contains(content, "<img") || strings.Contains(content, "<h2") {
		t.Errorf("content has a future translation, an img or a heading")
	}
	// Tags: three (the repeated one counted once), names without spaces.
	var names []string
	for _, tg := range n["tag"].([]any) {
		names = append(names, tg.(map[string]any)["name"].(string))
	}
	if strings.Join(names, " ") != "#freesoftware #Framasoft #peertube" {
		t.Errorf("tag names = %v", names)
	}
	// Attachments: four at most, SVG skipped, relative paths under /media/.
	var urls []string
	for _, a := range n["attachment"].([]any) {
		am := a.(map[string]any)
		urls = append(urls, fmt.Sprint(am["url"], " ", am["mediaType"], " ", am["name"]))
	}
	want := []string{
		"https://cdn.example/banner.png image/png Banner with a duck",
		"https://blog.example/media/sample/duck.jpg image/jpeg A duck riding an elephant",
		"https://blog.example/media/sample/graph.webp image/webp A graph",
		"https://blog.example/media/sample/third.gif image/gif Third",
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Errorf("attachments:\n%s\nwant:\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}

	// go-ap reads it back as a Note with the same id and content.
	it, err := vocab.UnmarshalJSON(b)
	if err != nil {
		t.Fatalf("go-ap cannot parse the Note: %v", err)
	}
	if it.GetType() != vocab.NoteType || string(it.GetID()) != s.cfg.NoteID("sample", "en") {
		t.Errorf("go-ap reads %s %s", it.GetType(), it.GetID())
	}
}

func TestNoteTranslationLinksInOwnLanguage(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	b, err := s.NoteJSON("sample", "fr")
	if err != nil {
		t.Fatal(err)
	}
	n := decodeJSON(t, b)
	checkNote(t, s, mustPost(t, s, "sample", "fr"), n)
	content := n["content"].(string)
	want := "<p>Aussi en\u00a0: <a href=\"https://blog.example/posts/sample/en\" lang=\"en\" hreflang=\"en\">English</a></p>"
	if !strings.Contains(content, want) {
		t.Errorf("content lacks %q:\n%s", want, content)
	}
	if !strings.Contains(content, `#<span>logiciellibre</span>`) || !strings.Contains(content, `href="https://blog.example/tags/logiciel-libre"`) {
		t.Errorf("hashtag of a two-word tag: %s", content)
	}
	// Not edited, no ledger entry: no updated (Mastodon would show "Edited").
	if _, ok := n["updated"]; ok {
		t.Errorf("updated present on a never edited Note")
	}
	if n["published"] != "2023-12-12T10:00:00Z" {
		t.Errorf("published = %v, want the post date", n["published"])
	}
}

func TestNoteUpdatedOnlyWhenEdited(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	p := mustPost(t, s, "sample", "en")
	pub := time.Date(2023, 12, 12, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		updated time.Time
		want    any
	}{
		{"never edited", time.Time{}, nil},
		{"same as published", pub, nil},
		{"before published", pub.Add(-time.Hour), nil},
		{"edited", pub.Add(48 * time.Hour), "2023-12-14T09:00:00Z"},
	} {
		n, err := s.BuildNote(p, s.vocabLibrary(), pub, c.updated)
		if err != nil {
			t.Fatal(err)
		}
		if n["updated"] != c.want {
			t.Errorf("%s: updated = %v, want %v", c.name, n["updated"], c.want)
		}
	}
	// Without a ledger entry the editor's lastmod counts.
	b, err := s.NoteJSON("sample", "en")
	if err != nil {
		t.Fatal(err)
	}
	if n := decodeJSON(t, b); n["updated"] != "2023-12-20T10:00:00Z" {
		t.Errorf("updated from lastmod = %v", n["updated"])
	}
}

func TestNoteContentWarningAndSensitive(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	b, err := s.NoteJSON("warning", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := decodeJSON(t, b)
	checkNote(t, s, mustPost(t, s, "warning", "en"), n)
	if n["summary"] != "Violence against people" || n["sensitive"] != true {
		t.Errorf("summary %v sensitive %v", n["summary"], n["sensitive"])
	}
	b, err = s.NoteJSON("sensitive", "en")
	if err != nil {
		t.Fatal(err)
	}
	n = decodeJSON(t, b)
	checkNote(t, s, mustPost(t, s, "sensitive", "en"), n)
	if _, ok := n["summary"]; ok || n["sensitive"] != true {
		t.Errorf("sensitive post: summary %v sensitive %v", n["summary"], n["sensitive"])
	}
	att := n["attachment"].([]any)
	if len(att) != 1 || att[0].(map[string]any)["url"] != "https://cdn.example/a.jpg" {
		t.Errorf("attachment = %v", att)
	}
	if _, ok := att[0].(map[string]any)["name"]; ok {
		t.Errorf("an image without alt text got a name")
	}
}

func TestNoteJSONNotFoundAndGone(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	for _, c := range [][2]string{{"nope", "en"}, {"sample", "de"}, {"draft", "en"}, {"future", "en"}, {"sample", "it"}} {
		if _, err := s.NoteJSON(c[0], c[1]); !errors.Is(err, federation.ErrNotFound) {
			t.Errorf("NoteJSON(%s/%s) = %v, want federation.ErrNotFound", c[0], c[1], err)
		}
		if _, err := s.NoteTombstoneJSON(c[0], c[1]); !errors.Is(err, federation.ErrNotFound) {
			t.Errorf("NoteTombstoneJSON(%s/%s) = %v, want federation.ErrNotFound", c[0], c[1], err)
		}
	}
	// A Delete was announced: 410 even though the file is still there,
	// because Mastodon refuses the id forever.
	deleted := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := storage.LedgerEntry{Key: "warning/en", NoteID: s.cfg.NoteID("warning", "en"), Published: deleted.Add(-time.Hour), Deleted: deleted}
	act, _, err := s.BuildActivity("Delete", s.Tombstone(entry.NoteID, deleted), []string{Public}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Publish(entry, act, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NoteJSON("warning", "en"); !errors.Is(err, federation.ErrGone) {
		t.Errorf("NoteJSON of a deleted Note = %v, want federation.ErrGone", err)
	}
	b, err := s.NoteTombstoneJSON("warning", "en")
	if err != nil {
		t.Fatal(err)
	}
	checkContext(t, "tombstone", b)
	tomb := decodeJSON(t, b)
	if tomb["type"] != "Tombstone" || tomb["formerType"] != "Note" || tomb["id"] != entry.NoteID || tomb["deleted"] != "2024-01-02T03:04:05Z" {
		t.Errorf("tombstone = %v", tomb)
	}
}

func TestNoteLedeOnly(t *testing.T) {
	cfg := vocabConfig()
	cfg.LedeOnly = true
	s := newVocabService(t, cfg, "testdata/vocab_posts")
	b, err := s.NoteJSON("sample", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := decodeJSON(t, b)
	p := mustPost(t, s, "sample", "en")
	checkNote(t, s, p, n)
	content := n["content"].(string)
	for _, want := range []string{
		`<p><strong>Sample report: &lt;figures&gt; &amp; more</strong></p><p>A short lede for the sample report.</p>`,
		`<p>Read the article: <a href="https://blog.example/posts/sample/en">https://blog.example/posts/sample/en</a></p>`,
		`#<span>peertube</span>`,
		`hreflang="fr">Français</a>`,
		`CC BY-SA 4.0`,
	} {
		if !strings.Contains(content, want) {
			t.Errorf("lede content lacks %s:\n%s", want, content)
		}
	}
	if strings.Contains(content, "A heading") || strings.Contains(content, "Framadate") {
		t.Errorf("lede content has the body: %s", content)
	}
}

// TestNoteLongArticleFallsBackToLede: an article whose Note would pass
// maxFullContent is published as its lede (Pleroma and Akkoma refuse
// content over 100,000 characters, Misskey inbox bodies over 64 KiB).
func TestNoteLongArticleFallsBackToLede(t *testing.T) {
	dir := t.TempDir()
	var body strings.Builder
	for i := 0; body.Len() <= maxFullContent; i++ {
		fmt.Fprintf(&body, "Paragraph %d of a very long article, with enough words to be long.\n\n", i)
	}
	post := "---\ntitle: Long\ndate: 2023-01-01T00:00:00Z\nsummary: The lede.\n---\n\n" + body.String()
	if err := os.WriteFile(filepath.Join(dir, "long.en.md"), []byte(post), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newVocabService(t, vocabConfig(), dir)
	b, err := s.NoteJSON("long", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := decodeJSON(t, b)
	content := n["content"].(string)
	if len(content) > maxFullContent {
		t.Errorf("content is %d bytes, over %d", len(content), maxFullContent)
	}
	if !strings.Contains(content, "<p>The lede.</p>") || !strings.Contains(content, "Read the article:") {
		t.Errorf("long article not in lede form: %.300s", content)
	}
}

// TestSeedNotesMastodonSafe builds the Note of every seed article in
// ../posts and checks the field rules, that the content holds only what
// Mastodon keeps, that every heading became a bold paragraph, and that the
// Create stays under Misskey's 64 KiB inbox limit.
func TestSeedNotesMastodonSafe(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "../../posts")
	all := s.vocabLibrary().All()
	if len(all) == 0 {
		t.Fatal("no seed articles in ../posts")
	}
	for _, p := range all {
		t.Run(p.Key(), func(t *testing.T) {
			n, err := s.BuildNote(p, s.vocabLibrary(), p.Date, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			checkNote(t, s, p, n)
			content := n["content"].(string)
			bold := boldParagraphs(content)
			for _, h := range headings(p.HTML) {
				if !bold[h] {
					t.Errorf("heading %q is not a <p><strong> paragraph", h)
				}
			}
			act, err := s.NewActivity("Create", n)
			if err != nil {
				t.Fatal(err)
			}
			const misskeyInboxLimit = 64 << 10
			if len(act.JSON) >= misskeyInboxLimit {
				t.Errorf("Create is %d bytes, over Misskey's %d", len(act.JSON), misskeyInboxLimit)
			}
		})
	}
}

// headings returns the collapsed text of every h1–h6 of an HTML body.
func headings(body string) []string {
	var out []string
	walkHTML(body, func(n *html.Node) {
		switch n.DataAtom {
		case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
			out = append(out, strings.Join(strings.Fields(textContent(n)), " "))
		}
	})
	return out
}

// boldParagraphs returns the texts of the <p><strong>…</strong></p> of a
// Note's content.
func boldParagraphs(content string) map[string]bool {
	out := map[string]bool{}
	walkHTML(content, func(n *html.Node) {
		if n.DataAtom != atom.P {
			return
		}
		if c := n.FirstChild; c != nil && c == n.LastChild && c.DataAtom == atom.Strong {
			out[strings.Join(strings.Fields(textContent(c)), " ")] = true
		}
	})
	return out
}

func walkHTML(s string, fn func(*html.Node)) {
	nodes, err := html.ParseFragment(strings.NewReader(s), &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body})
	if err != nil {
		return
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			fn(n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
}

// A content warning is editor text, and summary is HTML to ActivityStreams
// readers: markup in it is escaped, never sent live. Text that reads the
// same as text and as HTML goes as it is, since Mastodon shows summary as
// plain text and would print "&amp;".
func TestNoteContentWarningIsNotMarkup(t *testing.T) {
	for cw, want := range map[string]string{
		`Spoilers <img src=x onerror=alert(1)> <b>bold</b>`: `Spoilers &lt;img src=x onerror=alert(1)&gt; &lt;b&gt;bold&lt;/b&gt;`,
		`Q&A about war & peace`:                             `Q&A about war & peace`,
		`Tom &amp; Jerry &copy`:                             `Tom &amp;amp; Jerry &amp;copy`,
		`a > b`:                                             `a > b`,
	} {
		dir := t.TempDir()
		body := fmt.Sprintf("---\ntitle: \"CW\"\ndate: 2023-09-01T08:00:00Z\ncontent_warning: %q\nslug: cw\n---\n\nBody.\n", cw)
		if err := os.WriteFile(filepath.Join(dir, "cw.en.md"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s := newVocabService(t, vocabConfig(), dir)
		b, err := s.NoteJSON("cw", "en")
		if err != nil {
			t.Fatal(err)
		}
		n := decodeJSON(t, b)
		if n["summary"] != want {
			t.Errorf("content_warning %q: summary %q, want %q", cw, n["summary"], want)
		}
		// Read as HTML, the summary is the editor's text, nothing more.
		if got := html.UnescapeString(fmt.Sprint(n["summary"])); got != cw {
			t.Errorf("content_warning %q reads as %q in HTML", cw, got)
		}
	}
}
