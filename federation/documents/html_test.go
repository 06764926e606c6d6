package documents

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// The test's own copy of what Mastodon keeps (INTEROP-DETAILS HT-1..HT-5),
// written independently of html.go's tables so that a mistake there shows.
var (
	testMastodonElements = strings.Fields("p br span a del s pre blockquote code b strong u i em ul ol li")
	testMastodonAttrs    = map[string][]string{
		"*":    {"lang"},
		"a":    {"href", "rel", "class", "translate", "hreflang"},
		"span": {"class", "translate"},
		"p":    {"class"},
		"ol":   {"start", "reversed"},
		"li":   {"value"},
	}
	testClassPrefixes = []string{"h-", "p-", "u-", "dt-", "e-"}
	testClassNames    = strings.Fields("mention hashtag ellipsis invisible quote-inline")
)

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// mastodonSafeProblems parses s as Mastodon would and lists everything its
// sanitiser would remove or rewrite: elements, attributes, classes, and
// links that are not absolute http(s).
func mastodonSafeProblems(s string) []string {
	ctx := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	nodes, err := html.ParseFragment(strings.NewReader(s), ctx)
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	var problems []string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if n.Namespace != "" || !contains(testMastodonElements, n.Data) {
				problems = append(problems, "element <"+n.Data+">")
			}
			for _, a := range n.Attr {
				if !contains(testMastodonAttrs["*"], a.Key) && !contains(testMastodonAttrs[n.Data], a.Key) {
					problems = append(problems, "attribute "+n.Data+"@"+a.Key)
					continue
				}
				switch a.Key {
				case "class":
					for _, c := range strings.Fields(a.Val) {
						ok := contains(testClassNames, c)
						for _, p := range testClassPrefixes {
							ok = ok || strings.HasPrefix(c, p)
						}
						if !ok {
							problems = append(problems, "class "+c)
						}
					}
				case "href":
					u, err := url.Parse(a.Val)
					if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
						problems = append(problems, "href "+a.Val)
					}
				}
			}
		}
		if n.Type == html.CommentNode {
			problems = append(problems, "comment")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
	return problems
}

func TestMastodonHTMLRules(t *testing.T) {
	const base = "https://blog.example/posts/report/en"
	cases := []struct {
		name, in, want string
	}{
		{"heading becomes bold paragraph",
			`<h2 id="figures">Our figures</h2>`,
			`<p><strong>Our figures</strong></p>`},
		{"all heading levels",
			`<h1>a</h1><h3>b</h3><h6>c</h6>`,
			`<p><strong>a</strong></p><p><strong>b</strong></p><p><strong>c</strong></p>`},
		{"figure: image dropped, caption kept in italics",
			`<figure><img src="/media/a.png" alt="A duck"><figcaption>A duck, CC-By</figcaption></figure>`,
			`<p><em>A duck, CC-By</em></p>`},
		{"image inside a paragraph vanishes",
			`<p>Before <img src="x.png" alt="x"> after</p>`,
			`<p>Before after</p>`},
		{"table rows as paragraphs",
			`<table><thead><tr><th>Service</th><th>Visits</th></tr></thead><tbody><tr><td>Framadate</td><td>33,785,780</td></tr></tbody></table>`,
			`<p><strong>Service</strong> · <strong>Visits</strong></p><p>Framadate · 33,785,780</p>`},
		{"table caption",
			`<table><caption>Figures</caption><tr><td>a</td></tr></table>`,
			`<p><em>Figures</em></p><p>a</p>`},
		{"rule dropped",
			`<p>a</p><hr><p>b</p>`,
			`<p>a</p><p>b</p>`},
		{"relative link made absolute",
			`<p><a href="../stats/fr" rel="nofollow noopener">French</a></p>`,
			`<p><a href="https://blog.example/posts/stats/fr" rel="nofollow noopener">French</a></p>`},
		{"fragment link made absolute",
			`<p><a href="#fn:1">1</a></p>`,
			`<p><a href="https://blog.example/posts/report/en#fn:1">1</a></p>`},
		{"javascript and mailto links become text",
			`<p><a href="javascript:alert(1)">x</a> <a href="mailto:a@b.example">mail</a></p>`,
			`<p>x mail</p>`},
		{"classes: only microformats and Mastodon's",
			`<p class="lead h-entry"><a href="https://x.example/tags/a" class="mention hashtag btn" rel="tag">#<span class="big">a</span></a></p>`,
			`<p class="h-entry"><a href="https://x.example/tags/a" rel="tag" class="mention hashtag">#<span>a</span></a></p>`},
		{"nested lists kept",
			"<ul>\n<li>one\n<ul>\n<li>two\n<ol start=\"3\">\n<li>three</li>\n</ol>\n</li>\n</ul>\n</li>\n</ul>",
			`<ul><li>one<ul><li>two<ol start="3"><li>three</li></ol></li></ul></li></ul>`},
		{"loose list item paragraphs",
			"<ol>\n<li>\n<p>a</p>\n</li>\n<li>\n<p>b</p>\n</li>\n</ol>",
			`<ol><li><p>a</p></li><li><p>b</p></li></ol>`},
		{"div unwrapped into paragraphs",
			`<div>first</div><div>second <em>part</em></div>`,
			`<p>first</p><p>second <em>part</em></p>`},
		{"bare text at top level gets a paragraph",
			`loose text<p>para</p>tail`,
			`<p>loose text</p><p>para</p><p>tail</p>`},
		{"code blocks keep whitespace, lose classes",
			"<pre><code class=\"language-go\">func main() {\n\treturn\n}\n</code></pre>",
			"<pre><code>func main() {\n\treturn\n}\n</code></pre>"},
		{"blockquote keeps paragraphs",
			`<blockquote><p>quoted</p></blockquote>`,
			`<blockquote><p>quoted</p></blockquote>`},
		{"scripts, styles and iframes dropped with their content",
			`<p>a</p><script>alert(1)</script><style>p{}</style><iframe src="https://x.example"></iframe>`,
			`<p>a</p>`},
		{"unknown inline elements unwrapped",
			`<p>H<sub>2</sub>O <mark>and</mark> <abbr title="x">CO</abbr></p>`,
			`<p>H2O and CO</p>`},
		{"footnote reference in brackets",
			`<p>Claim<sup id="fnref:1"><a href="#fn:1" class="footnote-ref" role="doc-noteref">1</a></sup>.</p>`,
			`<p>Claim[<a href="https://blog.example/posts/report/en#fn:1">1</a>].</p>`},
		{"whitespace between blocks dropped, inside collapsed",
			"<p>one\n  two</p>\n\n<p>three</p>\n",
			`<p>one two</p><p>three</p>`},
		{"empty elements dropped",
			`<p> </p><strong></strong><ul><li></li></ul><p><a href="https://x.example/"><img src="a.png"></a></p>`,
			``},
		{"escaping",
			`<p>a &lt; b &amp; "c"</p>`,
			`<p>a &lt; b &amp; "c"</p>`},
		{"lang kept, invalid lang dropped",
			`<p lang="fr">bonjour</p><p lang="x y">z</p>`,
			`<p lang="fr">bonjour</p><p>z</p>`},
		{"strike becomes s, kbd becomes code",
			`<p><strike>old</strike> <kbd>Ctrl</kbd></p>`,
			`<p><s>old</s> <code>Ctrl</code></p>`},
		{"definition list",
			`<dl><dt>Term</dt><dd>Meaning</dd></dl>`,
			`<p><strong>Term</strong></p><p>Meaning</p>`},
		{"svg dropped, math keeps TeX",
			`<p><svg><text>no</text></svg>x<math><semantics><mi>y</mi><annotation encoding="application/x-tex">y^2</annotation></semantics></math></p>`,
			`<p>xy^2</p>`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := MastodonHTML(c.in, base)
			if got != c.want {
				t.Errorf("MastodonHTML(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if p := mastodonSafeProblems(got); len(p) > 0 {
				t.Errorf("output not Mastodon-safe: %v", p)
			}
		})
	}
}

func TestMastodonHTMLWithoutBaseDropsRelativeLinks(t *testing.T) {
	got := MastodonHTML(`<p><a href="/posts/x/en">x</a> <a href="https://a.example/">y</a></p>`, "")
	want := `<p>x <a href="https://a.example/">y</a></p>`
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMastodonHTMLGolden runs the sanitiser over testdata/vocab_html_*.html
// and compares with golden_html_*.html (regenerate with -update).
func TestMastodonHTMLGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/vocab_html_*.html")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/vocab_html_*.html: %v", err)
	}
	for _, f := range files {
		name := strings.TrimPrefix(filepath.Base(f), "vocab_html_")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := MastodonHTML(string(in), "https://blog.example/posts/sample/en")
			if p := mastodonSafeProblems(got); len(p) > 0 {
				t.Errorf("not Mastodon-safe: %v", p)
			}
			// One block per line in the golden file, for readable diffs.
			pretty := got
			for _, end := range []string{"</p>", "</ul>", "</ol>", "</blockquote>", "</pre>"} {
				pretty = strings.ReplaceAll(pretty, end, end+"\n")
			}
			checkGolden(t, "golden_html_"+name, []byte(pretty))
		})
	}
}

// TestMastodonHTMLIdempotent: sanitising twice changes nothing, so a
// republished (updated) Note is byte-identical when the article is.
func TestMastodonHTMLIdempotent(t *testing.T) {
	files, _ := filepath.Glob("testdata/vocab_html_*.html")
	for _, f := range files {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		once := MastodonHTML(string(in), "https://blog.example/posts/sample/en")
		twice := MastodonHTML(once, "https://blog.example/posts/sample/en")
		if once != twice {
			t.Errorf("%s: second pass changed the output\nonce:  %q\ntwice: %q", f, once, twice)
		}
	}
}

func FuzzMastodonHTML(f *testing.F) {
	files, _ := filepath.Glob("testdata/vocab_html_*.html")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add(`<h2>t</h2><table><tr><td><ul><li>x</li></ul></td></tr></table><a href="rel">r</a>`)
	f.Add(`<p><a href="x"><p>nested</p></a></p><pre>` + "\n\n" + `x</pre><ol reversed><li value="2">a`)
	f.Fuzz(func(t *testing.T, in string) {
		out := MastodonHTML(in, "https://blog.example/posts/sample/en")
		if p := mastodonSafeProblems(out); len(p) > 0 {
			t.Fatalf("MastodonHTML(%q) = %q: not Mastodon-safe: %v", in, out, p)
		}
	})
}
