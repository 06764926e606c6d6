package documents

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	vocab "github.com/go-ap/activitypub"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

var collectionFields = map[string]fieldKind{"id": kURL, "type": kString, "totalItems": kNumber}

var pageFields = map[string]fieldKind{"id": kURL, "type": kString, "partOf": kURL, "orderedItems": kArray}

// putOutbox stores n outbox activities with known ids, a minute apart;
// the newest is "act-<n-1>".
func putOutbox(t *testing.T, s *Builder, n int) {
	t.Helper()
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s/activities/act-%02d", s.cfg.BaseURL, i)
		note := map[string]any{"id": s.cfg.NoteID(fmt.Sprintf("p%02d", i), "en"), "type": "Note", "content": "<p>n</p>"}
		body, err := encodeDocument(document{"id": id, "type": "Create", "actor": s.cfg.ActorID(), "object": note})
		if err != nil {
			t.Fatal(err)
		}
		act := storage.Activity{ID: id, Type: "Create", ObjectID: note["id"].(string), Published: base.Add(time.Duration(i) * time.Minute), InOutbox: true, JSON: body}
		if err := s.store.PutActivity(act); err != nil {
			t.Fatal(err)
		}
	}
	// An activity that is not listed (an Accept).
	if err := s.store.PutActivity(storage.Activity{ID: s.cfg.BaseURL + "/activities/accept", Type: "Accept", Published: base, JSON: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxJSON(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	putOutbox(t, s, 45)
	outbox := s.cfg.OutboxURL()

	b, err := s.OutboxJSON(0)
	if err != nil {
		t.Fatal(err)
	}
	checkContext(t, "outbox", b)
	c := decodeJSON(t, b)
	checkFields(t, "outbox", c, collectionFields)
	if c["type"] != "OrderedCollection" || c["id"] != outbox || c["totalItems"] != 45.0 ||
		c["first"] != outbox+"?page=1" || c["last"] != outbox+"?page=3" {
		t.Errorf("outbox = %v", c)
	}
	if _, ok := c["orderedItems"]; ok {
		t.Errorf("collection lists items itself")
	}

	for _, pc := range []struct {
		page       int
		first, n   int // newest item index and count
		prev, next string
	}{
		{1, 44, 20, "", outbox + "?page=2"},
		{2, 24, 20, outbox + "?page=1", outbox + "?page=3"},
		{3, 4, 5, outbox + "?page=2", ""},
		{4, 0, 0, outbox + "?page=3", ""},
	} {
		b, err := s.OutboxJSON(pc.page)
		if err != nil {
			t.Fatal(err)
		}
		checkContext(t, "outbox page", b)
		p := decodeJSON(t, b)
		what := fmt.Sprintf("outbox page %d", pc.page)
		checkFields(t, what, p, pageFields)
		if p["type"] != "OrderedCollectionPage" || p["id"] != fmt.Sprintf("%s?page=%d", outbox, pc.page) || p["partOf"] != outbox {
			t.Errorf("%s: %v %v %v", what, p["type"], p["id"], p["partOf"])
		}
		if prev, _ := p["prev"].(string); prev != pc.prev {
			t.Errorf("%s: prev = %q, want %q", what, prev, pc.prev)
		}
		if next, _ := p["next"].(string); next != pc.next {
			t.Errorf("%s: next = %q, want %q", what, next, pc.next)
		}
		items := p["orderedItems"].([]any)
		if len(items) != pc.n {
			t.Fatalf("%s: %d items, want %d", what, len(items), pc.n)
		}
		for i, it := range items {
			m := it.(map[string]any)
			want := fmt.Sprintf("%s/activities/act-%02d", s.cfg.BaseURL, pc.first-i)
			if m["id"] != want {
				t.Errorf("%s item %d: %v, want %s (newest first)", what, i, m["id"], want)
			}
			if _, ok := m["@context"]; ok {
				t.Errorf("%s item %d: embedded @context", what, i)
			}
			if obj := m["object"].(map[string]any); obj["content"] != "<p>n</p>" {
				t.Errorf("%s item %d: object %v", what, i, obj)
			}
		}
	}
}

func TestOutboxGolden(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	// Two Creates as the publisher makes them, with fixed ids so the
	// golden file is stable.
	for i, key := range [][2]string{{"warning", "en"}, {"sample", "fr"}} {
		p := mustPost(t, s, key[0], key[1])
		n, err := s.BuildNote(p, s.vocabLibrary(), p.Date, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		act, _, err := s.BuildActivity("Create", n, []string{Public}, []string{s.cfg.FollowersURL()})
		if err != nil {
			t.Fatal(err)
		}
		fixed := fmt.Sprintf("%s/activities/%032x", s.cfg.BaseURL, i+1)
		act.JSON = []byte(strings.Replace(string(act.JSON), act.ID, fixed, 1))
		act.ID = fixed
		act.Published = p.Date
		if err := s.store.PutActivity(act); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.OutboxJSON(1)
	if err != nil {
		t.Fatal(err)
	}
	checkGoldenJSON(t, "golden_outbox_page1.json", b)
	b, err = s.OutboxJSON(0)
	if err != nil {
		t.Fatal(err)
	}
	checkGoldenJSON(t, "golden_outbox.json", b)
	// go-ap reads the page and its two Creates.
	it, err := vocab.UnmarshalJSON(mustOutboxPage(t, s))
	if err != nil {
		t.Fatalf("go-ap cannot parse the outbox page: %v", err)
	}
	err = vocab.OnOrderedCollectionPage(it, func(p *vocab.OrderedCollectionPage) error {
		if len(p.OrderedItems) != 2 || p.OrderedItems[0].GetType() != vocab.CreateType {
			t.Errorf("go-ap reads %d items", len(p.OrderedItems))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func mustOutboxPage(t *testing.T, s *Builder) []byte {
	b, err := s.OutboxJSON(1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putFollowers(t *testing.T, s *Builder) {
	t.Helper()
	base := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	for i, h := range []string{"alice@m.example", "bob@g.example", "carol@k.example", "dave@m.example"} {
		user, host, _ := strings.Cut(h, "@")
		f := storage.Follower{
			ActorID: "https://" + host + "/users/" + user, Inbox: "https://" + host + "/users/" + user + "/inbox",
			Handle: h, Host: host, Status: storage.FollowerAccepted, CreatedAt: base.Add(time.Duration(i) * time.Hour),
		}
		if user == "dave" {
			f.Status = storage.FollowerPending
		}
		if err := s.store.PutFollower(f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFollowersJSONListed(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	putFollowers(t, s)
	b, err := s.FollowersJSON(0)
	if err != nil {
		t.Fatal(err)
	}
	checkContext(t, "followers", b)
	checkGoldenJSON(t, "golden_followers.json", b)
	c := decodeJSON(t, b)
	checkFields(t, "followers", c, collectionFields)
	id := s.cfg.FollowersURL()
	if c["type"] != "OrderedCollection" || c["totalItems"] != 3.0 || c["first"] != id+"?page=1" {
		t.Errorf("followers = %v (pending followers do not count)", c)
	}
	b, err = s.FollowersJSON(1)
	if err != nil {
		t.Fatal(err)
	}
	checkGoldenJSON(t, "golden_followers_page1.json", b)
	p := decodeJSON(t, b)
	checkFields(t, "followers page", p, pageFields)
	got := fmt.Sprint(p["orderedItems"])
	want := "[https://m.example/users/alice https://g.example/users/bob https://k.example/users/carol]"
	if got != want {
		t.Errorf("followers page items = %s, want %s", got, want)
	}
}

func TestFollowersJSONHidden(t *testing.T) {
	cfg := vocabConfig()
	cfg.ShowFollowers = false
	s := newVocabService(t, cfg, "")
	putFollowers(t, s)
	b, err := s.FollowersJSON(0)
	if err != nil {
		t.Fatal(err)
	}
	c := decodeJSON(t, b)
	checkFields(t, "hidden followers", c, collectionFields)
	if c["totalItems"] != 3.0 {
		t.Errorf("count hidden too: %v", c["totalItems"])
	}
	// No first page: Mastodon shows the list as hidden.
	if _, ok := c["first"]; ok {
		t.Errorf("hidden followers have a first page: %v", c)
	}
	if _, err := s.FollowersJSON(1); !errors.Is(err, federation.ErrNotFound) {
		t.Errorf("hidden followers page = %v, want federation.ErrNotFound", err)
	}
}

func TestFollowingJSON(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	b, err := s.FollowingJSON(0)
	if err != nil {
		t.Fatal(err)
	}
	c := decodeJSON(t, b)
	checkFields(t, "following", c, collectionFields)
	if c["totalItems"] != 0.0 || c["first"] != s.cfg.FollowingURL()+"?page=1" {
		t.Errorf("following = %v", c)
	}
	if _, ok := c["last"]; ok {
		t.Errorf("empty collection has a last page")
	}
	b, err = s.FollowingJSON(1)
	if err != nil {
		t.Fatal(err)
	}
	p := decodeJSON(t, b)
	checkFields(t, "following page", p, pageFields)
	if items := p["orderedItems"].([]any); len(items) != 0 {
		t.Errorf("following items = %v", items)
	}
	for _, k := range []string{"next", "prev", "totalItems"} {
		if _, ok := p[k]; ok {
			t.Errorf("following page has %s", k)
		}
	}
}

func TestFeaturedJSON(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	b, err := s.FeaturedJSON()
	if err != nil {
		t.Fatal(err)
	}
	checkContext(t, "featured", b)
	c := decodeJSON(t, b)
	checkFields(t, "featured", c, map[string]fieldKind{"id": kURL, "type": kString, "totalItems": kNumber, "orderedItems": kArray})
	items := c["orderedItems"].([]any)
	// Pinned: warning (2023-11-14) and sensitive (2023-11-01); the pinned
	// draft and future posts are not shown.
	var ids []string
	for _, it := range items {
		n := it.(map[string]any)
		ids = append(ids, n["id"].(string))
		if n["type"] != "Note" || n["attributedTo"] != s.cfg.ActorID() {
			t.Errorf("featured item %v", n["id"])
		}
		if _, ok := n["@context"]; ok {
			t.Errorf("featured item with @context")
		}
	}
	want := []string{s.cfg.NoteID("warning", "en"), s.cfg.NoteID("sensitive", "en")}
	if fmt.Sprint(ids) != fmt.Sprint(want) || c["totalItems"] != 2.0 || c["id"] != s.cfg.FeaturedURL() || c["type"] != "OrderedCollection" {
		t.Errorf("featured = %v total %v, want %v", ids, c["totalItems"], want)
	}

	// Once deleted (ledger), a pinned post leaves the collection.
	entry := storage.LedgerEntry{Key: "warning/en", NoteID: want[0], Published: vocabNow.Add(-time.Hour), Deleted: vocabNow}
	act, _, err := s.BuildActivity("Delete", s.Tombstone(want[0], vocabNow), []string{Public}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Publish(entry, act, nil); err != nil {
		t.Fatal(err)
	}
	b, err = s.FeaturedJSON()
	if err != nil {
		t.Fatal(err)
	}
	if c := decodeJSON(t, b); c["totalItems"] != 1.0 {
		t.Errorf("featured after delete: %v items", c["totalItems"])
	}
}

func TestActivityJSON(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	act, body, err := s.BuildActivity("Accept", map[string]any{"id": "https://m.example/follows/1", "type": "Follow"}, []string{"https://m.example/users/alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.PutActivity(act); err != nil {
		t.Fatal(err)
	}
	short := strings.TrimPrefix(act.ID, s.cfg.BaseURL+"/activities/")
	for _, id := range []string{short, act.ID} {
		got, err := s.ActivityJSON(id)
		if err != nil {
			t.Fatalf("ActivityJSON(%s): %v", id, err)
		}
		if string(got) != string(body) {
			t.Errorf("ActivityJSON(%s) is not the stored document", id)
		}
	}
	for _, id := range []string{"", "0123456789abcdef0123456789abcdef", "a/b", "../x", s.cfg.BaseURL + "/activities/nope"} {
		if _, err := s.ActivityJSON(id); !errors.Is(err, federation.ErrNotFound) {
			t.Errorf("ActivityJSON(%q) = %v, want federation.ErrNotFound", id, err)
		}
	}
}
