package articles

import (
	"bytes"
	"regexp"
	"strings"
	"sync"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
)

// linkRel is set on every Markdown link: the association does not vouch
// for the pages it cites, and they get no handle on the reader's tab.
const linkRel = "nofollow noopener"

// markdown and sanitizer are built once and never modified afterwards;
// both are safe for concurrent use.
var (
	markdown  = sync.OnceValue(newMarkdown)
	sanitizer = sync.OnceValue(newSanitizer)
)

func newMarkdown() goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(
			extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute)),
			extension.Strikethrough,
			extension.Linkify,
			extension.Footnote,
		),
		goldmark.WithParserOptions(parser.WithAutoHeadingID()),
		// Raw HTML (e.g. <figure> written by hand) is passed through and
		// then cleaned by the sanitizer, which is the one gate.
		goldmark.WithRendererOptions(html.WithUnsafe()),
	)
}

func newSanitizer() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowElements("figure", "figcaption")
	p.AllowAttrs("rel").Matching(bluemonday.SpaceSeparatedTokens).OnElements("a")
	p.RequireNoFollowOnLinks(true)
	// Footnotes (goldmark's markup) keep their classes and roles so pages
	// and screen readers can tell them apart.
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^footnote(s|-ref|-backref)$`)).OnElements("a", "div", "section")
	p.AllowAttrs("role").Matching(regexp.MustCompile(`^doc-(noteref|endnotes|backlink)$`)).OnElements("a", "div", "section")
	// Code blocks keep their language for highlighting by CSS.
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^language-[\w+#.-]+$`)).OnElements("code")
	p.AllowAttrs("align").Matching(regexp.MustCompile(`^(left|center|right)$`)).OnElements("th", "td")
	return p
}

// rendered is what the body of an article gives.
type rendered struct {
	html           string
	images         []Image
	firstParagraph string // plain text of the first paragraph with text
}

// renderMarkdown turns the body into sanitised HTML, collecting images and
// the plain text of the first paragraph on the way. dir is the article's
// folder relative to the posts folder.
func renderMarkdown(body []byte, dir, mediaPrefix string) rendered {
	md := markdown()
	doc := md.Parser().Parse(text.NewReader(body))
	var r rendered
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Paragraph:
			if r.firstParagraph == "" && n.Parent() == doc {
				r.firstParagraph = strings.TrimSpace(plainText(n, body))
			}
		case *ast.Link:
			n.SetAttributeString("rel", []byte(linkRel))
		case *ast.AutoLink:
			n.SetAttributeString("rel", []byte(linkRel))
		case *ast.Image:
			src, ok := resolveImage(dir, string(n.Destination))
			if !ok {
				return ast.WalkSkipChildren, nil
			}
			r.images = appendImage(r.images, Image{
				Src:   src,
				Alt:   strings.TrimSpace(plainText(n, body)),
				Title: strings.TrimSpace(string(n.Title)),
			})
			if !isAbsoluteURL(src) {
				n.Destination = []byte(mediaPrefix + src)
			}
			return ast.WalkSkipChildren, nil
		}
		return ast.WalkContinue, nil
	})
	var buf bytes.Buffer
	if err := md.Renderer().Render(&buf, body, doc); err != nil {
		// Rendering into memory does not fail; if it ever does, the page
		// shows the plain text rather than nothing.
		buf.Reset()
		buf.WriteString("<p>" + htmlEscape(plainText(doc, body)) + "</p>")
	}
	r.html = strings.TrimSpace(sanitizer().Sanitize(buf.String()))
	return r
}

func isAbsoluteURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// plainText is the visible text under n: no markup, no raw HTML, images
// counted by their alt text only when n is the image itself.
func plainText(n ast.Node, src []byte) string {
	var b strings.Builder
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch c := c.(type) {
		case *ast.Image:
			if c != n {
				return ast.WalkSkipChildren, nil
			}
		case *ast.RawHTML, *ast.HTMLBlock:
			return ast.WalkSkipChildren, nil
		case *ast.Text:
			b.Write(c.Value(src))
			if c.SoftLineBreak() || c.HardLineBreak() {
				b.WriteByte(' ')
			}
		case *ast.String:
			b.Write(c.Value)
		case *ast.AutoLink:
			b.Write(c.Label(src))
		}
		return ast.WalkContinue, nil
	})
	return b.String()
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
