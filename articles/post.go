// Package articles owns the article model: it turns the editors' Markdown
// files with YAML front matter into Posts, keeps them in an immutable
// in-memory Library (by slug and language, translation groups, tags, newest
// first), and watches the posts folder for added, changed, removed and newly
// due articles. The folder itself (posts/ by default) holds articles only;
// this code lives apart so that a mounted or synced posts folder carries no
// source. It imports nothing of ours.
package articles

import (
	"strings"
	"time"
)

// Post is one language version of one article, as parsed from one file.
type Post struct {
	// File is the slash-separated path relative to the posts folder,
	// e.g. "stats-2023.fr.md" or "diary/index.en.md".
	File string
	// Slug identifies the article in URLs; translations usually share it.
	Slug string
	// Lang is an ISO 639-1 code ("fr", "en", "it").
	Lang string
	// TranslationKey groups translations of one article; it defaults to Slug.
	TranslationKey string
	Title          string
	// Date is when the article is (or will be) published; a future Date
	// keeps the post hidden until then.
	Date time.Time
	// Lastmod is the editor's own "last modified" date, zero when absent.
	Lastmod time.Time
	// DateNote explains where Date comes from when the text does not say.
	DateNote string
	Draft    bool
	// Summary is a plain-text lede (front matter, else the first paragraph).
	Summary string
	// Tags as written by the editor; TagSlug gives their URL form.
	Tags []string
	// ContentWarning, when set, hides the article behind it in the fediverse.
	ContentWarning string
	// Sensitive marks the article's media as sensitive.
	Sensitive bool
	// Pinned puts the article in the actor's featured collection.
	Pinned bool
	// Images are the article's images in order, for attachments.
	Images      []Image
	Attribution Attribution
	// HTML is the sanitised HTML of the body, for the web page.
	HTML string
	// Hash is the hex SHA-256 of the file's bytes: a changed hash is an edit.
	Hash string
	// NoteHash is Hash without the front matter's top-level "pinned:"
	// lines: pinning changes the profile's featured list, not the article,
	// so it must not make the article look edited. It equals Hash when the
	// file has no such line.
	NoteHash string
}

// Key identifies one language version: "slug/lang". It is the ledger key and
// the tail of the post's URL.
func (p *Post) Key() string { return p.Slug + "/" + p.Lang }

// Image is one picture of an article.
type Image struct {
	// Src is an absolute http(s) URL, or a slash path relative to the posts
	// folder for an image kept beside the article (served under /media/).
	Src   string
	Alt   string
	Title string
}

// Attribution says who wrote the article and under which licence.
type Attribution struct {
	Author     string
	Source     string // URL of the original publication, if any
	Licence    string // e.g. "CC BY-SA 4.0"
	LicenceURL string
	Credits    []string // e.g. illustrator credits
}

// TagSlug is the URL and comparison form of a tag: lower case, spaces as dashes.
func TagSlug(tag string) string {
	t := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tag), "#")))
	return strings.Join(strings.Fields(t), "-")
}
