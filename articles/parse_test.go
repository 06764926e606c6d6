package articles

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// goldenPost is the JSON form of a Post in the golden files.
type goldenPost struct {
	Key string
	*Post
}

func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.md")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(name, data, Options{DefaultLanguage: "en"})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false) // keep the HTML readable in the golden file
			enc.SetIndent("", "  ")
			if err := enc.Encode(goldenPost{Key: p.Key(), Post: p}); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			golden := strings.TrimSuffix(f, ".md") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./posts/ -run TestParseGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Parse(%s) differs from %s:\n%s", name, golden, got)
			}
		})
	}
}

// TestParseFull checks the golden output's key facts in code, so that a
// careless -update cannot bless a regression.
func TestParseFull(t *testing.T) {
	data, err := os.ReadFile("testdata/full.fr.md")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("reports/full.fr.md", data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Key() != "bilan-annuel/fr" || p.TranslationKey != "bilan-2023" || p.File != "reports/full.fr.md" {
		t.Errorf("Key %q, TranslationKey %q, File %q", p.Key(), p.TranslationKey, p.File)
	}
	if want := time.Date(2023, 11, 14, 8, 0, 0, 0, time.UTC); !p.Date.Equal(want) {
		t.Errorf("Date = %s, want %s", p.Date, want)
	}
	if want := time.Date(2023, 11, 20, 18, 30, 0, 0, time.UTC); !p.Lastmod.Equal(want) {
		t.Errorf("Lastmod = %s, want %s", p.Lastmod, want)
	}
	if p.Summary != "Un résumé écrit par l’équipe." {
		t.Errorf("Summary = %q", p.Summary)
	}
	if got := strings.Join(p.Tags, "|"); got != "Framasoft|PeerTube|Logiciel libre" {
		t.Errorf("Tags = %q", got)
	}
	if !p.Sensitive || !p.Pinned || p.ContentWarning != "Politique" || p.Draft {
		t.Errorf("Sensitive %v Pinned %v CW %q Draft %v", p.Sensitive, p.Pinned, p.ContentWarning, p.Draft)
	}
	a := p.Attribution
	if a.Author != "Framasoft" || a.Licence != "CC BY-SA 4.0" || a.Source != "https://framablog.org/" ||
		len(a.Credits) != 1 || a.Credits[0] != "Illustrations CC-By David Revoy" {
		t.Errorf("Attribution = %+v", a)
	}
	wantImages := []Image{
		{Src: "reports/couverture.png", Alt: "Coin-Coin en position de karatéka", Title: "La mascotte"},
		{Src: "https://example.org/remote.jpg"},
		{Src: "reports/graphique.png", Alt: "Graphique des visites", Title: "Visites"},
		{Src: "https://cdn.example.org/photo.jpg", Alt: "Image distante"},
	}
	if len(p.Images) != len(wantImages) {
		t.Fatalf("Images = %+v", p.Images)
	}
	for i, im := range wantImages {
		if p.Images[i] != im {
			t.Errorf("Images[%d] = %+v, want %+v", i, p.Images[i], im)
		}
	}
	for _, want := range []string{
		`<h2 id="les-services">Les services</h2>`,
		`<del>rendez-vous</del>`,
		`<table>`, `<td align="right">100</td>`,
		`<img src="/media/reports/graphique.png" alt="Graphique des visites" title="Visites">`,
		`<img src="https://cdn.example.org/photo.jpg" alt="Image distante">`,
		`<a href="https://example.org/membres" title="Membres" rel="nofollow noopener">nos membres</a>`,
		`<a href="https://framasoft.org" rel="nofollow noopener">https://framasoft.org</a>`,
		`<figure><img src="images/dessin.jpg" alt="Dessin"><figcaption>Dessin CC-By David Revoy</figcaption></figure>`,
		`<code class="language-go">`,
		`class="footnote-ref"`, `<li id="fn:1">`,
		`<p>Sans style</p>`,
		`Un lien piégé`,
	} {
		if !strings.Contains(p.HTML, want) {
			t.Errorf("HTML lacks %s", want)
		}
	}
	checkSafeHTML(t, p.HTML)
	for _, bad := range []string{"<script", "<iframe", "style=", "onclick", "javascript:", "alert(1)"} {
		if strings.Contains(p.HTML, bad) {
			t.Errorf("HTML keeps %q", bad)
		}
	}
	if len(p.Hash) != 64 {
		t.Errorf("Hash = %q", p.Hash)
	}
}

func TestParseDerivedSummary(t *testing.T) {
	data, err := os.ReadFile("testdata/minimal.md")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("minimal.md", data, Options{DefaultLanguage: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Lang != "fr" || p.Slug != "minimal" {
		t.Errorf("Key = %q: a file without a suffix takes the default language", p.Key())
	}
	if !strings.HasPrefix(p.Summary, "This first paragraph is long enough to be cut: it keeps going with emphasis, code spans, and a link so") {
		t.Errorf("Summary does not start with the first paragraph's text: %q", p.Summary)
	}
	if n := len([]rune(p.Summary)); n > summaryLen || n < summaryLen-40 {
		t.Errorf("Summary is %d characters, want about %d", n, summaryLen)
	}
	// The paragraph's plain text, as a reader sees it.
	para := strings.NewReplacer("*", "", "`", "", "[link](https://example.org)", "link").Replace(
		strings.Split(string(data), "\n\n")[2])
	cut := strings.TrimSuffix(p.Summary, "…")
	if cut == p.Summary || !strings.HasPrefix(para, cut+" ") {
		t.Errorf("Summary is not the paragraph cut on a word boundary with an ellipsis: %q", p.Summary)
	}
	if len(p.Images) != 0 {
		t.Errorf("an image outside the posts folder was kept: %+v", p.Images)
	}
}

func TestParseNames(t *testing.T) {
	body := "---\ntitle: T\ndate: 2023-01-02\n---\nText.\n"
	for _, c := range []struct {
		file, key, problem string
	}{
		{"stats.fr.md", "stats/fr", ""},
		{"stats.md", "stats/en", ""},
		{"Stats-2023.IT.md", "stats-2023/it", ""},
		{"diary/index.fr.md", "diary/fr", ""},
		{"diary/index.md", "diary/en", ""},
		{"2023/visits/brussels.fr.md", "brussels/fr", ""},
		{"stats.xx.md", "", `stats.xx.md: unknown language code "xx": use a two-letter ISO 639-1 code such as en, fr or it`},
		{"stats.english.md", "", `unknown language code "english"`},
		{"stats.pt-br.md", "", `unknown language code "pt-br"`},
		{"my stats.fr.md", "", `slug "my stats" taken from the file name`},
		{"index.fr.md", "", "page bundle"},
		{"notes.txt", "", "not a Markdown file"},
	} {
		p, err := Parse(c.file, []byte(body), Options{})
		if c.problem == "" {
			if err != nil {
				t.Errorf("Parse(%s): %v", c.file, err)
			} else if p.Key() != c.key {
				t.Errorf("Parse(%s).Key() = %q, want %q", c.file, p.Key(), c.key)
			}
			continue
		}
		var prob *Problem
		if !errors.As(err, &prob) {
			t.Errorf("Parse(%s) = %v, want a *Problem", c.file, err)
			continue
		}
		if prob.File != c.file || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("Parse(%s) = %q (file %q), want it to contain %q", c.file, err, prob.File, c.problem)
		}
	}
}

func TestParseDates(t *testing.T) {
	paris := time.FixedZone("", 3600)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"2023-12-28T09:00:00+01:00", time.Date(2023, 12, 28, 9, 0, 0, 0, paris)},
		{"2023-12-28T08:00:00Z", time.Date(2023, 12, 28, 8, 0, 0, 0, time.UTC)},
		{"2023-12-28T09:00:00.5+01:00", time.Date(2023, 12, 28, 9, 0, 0, 5e8, paris)},
		{"2023-12-28T09:00:00", time.Date(2023, 12, 28, 9, 0, 0, 0, time.UTC)},
		{`"2023-12-28 09:00"`, time.Date(2023, 12, 28, 9, 0, 0, 0, time.UTC)},
		{"2023-12-28", time.Date(2023, 12, 28, 0, 0, 0, 0, time.UTC)},
	} {
		p, err := Parse("d.md", []byte("---\ntitle: T\ndate: "+c.in+"\n---\n"), Options{})
		if err != nil {
			t.Errorf("date %s: %v", c.in, err)
			continue
		}
		if !p.Date.Equal(c.want) {
			t.Errorf("date %s = %s, want %s", c.in, p.Date, c.want)
		}
	}
}

func TestParseProblems(t *testing.T) {
	for _, c := range []struct {
		name, data string
		line       int
		msg        string // substring
	}{
		{"broken yaml", "---\ntitle: T\ndate: 2023-01-01\ntags: [a, b\nslug: x\n---\n", 4, "front matter: did not find expected ',' or ']'"},
		{"bad indentation", "---\ntitle: T\n  oops: x\ndate: 2023-01-01\n---\n", 3, "mapping values are not allowed"},
		{"wrong type", "---\ntitle: T\ndate: 2023-01-01\n\ndraft: maybe\n---\n", 5, "cannot unmarshal !!str `maybe` into bool"},
		{"duplicate key", "---\ntitle: T\ndate: 2023-01-01\ntitle: U\n---\n", 4, `mapping key "title" already defined at line 2`},
		{"unclosed quote", "---\ntitle: 'T\ndate: 2023-01-01\n---\n", 4, "front matter: found unexpected end of stream"},
		{"unterminated", "---\ntitle: T\ndate: 2023-01-01\n\nBody without end.\n", 1, "front matter is not closed"},
		{"no front matter", "# Title\n\nBody.\n", 1, "missing front matter"},
		{"toml", "+++\ntitle = 'T'\n+++\n", 1, "TOML front matter"},
		{"not a mapping", "---\n- a\n- b\n---\n", 2, "front matter must be"},
		{"empty front matter", "---\n---\nBody\n", 0, "missing title"},
		{"missing title", "---\ndate: 2023-01-01\n---\nBody\n", 0, "missing title"},
		{"blank title", "---\ntitle: '  '\ndate: 2023-01-01\n---\nBody\n", 0, "missing title"},
		{"missing date", "---\ntitle: T\n---\nBody\n", 0, "missing date"},
		{"bad date", "---\ntitle: T\n\ndate: 28/12/2023\n---\n", 4, `date: "28/12/2023" is not a date`},
		{"bad lastmod", "---\ntitle: T\ndate: 2023-01-01\nlastmod: soon\n---\n", 4, `lastmod: "soon" is not a date`},
		{"year one", "---\ntitle: T\ndate: 0001-01-01\n---\n", 3, `date: "0001-01-01" is before 1900`},
		{"lastmod in 1899", "---\ntitle: T\ndate: 2023-01-01\nlastmod: 1899-12-31\n---\n", 4, `lastmod: "1899-12-31" is before 1900`},
		{"bad slug", "---\ntitle: T\ndate: 2023-01-01\nslug: ../etc/passwd\n---\n", 4, `slug "../etc/passwd"`},
		{"bad image", "---\ntitle: T\ndate: 2023-01-01\nimages:\n  - javascript:alert(1)\n---\n", 5, `image "javascript:alert(1)"`},
		{"not utf-8", "---\ntitle: \xff\ndate: 2023-01-01\n---\n", 0, "not valid UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("a.en.md", []byte(c.data), Options{})
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("Parse = %v, want a *Problem", err)
			}
			if p.File != "a.en.md" || p.Line != c.line || !strings.Contains(p.Msg, c.msg) {
				t.Errorf("Problem = %#v, want line %d and %q", p, c.line, c.msg)
			}
			want := "a.en.md: "
			if c.line > 0 {
				want = "a.en.md:" + itoa(c.line) + ": "
			}
			if !strings.HasPrefix(p.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", p.Error(), want)
			}
		})
	}
}

// checkSafeHTML fails when sanitised HTML keeps an element or attribute
// that can run code or load a frame.
func checkSafeHTML(t *testing.T, s string) {
	t.Helper()
	nodes, err := html.ParseFragment(strings.NewReader(s), &html.Node{Type: html.ElementNode, Data: "div", DataAtom: atom.Div})
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	for _, n := range nodes {
		walk(n, func(n *html.Node) {
			if n.Type != html.ElementNode {
				return
			}
			switch n.Data {
			case "script", "style", "iframe", "object", "embed", "form", "input", "link", "meta", "base":
				t.Fatalf("HTML keeps <%s>: %s", n.Data, s)
			}
			for _, a := range n.Attr {
				v := strings.ToLower(strings.Join(strings.Fields(a.Val), ""))
				if strings.HasPrefix(a.Key, "on") || a.Key == "style" || a.Key == "srcdoc" ||
					strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") || strings.HasPrefix(v, "data:text") {
					t.Fatalf("HTML keeps %s=%q: %s", a.Key, a.Val, s)
				}
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestParseSizeLimit(t *testing.T) {
	data := append([]byte("---\ntitle: T\ndate: 2023-01-01\n---\n"), bytes.Repeat([]byte("a"), MaxPostSize)...)
	if _, err := Parse("big.md", data, Options{}); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("Parse(%d bytes) = %v, want a size problem", len(data), err)
	}
}

func TestParseCRLFAndBOM(t *testing.T) {
	data := "\xef\xbb\xbf---\r\ntitle: Windows\r\ndate: 2023-01-01\r\n---\r\nFirst line.\r\n"
	p, err := Parse("w.md", []byte(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Title != "Windows" || p.Summary != "First line." {
		t.Errorf("Title %q Summary %q", p.Title, p.Summary)
	}
}

func TestValidLanguage(t *testing.T) {
	n := 0
	for a := 'a'; a <= 'z'; a++ {
		for b := 'a'; b <= 'z'; b++ {
			if ValidLanguage(string([]rune{a, b})) {
				n++
			}
		}
	}
	// 183 current ISO 639-1 codes plus the withdrawn "bh".
	if n != 184 {
		t.Errorf("%d two-letter codes accepted, want 184", n)
	}
	for _, ok := range []string{"fr", "en", "it", "de", "zu", "aa", "oc", "br"} {
		if !ValidLanguage(ok) {
			t.Errorf("ValidLanguage(%q) = false", ok)
		}
	}
	for _, bad := range []string{"xx", "qq", "english", "e", "", "FR", "f1", "en-gb", "ab "} {
		if ValidLanguage(bad) {
			t.Errorf("ValidLanguage(%q) = true", bad)
		}
	}
}

func TestTruncateWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short text", 20, "short text"},
		{"one two three four", 10, "one two…"},
		{"one two, three", 9, "one two…"},
		{"abcdefghijkl", 5, "abcd…"},
		{"  spaced   out  ", 20, "spaced out"},
		{"été à Bruxelles", 6, "été à…"},
	} {
		if got := truncateWords(c.in, c.n); got != c.want {
			t.Errorf("truncateWords(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.md")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.Base(file), data)
	}
	f.Add("x.fr.md", []byte("---\ntitle: [\n---\n"))
	f.Add("b/index.md", []byte("---\ntitle: T\ndate: 2023-01-01\n---\n![a](../../x.png)"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		p, err := Parse(name, data, Options{})
		if err != nil {
			var prob *Problem
			if !errors.As(err, &prob) {
				t.Fatalf("error %v (%T) is not a *Problem", err, err)
			}
			if prob.Line < 0 {
				t.Fatalf("negative line in %v", prob)
			}
			return
		}
		if p.Title == "" || p.Date.IsZero() || !ValidLanguage(p.Lang) || !slugRE.MatchString(p.Slug) || len(p.Hash) != 64 {
			t.Fatalf("invalid post accepted: %+v", p)
		}
		checkSafeHTML(t, p.HTML)
		for _, im := range p.Images {
			if strings.HasPrefix(im.Src, "../") || strings.HasPrefix(im.Src, "/") || im.Src == "" {
				t.Fatalf("image outside the folder: %+v", im)
			}
		}
	})
}

func TestParseNestingLimit(t *testing.T) {
	head := "---\ntitle: T\ndate: 2023-01-01\n---\n\nText.\n"
	for _, c := range []struct {
		name, body string
		msg        string
	}{
		{"quotes", strings.Repeat(">", maxNesting+1) + " deep\n", "nested quotes or list levels"},
		{"lists", strings.Repeat("- ", maxNesting+1) + "deep\n", "nested quotes or list levels"},
		{"ordered", strings.Repeat("1. ", maxNesting+1) + "deep\n", "nested quotes or list levels"},
		{"indent", strings.Repeat(" ", maxIndent+1) + "- deep\n", "indented by more than"},
	} {
		_, err := Parse("n.md", []byte(head+c.body), Options{})
		var p *Problem
		if !errors.As(err, &p) || p.Line != 7 || !strings.Contains(p.Msg, c.msg) {
			t.Errorf("%s: Parse = %v, want line 7 and %q", c.name, err, c.msg)
		}
	}
	// Ordinary nesting is fine.
	ok := head + "> - a\n>   - b\n>     1. c\n"
	if _, err := Parse("n.md", []byte(ok), Options{}); err != nil {
		t.Errorf("Parse(3 levels) = %v", err)
	}
}

func TestRenderWithinTimeout(t *testing.T) {
	// Unclosed link destinations make goldmark scan ahead again and again.
	slow := []byte(strings.Repeat("[a](", 5000))
	if _, err := renderWithin(slow, ".", DefaultMediaPrefix, time.Nanosecond); err == nil || !strings.Contains(err.Error(), "takes more than") {
		t.Errorf("renderWithin = %v, want a timeout", err)
	}
	r, err := renderWithin([]byte("*fast*"), ".", DefaultMediaPrefix, time.Minute)
	if err != nil || r.html != "<p><em>fast</em></p>" {
		t.Errorf("renderWithin = %q, %v", r.html, err)
	}
}

// TestNoteHashIgnoresPinned: pinning or unpinning changes the file, not the
// article, so the Note's hash stays; any other change moves it. Only the
// front matter's top-level key counts.
func TestNoteHashIgnoresPinned(t *testing.T) {
	parse := func(fm, body string) *Post {
		t.Helper()
		p, err := Parse("a.en.md", []byte("---\ntitle: A\ndate: 2024-01-02\n"+fm+"---\n\n"+body+"\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := parse("", "Text.")
	if plain.NoteHash != plain.Hash {
		t.Errorf("without a pinned line NoteHash %s differs from Hash %s", plain.NoteHash, plain.Hash)
	}
	for _, fm := range []string{"pinned: true\n", "pinned: false\n", "pinned : true\r\n"} {
		p := parse(fm, "Text.")
		if p.Hash == plain.Hash || p.NoteHash != plain.NoteHash {
			t.Errorf("%q: Hash changed %v, NoteHash changed %v; want true, false", fm, p.Hash != plain.Hash, p.NoteHash != plain.NoteHash)
		}
	}
	if p := parse("pinned: true\n", "Other text."); p.NoteHash == plain.NoteHash {
		t.Error("an edit of a pinned article kept its NoteHash")
	}
	// The same words in the body, or nested in the front matter, are part
	// of the article.
	if p := parse("", "pinned: true"); p.NoteHash == parse("", "").NoteHash {
		t.Error("a body line reading pinned: was cut")
	}
	if p := parse("extra:\n  pinned: true\n", "Text."); p.NoteHash != p.Hash {
		t.Error("a nested pinned key was cut")
	}
}
