package inbox

// Interactions with our Notes: replies and mentions (Create{Note}), quotes,
// likes and emoji reactions, boosts, and their Undo, Update and Delete. Each
// arrives through Receive, after every check it makes (the signature, the
// key's owner is the activity's actor), and changes storage in one
// transaction (storage.Store.PutInteraction / DeleteInteraction).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/storage"
)

// Bounds of what is kept of a remote post. Akkoma refuses remote content
// over 100,000 characters (INTEROP X-12); crieur refuses it too rather than
// cut HTML in the middle.
const (
	maxContentBytes = 100_000
	maxSummaryRunes = 500
	maxEmojiRunes   = 64
	maxLangBytes    = 35
)

// asPublic is the public collection, in the three spellings servers use.
func isPublicAddress(s string) bool {
	switch s {
	case "https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public":
		return true
	}
	return false
}

// postTypes are the object types a Create may bring as a reply, mention or
// quote. Mastodon takes Article and Page too (shown as title and link);
// WriteFreely and WordPress send them.
var postTypes = map[string]bool{"Note": true, "Article": true, "Page": true}

// inboxCreate takes in a reply, a mention or a quote. The object must be
// embedded (every server embeds it; a bare id would need a fetch crieur has
// no reason to make for something it may ignore), on the actor's host, and
// attributed to the actor. What it is about decides its kind:
//
//   - inReplyTo is one of our Notes, or a reply or mention kept before (a
//     thread under an article): public or unlisted → KindReply; addressed to
//     the bot only → KindMention; else ignored. A reply to a mention stays a
//     mention (never shown: its thread is not public).
//   - else it quotes one of our Notes: public → KindQuote; addressed to the
//     bot → KindMention of that Note; else ignored.
//   - else it is addressed to the bot (to, cc, or a Mention tag): a mention
//     or direct message that is about no article → KindMention with NoteID
//     the bot's actor id, so the admin's list shows it and no article does.
//   - else ignored.
//
// A reply to (or quote of) an article whose Delete was announced is refused
// with federation.ErrGone (410).
func (s *Inbox) inboxCreate(v *Verified, doc map[string]any, actorID string) error {
	obj, ok := doc["object"].(map[string]any)
	if !ok || !postTypes[jsonString(obj["type"])] {
		s.log.Debug("inbox: ignored Create of no post", "actor", actorID)
		return nil
	}
	p, err := s.remotePost(doc, obj, actorID)
	if err != nil {
		return err
	}
	i := storage.Interaction{
		ID:         p.id,
		Actor:      s.remoteActor(v, actorID),
		URL:        p.url,
		Content:    p.content,
		Summary:    p.summary,
		Sensitive:  p.sensitive,
		Language:   p.language,
		ActivityID: jsonString(doc["id"]),
		Published:  p.published,
		Updated:    p.updated,
	}
	parent, root, parentKind, err := s.replyTarget(jsonID(obj["inReplyTo"]))
	if err != nil {
		return err
	}
	switch {
	case root != "":
		i.NoteID, i.InReplyTo = root, parent
		switch {
		case p.public && parentKind != storage.KindMention:
			i.Kind = storage.KindReply
		case p.addressed:
			i.Kind = storage.KindMention
		}
	default:
		quoted, err := s.quoteTarget(obj)
		if err != nil {
			return err
		}
		switch {
		case quoted != "" && p.public:
			i.NoteID, i.Kind = quoted, storage.KindQuote
		case quoted != "" && p.addressed:
			i.NoteID, i.Kind = quoted, storage.KindMention
		case p.addressed:
			i.NoteID, i.Kind = s.cfg.ActorID(), storage.KindMention
		}
	}
	if i.Kind == "" {
		s.log.Debug("inbox: ignored Create about none of our posts or not addressed to us", "actor", actorID, "object", p.id)
		return nil
	}
	if i.Kind == storage.KindReply || i.Kind == storage.KindQuote {
		if i.Moderation, err = s.arrivalModeration(actorID); err != nil {
			return err
		}
	}
	// A Create delivered again (a retry, a second inbox) must not undo an
	// Update kept since: the first one counts.
	switch old, err := s.store.Interaction(i.ID); {
	case err == nil && old.Actor.ID != actorID:
		return fmt.Errorf("%w: inbox: create: %s is kept for another actor than %s", federation.ErrForbidden, i.ID, actorID)
	case err == nil:
		s.log.Debug("inbox: ignored Create of a post kept already", "actor", actorID, "object", i.ID)
		return nil
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("inbox: create: %w", err)
	}
	return s.putInteraction(i, "create")
}

// inboxUpdate takes in an edited reply, mention or quote: the content and
// the edit time change, its kind and place do not. An Update of something
// crieur did not keep, or older than the version kept, changes nothing;
// one by another actor than the author is refused (403).
func (s *Inbox) inboxUpdate(v *Verified, doc map[string]any, actorID string) error {
	obj, ok := doc["object"].(map[string]any)
	if ok && actorTypes[jsonString(obj["type"])] {
		return s.updateProfile(v, obj, actorID)
	}
	if !ok || !postTypes[jsonString(obj["type"])] {
		return nil
	}
	p, err := s.remotePost(doc, obj, actorID)
	if err != nil {
		return err
	}
	old, err := s.store.Interaction(p.id)
	if errors.Is(err, storage.ErrNotFound) {
		s.log.Debug("inbox: ignored Update of a post not kept", "actor", actorID, "object", p.id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("inbox: update %s: %w", p.id, err)
	}
	if old.Actor.ID != actorID {
		return fmt.Errorf("%w: inbox: %s updates %s, a post of %s", federation.ErrForbidden, actorID, p.id, old.Actor.ID)
	}
	updated := p.updated
	if updated.IsZero() {
		updated = s.now()
	}
	if !old.Updated.IsZero() && !updated.After(old.Updated) {
		s.log.Debug("inbox: ignored Update not newer than the version kept", "object", p.id)
		return nil
	}
	i := old
	i.Actor = s.remoteActor(v, actorID)
	i.URL, i.Content, i.Summary, i.Sensitive, i.Language = p.url, p.content, p.summary, p.sensitive, p.language
	i.Updated = updated
	if id := jsonString(doc["id"]); id != "" {
		i.ActivityID = id
	}
	return s.putInteraction(i, "update")
}

// actorTypes are the ActivityStreams actor types.
var actorTypes = map[string]bool{"Person": true, "Service": true, "Application": true, "Group": true, "Organization": true}

// updateProfile takes the display data (name, profile page, avatar) of the
// signer's own profile Update into its cached key, so that its next
// interactions show them; interactions kept before keep what they were
// stored with. Inboxes are not taken from it: they change only with a
// fetch of the actor at its id (fetchKey).
func (s *Inbox) updateProfile(v *Verified, obj map[string]any, actorID string) error {
	if jsonID(obj["id"]) != actorID || v.Owner != actorID || v.key.KeyID == "" {
		return nil
	}
	info := remoteActorInfo(obj)
	k := v.key
	k.Name, k.URL, k.Avatar = info.Name, info.URL, info.Avatar
	if info.Handle != "" {
		k.Handle = info.Handle
	}
	if k == v.key {
		return nil
	}
	if err := s.store.PutRemoteKey(k); err != nil {
		return fmt.Errorf("inbox: profile update of %s: %w", actorID, err)
	}
	s.log.Debug("inbox: display data of an actor updated", "actor", actorID)
	return nil
}

// inboxLike takes in a Like of one of our Notes, a Misskey reaction (a Like
// with _misskey_reaction or content) or a Pleroma/Akkoma EmojiReact: all are
// likes, the reaction's emoji kept. One per author and Note (storage keeps
// the latest). A Like without id could never be undone: ignored.
func (s *Inbox) inboxLike(v *Verified, doc map[string]any, actorID string) error {
	noteID, err := s.interactionTarget(doc, actorID)
	if noteID == "" || err != nil {
		return err
	}
	emoji := jsonString(doc["_misskey_reaction"])
	if emoji == "" {
		emoji = jsonString(doc["content"])
	}
	i := storage.Interaction{
		ID:         jsonString(doc["id"]),
		Kind:       storage.KindLike,
		NoteID:     noteID,
		Actor:      s.remoteActor(v, actorID),
		Emoji:      plainText(emoji, maxEmojiRunes),
		ActivityID: jsonString(doc["id"]),
		Published:  parseTime(doc["published"]),
	}
	return s.putInteraction(i, "like")
}

// inboxAnnounce takes in a boost of one of our Notes (the object a bare id,
// or embedded: only its id is read, our Note is ours to know).
func (s *Inbox) inboxAnnounce(v *Verified, doc map[string]any, actorID string) error {
	noteID, err := s.interactionTarget(doc, actorID)
	if noteID == "" || err != nil {
		return err
	}
	i := storage.Interaction{
		ID:         jsonString(doc["id"]),
		Kind:       storage.KindAnnounce,
		NoteID:     noteID,
		Actor:      s.remoteActor(v, actorID),
		ActivityID: jsonString(doc["id"]),
		Published:  parseTime(doc["published"]),
	}
	return s.putInteraction(i, "announce")
}

// interactionTarget checks a Like, EmojiReact or Announce: it returns the
// Note it is about, "" when crieur ignores it (not about one of our Notes,
// no id), ErrGone for a deleted Note, ErrForbidden for an activity id on
// another host than its actor (so nobody can take another server's ids
// before it uses them).
func (s *Inbox) interactionTarget(doc map[string]any, actorID string) (string, error) {
	typ := jsonString(doc["type"])
	id := jsonString(doc["id"])
	noteID, err := s.ourNote(jsonID(doc["object"]))
	if err != nil || noteID == "" {
		if noteID == "" && err == nil {
			s.log.Debug("inbox: ignored "+typ+" of none of our Notes", "actor", actorID, "object", jsonID(doc["object"]))
		}
		return "", err
	}
	if id == "" {
		s.log.Debug("inbox: ignored "+typ+" without id", "actor", actorID)
		return "", nil
	}
	if !sameHost(id, actorID) {
		return "", fmt.Errorf("%w: inbox: %s %s is not on its actor's host (%s)", federation.ErrForbidden, typ, id, actorID)
	}
	return noteID, nil
}

// undoInteraction handles an Undo that is not about a Follow: the Like,
// reaction or Announce it names (embedded or by id) is removed when the
// Undo's actor is its author. handled is false when no interaction has that
// id (the caller then tries a Follow).
func (s *Inbox) undoInteraction(doc map[string]any, actorID string) (handled bool, err error) {
	id := jsonID(doc["object"])
	if o, ok := doc["object"].(map[string]any); ok {
		if a := jsonID(o["actor"]); a != "" && a != actorID {
			return true, fmt.Errorf("%w: inbox: %s undoes an activity by %s", federation.ErrForbidden, actorID, a)
		}
	}
	if id == "" {
		return false, nil
	}
	removed, found, err := s.store.DeleteInteraction(id, actorID)
	switch {
	case errors.Is(err, storage.ErrNotOwner):
		return true, fmt.Errorf("%w: inbox: %s undoes %s, an interaction of another actor", federation.ErrForbidden, actorID, id)
	case err != nil:
		return true, fmt.Errorf("inbox: undo %s: %w", id, err)
	case !found:
		return false, nil
	}
	s.log.Info("inbox: interaction undone", "kind", removed.Kind, "note", removed.NoteID, "actor", actorID, "id", id)
	return true, nil
}

// deleteInteraction handles a Delete of a post (its id, or a Tombstone with
// it): a reply, mention or quote kept is removed when the Delete's actor is
// its author (403 otherwise); anything else changes nothing.
func (s *Inbox) deleteInteraction(objectID, actorID string) error {
	if objectID == "" {
		return nil
	}
	removed, found, err := s.store.DeleteInteraction(objectID, actorID)
	switch {
	case errors.Is(err, storage.ErrNotOwner):
		return fmt.Errorf("%w: inbox: %s deletes %s, a post of another actor", federation.ErrForbidden, actorID, objectID)
	case err != nil:
		return fmt.Errorf("inbox: delete %s: %w", objectID, err)
	case !found:
		s.log.Debug("inbox: ignored Delete of an object not kept", "actor", actorID, "object", objectID)
		return nil
	}
	s.log.Info("inbox: interaction deleted", "kind", removed.Kind, "note", removed.NoteID, "actor", actorID, "id", objectID)
	return nil
}

// deleteInteractionsOf removes every interaction of a deleted account.
func (s *Inbox) deleteInteractionsOf(actorID string) error {
	n, err := s.store.DeleteInteractionsOf(actorID)
	if err != nil {
		return fmt.Errorf("inbox: delete account %s: %w", actorID, err)
	}
	if n > 0 {
		s.log.Info("inbox: interactions of a deleted account removed", "actor", actorID, "count", n)
	}
	return nil
}

// putInteraction stores i; an id kept for another actor is refused (403).
func (s *Inbox) putInteraction(i storage.Interaction, action string) error {
	created, err := s.store.PutInteraction(i)
	if errors.Is(err, storage.ErrNotOwner) {
		return fmt.Errorf("%w: inbox: %s: %s is kept for another actor than %s", federation.ErrForbidden, action, i.ID, i.Actor.ID)
	}
	if err != nil {
		return fmt.Errorf("inbox: %s: %w", action, err)
	}
	// Likes and boosts come by the thousand when a post travels: the
	// request line says they came, crieur inbox shows them; replies,
	// mentions and quotes, rarer and read, get a line of their own.
	level := slog.LevelInfo
	if i.Kind == storage.KindLike || i.Kind == storage.KindAnnounce {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "inbox: interaction stored", "kind", i.Kind, "note", i.NoteID, "actor", i.Actor.ID, "id", i.ID, "new", created)
	return nil
}

// remoteActor is how the author is shown: the display data cached with
// its key (storage.RemoteKey), learnt when the key was fetched.
func (s *Inbox) remoteActor(v *Verified, actorID string) storage.RemoteActor {
	a := storage.RemoteActor{ID: actorID}
	if v != nil && v.Owner == actorID {
		a.Name, a.Handle, a.URL, a.Avatar = v.key.Name, v.key.Handle, v.key.URL, v.key.Avatar
	}
	return a
}

// ourNote returns id when it is one of our Notes: BaseURL/posts/SLUG/LANG,
// announced (in the ledger) and not deleted. "" for anything else;
// federation.ErrGone for a Note whose Delete was announced.
func (s *Inbox) ourNote(id string) (string, error) {
	prefix := s.cfg.BaseURL + "/posts/"
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || strings.ContainsAny(rest, "?#") {
		return "", nil
	}
	slug, lang, ok := strings.Cut(rest, "/")
	if !ok || slug == "" || lang == "" || strings.Contains(lang, "/") {
		return "", nil
	}
	entry, err := s.store.LedgerEntry(slug + "/" + lang)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("inbox: note %s: %w", id, err)
	case entry.NoteID != "" && entry.NoteID != id:
		return "", nil
	case !entry.Deleted.IsZero():
		return "", fmt.Errorf("%w: inbox: %s was deleted", federation.ErrGone, id)
	}
	return id, nil
}

// replyTarget resolves inReplyTo: our Note (parent = root = it), or a reply
// or mention kept before (parent = it, root = its Note, which must still
// stand). root is "" when the post replies to nothing of ours.
func (s *Inbox) replyTarget(inReplyTo string) (parent, root string, parentKind storage.InteractionKind, err error) {
	if inReplyTo == "" {
		return "", "", "", nil
	}
	note, err := s.ourNote(inReplyTo)
	if err != nil || note != "" {
		return note, note, "", err
	}
	kept, err := s.store.Interaction(inReplyTo)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "", "", "", nil
	case err != nil:
		return "", "", "", fmt.Errorf("inbox: reply to %s: %w", inReplyTo, err)
	case kept.Kind != storage.KindReply && kept.Kind != storage.KindMention:
		return "", "", "", nil
	case kept.NoteID == s.cfg.ActorID():
		// A thread under a mention about no article.
		return inReplyTo, kept.NoteID, kept.Kind, nil
	}
	if _, err := s.ourNote(kept.NoteID); err != nil {
		return "", "", "", err
	}
	return inReplyTo, kept.NoteID, kept.Kind, nil
}

// quoteTarget returns the Note a post quotes when it is one of ours. The
// field is the first present of quote (FEP-044f), _misskey_quote, quoteUrl
// and quoteUri, the order Mastodon reads them in (status_parser.rb).
func (s *Inbox) quoteTarget(obj map[string]any) (string, error) {
	for _, k := range []string{"quote", "_misskey_quote", "quoteUrl", "quoteUri"} {
		if q := jsonID(obj[k]); q != "" {
			return s.ourNote(q)
		}
	}
	return "", nil
}

// remotePost is what crieur keeps of a remote Note.
type remotePost struct {
	id, url, content, summary, language string
	sensitive, public, addressed        bool
	published, updated                  time.Time
}

// remotePost reads and checks a post embedded in a Create or Update: its id
// on the actor's host and attributedTo the actor (Mastodon's origin rule:
// a signed activity speaks only for its own server's objects), its HTML
// sanitised to Mastodon's allowlist, its addressing.
func (s *Inbox) remotePost(doc, obj map[string]any, actorID string) (remotePost, error) {
	typ := jsonString(doc["type"])
	p := remotePost{id: jsonString(obj["id"])}
	if !isHTTPURL(p.id) {
		return p, fmt.Errorf("%w: inbox: %s of a post without an http(s) id", federation.ErrBadRequest, typ)
	}
	if !sameHost(p.id, actorID) {
		return p, fmt.Errorf("%w: inbox: %s by %s of %s, a post on another host", federation.ErrForbidden, typ, actorID, p.id)
	}
	if a := jsonID(obj["attributedTo"]); a != actorID {
		if arr, ok := obj["attributedTo"].([]any); !ok || len(arr) != 1 || jsonID(arr[0]) != actorID {
			return p, fmt.Errorf("%w: inbox: %s by %s of %s, attributed to %q", federation.ErrForbidden, typ, actorID, p.id, a)
		}
	}
	src, lang := postContent(obj)
	if len(src) > maxContentBytes {
		return p, fmt.Errorf("%w: inbox: %s of %s: content of %d bytes, limit %d", federation.ErrTooLarge, typ, p.id, len(src), maxContentBytes)
	}
	p.content = documents.MastodonHTML(src, "")
	p.language = lang
	p.summary = plainText(jsonString(obj["summary"]), maxSummaryRunes)
	p.sensitive, _ = obj["sensitive"].(bool)
	if u := linkHref(obj["url"]); u != "" && sameHost(u, actorID) {
		p.url = u
	} else {
		p.url = p.id
	}
	p.published = parseTime(obj["published"])
	p.updated = parseTime(obj["updated"])

	// Visibility is the post's own addressing (Mastodon reads the
	// object's to/cc); the activity's is the fallback when the post has
	// none.
	to, cc := obj["to"], obj["cc"]
	if to == nil && cc == nil {
		to, cc = doc["to"], doc["cc"]
	}
	bot := s.cfg.ActorID()
	for _, a := range append(idList(to), idList(cc)...) {
		switch {
		case isPublicAddress(a):
			p.public = true
		case a == bot:
			p.addressed = true
		}
	}
	for _, t := range objectList(obj["tag"]) {
		if jsonString(t["type"]) == "Mention" && jsonID(t["href"]) == bot {
			p.addressed = true
		}
	}
	return p, nil
}

// postContent is a post's HTML and language: content, else one value of
// contentMap. Go maps forget the order of contentMap, so its language is
// the key whose value is content, else the first key in sort order
// (crieur cannot know which one the sender listed first).
func postContent(obj map[string]any) (content, lang string) {
	content = jsonString(obj["content"])
	cm, _ := obj["contentMap"].(map[string]any)
	keys := make([]string, 0, len(cm))
	for k, v := range cm {
		if _, ok := v.(string); ok && validLanguage(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if content != "" && cm[k] == content {
			return content, k
		}
	}
	if len(keys) > 0 {
		lang = keys[0]
		if content == "" {
			content = cm[lang].(string)
		}
	}
	return content, lang
}

// validLanguage accepts BCP 47-looking tags only (letters, digits, dashes).
func validLanguage(v string) bool {
	if v == "" || len(v) > maxLangBytes {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// idList reads an addressing field: one id or a list of them.
func idList(v any) []string {
	switch t := v.(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if id := jsonID(e); id != "" {
				out = append(out, id)
			}
		}
		return out
	default:
		if id := jsonID(t); id != "" {
			return []string{id}
		}
	}
	return nil
}

// objectList reads a field holding one object or a list of them.
func objectList(v any) []map[string]any {
	switch t := v.(type) {
	case map[string]any:
		return []map[string]any{t}
	case []any:
		var out []map[string]any
		for _, e := range t {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// linkHref reads a url field: a string, a Link object (href), or a list of
// either; the first http(s) URL, preferring text/html links.
func linkHref(v any) string {
	var first string
	for _, e := range anyList(v) {
		var href, mediaType string
		switch t := e.(type) {
		case string:
			href = t
		case map[string]any:
			href, mediaType = jsonString(t["href"]), jsonString(t["mediaType"])
		}
		if !isHTTPURL(href) {
			continue
		}
		if mediaType == "text/html" {
			return href
		}
		if first == "" {
			first = href
		}
	}
	return first
}

// imageURL reads an icon field: an Image (its url a string or a Link), a
// bare URL, or a list of them; the first http(s) URL.
func imageURL(v any) string {
	for _, e := range anyList(v) {
		switch t := e.(type) {
		case string:
			if isHTTPURL(t) {
				return t
			}
		case map[string]any:
			if u := linkHref(t["url"]); u != "" {
				return u
			}
		}
	}
	return ""
}

func anyList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// parseTime reads an xsd:dateTime; zero when absent or malformed.
func parseTime(v any) time.Time {
	t, err := time.Parse(time.RFC3339, jsonString(v))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// sameHost reports whether two URLs have the same host[:port].
func sameHost(a, b string) bool {
	ha, hb := urlHost(a), urlHost(b)
	return ha != "" && strings.EqualFold(ha, hb)
}

// plainText is the text of an HTML fragment (a display name, a content
// warning, an emoji): tags dropped, entities decoded, control characters
// and runs of spaces reduced to one space, at most max runes. Remote names
// are shown on crieur's pages and in the admin's terminal.
func plainText(src string, max int) string {
	if src == "" {
		return ""
	}
	var b strings.Builder
	z := html.NewTokenizer(strings.NewReader(src))
	space := false
	n := 0
	skip := 0 // inside script or style: their text is not text
	for n < max {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		switch tt {
		case html.StartTagToken, html.EndTagToken:
			name, _ := z.TagName()
			if string(name) == "script" || string(name) == "style" {
				if tt == html.StartTagToken {
					skip++
				} else if skip > 0 {
					skip--
				}
			}
			if string(name) == "br" || string(name) == "p" {
				space = b.Len() > 0
			}
			continue
		case html.TextToken:
		default:
			continue
		}
		if skip > 0 {
			continue
		}
		for _, r := range string(z.Text()) {
			if n >= max {
				break
			}
			if r == utf8.RuneError || unicode.Is(unicode.Cf, r) && r != '\u200d' {
				// Bidi overrides and invisible marks: dropped, so a name
				// cannot reorder what follows it. The joiner stays:
				// emoji sequences need it.
				continue
			}
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				space = b.Len() > 0
				continue
			}
			if space {
				b.WriteByte(' ')
				n++
				space = false
			}
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}
