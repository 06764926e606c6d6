package web

import (
	"html/template"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/storage"
)

// threadsPerPage is how many conversations (a reply to the article and
// the replies under it) one page of comments shows. Pages cut between
// conversations, never inside one, so a thread reads whole.
const threadsPerPage = 30

// maxThreadDepth bounds the walk from a reply up to the reply to the
// article it belongs under: parents are remote data, a loop must end.
const maxThreadDepth = 64

// conversationView is what the article page shows of the fediverse's
// answers: the public replies as comments, the counts, how to reply.
type conversationView struct {
	Comments []*commentView // the replies to the article, oldest first
	Replies  int            // every public reply, at any depth
	Likes    int
	Boosts   int
	Quotes   int
	Pager    *pager // nil when one page holds them all
	NoteURL  string // what a reader pastes in their own server's search
	// InteractURL explains replying from one's own server.
	InteractURL string
}

// commentView is one public reply as a comment. Every field is remote
// data: strings are escaped by html/template, Content was sanitised here.
type commentView struct {
	ID         string // anchor: "c-" and a digest of the reply's id
	Name       string
	Handle     string // user@host, no leading @
	ProfileURL string // http(s) only, else empty
	AvatarURL  string // crieur's own /avatars/… URL, empty: Initials
	Initials   string
	Content    template.HTML // sanitised to Mastodon's allowlist
	Summary    string        // content warning, plain text
	Lang       string
	Published  time.Time
	Updated    time.Time // zero when never edited
	URL        string    // the original on its server, http(s) only
	// InReplyTo names the author answered, for replies shown one level
	// down that answer another reply than the thread's first one.
	InReplyTo string
	Children  []*commentView // oldest first, one level only
}

// conversation builds the comments of the Note noteID: every public reply
// read in one go (oldest first), threaded under the reply to the article
// it descends from, one page of threads cut out. Mentions are never read:
// they are for the admin.
func (s *server) conversation(c *gin.Context, noteID string, page int) (*conversationView, bool) {
	cv := &conversationView{NoteURL: noteID,
		InteractURL: "/authorize_interaction?" + url.Values{"uri": {noteID}}.Encode()}
	if s.store == nil {
		return cv, page == 1
	}
	counts, err := s.store.InteractionCounts(noteID)
	if err != nil {
		_ = c.Error(err)
		return cv, page == 1
	}
	cv.Likes, cv.Boosts, cv.Quotes = counts[storage.KindLike], counts[storage.KindAnnounce], counts[storage.KindQuote]
	// The thread is built from the replies' ids and parents only; the
	// replies of the page shown are then read in full, in one
	// transaction. A reply deleted in between is simply missing.
	links, err := s.store.ReplyLinks(noteID)
	if err != nil {
		_ = c.Error(err)
		return cv, page == 1
	}
	cv.Replies = len(links)
	roots := threads(links, noteID)
	cut, pg, ok := paginate(roots, page, threadsPerPage, c.Request.URL.Path)
	if !ok {
		return nil, false
	}
	if pg.Pages > 1 {
		// The article's own query is ?comments=N; paginate writes page.
		pg.PrevURL = strings.Replace(pg.PrevURL, "?page=", "?comments=", 1)
		pg.NextURL = strings.Replace(pg.NextURL, "?page=", "?comments=", 1)
		if pg.PrevURL != "" {
			pg.PrevURL += "#comments"
		}
		if pg.NextURL != "" {
			pg.NextURL += "#comments"
		}
		cv.Pager = pg
	}
	var ids []string
	for _, t := range cut {
		ids = append(ids, t.root)
		for _, ch := range t.children {
			ids = append(ids, ch.id)
		}
	}
	full, err := s.store.Interactions(ids)
	if err != nil {
		_ = c.Error(err)
		return cv, true
	}
	byID := make(map[string]storage.Interaction, len(full))
	for _, r := range full {
		byID[r.ID] = r
	}
	// Only the page shown is rendered: sanitising and avatar look-ups
	// cost per comment.
	seen := map[string]string{}
	for _, t := range cut {
		r, ok := byID[t.root]
		if !ok {
			continue
		}
		root := s.comment(r, seen)
		for _, ch := range t.children {
			r, ok := byID[ch.id]
			if !ok {
				continue
			}
			v := s.comment(r, seen)
			if ch.parent != "" {
				if p, ok := byID[ch.parent]; ok {
					v.InReplyTo = displayName(p.Actor)
				}
			}
			root.Children = append(root.Children, v)
		}
		cv.Comments = append(cv.Comments, root)
	}
	return cv, true
}

// thread is a reply to the article and every reply under it, by id.
type thread struct {
	root     string
	children []threadChild
}

type threadChild struct {
	id     string
	parent string // set when the parent is not the thread's root
}

// threads groups replies (oldest first) under the reply to the article
// each descends from. A reply whose parent crieur does not keep (deleted,
// or never received) starts a thread of its own: it still answers the
// article. Deeper replies are shown one level down, in time order, naming
// the author they answer: a conversation under an article is read top to
// bottom, and deep nesting is unreadable on a phone.
func threads(replies []storage.ReplyLink, noteID string) []thread {
	byID := make(map[string]int, len(replies))
	for i, r := range replies {
		byID[r.ID] = i
	}
	rootOf := func(i int) int {
		for range maxThreadDepth {
			p, ok := byID[replies[i].InReplyTo]
			if replies[i].InReplyTo == noteID || !ok || p == i {
				return i
			}
			i = p
		}
		return i
	}
	var out []thread
	at := map[int]int{} // root index → position in out
	for i, r := range replies {
		root := rootOf(i)
		pos, ok := at[root]
		if root == i || !ok {
			// A thread's first reply; or a reply seen before its
			// parent (clocks differ), which opens a thread itself.
			at[i] = len(out)
			out = append(out, thread{root: r.ID})
			continue
		}
		ch := threadChild{id: r.ID}
		if p := byID[r.InReplyTo]; p != root {
			ch.parent = r.InReplyTo
		}
		out[pos].children = append(out[pos].children, ch)
	}
	return out
}

// comment is the view of one reply. seen caches avatar look-ups by URL
// for one page: an active author replies often.
func (s *server) comment(r storage.Interaction, seen map[string]string) *commentView {
	v := &commentView{
		ID:         "c-" + shortDigest(r.ID),
		Name:       displayName(r.Actor),
		Handle:     strings.TrimPrefix(r.Actor.Handle, "@"),
		ProfileURL: httpLink(r.Actor.URL),
		Initials:   initials(displayName(r.Actor)),
		Summary:    r.Summary,
		Lang:       plausibleTag(r.Language),
		Published:  r.Published,
		URL:        httpLink(r.URL),
	}
	if v.ProfileURL == "" {
		v.ProfileURL = httpLink(r.Actor.ID)
	}
	if v.URL == "" {
		v.URL = httpLink(r.ID)
	}
	if r.Updated.After(r.Published) {
		v.Updated = r.Updated
	}
	// The inbox stored sanitised HTML; it is sanitised again here, to the
	// same allowlist, because this is where it meets a reader's browser:
	// the page must not depend on every writer of the bucket having been
	// careful. Relative links resolve against the reply's own address.
	v.Content = template.HTML(documents.MastodonHTML(r.Content, v.URL))
	if a := r.Actor.Avatar; a != "" {
		u, ok := seen[a]
		if !ok {
			u = s.avatars.url(a)
			seen[a] = u
		}
		v.AvatarURL = u
	}
	return v
}

// displayName is the author's name, else their handle, else their id.
func displayName(a storage.RemoteActor) string {
	if n := strings.TrimSpace(a.Name); n != "" {
		return n
	}
	if h := strings.TrimPrefix(strings.TrimSpace(a.Handle), "@"); h != "" {
		return h
	}
	return a.ID
}

// initials is the placeholder avatar's letter: the first letter or digit
// of the name, upper-cased; "?" when there is none.
func initials(name string) string {
	for _, r := range name {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return string(unicode.ToUpper(r))
		}
	}
	return "?"
}

// httpLink returns u when it is an absolute http(s) URL, else "": remote
// links on the page are followed by readers.
func httpLink(u string) string {
	pu, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil {
		return ""
	}
	return pu.String()
}

// plausibleTag keeps a language tag that looks like one (lang attribute).
func plausibleTag(l string) string {
	if l == "" || len(l) > 35 || !utf8.ValidString(l) {
		return ""
	}
	for _, r := range l {
		if !(r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return ""
		}
	}
	return l
}

// commentsParam reads ?comments=N (the page of comments); absent is 1.
func commentsParam(c *gin.Context) (int, bool) { return pageQuery(c, "comments") }
