package documents

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	vocab "github.com/go-ap/activitypub"

	"github.com/crieur/crieur/storage"
)

// activityIDBytes is the size of the random part of an activity id: 16
// bytes (32 hex digits) never collide, so no id is ever reused (a deleted
// id is refused forever by Mastodon).
const activityIDBytes = 16

// NewActivityID returns a fresh activity id, BASE/activities/<32 hex>.
func (s *Builder) NewActivityID() string {
	var b [activityIDBytes]byte
	// crypto/rand.Read never returns an error (it crashes the program
	// when the system has no randomness).
	_, _ = rand.Read(b[:])
	return s.cfg.BaseURL + "/activities/" + hex.EncodeToString(b[:])
}

// BuildActivity builds an activity of the bot: a fresh id, actor, published
// now, to/cc (omitted when empty) and object. object may be a Note from
// BuildNote, a Tombstone, an id string, raw JSON (an incoming Follow) or a
// go-ap value; an embedded object loses its @context (the activity's
// applies). The returned Activity holds the exact JSON to deliver and
// serve; only Create activities are listed in the outbox (the outbox holds
// the articles), the caller may change InOutbox.
func (s *Builder) BuildActivity(typ string, object any, to, cc []string) (storage.Activity, []byte, error) {
	if typ == "" {
		return storage.Activity{}, nil, fmt.Errorf("documents: build activity: empty type")
	}
	obj, objectID, err := embedObject(object)
	if err != nil {
		return storage.Activity{}, nil, fmt.Errorf("documents: build %s: %w", typ, err)
	}
	now := s.now().UTC().Truncate(time.Second)
	a := vocab.ActivityNew(vocab.ID(s.NewActivityID()), vocab.ActivityVocabularyType(typ), nil)
	a.Actor = vocab.IRI(s.cfg.ActorID())
	a.Published = now
	for _, t := range to {
		a.To = append(a.To, vocab.IRI(t))
	}
	for _, t := range cc {
		a.CC = append(a.CC, vocab.IRI(t))
	}
	d, err := toDocument(a)
	if err != nil {
		return storage.Activity{}, nil, fmt.Errorf("documents: build %s: %w", typ, err)
	}
	if obj != nil {
		d["object"] = obj
	}
	body, err := encodeDocument(d)
	if err != nil {
		return storage.Activity{}, nil, fmt.Errorf("documents: build %s: %w", typ, err)
	}
	if slim, ok := slimmed(obj, len(body)); ok {
		d["object"] = slim
		if body, err = encodeDocument(d); err != nil {
			return storage.Activity{}, nil, fmt.Errorf("documents: build %s: %w", typ, err)
		}
	}
	act := storage.Activity{
		ID:        string(a.ID),
		Type:      typ,
		ObjectID:  objectID,
		Published: now,
		InOutbox:  typ == string(vocab.CreateType),
		JSON:      body,
	}
	return act, body, nil
}

// maxInboxBody is the largest activity every server accepts: Misskey and
// its forks refuse inbox bodies over 64 KiB (the inbox route's body limit),
// with 413 and for good.
const maxInboxBody = 64 << 10

// slimmed returns obj without its contentMap when an activity of size
// bytes carrying it is too large for every inbox. A Note carries its HTML
// twice, in content and in a one-key contentMap that only tells its
// language, so an article of 31,000 to 60,000 bytes would never reach a
// Misskey follower. Without contentMap it does, and only its language tag
// is lost (Mastodon then shows it whatever a reader's language filter;
// Misskey ignores contentMap anyway). The Note served at its id keeps it.
func slimmed(obj any, size int) (document, bool) {
	d, ok := obj.(document)
	if !ok || size <= maxInboxBody {
		return nil, false
	}
	if _, has := d["contentMap"]; !has {
		return nil, false
	}
	if _, has := d["content"]; !has {
		return nil, false
	}
	slim := make(document, len(d))
	for k, v := range d {
		if k != "contentMap" {
			slim[k] = v
		}
	}
	return slim, true
}

// NewActivity is BuildActivity addressed like every public Note: to Public,
// cc the followers collection. The JSON is in the returned Activity.
func (s *Builder) NewActivity(typ string, object any) (storage.Activity, error) {
	act, _, err := s.BuildActivity(typ, object, []string{Public}, []string{s.cfg.FollowersURL()})
	return act, err
}

// embedObject turns an activity's object into a JSON value and finds its id.
func embedObject(object any) (any, string, error) {
	switch o := object.(type) {
	case nil:
		return nil, "", nil
	case string:
		return o, o, nil
	case vocab.IRI:
		return string(o), string(o), nil
	}
	var raw []byte
	switch o := object.(type) {
	case json.RawMessage:
		raw = o
	case []byte:
		raw = o
	default:
		b, err := json.Marshal(object)
		if err != nil {
			return nil, "", fmt.Errorf("marshal object: %w", err)
		}
		raw = b
	}
	var probe any
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, "", fmt.Errorf("object is not JSON: %w", err)
	}
	switch v := probe.(type) {
	case string:
		return v, v, nil
	case map[string]any:
	default:
		return nil, "", fmt.Errorf("object is neither an id nor an object")
	}
	d, err := decodeDocument(raw)
	if err != nil {
		return nil, "", err
	}
	id, _ := d["id"].(string)
	return embedded(d), id, nil
}

// Tombstone is what replaces a deleted Note: in the Delete activity and as
// the body of the 410 served at its id.
func (s *Builder) Tombstone(noteID string, deleted time.Time) map[string]any {
	t := map[string]any{"id": noteID, "type": "Tombstone", "formerType": "Note"}
	if !deleted.IsZero() {
		t["deleted"] = deleted.UTC().Format(time.RFC3339)
	}
	return t
}
