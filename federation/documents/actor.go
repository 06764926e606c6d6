package documents

import (
	"fmt"
	"mime"
	"net/url"
	"path"
	"strings"

	vocab "github.com/go-ap/activitypub"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation/signature"
)

// InboxURL is the bot's own inbox.
func (c Config) InboxURL() string { return c.ActorID() + "/inbox" }

// OutboxURL is the outbox collection.
func (c Config) OutboxURL() string { return c.ActorID() + "/outbox" }

// FollowersURL is the followers collection (the cc of every public Note).
func (c Config) FollowersURL() string { return c.ActorID() + "/followers" }

// FollowingURL is the (always empty) following collection.
func (c Config) FollowingURL() string { return c.ActorID() + "/following" }

// FeaturedURL is the collection of pinned posts.
func (c Config) FeaturedURL() string { return c.ActorID() + "/featured" }

// SharedInboxURL is the instance-wide inbox.
func (c Config) SharedInboxURL() string { return c.BaseURL + "/inbox" }

// TagURL is the tag page of tag (as written by the editor).
func (c Config) TagURL(tag string) string {
	return c.BaseURL + "/tags/" + url.PathEscape(articles.TagSlug(tag))
}

// ActorJSON is the actor document served at BASE/@handle: a Service (Mastodon
// shows Service and Application actors as bots) with every field of
// INTEROP.md's actor list.
//
// The document depends only on the configuration and the key, which do not
// change while crieur runs, so it is encoded once: every server that gets
// a delivery fetches it to verify the signature, 2,000 times during a
// fan-out to 2,000 servers, and building it each time cost about as much
// CPU as a third of a signature. The bytes are shared: callers must not
// change them.
func (s *Builder) ActorJSON() ([]byte, error) { return s.actorJSON() }

func (s *Builder) encodeActor() ([]byte, error) {
	d, err := s.actorDocument()
	if err != nil {
		return nil, err
	}
	return encodeDocument(d)
}

func (s *Builder) actorDocument() (document, error) {
	c := s.cfg
	pemText, err := signature.PublicKeyPEM(s.key)
	if err != nil {
		return nil, fmt.Errorf("documents: actor: %w", err)
	}
	name := c.DisplayName
	if name == "" {
		name = c.Handle
	}
	a := vocab.ServiceNew(vocab.ID(c.ActorID()))
	a.PreferredUsername = vocab.DefaultNaturalLanguageValue(c.Handle)
	a.Name = vocab.DefaultNaturalLanguageValue(name)
	a.URL = vocab.IRI(c.ActorID())
	a.Inbox = vocab.IRI(c.InboxURL())
	a.Outbox = vocab.IRI(c.OutboxURL())
	a.Followers = vocab.IRI(c.FollowersURL())
	a.Following = vocab.IRI(c.FollowingURL())
	a.Endpoints = &vocab.Endpoints{SharedInbox: vocab.IRI(c.SharedInboxURL())}
	a.PublicKey = vocab.PublicKey{
		ID:           vocab.ID(c.KeyID()),
		Owner:        vocab.IRI(c.ActorID()),
		PublicKeyPem: pemText,
	}
	if !c.Created.IsZero() {
		a.Published = c.Created.UTC()
	}
	d, err := toDocument(a)
	if err != nil {
		return nil, fmt.Errorf("documents: actor: %w", err)
	}
	// go-ap drops an empty summary and has no fields for Mastodon's
	// extensions; they are set on the document.
	d["summary"] = bioHTML(c.Bio)
	if c.AvatarURL != "" {
		d["icon"] = imageObject(c.AvatarURL, c.AvatarType)
	}
	if c.HeaderURL != "" {
		d["image"] = imageObject(c.HeaderURL, c.HeaderType)
	}
	d["featured"] = c.FeaturedURL()
	d["manuallyApprovesFollowers"] = c.ManuallyApprovesFollowers
	d["discoverable"] = c.Discoverable
	d["indexable"] = c.Indexable
	// Mastodon ignores profile fields unless attachment is an array.
	fields := make([]any, 0, len(c.Fields))
	for _, f := range c.Fields {
		if strings.TrimSpace(f.Name) == "" {
			continue
		}
		fields = append(fields, document{
			"type":  "PropertyValue",
			"name":  f.Name,
			"value": fieldValueHTML(f.Value, c.BaseURL),
		})
	}
	d["attachment"] = fields
	// Mastodon reads custom emoji from tag; crieur has none.
	d["tag"] = []any{}
	return d, nil
}

// imageObject is an avatar or header image.
func imageObject(src, mediaType string) document {
	img := document{"type": "Image", "url": src}
	if mediaType == "" {
		mediaType = imageMediaType(src)
	}
	if mediaType != "" {
		img["mediaType"] = mediaType
	}
	return img
}

// imageMediaType guesses an image's media type from its extension; "" when
// the extension is not an image type Mastodon accepts.
func imageMediaType(src string) string {
	p := src
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	switch strings.ToLower(path.Ext(p)) {
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".png":
		return "image/png"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	case ".avif":
		return "image/avif"
	case ".heic":
		return "image/heic"
	case ".heif":
		return "image/heif"
	}
	// The system table may know more, but only image types are useful.
	if t := mime.TypeByExtension(path.Ext(p)); strings.HasPrefix(t, "image/") && !strings.Contains(t, "svg") {
		if i := strings.IndexByte(t, ';'); i >= 0 {
			t = t[:i]
		}
		return t
	}
	return ""
}

// bioHTML renders the plain-text bio as HTML paragraphs: blank lines split
// paragraphs, single newlines become <br>.
func bioHTML(bio string) string {
	return textParagraphs(bio)
}

// textParagraphs turns plain text into escaped HTML paragraphs.
func textParagraphs(text string) string {
	text = strings.ReplaceAll(strings.TrimSpace(text), "\r\n", "\n")
	if text == "" {
		return ""
	}
	var b strings.Builder
	for _, para := range strings.Split(text, "\n\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		lines := strings.Split(para, "\n")
		for i, l := range lines {
			lines[i] = escapeText(strings.TrimSpace(l))
		}
		b.WriteString("<p>" + strings.Join(lines, "<br>") + "</p>")
	}
	return b.String()
}

// fieldRel is the rel of links in profile fields: "me" lets Mastodon verify
// the link (the page links back with rel="me").
const fieldRel = "me nofollow noopener"

// fieldValueHTML renders a profile field value. A bare http(s) URL becomes
// a link whose text is the URL itself (Mastodon verifies only links whose
// text equals their href); HTML is sanitised inline; other text is escaped.
func fieldValueHTML(v, base string) string {
	v = strings.TrimSpace(v)
	if (strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://")) && !strings.ContainsAny(v, " \t\n<>\"") {
		return `<a href="` + escapeAttr(v) + `" rel="` + fieldRel + `">` + escapeText(v) + `</a>`
	}
	if strings.ContainsAny(v, "<&") {
		return sanitizeHTML(v, base, sanitizeOptions{root: modeInline, linkRel: fieldRel})
	}
	return escapeText(v)
}
