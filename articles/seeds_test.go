package articles

import (
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// seedWant is what the editors promised for one bundled seed article: the
// front matter as written in posts/*.md and the structure the Markdown must
// keep once rendered (headings, nested lists, image captions).
type seedWant struct {
	file  string
	slug  string
	lang  string
	title string
	date  string // RFC 3339, as in the front matter
	group string // translationKey
	// revoy is true where the article shows David Revoy's illustrations, so
	// the attribution must credit him.
	revoy bool
	// headings in document order, "h2 text" / "h3 text".
	headings []string
	// captions is the number of caption lines, each rendered as one <em>.
	captions int
	// caption is one caption that must be an <em> inside a paragraph.
	caption string
	// listDepth is the deepest nesting of <ul> (0: no list).
	listDepth int
	// parentItem, when set, is a list item whose nested list must hold
	// parentChildren items.
	parentItem     string
	parentChildren int
}

var seedArticles = []seedWant{
	{
		file: "framasoft-in-cifre-2023.it.md", slug: "framasoft-in-cifre-2023", lang: "it",
		title: "Framasoft in cifre, edizione 2023",
		date:  "2023-12-28T09:00:00+01:00", group: "stats-2023", revoy: true,
		headings: []string{
			"h2 🦆 VS 😈 : Riprendiamo terreno ai giganti del web!",
			"h2 Per quanto riguarda i nostri servizi online…",
			"h3 Framalistes e Framagroupes",
			"h2 Infrastruttura tecnica",
			"h2 L’associazione e i comuni culturali",
			"h3 Attività interna",
			"h3 I progetti in comune",
			"h2 Abbiamo bisogno del vostro aiuto!",
		},
		captions: 23, caption: "Grafico che mostra il numero di visite a Framadate", listDepth: 1,
	},
	{
		file: "framasoft-in-figures-2023.en.md", slug: "framasoft-in-figures-2023", lang: "en",
		title: "Framasoft in figures, 2023 edition",
		date:  "2023-12-28T09:00:00+01:00", group: "stats-2023", revoy: true,
		headings: []string{
			"h2 🦆 VS 😈: Let’s take back some ground from the tech giants!",
			"h2 As for our online services…",
			"h3 Framalistes and Framagroupes",
			"h2 Technical infrastructure",
			"h2 The association and the cultural commons",
			"h3 Shared projects",
			"h2 We need your help!",
		},
		captions: 23, caption: "Screenshot of the Framagit homepage", listDepth: 1,
	},
	{
		file: "framasoft-en-chiffres-2023.fr.md", slug: "framasoft-en-chiffres-2023", lang: "fr",
		title: "Framasoft en chiffres, édition 2023",
		date:  "2023-12-28T09:00:00+01:00", group: "stats-2023", revoy: true,
		headings: []string{
			"h2 🦆 VS 😈 : Reprenons du terrain aux géants du web !",
			"h2 Du côté de nos services en ligne…",
			"h3 Framalistes et Framagroupes",
			"h2 Infrastructure technique",
			"h2 L’association et les communs culturels",
			"h3 En interne",
			"h3 Les projets partagés",
			"h2 Nous avons besoin de vous !",
		},
		captions: 23, caption: "Graphique présentant l’évolution des visites sur Framadate", listDepth: 1,
	},
	{
		file: "framasoft-2023-report.en.md", slug: "framasoft-2023-report", lang: "en",
		title: "Let’s regain ground on the toxic web\u00a0! – Framasoft’s 2023 report",
		date:  "2023-11-14T09:00:00+01:00", group: "report-2023", revoy: true,
		headings: []string{
			"h2 🦆 VS 😈: Let’s take back some ground from the tech giants!",
			"h2 Changing the world, one web corner at a time",
			"h2 Framaspace, solidarity collectives get to grips with this convivial cloud",
			"h2 PeerTube: a v6 based on your ideas",
			"h2 Mobilizon, the final countdown of the battle…",
			"h2 PeerTube (yes, again! but…) in 2024: we’re betting big on its success",
			"h2 Émancip’Asso: professional training, MOOC, website…",
			"h2 Digital empowerment with practical tools",
			"h2 All the work we can’t describe in 7 weeks…",
			"h2 Seven weeks to balance our budget for 2024",
		},
		// This caption sits inside the "Framalibre" list item.
		captions: 21, caption: "Click to support us and push Hydroffice away – Illustration CC-By David Revoy",
		listDepth: 3, parentItem: "Version 6 (end of November 2023)", parentChildren: 6,
	},
	{
		file: "bilan-2023-framasoft.fr.md", slug: "bilan-2023-framasoft", lang: "fr",
		title: "Reprenons du terrain sur le Web toxique\u00a0! – Bilan 2023 de Framasoft",
		date:  "2023-11-14T09:00:00+01:00", group: "report-2023", revoy: true,
		headings: []string{
			"h2 🦆 VS 😈 : Reprenons du terrain aux géants du Web !",
			"h2 Changer le monde, un coin(coin) de web à la fois",
			"h2 Framaspace, les collectifs solidaires apprivoisent ce cloud convivial",
			"h2 PeerTube : une v6 réalisée à partir de vos idées",
			"h2 Mobilizon, c’est la lutte version finale…",
			"h2 PeerTube (oui, encore ! mais…) en 2024 : nous misons gros sur son succès",
			"h2 Émancip’Asso : la formation, le MOOC, le site web…",
			"h2 L’émancipation numérique, avec des outils concrets",
			"h2 Tout le travail qu’on ne pourra pas détailler en 7 semaines…",
			"h2 Sept semaines pour nous aider à boucler notre budget 2024",
		},
		captions: 21, caption: "« Coin-Coin VS Datavöre » – Illustration CC-By David Revoy",
		listDepth: 3, parentItem: "Version 6 (fin novembre 2023)", parentChildren: 6,
	},
	{
		file: "echo-network-brussels-june-2023.en.md", slug: "echo-network-brussels-june-2023", lang: "en",
		title: "Brussels, June 2023\u00a0: Diary of the second ECHO Network study visit",
		date:  "2023-06-26T09:00:00+02:00", group: "echo-brussels",
		captions: 7, caption: "Smurf ceiling in Brussels. Comics are everywhere.",
	},
	{
		file: "echo-network-bruxelles-juin-2023.fr.md", slug: "echo-network-bruxelles-juin-2023", lang: "fr",
		title: "Bruxelles, juin 2023\u00a0: journal de bord de la deuxième visite d’études d’ECHO Network",
		date:  "2023-06-26T09:00:00+02:00", group: "echo-brussels",
		captions: 6, caption: "Plafond Schtroumpf dans Bruxelles. La BD est partout.",
	},
	{
		file: "echo-network-berlin-march-2023.en.md", slug: "echo-network-berlin-march-2023", lang: "en",
		title: "Berlin, March 2023\u00a0: Diary of the first ECHO Network study visit",
		date:  "2023-06-19T09:00:00+02:00", group: "echo-berlin",
		headings: []string{
			"h2 It’s a long way to Berlin!",
			"h2 Tuesday 28 March: Discoveries and visits off the beaten track",
			"h2 Wednesday 29 March: young, old and social networks",
			"h3 Discussion: What do we think about social networks in our organisations?",
			"h3 Feedback from a student workshop: raising awareness of social issues in a TikTok video",
			"h2 Thursday 30th March: Politics and Open Source",
			"h3 Reflect EU&US: the Willi Eichler Academy project",
			"h3 Open source meets politics",
			"h2 An intense week!",
		},
		captions: 6, caption: "Reflect EU&US project logo", listDepth: 1,
	},
}

// seedGroups is which languages each translation group must hold.
var seedGroups = map[string][]string{
	"stats-2023":    {"en", "fr", "it"},
	"report-2023":   {"en", "fr"},
	"echo-brussels": {"en", "fr"},
	"echo-berlin":   {"en"},
}

// afterSeeds is a moment when every seed article is published.
var afterSeeds = time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)

func loadSeeds(t *testing.T) *Library {
	t.Helper()
	lib, err := Load("../posts", Options{DefaultLanguage: "en"})
	if err != nil {
		t.Fatalf("Load(posts folder): %v", err)
	}
	for _, p := range lib.Problems() {
		t.Errorf("problem in the bundled posts: %s:%d: %s", p.File, p.Line, p.Msg)
	}
	return lib
}

func TestSeedArticlesFrontMatter(t *testing.T) {
	lib := loadSeeds(t)
	for _, w := range seedArticles {
		t.Run(w.file, func(t *testing.T) {
			p, ok := lib.Get(w.slug, w.lang)
			if !ok {
				t.Fatalf("Get(%q, %q): not found", w.slug, w.lang)
			}
			if p.File != w.file {
				t.Errorf("File = %q, want %q", p.File, w.file)
			}
			if p.Key() != w.slug+"/"+w.lang {
				t.Errorf("Key() = %q", p.Key())
			}
			if p.Title != w.title {
				t.Errorf("Title = %q, want %q", p.Title, w.title)
			}
			if p.Lang != w.lang {
				t.Errorf("Lang = %q, want %q", p.Lang, w.lang)
			}
			want, err := time.Parse(time.RFC3339, w.date)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Date.Equal(want) {
				t.Errorf("Date = %s, want %s", p.Date.Format(time.RFC3339), w.date)
			}
			if p.TranslationKey != w.group {
				t.Errorf("TranslationKey = %q, want %q", p.TranslationKey, w.group)
			}
			if p.Draft {
				t.Error("Draft = true")
			}
			// No seed states its publication date or time: each must say so.
			if !strings.HasPrefix(p.DateNote, "Not stated in the text") || !strings.Contains(p.DateNote, "09:00") {
				t.Errorf("DateNote does not flag the inferred date and time: %q", p.DateNote)
			}
			if w.lang == "it" && !strings.Contains(p.DateNote, "translation") {
				t.Errorf("DateNote of the Italian version does not say it is a translation: %q", p.DateNote)
			}
			a := p.Attribution
			if a.Author != "Framasoft" || a.Licence != "CC BY-SA 4.0" ||
				a.LicenceURL != "https://creativecommons.org/licenses/by-sa/4.0/" {
				t.Errorf("Attribution = %+v", a)
			}
			if a.Source != "" {
				t.Errorf("Attribution.Source = %q: the seeds hold no URL", a.Source)
			}
			credited := strings.Contains(strings.Join(a.Credits, " "), "David Revoy")
			if credited != w.revoy {
				t.Errorf("Credits = %q, David Revoy credited = %v, want %v", a.Credits, credited, w.revoy)
			}
			if len(p.Tags) == 0 || p.Tags[0] != "framasoft" {
				t.Errorf("Tags = %q, want framasoft first", p.Tags)
			}
			for _, tag := range p.Tags {
				if tag != strings.ToLower(tag) {
					t.Errorf("tag %q is not lower case", tag)
				}
			}
			if len(p.Hash) != 64 {
				t.Errorf("Hash = %q, want hex SHA-256", p.Hash)
			}
			// The summary is the article's own opening words, not a rewrite.
			if p.Summary == "" {
				t.Error("Summary is empty")
			} else if text := words(htmlText(t, p.HTML)); !strings.Contains(text, words(p.Summary)) {
				t.Errorf("Summary %q is not taken from the article's text", p.Summary)
			}
		})
	}
}

func TestSeedArticlesStructure(t *testing.T) {
	lib := loadSeeds(t)
	for _, w := range seedArticles {
		t.Run(w.file, func(t *testing.T) {
			p, ok := lib.Get(w.slug, w.lang)
			if !ok {
				t.Fatalf("Get(%q, %q): not found", w.slug, w.lang)
			}
			doc, err := html.Parse(strings.NewReader(p.HTML))
			if err != nil {
				t.Fatalf("parse HTML: %v", err)
			}

			var heads []string
			walk(doc, func(n *html.Node) {
				if n.Type == html.ElementNode && (n.Data == "h2" || n.Data == "h3") {
					heads = append(heads, n.Data+" "+words(nodeText(n)))
				}
				if n.Type == html.ElementNode && (n.Data == "h1" || n.Data == "h4") {
					t.Errorf("unexpected <%s> %q", n.Data, nodeText(n))
				}
			})
			wantHeads := make([]string, len(w.headings))
			for i, h := range w.headings {
				wantHeads[i] = words(h)
			}
			if strings.Join(heads, "\n") != strings.Join(wantHeads, "\n") {
				t.Errorf("headings:\n%s\nwant:\n%s", strings.Join(heads, "\n"), strings.Join(wantHeads, "\n"))
			}

			var ems []*html.Node
			walk(doc, func(n *html.Node) {
				if n.Type == html.ElementNode && n.Data == "em" {
					ems = append(ems, n)
				}
			})
			if len(ems) != w.captions {
				t.Errorf("%d <em> captions, want %d", len(ems), w.captions)
			}
			found := false
			for _, em := range ems {
				if words(nodeText(em)) != words(w.caption) {
					continue
				}
				found = true
				if em.Parent == nil || em.Parent.Data != "p" {
					t.Errorf("caption %q is not in a paragraph", w.caption)
				}
				// A caption is a paragraph of its own, never glued to body text.
				for c := em.Parent.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.TextNode && strings.TrimSpace(c.Data) != "" {
						t.Errorf("caption paragraph of %q holds body text %q", w.caption, c.Data)
					}
				}
			}
			if !found {
				t.Errorf("caption %q is not rendered as <em>", w.caption)
			}

			if d := maxListDepth(doc, 0); d != w.listDepth {
				t.Errorf("deepest list nesting = %d, want %d", d, w.listDepth)
			}
			if w.parentItem != "" {
				checkNestedItem(t, doc, w.parentItem, w.parentChildren)
			}

			// Images and links are not part of the seeds: none may be invented.
			walk(doc, func(n *html.Node) {
				if n.Type == html.ElementNode && (n.Data == "img" || n.Data == "a") {
					t.Errorf("unexpected <%s> in %s", n.Data, w.file)
				}
			})
		})
	}
}

func TestSeedTranslationGroups(t *testing.T) {
	lib := loadSeeds(t)
	groups := map[string][]string{}
	for _, p := range lib.All() {
		if strings.HasPrefix(p.File, "testdata/") {
			t.Errorf("test fixture %s loaded as an article of the posts folder", p.File)
			continue
		}
		groups[p.TranslationKey] = append(groups[p.TranslationKey], p.Lang)
	}
	for key, langs := range seedGroups {
		got := append([]string(nil), groups[key]...)
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(langs, ",") {
			t.Errorf("group %s has languages %v, want %v", key, got, langs)
		}
	}
	for _, w := range seedArticles {
		p, ok := lib.Get(w.slug, w.lang)
		if !ok {
			t.Errorf("Get(%q, %q): not found", w.slug, w.lang)
			continue
		}
		var got []string
		for _, s := range lib.Translations(p) {
			if s.TranslationKey != w.group {
				t.Errorf("%s: translation %s is in group %q", w.file, s.Key(), s.TranslationKey)
			}
			got = append(got, s.Lang)
		}
		sort.Strings(got)
		var want []string
		for _, l := range seedGroups[w.group] {
			if l != w.lang {
				want = append(want, l)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: Translations langs = %v, want %v", w.file, got, want)
		}
	}
}

func TestSeedArticlesVisibleNewestFirst(t *testing.T) {
	lib := loadSeeds(t)
	vis := lib.Visible(afterSeeds)
	seen := map[string]bool{}
	for i, p := range vis {
		seen[p.Key()] = true
		if i > 0 && p.Date.After(vis[i-1].Date) {
			t.Errorf("Visible not newest first: %s (%s) after %s (%s)",
				p.Key(), p.Date.Format(time.RFC3339), vis[i-1].Key(), vis[i-1].Date.Format(time.RFC3339))
		}
	}
	for _, w := range seedArticles {
		if !seen[w.slug+"/"+w.lang] {
			t.Errorf("%s not visible on %s", w.file, afterSeeds.Format(time.RFC3339))
		}
	}
	if got := len(lib.ByTag(TagSlug("framasoft"), afterSeeds)); got < len(seedArticles) {
		t.Errorf("ByTag(framasoft) = %d posts, want at least %d", got, len(seedArticles))
	}
	echo := map[string]bool{}
	for _, p := range lib.ByTag(TagSlug("echo network"), afterSeeds) {
		echo[p.Key()] = true
	}
	for _, key := range []string{
		"echo-network-brussels-june-2023/en",
		"echo-network-bruxelles-juin-2023/fr",
		"echo-network-berlin-march-2023/en",
	} {
		if !echo[key] {
			t.Errorf("ByTag(echo-network) lacks %s", key)
		}
	}
}

// checkNestedItem finds the <li> whose own text starts with item and checks
// that it holds a nested <ul> of n items.
func checkNestedItem(t *testing.T, doc *html.Node, item string, n int) {
	t.Helper()
	found := false
	walk(doc, func(li *html.Node) {
		if li.Type != html.ElementNode || li.Data != "li" || found {
			return
		}
		if !strings.HasPrefix(words(ownText(li)), words(item)) {
			return
		}
		found = true
		for c := li.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && c.Data == "ul" {
				if got := countChildren(c, "li"); got != n {
					t.Errorf("item %q has %d nested items, want %d", item, got, n)
				}
				return
			}
		}
		t.Errorf("item %q has no nested <ul>", item)
	})
	if !found {
		t.Errorf("list item %q not found", item)
	}
}

// maxListDepth is the deepest chain of nested <ul> under n.
func maxListDepth(n *html.Node, depth int) int {
	if n.Type == html.ElementNode && n.Data == "ul" {
		depth++
	}
	best := depth
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if d := maxListDepth(c, depth); d > best {
			best = d
		}
	}
	return best
}

func countChildren(n *html.Node, tag string) int {
	k := 0
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && c.Data == tag {
			k++
		}
	}
	return k
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

// nodeText is all the text under n.
func nodeText(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

// ownText is the text of n without its nested lists (an item's own line,
// whether or not the list is loose and wraps it in <p>).
func ownText(n *html.Node) string {
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && (c.Data == "ul" || c.Data == "ol") {
			continue
		}
		b.WriteString(nodeText(c))
	}
	return b.String()
}

func htmlText(t *testing.T, s string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	return nodeText(doc)
}

// words collapses every run of white space, no-break spaces included, to one
// space: the seeds use no-break spaces French-style and HTML may re-wrap.
func words(s string) string { return strings.Join(strings.Fields(s), " ") }
