package documents

import (
	"errors"
	"fmt"
	"html"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	vocab "github.com/go-ap/activitypub"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// maxFullContent is the largest full-text content, in bytes, that crieur
// publishes; a longer article is published as its lede and a link.
// Pleroma and Akkoma reject the whole activity when a remote post's content
// is over 100,000 characters (remote_limit); 60,000 bytes stays well under
// that with room for the HTML crieur adds. Misskey is stricter: it refuses
// inbox bodies over 64 KiB, and a Note carries its HTML twice (content and
// contentMap); activities over that size leave contentMap out (see
// slimmed), so a full text up to this limit still reaches Misskey.
const maxFullContent = 60_000

// maxAttachments is how many images a Note carries: Mastodon keeps the
// first four media attachments and drops the rest.
const maxAttachments = 4

// BuildNote maps one language version of an article to its Note. published
// and updated are the times announced (from the ledger); updated is written
// only when it is after published, because Mastodon shows "Edited" as soon
// as the two differ. lib gives the sibling translations linked at the end.
// The result has no @context: it is embedded in activities and collections,
// or wrapped by NoteJSON.
func (s *Builder) BuildNote(p *articles.Post, lib *articles.Library, published, updated time.Time) (map[string]any, error) {
	if p == nil {
		return nil, errors.New("documents: build note: nil post")
	}
	c := s.cfg
	id := c.NoteID(p.Slug, p.Lang)
	if published.IsZero() {
		published = p.Date
	}
	n := vocab.ObjectNew(vocab.NoteType)
	n.ID = vocab.ID(id)
	n.URL = vocab.IRI(id)
	n.AttributedTo = vocab.IRI(c.ActorID())
	n.Published = published.UTC()
	if updated.After(published) {
		n.Updated = updated.UTC()
	}
	// The object's addressing decides visibility in Mastodon: Public in
	// to means public, the followers collection in cc delivers it.
	n.To = vocab.ItemCollection{vocab.IRI(Public)}
	n.CC = vocab.ItemCollection{vocab.IRI(c.FollowersURL())}
	d, err := toDocument(n)
	if err != nil {
		return nil, fmt.Errorf("documents: build note %s: %w", p.Key(), err)
	}
	content := s.noteContent(p, lib)
	// content for servers that ignore contentMap; a one-key contentMap
	// for the language (Mastodon takes the first key, GoToSocial the key
	// whose value equals content byte for byte).
	d["content"] = content
	d["contentMap"] = map[string]any{p.Lang: content}
	// summary is a content warning everywhere: only for one.
	sensitive := p.Sensitive
	if cw := strings.TrimSpace(p.ContentWarning); cw != "" {
		d["summary"] = summaryHTML(cw)
		sensitive = true
	}
	d["sensitive"] = sensitive
	tags := make([]any, 0, len(p.Tags))
	for _, t := range noteTags(p.Tags) {
		tags = append(tags, map[string]any{
			"type": "Hashtag",
			"href": c.TagURL(t),
			"name": hashtagName(t),
		})
	}
	d["tag"] = tags
	d["attachment"] = s.attachments(p)
	// Without it Mastodon refuses every quote, and GoToSocial assumes
	// anyone may like, reply and boost (consent.go says what is written).
	d["interactionPolicy"] = c.InteractionPolicy()
	replies, likes, shares, err := s.noteCollections(id)
	if err != nil {
		return nil, fmt.Errorf("documents: build note %s: %w", p.Key(), err)
	}
	d["replies"], d["likes"], d["shares"] = replies, likes, shares
	return d, nil
}

// summaryHTML is the content warning as a Note's summary. ActivityStreams
// reads summary as HTML, Mastodon as plain text: text that reads the same
// both ways (no tag, no character reference) goes as it is, so "Q&A" stays
// "Q&A" on Mastodon; anything else is escaped, never sent as markup.
func summaryHTML(cw string) string {
	if !strings.ContainsAny(cw, "<\x00") && html.UnescapeString(cw) == cw {
		return cw
	}
	return escapeText(cw)
}

// NoteJSON is the Note document of one language version, served at its id.
// It fails with federation.ErrGone once a Delete was announced for it, and with
// federation.ErrNotFound for an unknown, draft or not yet due post.
func (s *Builder) NoteJSON(slug, lang string) ([]byte, error) {
	p, entry, err := s.visiblePost(slug, lang)
	if err != nil {
		return nil, err
	}
	published, updated := noteTimes(p, entry)
	n, err := s.BuildNote(p, s.vocabLibrary(), published, updated)
	if err != nil {
		return nil, err
	}
	return encodeDocument(n)
}

// NoteTombstoneJSON is the body served with 410 Gone at the id of a Note
// whose Delete was announced; federation.ErrNotFound when it was not deleted.
func (s *Builder) NoteTombstoneJSON(slug, lang string) ([]byte, error) {
	entry, err := s.store.LedgerEntry(slug + "/" + lang)
	if errors.Is(err, storage.ErrNotFound) || err == nil && entry.Deleted.IsZero() {
		return nil, fmt.Errorf("documents: tombstone %s/%s: %w", slug, lang, federation.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("documents: tombstone %s/%s: %w", slug, lang, err)
	}
	id := entry.NoteID
	if id == "" {
		id = s.cfg.NoteID(slug, lang)
	}
	return encodeDocument(document(s.Tombstone(id, entry.Deleted)))
}

// visiblePost finds a published post and its ledger entry (zero when the
// publisher has not announced it yet).
func (s *Builder) visiblePost(slug, lang string) (*articles.Post, storage.LedgerEntry, error) {
	key := slug + "/" + lang
	entry, err := s.store.LedgerEntry(key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		entry = storage.LedgerEntry{}
	case err != nil:
		return nil, entry, fmt.Errorf("documents: note %s: %w", key, err)
	case !entry.Deleted.IsZero():
		return nil, entry, fmt.Errorf("documents: note %s: %w", key, federation.ErrGone)
	}
	lib := s.vocabLibrary()
	if lib == nil {
		return nil, entry, fmt.Errorf("documents: note %s: %w", key, federation.ErrNotFound)
	}
	p, ok := lib.Get(slug, lang)
	if !ok || p.Draft || p.Date.After(s.now()) {
		return nil, entry, fmt.Errorf("documents: note %s: %w", key, federation.ErrNotFound)
	}
	return p, entry, nil
}

// vocabLibrary is the current library snapshot, nil when the Service was
// built without posts.
func (s *Builder) vocabLibrary() *articles.Library {
	if s.posts == nil {
		return nil
	}
	return s.posts()
}

// noteTimes are the published and updated times of a Note: what the ledger
// says was announced, else the editor's dates.
func noteTimes(p *articles.Post, entry storage.LedgerEntry) (published, updated time.Time) {
	published, updated = p.Date, p.Lastmod
	if entry.Key != "" {
		updated = entry.Updated
		if !entry.Published.IsZero() {
			published = entry.Published
		}
	}
	return published, updated
}

// noteContent is the Note's HTML: the full article, or its lede and a link
// when configured so or when the full text would be too large.
func (s *Builder) noteContent(p *articles.Post, lib *articles.Library) string {
	if !s.cfg.LedeOnly {
		if full := s.renderContent(p, lib, false); len(full) <= maxFullContent {
			return full
		}
	}
	return s.renderContent(p, lib, true)
}

// renderContent writes: the title as a bold paragraph (Mastodon ignores a
// Note's name and GoToSocial would make it a content warning), the body or
// the lede with a link, the hashtag links, links to the translations, and
// the attribution.
func (s *Builder) renderContent(p *articles.Post, lib *articles.Library, lede bool) string {
	c := s.cfg
	id := c.NoteID(p.Slug, p.Lang)
	var b strings.Builder
	if t := strings.TrimSpace(p.Title); t != "" {
		b.WriteString("<p><strong>" + escapeText(t) + "</strong></p>")
	}
	if lede {
		if sum := strings.TrimSpace(p.Summary); sum != "" {
			b.WriteString(textParagraphs(sum))
		}
		b.WriteString("<p>" + escapeText(label(p.Lang).read) + ` <a href="` + escapeAttr(id) + `">` +
			escapeText(id) + "</a></p>")
	} else {
		// Relative links in the body are relative to the article page,
		// which lives at the Note's id.
		b.WriteString(MastodonHTML(p.HTML, id))
	}
	if tags := noteTags(p.Tags); len(tags) > 0 {
		b.WriteString("<p>")
		for i, t := range tags {
			if i > 0 {
				b.WriteString(" ")
			}
			name := strings.TrimPrefix(hashtagName(t), "#")
			b.WriteString(`<a href="` + escapeAttr(c.TagURL(t)) + `" class="mention hashtag" rel="tag">#<span>` +
				escapeText(name) + "</span></a>")
		}
		b.WriteString("</p>")
	}
	if lib != nil {
		if tr := lib.TranslationsAt(p, s.now()); len(tr) > 0 {
			sorted := append([]*articles.Post(nil), tr...)
			sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Lang < sorted[j].Lang })
			b.WriteString("<p>" + escapeText(label(p.Lang).also))
			for i, t := range sorted {
				if i > 0 {
					b.WriteString(" ·")
				}
				b.WriteString(` <a href="` + escapeAttr(c.NoteID(t.Slug, t.Lang)) + `" lang="` + escapeAttr(t.Lang) +
					`" hreflang="` + escapeAttr(t.Lang) + `">` + escapeText(languageName(t.Lang)) + "</a>")
			}
			b.WriteString("</p>")
		}
	}
	b.WriteString(attributionHTML(p.Attribution))
	return b.String()
}

// attributionHTML is the credit line: author, licence (linked), credits and
// a link to the original publication. Language-neutral on purpose: it
// names, it does not describe.
func attributionHTML(a articles.Attribution) string {
	var parts []string
	if v := strings.TrimSpace(a.Author); v != "" {
		parts = append(parts, escapeText(v))
	}
	if v := strings.TrimSpace(a.Licence); v != "" {
		if u := httpURL(a.LicenceURL); u != "" {
			parts = append(parts, `<a href="`+escapeAttr(u)+`">`+escapeText(v)+"</a>")
		} else {
			parts = append(parts, escapeText(v))
		}
	}
	for _, cr := range a.Credits {
		if v := strings.TrimSpace(cr); v != "" {
			parts = append(parts, escapeText(v))
		}
	}
	if u := httpURL(a.Source); u != "" {
		host := u
		if pu, err := url.Parse(u); err == nil && pu.Host != "" {
			host = pu.Host
		}
		parts = append(parts, `<a href="`+escapeAttr(u)+`">`+escapeText(host)+"</a>")
	}
	if len(parts) == 0 {
		return ""
	}
	return "<p>" + strings.Join(parts, " · ") + "</p>"
}

// httpURL returns u when it is an absolute http(s) URL, else "".
func httpURL(u string) string {
	u = strings.TrimSpace(u)
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return ""
	}
	return u
}

// noteTags drops empty and repeated tags (by slug), keeping the order.
func noteTags(tags []string) []string {
	seen := make(map[string]bool, len(tags))
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		slug := articles.TagSlug(t)
		if slug == "" || seen[slug] {
			continue
		}
		seen[slug] = true
		out = append(out, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "#")))
	}
	return out
}

// hashtagName is "#" and the tag without spaces ("online services" →
// "#onlineservices"); Mastodon lowercases and matches tags itself.
func hashtagName(tag string) string {
	return "#" + strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(tag), "#")), "")
}

// attachments are the article's first images as Image attachments, alt text
// in name (Mastodon and Misskey read it there), url a plain string (Misskey
// refuses Link objects).
func (s *Builder) attachments(p *articles.Post) []any {
	out := make([]any, 0, maxAttachments)
	for _, img := range p.Images {
		if len(out) == maxAttachments {
			break
		}
		u := s.mediaURL(img.Src)
		if u == "" {
			continue
		}
		mt := imageMediaType(u)
		if mt == "" && path.Ext(strings.SplitN(u, "?", 2)[0]) != "" {
			// A known non-raster extension (SVG…): Mastodon would
			// show a bare link instead of an image.
			continue
		}
		a := map[string]any{"type": "Image", "url": u}
		if mt != "" {
			a["mediaType"] = mt
		}
		alt := strings.TrimSpace(img.Alt)
		if alt == "" {
			alt = strings.TrimSpace(img.Title)
		}
		if alt != "" {
			a["name"] = alt
		}
		out = append(out, a)
	}
	return out
}

// mediaURL makes an image source absolute: http(s) URLs stay, a path
// relative to the posts folder is served under BASE/media/. Anything else
// (other schemes, "..") yields "".
func (s *Builder) mediaURL(src string) string {
	src = strings.TrimSpace(src)
	if src == "" {
		return ""
	}
	if u, err := url.Parse(src); err != nil {
		return ""
	} else if u.Scheme != "" || u.Host != "" {
		return httpURL(src)
	}
	segs := strings.Split(strings.TrimPrefix(src, "/"), "/")
	for i, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return ""
		}
		segs[i] = url.PathEscape(seg)
	}
	return s.cfg.BaseURL + "/media/" + strings.Join(segs, "/")
}

// labels are the few words crieur adds to a Note, in the Note's language.
type labels struct {
	also string // before the links to translations
	read string // before the link to the article (lede mode)
}

// label returns the labels for lang, English when crieur has none.
func label(lang string) labels {
	switch lang {
	case "fr":
		return labels{"Aussi en\u00a0:", "Lire l’article\u00a0:"}
	case "it":
		return labels{"Anche in:", "Leggi l’articolo:"}
	case "de":
		return labels{"Auch auf:", "Artikel lesen:"}
	case "es":
		return labels{"También en:", "Leer el artículo:"}
	case "pt":
		return labels{"Também em:", "Ler o artigo:"}
	case "nl":
		return labels{"Ook in het:", "Lees het artikel:"}
	case "ca":
		return labels{"També en:", "Llegiu l’article:"}
	}
	return labels{"Also in:", "Read the article:"}
}

// languageName is a language's name in that language, for the links to
// translations (a reader looks for their own language's name).
func languageName(lang string) string {
	switch lang {
	case "ar":
		return "العربية"
	case "br":
		return "Brezhoneg"
	case "ca":
		return "Català"
	case "cs":
		return "Čeština"
	case "da":
		return "Dansk"
	case "de":
		return "Deutsch"
	case "el":
		return "Ελληνικά"
	case "en":
		return "English"
	case "eo":
		return "Esperanto"
	case "es":
		return "Español"
	case "eu":
		return "Euskara"
	case "fa":
		return "فارسی"
	case "fi":
		return "Suomi"
	case "fr":
		return "Français"
	case "ga":
		return "Gaeilge"
	case "gl":
		return "Galego"
	case "he":
		return "עברית"
	case "hu":
		return "Magyar"
	case "it":
		return "Italiano"
	case "ja":
		return "日本語"
	case "ko":
		return "한국어"
	case "nb":
		return "Norsk bokmål"
	case "nl":
		return "Nederlands"
	case "no":
		return "Norsk"
	case "oc":
		return "Occitan"
	case "pl":
		return "Polski"
	case "pt":
		return "Português"
	case "ro":
		return "Română"
	case "ru":
		return "Русский"
	case "sv":
		return "Svenska"
	case "tr":
		return "Türkçe"
	case "uk":
		return "Українська"
	case "zh":
		return "中文"
	}
	return strings.ToUpper(lang)
}
