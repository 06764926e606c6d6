package documents

import (
	"net/url"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Mastodon renders remote HTML through its strict sanitiser
// (lib/sanitize_ext/sanitize_config.rb, MASTODON_STRICT): anything outside a
// short element list is unwrapped, headings turn into bold paragraphs,
// images and tables vanish or run together, relative links become text.
// MastodonHTML does that rewriting on purpose, so that what a reader sees in
// Mastodon is what crieur chose, and the other servers (GoToSocial, Akkoma,
// Misskey) get the same plain structure.

// mastodonElements are the elements MastodonHTML may write. Mastodon also
// keeps ruby/rt/rp; the article renderer never produces them, so they are
// unwrapped like any other element.
var mastodonElements = map[string]bool{
	"p": true, "br": true, "span": true, "a": true, "del": true, "s": true,
	"pre": true, "blockquote": true, "code": true, "b": true, "strong": true,
	"u": true, "i": true, "em": true, "ul": true, "ol": true, "li": true,
}

// mastodonAttributes lists the attributes MastodonHTML may write per element
// ("*" for all elements). It is Mastodon's own list (HT-2), plus hreflang on
// links: crieur writes it on translation links, Mastodon drops it harmlessly.
var mastodonAttributes = map[string]map[string]bool{
	"*":    {"lang": true},
	"a":    {"href": true, "rel": true, "class": true, "translate": true, "hreflang": true},
	"span": {"class": true, "translate": true},
	"p":    {"class": true},
	"ol":   {"start": true, "reversed": true},
	"li":   {"value": true},
}

// allowedAttribute tells whether MastodonHTML may write attr on element.
func allowedAttribute(element, attr string) bool {
	return mastodonAttributes["*"][attr] || mastodonAttributes[element][attr]
}

// linkSchemes are the URL schemes kept on links. Mastodon also keeps dat,
// dweb, ipfs, ipns, ssb, gopher, xmpp, magnet and gemini (its
// UNSUPPORTED_HREF_TRANSFORMER turns every other link into its text), but
// other servers and most readers' browsers do not open them: such links
// become text here, like mailto: and relative links without a base.
var linkSchemes = map[string]bool{"http": true, "https": true}

// relTokens are the rel values worth keeping: "tag" keeps hashtag links out
// of link cards, "me" serves profile-link verification.
var relTokens = map[string]bool{
	"tag": true, "me": true, "nofollow": true, "noopener": true, "noreferrer": true, "ugc": true,
}

// keepClass tells whether Mastodon keeps a class token (HT-3): microformats
// and a few of its own markers.
func keepClass(c string) bool {
	switch c {
	case "mention", "hashtag", "ellipsis", "invisible", "quote-inline":
		return true
	}
	for _, p := range []string{"h-", "p-", "u-", "dt-", "e-"} {
		if strings.HasPrefix(c, p) && len(c) > len(p) {
			return true
		}
	}
	return false
}

// Elements dropped with everything inside them: scripts, embedded media and
// form controls have no readable text for a timeline; images become Note
// attachments instead.
var droppedElements = map[string]bool{
	"img": true, "hr": true, "script": true, "style": true, "template": true, "iframe": true,
	"noscript": true, "svg": true, "head": true, "title": true, "meta": true, "link": true,
	"object": true, "embed": true, "video": true, "audio": true, "source": true, "track": true,
	"canvas": true, "map": true, "area": true, "picture": true, "input": true, "select": true,
	"textarea": true, "button": true, "frame": true, "frameset": true, "param": true, "base": true,
	"wbr": true, "dialog": true,
}

// Containers that are unwrapped but separate blocks: their inline content is
// wrapped in paragraphs so that two divs never run into one line.
var blockContainers = map[string]bool{
	"div": true, "section": true, "article": true, "header": true, "footer": true, "main": true,
	"aside": true, "nav": true, "figure": true, "details": true, "address": true, "center": true,
	"hgroup": true, "form": true, "fieldset": true, "dl": true, "html": true, "body": true,
	"menu": true, "search": true,
}

// isBlock tells whether an element renders as a block (for whitespace
// trimming and for wrapping inline runs into paragraphs).
func isBlock(n *html.Node) bool {
	if n.Type != html.ElementNode || n.Namespace != "" {
		return false
	}
	switch n.Data {
	case "p", "pre", "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
		"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "figcaption",
		"dt", "dd", "summary", "legend", "hr":
		return true
	}
	return blockContainers[n.Data]
}

// mode is the rendering context of a node's children.
type mode int

const (
	// modeBlock: only blocks may be written; inline runs get a <p>.
	modeBlock mode = iota
	// modeFlow: blocks and inline content mix freely (inside li).
	modeFlow
	// modeInline: inside a paragraph; blocks are flattened to their text.
	modeInline
)

// MastodonHTML rewrites article HTML into the subset Mastodon's sanitiser
// keeps: p br span a del s pre blockquote code b strong u i em ul ol li.
// Headings become <p><strong>…</strong></p>, figure captions
// <p><em>…</em></p>, table rows paragraphs with cells separated by " · ";
// images, rules, scripts and embeds are dropped; other elements are
// unwrapped. Links are made absolute against base (a page URL); links that
// cannot be (no base, unknown scheme) become their text, as Mastodon would
// do. Only lang, Mastodon's microformat classes, and the attributes of its
// own list survive. Whitespace between blocks is dropped: Misskey turns text
// nodes into line breaks.
func MastodonHTML(src string, base string) string {
	return sanitizeHTML(src, base, sanitizeOptions{root: modeBlock})
}

// sanitizeOptions tune one sanitising run.
type sanitizeOptions struct {
	root mode
	// linkRel, when set, replaces the rel of every kept link (profile
	// fields use "me nofollow noopener").
	linkRel string
}

func sanitizeHTML(src, base string, opts sanitizeOptions) string {
	ctx := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	nodes, err := html.ParseFragment(strings.NewReader(src), ctx)
	if err != nil {
		// ParseFragment only fails when the reader fails; a strings.Reader
		// never does. Escaped text is the safe answer anyway.
		return "<p>" + escapeText(src) + "</p>"
	}
	r := &renderer{opts: opts}
	if base != "" {
		if u, err := url.Parse(base); err == nil && u.IsAbs() {
			r.base = u
		}
	}
	root := &html.Node{Type: html.ElementNode, Data: "body"}
	for _, n := range nodes {
		root.AppendChild(n)
	}
	r.children(root, opts.root)
	r.trimSpace()
	return string(r.buf)
}

// renderer writes sanitised HTML into buf. visible counts the
// non-whitespace characters written, so empty elements can be rolled back.
type renderer struct {
	buf     []byte
	visible int
	base    *url.URL
	opts    sanitizeOptions
	// edge is len(buf) just after a block tag: spaces written there are
	// insignificant and dropped, so that a second pass (and a browser)
	// reads the same text.
	edge  int
	inPre bool
}

func (r *renderer) write(s string) { r.buf = append(r.buf, s...) }

// text writes escaped text and counts what is visible. Outside pre, spaces
// next to a block edge or after another space are dropped.
func (r *renderer) text(s string) {
	if !r.inPre && (len(r.buf) == r.edge || len(r.buf) > 0 && r.buf[len(r.buf)-1] == ' ') {
		s = strings.TrimLeft(s, " ")
	}
	r.write(escapeText(s))
	for _, c := range s {
		if !isSpace(c) {
			r.visible++
		}
	}
}

// trimSpace drops the spaces at the end of the output: they are
// insignificant before a block tag. Tags end in '>', so only text is cut.
func (r *renderer) trimSpace() {
	for len(r.buf) > 0 && r.buf[len(r.buf)-1] == ' ' {
		r.buf = r.buf[:len(r.buf)-1]
	}
}

// openBlock writes a block's start tag with the attributes Mastodon keeps
// (from n, which may be nil) and returns the rollback point from before it.
func (r *renderer) openBlock(name string, n *html.Node) checkpoint {
	r.trimSpace()
	mk := r.mark()
	r.write("<" + name)
	if n != nil {
		r.attributes(n, name)
	}
	r.write(">")
	r.edge = len(r.buf)
	return mk
}

// closeBlock writes a block's end tag, or rolls the block back to mk when
// it shows nothing.
func (r *renderer) closeBlock(name string, mk checkpoint) {
	if r.emptySince(mk) {
		r.rollback(mk)
		return
	}
	r.trimSpace()
	r.write("</" + name + ">")
	r.edge = len(r.buf)
}

// checkpoint is a rollback point.
type checkpoint struct{ n, visible int }

func (r *renderer) mark() checkpoint { return checkpoint{len(r.buf), r.visible} }

// emptySince tells whether nothing visible was written since c.
func (r *renderer) emptySince(c checkpoint) bool { return r.visible == c.visible }

func (r *renderer) rollback(c checkpoint) { r.buf = r.buf[:c.n]; r.visible = c.visible }

// children renders n's children in mode m.
func (r *renderer) children(n *html.Node, m mode) {
	if m != modeBlock {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			r.node(c, m)
		}
		return
	}
	// Block mode: group runs of inline nodes into paragraphs.
	for c := n.FirstChild; c != nil; {
		if isBlock(c) || c.Type != html.TextNode && c.Type != html.ElementNode {
			r.node(c, modeBlock)
			c = c.NextSibling
			continue
		}
		start := c
		for c != nil && !isBlock(c) {
			c = c.NextSibling
		}
		r.inlineRun(start, c)
	}
}

// inlineRun wraps the inline nodes [from, to) in one paragraph, unless they
// show nothing.
func (r *renderer) inlineRun(from, to *html.Node) {
	m := r.openBlock("p", nil)
	for c := from; c != to; c = c.NextSibling {
		if c.Type == html.TextNode {
			s := collapseSpace(c.Data)
			if c == from {
				s = strings.TrimLeftFunc(s, isSpace)
			}
			if c.NextSibling == to {
				s = strings.TrimRightFunc(s, isSpace)
			}
			r.text(s)
			continue
		}
		r.node(c, modeInline)
	}
	r.closeBlock("p", m)
}

// node renders one node whose parent is rendered in mode m.
func (r *renderer) node(n *html.Node, m mode) {
	switch n.Type {
	case html.TextNode:
		r.textNode(n, m)
		return
	case html.ElementNode:
	default:
		return // comments, doctypes
	}
	if n.Namespace != "" {
		r.foreign(n)
		return
	}
	name := n.Data
	switch {
	case droppedElements[name]:
		return
	case name == "p":
		r.paragraph(n, m, "", "")
	case len(name) == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6':
		r.paragraph(n, m, "<strong>", "</strong>")
	case name == "figcaption" || name == "caption":
		r.paragraph(n, m, "<em>", "</em>")
	case name == "dt" || name == "summary" || name == "legend":
		r.paragraph(n, m, "<strong>", "</strong>")
	case name == "dd":
		r.paragraph(n, m, "", "")
	case name == "table":
		r.table(n, m)
	case name == "ul" || name == "ol":
		r.list(n, m)
	case name == "li":
		// A list item outside a list (its list was unwrapped): a block.
		r.container(n, m)
	case name == "pre":
		r.pre(n, m)
	case name == "blockquote":
		if m == modeInline {
			r.children(n, modeInline)
			return
		}
		mk := r.openBlock("blockquote", n)
		r.children(n, modeBlock)
		r.closeBlock("blockquote", mk)
	case name == "br":
		if m == modeBlock {
			return
		}
		r.write("<br>")
		// A space at the start of a line is not shown by browsers, and
		// Misskey would keep it.
		r.edge = len(r.buf)
	case name == "a":
		r.link(n, m)
	case name == "strike":
		r.element(n, "s", m)
	case name == "tt" || name == "kbd" || name == "samp":
		r.element(n, "code", m)
	case name == "var" || name == "cite" || name == "dfn":
		r.element(n, "i", m)
	case name == "sup" && footnoteRef(n):
		// goldmark's footnote reference: "word[1]" reads better than
		// "word1" once the superscript is gone.
		mk := r.mark()
		r.write("[")
		r.children(n, modeInline)
		if r.emptySince(mk) {
			r.rollback(mk)
			return
		}
		r.write("]")
	case name == "q":
		r.write("“")
		r.children(n, modeInline)
		r.write("”")
	case mastodonElements[name]:
		// Children of an inline element are inline: the spaces at its
		// edges are content (only blocks trim theirs).
		r.element(n, name, modeInline)
	case blockContainers[name]:
		r.container(n, m)
	default:
		// Unknown inline element (sup, sub, mark, small, abbr, time…):
		// its text stays, the tag goes, as in Mastodon.
		r.children(n, modeInline)
	}
}

// textNode writes text outside a paragraph run. In block mode it only comes
// from helper paths; whitespace next to blocks is dropped.
func (r *renderer) textNode(n *html.Node, m mode) {
	s := collapseSpace(n.Data)
	if m != modeInline {
		if n.PrevSibling == nil || isBlock(n.PrevSibling) {
			s = strings.TrimLeftFunc(s, isSpace)
		}
		if n.NextSibling == nil || isBlock(n.NextSibling) {
			s = strings.TrimRightFunc(s, isSpace)
		}
		if s == "" {
			return
		}
		if m == modeBlock {
			mk := r.openBlock("p", nil)
			r.text(s)
			r.closeBlock("p", mk)
			return
		}
	}
	r.text(s)
}

// paragraph writes a block that holds inline content, with an optional
// inner wrapper (headings: strong, captions: em). Inside a paragraph it only
// writes the wrapper, followed by a space so words do not run together.
func (r *renderer) paragraph(n *html.Node, m mode, open, close string) {
	mk := r.mark()
	if m == modeInline {
		r.write(open)
		r.children(n, modeInline)
		r.write(close)
		if r.emptySince(mk) {
			r.rollback(mk)
			return
		}
		r.write(" ")
		return
	}
	mk = r.openBlock("p", n)
	r.write(open)
	r.trimmedChildren(n)
	if r.emptySince(mk) {
		r.rollback(mk)
		return
	}
	r.trimSpace()
	r.write(close)
	r.closeBlock("p", mk)
}

// trimmedChildren renders inline children with the leading and trailing
// whitespace of the block removed.
func (r *renderer) trimmedChildren(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.TextNode {
			s := collapseSpace(c.Data)
			if c.PrevSibling == nil {
				s = strings.TrimLeftFunc(s, isSpace)
			}
			if c.NextSibling == nil {
				s = strings.TrimRightFunc(s, isSpace)
			}
			r.text(s)
			continue
		}
		r.node(c, modeInline)
	}
}

// container unwraps an element that only groups blocks.
func (r *renderer) container(n *html.Node, m mode) {
	if m == modeInline {
		mk := r.mark()
		r.children(n, modeInline)
		if !r.emptySince(mk) {
			r.write(" ")
		}
		return
	}
	r.children(n, m)
}

// element writes a kept element with its allowed attributes and renders its
// children in mode m; an element that shows nothing is rolled back.
func (r *renderer) element(n *html.Node, name string, m mode) {
	mk := r.mark()
	r.write("<" + name)
	r.attributes(n, name)
	r.write(">")
	r.children(n, m)
	if r.emptySince(mk) {
		r.rollback(mk)
		return
	}
	r.write("</" + name + ">")
}
