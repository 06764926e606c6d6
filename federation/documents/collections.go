package documents

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	vocab "github.com/go-ap/activitypub"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// pageSize is the number of items per collection page (Mastodon's own).
const pageSize = 20

// OutboxJSON is the outbox: page 0 (or less) is the OrderedCollection with
// its count and first page; page N >= 1 is an OrderedCollectionPage of the
// stored activities, newest first. Mastodon only reads totalItems (the post
// count) and never backfills from the items.
func (s *Builder) OutboxJSON(page int) ([]byte, error) {
	id := s.cfg.OutboxURL()
	if page <= 0 {
		_, total, err := s.store.Outbox(0, 0)
		if err != nil {
			return nil, fmt.Errorf("documents: outbox: %w", err)
		}
		return s.collectionJSON(id, total, true)
	}
	acts, total, err := s.store.Outbox((page-1)*pageSize, pageSize)
	if err != nil {
		return nil, fmt.Errorf("documents: outbox page %d: %w", page, err)
	}
	items := make([]any, 0, len(acts))
	for _, a := range acts {
		d, err := decodeDocument(a.JSON)
		if err != nil {
			return nil, fmt.Errorf("documents: outbox page %d: activity %s: %w", page, a.ID, err)
		}
		items = append(items, embedded(d))
	}
	return s.pageJSON(id, page, total, items)
}

// FollowersJSON is the followers collection. The count is always public
// (Mastodon shows it from totalItems); the list only with ShowFollowers.
// Without it the collection has no first page, which Mastodon shows as a
// hidden list, and pages are not found.
func (s *Builder) FollowersJSON(page int) ([]byte, error) {
	id := s.cfg.FollowersURL()
	if page <= 0 {
		total, err := s.store.CountFollowers()
		if err != nil {
			return nil, fmt.Errorf("documents: followers: %w", err)
		}
		return s.collectionJSON(id, total, s.cfg.ShowFollowers)
	}
	if !s.cfg.ShowFollowers {
		return nil, fmt.Errorf("documents: followers page %d: list hidden: %w", page, federation.ErrNotFound)
	}
	fs, total, err := s.store.FollowersPage((page-1)*pageSize, pageSize)
	if err != nil {
		return nil, fmt.Errorf("documents: followers page %d: %w", page, err)
	}
	items := make([]any, 0, len(fs))
	for _, f := range fs {
		items = append(items, f.ActorID)
	}
	return s.pageJSON(id, page, total, items)
}

// FollowingJSON is the following collection: the bot follows nobody.
func (s *Builder) FollowingJSON(page int) ([]byte, error) {
	id := s.cfg.FollowingURL()
	if page <= 0 {
		return s.collectionJSON(id, 0, true)
	}
	return s.pageJSON(id, page, 0, []any{})
}

// FeaturedJSON is the featured (pinned) collection: the full Notes of the
// visible pinned posts, newest first, in one collection without pages
// (Mastodon reads only the first page, GoToSocial logs an error when there
// is no featured collection at all).
func (s *Builder) FeaturedJSON() ([]byte, error) {
	items := []any{}
	if lib := s.vocabLibrary(); lib != nil {
		for _, p := range lib.Pinned(s.now()) {
			entry, err := s.store.LedgerEntry(p.Key())
			switch {
			case errors.Is(err, storage.ErrNotFound):
				entry = storage.LedgerEntry{}
			case err != nil:
				return nil, fmt.Errorf("documents: featured: %w", err)
			case !entry.Deleted.IsZero():
				continue
			}
			published, updated := noteTimes(p, entry)
			n, err := s.BuildNote(p, lib, published, updated)
			if err != nil {
				return nil, fmt.Errorf("documents: featured: %w", err)
			}
			items = append(items, n)
		}
	}
	c := vocab.OrderedCollectionNew(vocab.ID(s.cfg.FeaturedURL()))
	d, err := toDocument(c)
	if err != nil {
		return nil, fmt.Errorf("documents: featured: %w", err)
	}
	d["totalItems"] = len(items)
	d["orderedItems"] = items
	return encodeDocument(d)
}

// ActivityJSON is a stored activity, served at BASE/activities/<id>; id may
// be that last path segment or the whole URL.
func (s *Builder) ActivityJSON(id string) ([]byte, error) {
	full := id
	if !strings.HasPrefix(id, "https://") && !strings.HasPrefix(id, "http://") {
		if id == "" || strings.ContainsAny(id, "/?#") {
			return nil, fmt.Errorf("documents: activity %q: %w", id, federation.ErrNotFound)
		}
		full = s.cfg.BaseURL + "/activities/" + id
	}
	a, err := s.store.Activity(full)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("documents: activity %s: %w", full, federation.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("documents: activity %s: %w", full, err)
	}
	return a.JSON, nil
}

// collectionJSON is an OrderedCollection with totalItems and, when the
// items are listed, first = the first page.
func (s *Builder) collectionJSON(id string, total int, listed bool) ([]byte, error) {
	c := vocab.OrderedCollectionNew(vocab.ID(id))
	if listed {
		c.First = vocab.IRI(pageURL(id, 1))
		if total > 0 {
			c.Last = vocab.IRI(pageURL(id, lastPage(total)))
		}
	}
	d, err := toDocument(c)
	if err != nil {
		return nil, fmt.Errorf("documents: collection %s: %w", id, err)
	}
	// A JSON number, always: Mastodon shows the counts from it.
	d["totalItems"] = total
	return encodeDocument(d)
}

// pageJSON is page N of collection id, with next/prev links.
func (s *Builder) pageJSON(id string, page, total int, items []any) ([]byte, error) {
	p := vocab.OrderedCollectionPageNew(vocab.OrderedCollectionNew(vocab.ID(id)))
	p.ID = vocab.ID(pageURL(id, page))
	p.Type = vocab.OrderedCollectionPageType
	p.PartOf = vocab.IRI(id)
	if page*pageSize < total {
		p.Next = vocab.IRI(pageURL(id, page+1))
	}
	if page > 1 {
		p.Prev = vocab.IRI(pageURL(id, min(page-1, lastPage(total))))
	}
	d, err := toDocument(p)
	if err != nil {
		return nil, fmt.Errorf("documents: collection page %s: %w", p.ID, err)
	}
	// The count belongs to the collection; go-ap writes a zero here.
	delete(d, "totalItems")
	d["orderedItems"] = items
	return encodeDocument(d)
}

func pageURL(id string, page int) string { return id + "?page=" + strconv.Itoa(page) }

// lastPage is the number of the last page (1 for an empty collection).
func lastPage(total int) int {
	if total <= 0 {
		return 1
	}
	return (total + pageSize - 1) / pageSize
}

// The interaction collections of a Note live under its id, so they are
// dereferenced by content negotiation like the Note itself.

// RepliesURL is the id of a Note's replies collection.
func RepliesURL(noteID string) string { return noteID + "/replies" }

// LikesURL is the id of a Note's likes collection.
func LikesURL(noteID string) string { return noteID + "/likes" }

// SharesURL is the id of a Note's shares (boosts) collection.
func SharesURL(noteID string) string { return noteID + "/shares" }

// noteCollections are the replies, likes and shares of the Note id, as
// embedded in the Note: replies with its first page inline (Mastodon 4.5
// reads that page when one of its users opens the post, and fetches the
// next pages itself), likes and shares with their counts only (Mastodon
// shows them as the post's counts; the lists are nobody's business).
// Without a store (some documents tests) the collections are empty.
func (s *Builder) noteCollections(id string) (replies, likes, shares map[string]any, err error) {
	counts := map[storage.InteractionKind]int{}
	if s.store != nil {
		if counts, err = s.store.InteractionCounts(id); err != nil {
			return nil, nil, nil, fmt.Errorf("documents: collections of %s: %w", id, err)
		}
	}
	first, total, err := s.repliesPage(id, 1)
	if err != nil {
		return nil, nil, nil, err
	}
	// totalItems is the count read with the first page's items, in one
	// transaction: a reply arriving meanwhile is in both or in neither.
	replies = map[string]any{
		"id":         RepliesURL(id),
		"type":       "OrderedCollection",
		"totalItems": total,
		"first":      first,
	}
	return replies, countCollection(LikesURL(id), counts[storage.KindLike]),
		countCollection(SharesURL(id), counts[storage.KindAnnounce]), nil
}

// countCollection is a collection that tells its size and lists nothing.
func countCollection(id string, total int) map[string]any {
	return map[string]any{"id": id, "type": "OrderedCollection", "totalItems": total}
}

// repliesPage is page n (from 1) of the Note id's replies: the ids of the
// public replies crieur keeps in the article's thread, at any depth (each
// names its own parent in inReplyTo, so a crawler rebuilds the tree, and a
// reply whose parent's server is gone is still found), oldest first, so a
// page's content changes only at the end of the thread. Mentions (replies
// addressed to the bot only) are never listed: they are not public.
func (s *Builder) repliesPage(id string, n int) (page map[string]any, total int, err error) {
	collection := RepliesURL(id)
	items := []any{}
	if s.store != nil {
		rs, t, err := s.store.NoteInteractions(id, storage.KindReply, (n-1)*pageSize, pageSize, false)
		if err != nil {
			return nil, 0, fmt.Errorf("documents: replies of %s page %d: %w", id, n, err)
		}
		total = t
		for _, r := range rs {
			items = append(items, r.ID)
		}
	}
	page = map[string]any{
		"id":           pageURL(collection, n),
		"type":         "OrderedCollectionPage",
		"partOf":       collection,
		"orderedItems": items,
	}
	// The count read with the items, in the same transaction: next is
	// there exactly when more replies exist after this page.
	if n*pageSize < total {
		page["next"] = pageURL(collection, n+1)
	}
	if n > 1 {
		page["prev"] = pageURL(collection, min(n-1, lastPage(total)))
	}
	return page, total, nil
}

// RepliesJSON is the replies collection of a visible Note (page 0, with
// its first page inline) or its page n >= 1. Like NoteJSON, it fails with
// federation.ErrGone after the Note's Delete and federation.ErrNotFound for
// a Note that is not visible.
func (s *Builder) RepliesJSON(slug, lang string, page int) ([]byte, error) {
	if _, _, err := s.visiblePost(slug, lang); err != nil {
		return nil, err
	}
	id := s.cfg.NoteID(slug, lang)
	if page >= 1 {
		p, _, err := s.repliesPage(id, page)
		if err != nil {
			return nil, err
		}
		return encodeDocument(p)
	}
	replies, _, _, err := s.noteCollections(id)
	if err != nil {
		return nil, err
	}
	return encodeDocument(replies)
}

// LikesJSON is the likes collection of a visible Note: its count only.
func (s *Builder) LikesJSON(slug, lang string) ([]byte, error) {
	return s.countJSON(slug, lang, storage.KindLike, LikesURL)
}

// SharesJSON is the shares (boosts) collection of a visible Note: its
// count only.
func (s *Builder) SharesJSON(slug, lang string) ([]byte, error) {
	return s.countJSON(slug, lang, storage.KindAnnounce, SharesURL)
}

func (s *Builder) countJSON(slug, lang string, kind storage.InteractionKind, url func(string) string) ([]byte, error) {
	if _, _, err := s.visiblePost(slug, lang); err != nil {
		return nil, err
	}
	id := s.cfg.NoteID(slug, lang)
	total := 0
	if s.store != nil {
		counts, err := s.store.InteractionCounts(id)
		if err != nil {
			return nil, fmt.Errorf("documents: %s of %s: %w", kind, id, err)
		}
		total = counts[kind]
	}
	return encodeDocument(countCollection(url(id), total))
}
