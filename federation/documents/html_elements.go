// The renderer's element handlers: attributes, links, lists, code,
// tables and foreign content, each reduced to what Mastodon keeps.

package documents

import (
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/html"
)

// attributes writes the attributes Mastodon keeps on element name.
func (r *renderer) attributes(n *html.Node, name string) {
	for _, a := range n.Attr {
		if a.Namespace != "" || !allowedAttribute(name, a.Key) {
			continue
		}
		v := a.Val
		switch a.Key {
		case "href", "rel":
			continue // written by link
		case "lang", "hreflang":
			if !validLang(v) {
				continue
			}
		case "class":
			var keep []string
			for _, c := range strings.Fields(v) {
				if keepClass(c) {
					keep = append(keep, c)
				}
			}
			if len(keep) == 0 {
				continue
			}
			v = strings.Join(keep, " ")
		case "translate":
			if v != "no" {
				continue
			}
		case "start", "value":
			if _, err := strconv.Atoi(strings.TrimSpace(v)); err != nil {
				continue
			}
			v = strings.TrimSpace(v)
		case "reversed":
			v = ""
		}
		r.write(" " + a.Key)
		if v != "" || a.Key != "reversed" {
			r.write(`="` + escapeAttr(v) + `"`)
		}
	}
}

// validLang accepts BCP 47-looking values only (letters, digits, dashes).
func validLang(v string) bool {
	if v == "" || len(v) > 35 {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// link writes an <a> with an absolute href, or only its text when the link
// cannot be kept (Mastodon would turn it into text anyway).
func (r *renderer) link(n *html.Node, m mode) {
	href := r.absolute(attr(n, "href"))
	if href == "" {
		r.children(n, modeInline)
		return
	}
	mk := r.mark()
	r.write(`<a href="` + escapeAttr(href) + `"`)
	rel := r.opts.linkRel
	if rel == "" {
		var keep []string
		for _, t := range strings.Fields(strings.ToLower(attr(n, "rel"))) {
			if relTokens[t] {
				keep = append(keep, t)
			}
		}
		rel = strings.Join(keep, " ")
	}
	if rel != "" {
		r.write(` rel="` + escapeAttr(rel) + `"`)
	}
	r.attributes(n, "a")
	r.write(">")
	r.children(n, modeInline)
	if r.emptySince(mk) {
		r.rollback(mk)
		return
	}
	r.write("</a>")
}

// absolute resolves href against the base and returns it when its scheme is
// one Mastodon keeps, else "".
func (r *renderer) absolute(href string) string {
	href = strings.TrimSpace(href)
	if href == "" {
		return ""
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	if !u.IsAbs() {
		if r.base == nil {
			return ""
		}
		u = r.base.ResolveReference(u)
	}
	if !linkSchemes[strings.ToLower(u.Scheme)] {
		return ""
	}
	if u.Host == "" {
		return ""
	}
	return u.String()
}

// list writes ul/ol; every child becomes a list item.
func (r *renderer) list(n *html.Node, m mode) {
	if m == modeInline {
		r.container(n, modeInline)
		return
	}
	mk := r.openBlock(n.Data, n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		switch {
		case c.Type == html.TextNode && strings.TrimSpace(c.Data) == "":
		case c.Type != html.TextNode && c.Type != html.ElementNode:
		case c.Type == html.ElementNode && c.Namespace == "" && droppedElements[c.Data]:
		case c.Type == html.ElementNode && c.Namespace == "" && c.Data == "li":
			im := r.openBlock("li", c)
			r.children(c, modeFlow)
			r.closeBlock("li", im)
		default:
			// Not an item (invalid nesting): it gets an item of its own.
			im := r.openBlock("li", nil)
			r.node(c, modeFlow)
			r.closeBlock("li", im)
		}
	}
	r.closeBlock(n.Data, mk)
}

// pre keeps preformatted text verbatim; its inline markup is kept or
// unwrapped like elsewhere.
func (r *renderer) pre(n *html.Node, m mode) {
	if m == modeInline {
		r.element(n, "code", modeInline)
		return
	}
	r.trimSpace()
	mk := r.mark()
	r.write("<pre>")
	// The HTML parser drops one newline right after <pre>: write it back
	// so a leading blank line survives a second parse.
	if c := n.FirstChild; c != nil && c.Type == html.TextNode && strings.HasPrefix(c.Data, "\n") {
		r.write("\n")
	}
	r.inPre = true
	r.preChildren(n)
	r.inPre = false
	if r.emptySince(mk) {
		r.rollback(mk)
		return
	}
	r.write("</pre>")
	r.edge = len(r.buf)
}

func (r *renderer) preChildren(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		switch {
		case c.Type == html.TextNode:
			r.text(c.Data)
		case c.Type != html.ElementNode:
		case c.Namespace != "":
			r.foreign(c)
		case droppedElements[c.Data]:
		case c.Data == "br":
			r.write("<br>")
		case c.Data == "a":
			href := r.absolute(attr(c, "href"))
			if href == "" {
				r.preChildren(c)
				continue
			}
			r.write(`<a href="` + escapeAttr(href) + `">`)
			r.preChildren(c)
			r.write("</a>")
		case c.Data == "span" || c.Data == "code" || c.Data == "b" || c.Data == "strong" ||
			c.Data == "i" || c.Data == "em" || c.Data == "u" || c.Data == "s" || c.Data == "del":
			if c.Data == "span" && len(c.Attr) == 0 {
				r.preChildren(c)
				continue
			}
			r.write("<" + c.Data)
			r.attributes(c, c.Data)
			r.write(">")
			r.preChildren(c)
			r.write("</" + c.Data + ">")
		default:
			r.preChildren(c)
		}
	}
}

// table writes one paragraph per row, cells separated by " · " (Mastodon
// would run the cell texts together), header cells in bold, the caption
// first in italics.
func (r *renderer) table(n *html.Node, m mode) {
	var rows []*html.Node
	var caption *html.Node
	var walk func(*html.Node)
	walk = func(t *html.Node) {
		for c := t.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode || c.Namespace != "" {
				continue
			}
			switch c.Data {
			case "caption":
				if caption == nil {
					caption = c
				}
			case "thead", "tbody", "tfoot":
				walk(c)
			case "tr":
				rows = append(rows, c)
			}
		}
	}
	walk(n)
	if caption != nil {
		r.paragraph(caption, m, "<em>", "</em>")
	}
	for _, row := range rows {
		var mk checkpoint
		if m != modeInline {
			mk = r.openBlock("p", nil)
		} else {
			mk = r.mark()
		}
		first := true
		for c := row.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode || c.Namespace != "" || (c.Data != "td" && c.Data != "th") {
				continue
			}
			if !first {
				r.trimSpace()
			}
			cm := r.mark()
			if !first {
				r.write(" · ")
			}
			open, close := "", ""
			if c.Data == "th" {
				open, close = "<strong>", "</strong>"
			}
			r.write(open)
			in := r.mark()
			r.trimmedChildren(c)
			if r.emptySince(in) {
				r.rollback(cm)
				continue
			}
			r.write(close)
			first = false
		}
		if m != modeInline {
			r.closeBlock("p", mk)
			continue
		}
		if r.emptySince(mk) {
			r.rollback(mk)
		} else {
			r.write(" ")
		}
	}
}

// foreign handles SVG (dropped) and MathML (its TeX annotation if any, as
// Mastodon does, else its text).
func (r *renderer) foreign(n *html.Node) {
	if n.Namespace != "math" || n.Data != "math" {
		if n.Namespace == "math" {
			r.text(textContent(n))
		}
		return
	}
	var tex string
	var find func(*html.Node)
	find = func(c *html.Node) {
		for ; c != nil && tex == ""; c = c.NextSibling {
			if c.Type == html.ElementNode && c.Data == "annotation" && attr(c, "encoding") == "application/x-tex" {
				tex = textContent(c)
				return
			}
			find(c.FirstChild)
		}
	}
	find(n.FirstChild)
	if tex != "" {
		r.text(tex)
		return
	}
	r.text(collapseSpace(textContent(n)))
}

// footnoteRef tells whether a sup holds a footnote reference link.
func footnoteRef(n *html.Node) bool {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && c.Data == "a" {
			for _, cl := range strings.Fields(attr(c, "class")) {
				if cl == "footnote-ref" {
					return true
				}
			}
		}
	}
	return false
}

func textContent(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(c *html.Node) {
		for ; c != nil; c = c.NextSibling {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			}
			walk(c.FirstChild)
		}
	}
	walk(n.FirstChild)
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val
		}
	}
	return ""
}

// isSpace is HTML's ASCII whitespace; a no-break space is content.
func isSpace(c rune) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// collapseSpace turns every run of HTML whitespace into one space, as a
// browser does; a newline left in the text would become a line break in
// Misskey's HTML-to-MFM conversion.
func collapseSpace(s string) string {
	if !strings.ContainsAny(s, "\t\n\f\r ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, c := range s {
		if isSpace(c) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(c)
	}
	return b.String()
}

// escapeText escapes text content: only &, < and > need it, and fewer
// entities keep the Note small (Misskey refuses inbox bodies over 64 KiB).
func escapeText(s string) string {
	if !strings.ContainsAny(s, "&<>\x00") {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case 0:
			b.WriteString("\uFFFD")
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// escapeAttr escapes a double-quoted attribute value.
func escapeAttr(s string) string {
	if !strings.ContainsAny(s, "&<>\"\x00") {
		return s
	}
	return strings.ReplaceAll(escapeText(s), `"`, "&quot;")
}
