package documents

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vocab "github.com/go-ap/activitypub"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/storage"
)

// vocabNow is the fixed clock of the vocabulary tests.
var vocabNow = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

// vocabConfig is a complete configuration, every optional field set.
func vocabConfig() Config {
	return Config{
		BaseURL:     "https://blog.example",
		Handle:      "reports",
		DisplayName: "Framasoft reports",
		Bio:         "Articles of the <association> & its friends.\nOne line more.\n\nSecond paragraph.",
		AvatarURL:   "https://blog.example/static/avatar.png",
		HeaderURL:   "https://blog.example/static/header.jpg",
		HeaderType:  "image/jpeg",
		Fields: []Field{
			{Name: "Website", Value: "https://framasoft.org"},
			{Name: "Licence", Value: "CC BY-SA 4.0"},
			{Name: "Source", Value: `Code on <a href="https://forge.example/crieur" class="x">the forge</a> <script>x</script>`},
			{Name: " ", Value: "dropped: no name"},
		},
		ManuallyApprovesFollowers: false,
		Discoverable:              true,
		Indexable:                 true,
		ShowFollowers:             true,
		Created:                   time.Date(2023, 11, 1, 8, 30, 0, 0, time.UTC),
		Software:                  "crieur",
		Version:                   "test",
	}
}

// vocabKey is the fixed key of testdata/vocab_key.pem, so that golden
// files are stable.
func vocabKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile("testdata/vocab_key.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("testdata/vocab_key.pem: no PEM block")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// newVocabService builds a Service with New over a real store in a temp
// dir and the library of postsDir ("" for none).
func newVocabService(t testing.TB, cfg Config, postsDir string) *Builder {
	t.Helper()
	now := func() time.Time { return vocabNow }
	store, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Timeout: time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var lib *articles.Library
	if postsDir != "" {
		lib, err = articles.Load(postsDir, articles.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if p := lib.Problems(); len(p) > 0 {
			t.Fatalf("problems in %s: %v", postsDir, p)
		}
	}
	s, err := New(cfg, Deps{Store: store, Posts: func() *articles.Library { return lib }, Key: &vocabKey(t).PublicKey, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decodeJSON decodes one document for field checks.
func decodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

// fieldKind names the JSON type a field must have.
type fieldKind string

const (
	kString fieldKind = "string"
	kURL    fieldKind = "url" // absolute http(s) string
	kTime   fieldKind = "time"
	kBool   fieldKind = "bool"
	kNumber fieldKind = "number"
	kArray  fieldKind = "array"
	kObject fieldKind = "object"
)

// checkFields checks that each listed key is present with the right JSON
// type.
func checkFields(t *testing.T, what string, doc map[string]any, spec map[string]fieldKind) {
	t.Helper()
	for k, kind := range spec {
		v, ok := doc[k]
		if !ok {
			t.Errorf("%s: %s missing", what, k)
			continue
		}
		good := false
		switch kind {
		case kString:
			_, good = v.(string)
		case kURL:
			s, _ := v.(string)
			u, err := url.Parse(s)
			good = err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
		case kTime:
			s, _ := v.(string)
			_, err := time.Parse(time.RFC3339, s)
			good = err == nil && strings.HasSuffix(s, "Z")
		case kBool:
			_, good = v.(bool)
		case kNumber:
			_, good = v.(float64)
		case kArray:
			_, good = v.([]any)
		case kObject:
			_, good = v.(map[string]any)
		}
		if !good {
			t.Errorf("%s: %s = %#v, want a %s", what, k, v, kind)
		}
	}
}

// checkContext checks the @context is the shared one, first in the text.
func checkContext(t *testing.T, what string, b []byte) {
	t.Helper()
	if !strings.HasPrefix(string(b), `{"@context":`+ldContext) {
		t.Errorf("%s: does not start with the @context: %.120s", what, b)
	}
}

// actorFields is INTEROP.md's actor list.
var actorFields = map[string]fieldKind{
	"id": kURL, "type": kString, "preferredUsername": kString, "name": kString,
	"summary": kString, "url": kURL, "icon": kObject, "image": kObject,
	"inbox": kURL, "outbox": kURL, "followers": kURL, "following": kURL,
	"featured": kURL, "endpoints": kObject, "publicKey": kObject, "published": kTime,
	"discoverable": kBool, "indexable": kBool, "manuallyApprovesFollowers": kBool,
	"attachment": kArray, "tag": kArray,
}

func TestActorJSON(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	b, err := s.ActorJSON()
	if err != nil {
		t.Fatal(err)
	}
	checkContext(t, "actor", b)
	checkGoldenJSON(t, "golden_actor.json", b)
	a := decodeJSON(t, b)
	checkFields(t, "actor", a, actorFields)

	id := "https://blog.example/@reports"
	want := map[string]any{
		"id": id, "type": "Service", "preferredUsername": "reports", "name": "Framasoft reports",
		"url": id, "inbox": id + "/inbox", "outbox": id + "/outbox", "followers": id + "/followers",
		"following": id + "/following", "featured": id + "/featured", "published": "2023-11-01T08:30:00Z",
		"discoverable": true, "indexable": true, "manuallyApprovesFollowers": false,
		"summary": "<p>Articles of the &lt;association&gt; &amp; its friends.<br>One line more.</p><p>Second paragraph.</p>",
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("%s = %#v, want %#v", k, a[k], v)
		}
	}
	if ep := a["endpoints"].(map[string]any); ep["sharedInbox"] != "https://blog.example/inbox" {
		t.Errorf("endpoints = %v", ep)
	}
	icon := a["icon"].(map[string]any)
	if icon["type"] != "Image" || icon["url"] != "https://blog.example/static/avatar.png" || icon["mediaType"] != "image/png" {
		t.Errorf("icon = %v (media type from the extension when not configured)", icon)
	}
	if img := a["image"].(map[string]any); img["mediaType"] != "image/jpeg" || img["type"] != "Image" {
		t.Errorf("image = %v", img)
	}

	// publicKey: one object, id == keyId, owner == actor, SPKI PEM of our key.
	pk := a["publicKey"].(map[string]any)
	if pk["id"] != s.cfg.KeyID() || pk["id"] != id+"#main-key" || pk["owner"] != id {
		t.Errorf("publicKey id/owner = %v / %v", pk["id"], pk["owner"])
	}
	pemText, _ := pk["publicKeyPem"].(string)
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("publicKeyPem is not a SPKI PEM: %q", pemText)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if rk, ok := pub.(*rsa.PublicKey); !ok || !rk.Equal(&vocabKey(t).PublicKey) {
		t.Errorf("publicKeyPem is not the service key")
	}

	// Every URL on the actor's host (Misskey AC-3, GoToSocial AC-4).
	for _, k := range []string{"inbox", "outbox", "followers", "following", "featured", "url"} {
		if u, _ := url.Parse(a[k].(string)); u.Host != "blog.example" {
			t.Errorf("%s on host %s", k, u.Host)
		}
	}

	// Profile fields: PropertyValue, HTML values, links with rel="me".
	att := a["attachment"].([]any)
	if len(att) != 3 {
		t.Fatalf("attachment has %d fields, want 3 (nameless field dropped): %v", len(att), att)
	}
	wantValues := []string{
		`<a href="https://framasoft.org" rel="me nofollow noopener">https://framasoft.org</a>`,
		`CC BY-SA 4.0`,
		`Code on <a href="https://forge.example/crieur" rel="me nofollow noopener">the forge</a>`,
	}
	for i, f := range att {
		pv := f.(map[string]any)
		if pv["type"] != "PropertyValue" {
			t.Errorf("field %d type %v", i, pv["type"])
		}
		if pv["value"] != wantValues[i] {
			t.Errorf("field %d value %q, want %q", i, pv["value"], wantValues[i])
		}
		if p := mastodonSafeProblems(pv["value"].(string)); len(p) > 0 {
			t.Errorf("field %d value not Mastodon-safe: %v", i, p)
		}
	}
	if tags := a["tag"].([]any); len(tags) != 0 {
		t.Errorf("tag = %v, want []", tags)
	}
	if strings.Contains(string(b), `\u003c`) {
		t.Errorf("HTML escaped in JSON")
	}

	// A third-party parser (go-ap) reads it as a Service with its key.
	it, err := vocab.UnmarshalJSON(b)
	if err != nil {
		t.Fatalf("go-ap cannot parse the actor: %v", err)
	}
	err = vocab.OnActor(it, func(act *vocab.Actor) error {
		if act.Type != vocab.ServiceType || string(act.PublicKey.ID) != s.cfg.KeyID() || act.Inbox.GetLink() != vocab.IRI(id+"/inbox") {
			t.Errorf("go-ap reads type %s key %s inbox %v", act.Type, act.PublicKey.ID, act.Inbox)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestActorJSONMinimal(t *testing.T) {
	cfg := Config{BaseURL: "http://localhost:8080", Handle: "reports", ManuallyApprovesFollowers: true}
	s := newVocabService(t, cfg, "")
	b, err := s.ActorJSON()
	if err != nil {
		t.Fatal(err)
	}
	a := decodeJSON(t, b)
	for _, k := range []string{"icon", "image", "published"} {
		if _, ok := a[k]; ok {
			t.Errorf("%s present without configuration", k)
		}
	}
	if a["name"] != "reports" {
		t.Errorf("name = %v, want the handle", a["name"])
	}
	if a["manuallyApprovesFollowers"] != true || a["discoverable"] != false || a["indexable"] != false {
		t.Errorf("flags = %v %v %v", a["manuallyApprovesFollowers"], a["discoverable"], a["indexable"])
	}
	if att, ok := a["attachment"].([]any); !ok || len(att) != 0 {
		t.Errorf("attachment = %#v, want an empty array", a["attachment"])
	}
	if a["summary"] != "" {
		t.Errorf("summary = %q", a["summary"])
	}
}
