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
