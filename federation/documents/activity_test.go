package documents

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	vocab "github.com/go-ap/activitypub"
)

var activityFields = map[string]fieldKind{
	"id": kURL, "type": kString, "actor": kURL, "published": kTime,
}

func TestNewActivityID(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	re := regexp.MustCompile(`^https://blog\.example/activities/[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := s.NewActivityID()
		if !re.MatchString(id) {
			t.Fatalf("id %q", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}

func TestBuildActivityCreate(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	p := mustPost(t, s, "sample", "en")
	n, err := s.BuildNote(p, s.vocabLibrary(), p.Date, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	act, body, err := s.BuildActivity("Create", n, []string{Public}, []string{s.cfg.FollowersURL()})
	if err != nil {
		t.Fatal(err)
	}
	if string(act.JSON) != string(body) {
		t.Errorf("Activity.JSON is not the returned body")
	}
	checkContext(t, "create", body)
	a := decodeJSON(t, body)
	checkFields(t, "create", a, activityFields)
	if a["type"] != "Create" || a["actor"] != s.cfg.ActorID() || a["id"] != act.ID || a["published"] != "2024-06-01T12:00:00Z" {
		t.Errorf("create = %v %v %v %v", a["type"], a["actor"], a["id"], a["published"])
	}
	if to, _ := a["to"].([]any); len(to) != 1 || to[0] != Public {
		t.Errorf("to = %v", a["to"])
	}
	if cc, _ := a["cc"].([]any); len(cc) != 1 || cc[0] != s.cfg.FollowersURL() {
		t.Errorf("cc = %v", a["cc"])
	}
	obj := a["object"].(map[string]any)
	if _, ok := obj["@context"]; ok {
		t.Errorf("embedded Note has a @context")
	}
	checkNote(t, s, p, obj)
	if act.Type != "Create" || act.ObjectID != s.cfg.NoteID("sample", "en") || !act.InOutbox || !act.Published.Equal(vocabNow) {
		t.Errorf("storage.Activity = %+v", act)
	}
	// go-ap parses the Create and its Note.
	it, err := vocab.UnmarshalJSON(body)
	if err != nil {
		t.Fatalf("go-ap: %v", err)
	}
	err = vocab.OnActivity(it, func(a *vocab.Activity) error {
		if a.Object == nil || a.Object.GetType() != vocab.NoteType || a.Actor.GetLink() != vocab.IRI(s.cfg.ActorID()) {
			t.Errorf("go-ap reads object %v actor %v", a.Object, a.Actor)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	// NewActivity: the same, addressed to Public and the followers.
	act2, err := s.NewActivity("Update", n)
	if err != nil {
		t.Fatal(err)
	}
	u := decodeJSON(t, act2.JSON)
	if u["type"] != "Update" || act2.InOutbox || act2.ID == act.ID {
		t.Errorf("update: type %v inOutbox %v id %v", u["type"], act2.InOutbox, act2.ID)
	}
	if to, _ := u["to"].([]any); len(to) != 1 || to[0] != Public {
		t.Errorf("update to = %v", u["to"])
	}
	if cc, _ := u["cc"].([]any); len(cc) != 1 || cc[0] != s.cfg.FollowersURL() {
		t.Errorf("update cc = %v", u["cc"])
	}
}

func TestBuildActivityAcceptEmbedsFollow(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	follow := json.RawMessage(`{"@context":"https://www.w3.org/ns/activitystreams","id":"https://m.example/0f1e","type":"Follow","actor":"https://m.example/users/alice","object":"https://blog.example/@reports"}`)
	act, body, err := s.BuildActivity("Accept", follow, []string{"https://m.example/users/alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := decodeJSON(t, body)
	checkFields(t, "accept", a, activityFields)
	if _, ok := a["cc"]; ok {
		t.Errorf("empty cc written")
	}
	obj := a["object"].(map[string]any)
	if obj["id"] != "https://m.example/0f1e" || obj["type"] != "Follow" || obj["actor"] != "https://m.example/users/alice" {
		t.Errorf("embedded Follow = %v", obj)
	}
	if _, ok := obj["@context"]; ok {
		t.Errorf("embedded Follow kept its @context")
	}
	if act.ObjectID != "https://m.example/0f1e" || act.InOutbox || act.Type != "Accept" {
		t.Errorf("storage.Activity = %+v", act)
	}
}

func TestBuildActivityObjects(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	deleted := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	cases := []struct {
		name   string
		object any
		wantID string
	}{
		{"id string", "https://blog.example/posts/a/en", "https://blog.example/posts/a/en"},
		{"go-ap IRI", vocab.IRI("https://blog.example/posts/b/en"), "https://blog.example/posts/b/en"},
		{"tombstone", s.Tombstone("https://blog.example/posts/c/en", deleted), "https://blog.example/posts/c/en"},
		{"go-ap object", vocab.Object{ID: "https://blog.example/posts/d/en", Type: vocab.NoteType}, "https://blog.example/posts/d/en"},
		{"raw id", json.RawMessage(`"https://blog.example/posts/e/en"`), "https://blog.example/posts/e/en"},
	}
	for _, c := range cases {
		act, body, err := s.BuildActivity("Delete", c.object, []string{Public}, []string{s.cfg.FollowersURL()})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if act.ObjectID != c.wantID {
			t.Errorf("%s: ObjectID = %q, want %q", c.name, act.ObjectID, c.wantID)
		}
		a := decodeJSON(t, body)
		switch o := a["object"].(type) {
		case string:
			if o != c.wantID {
				t.Errorf("%s: object = %q", c.name, o)
			}
		case map[string]any:
			if o["id"] != c.wantID {
				t.Errorf("%s: object id = %v", c.name, o["id"])
			}
		default:
			t.Errorf("%s: object %T", c.name, o)
		}
	}
	tomb := s.Tombstone("https://blog.example/posts/c/en", deleted)
	if tomb["type"] != "Tombstone" || tomb["formerType"] != "Note" || tomb["deleted"] != "2024-02-03T04:05:06Z" {
		t.Errorf("tombstone = %v", tomb)
	}
	for _, bad := range []any{json.RawMessage(`[1,2]`), json.RawMessage(`{`), 42} {
		if _, _, err := s.BuildActivity("Delete", bad, nil, nil); err == nil {
			t.Errorf("object %v accepted", bad)
		}
	}
	if _, _, err := s.BuildActivity("", "x", nil, nil); err == nil {
		t.Errorf("empty type accepted")
	}
}

// TestBuildActivityFitsMisskeysInboxLimit: a long article (over 31,000
// bytes, under the full-text limit) would make a Create over 64 KiB with
// its HTML in content and contentMap; Misskey refuses such bodies, so the
// Create leaves contentMap out. A shorter one keeps it.
func TestBuildActivityFitsMisskeysInboxLimit(t *testing.T) {
	dir := t.TempDir()
	para := strings.Repeat("Les bénévoles ont parcouru la région pour rencontrer les associations locales. ", 10)
	write := func(slug string, paras int) {
		var b strings.Builder
		b.WriteString("---\ntitle: \"" + slug + "\"\ndate: 2024-06-01T12:00:00Z\n---\n\n")
		for range paras {
			b.WriteString(para + "\n\n")
		}
		if err := os.WriteFile(filepath.Join(dir, slug+".fr.md"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("long", 50)  // about 40,000 bytes of HTML
	write("short", 20) // about 16,000
	s := newVocabService(t, vocabConfig(), dir)
	for _, tc := range []struct {
		slug       string
		contentMap bool
	}{{"long", false}, {"short", true}} {
		p := mustPost(t, s, tc.slug, "fr")
		n, err := s.BuildNote(p, s.vocabLibrary(), p.Date, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		content, _ := n["content"].(string)
		_, body, err := s.BuildActivity("Create", n, []string{Public}, []string{s.cfg.FollowersURL()})
		if err != nil {
			t.Fatal(err)
		}
		obj := decodeJSON(t, body)["object"].(map[string]any)
		_, hasMap := obj["contentMap"]
		switch {
		case len(body) > maxInboxBody:
			t.Errorf("%s: Create of %d bytes (content %d), over Misskey's %d", tc.slug, len(body), len(content), maxInboxBody)
		case hasMap != tc.contentMap:
			t.Errorf("%s: Create of %d bytes (content %d): contentMap %v, want %v", tc.slug, len(body), len(content), hasMap, tc.contentMap)
		case obj["content"] != content:
			t.Errorf("%s: the Create lost the Note's content", tc.slug)
		}
		// The Note served at its id keeps its language.
		if _, ok := n["contentMap"]; !ok {
			t.Errorf("%s: BuildNote lost contentMap", tc.slug)
		}
	}
}
