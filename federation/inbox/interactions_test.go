package inbox

import (
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/storage"
)

// Peers shaped like the servers that talk to crieur: their actor documents
// differ in how they give a name, a profile page and an avatar, and their
// activities (testdata/mastodon_*, gts_*, misskey_*, akkoma_*) are copied
// from what each one sends (INTEROP.md "What arrives").

func mastodonPeer(t *testing.T, c *protoCrieur) *protoPeer {
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	p.profile = map[string]any{
		"name": "Alice <b>Smith</b>\n:blobcat:",
		"url":  p.srv.URL + "/@alice",
		"icon": map[string]any{"type": "Image", "mediaType": "image/png", "url": p.srv.URL + "/system/avatars/alice.png"},
	}
	return p
}

func gtsPeer(t *testing.T, c *protoCrieur) *protoPeer {
	p := newProtoPeer(t, "gee", keyStub, testkit.Key(t, 2), &c.key.PublicKey)
	p.profile = map[string]any{
		"name": "Gee Tee",
		"url":  p.srv.URL + "/@gee",
		"icon": map[string]any{"type": "Image", "mediaType": "image/webp", "url": p.srv.URL + "/fileserver/01AV/account/avatar/original/01AV.webp"},
	}
	return p
}

func misskeyPeer(t *testing.T, c *protoCrieur) *protoPeer {
	p := newProtoPeer(t, "9xmisskey", keyInActor, testkit.Key(t, 3), &c.key.PublicKey)
	p.profile = map[string]any{
		"name": "Miss\u202eKey", // a bidi override, dropped from names
		"url":  p.srv.URL + "/@miss",
		"icon": map[string]any{"type": "Image", "url": p.srv.URL + "/files/avatar.webp", "sensitive": false, "name": nil},
	}
	return p
}

// publishNote records slug/lang in the ledger as the Publisher does, and
// returns the Note's id.
func (c *protoCrieur) publishNote(slug, lang string) string {
	c.t.Helper()
	id := c.svc.cfg.NoteID(slug, lang)
	entry := storage.LedgerEntry{Key: slug + "/" + lang, NoteID: id, Published: time.Now(), Pushed: true}
	act := storage.Activity{ID: c.svc.cfg.BaseURL + "/activities/create-" + slug + "-" + lang, Type: "Create", ObjectID: id, Published: time.Now(), InOutbox: true, JSON: []byte(`{}`)}
	if _, err := c.store.Publish(entry, act, nil); err != nil {
		c.t.Fatal(err)
	}
	return id
}

// deleteNote records the Delete of slug/lang, as the Publisher does.
func (c *protoCrieur) deleteNote(slug, lang string) {
	c.t.Helper()
	entry, err := c.store.LedgerEntry(slug + "/" + lang)
	if err != nil {
		c.t.Fatal(err)
	}
	entry.Deleted = time.Now()
	act := storage.Activity{ID: c.svc.cfg.BaseURL + "/activities/delete-" + slug + "-" + lang, Type: "Delete", ObjectID: entry.NoteID, Published: time.Now(), JSON: []byte(`{}`)}
	if _, err := c.store.Publish(entry, act, nil); err != nil {
		c.t.Fatal(err)
	}
}

// talk loads testdata/<name> for peer p about note.
func (c *protoCrieur) talk(name string, p *protoPeer, note string) map[string]any {
	c.t.Helper()
	return c.talkFile(name, p, note, "")
}

func (c *protoCrieur) talkFile(name string, p *protoPeer, note, mallory string) map[string]any {
	c.t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		c.t.Fatal(err)
	}
	text := strings.NewReplacer("{{PEER}}", p.ActorID(), "{{PEER_BASE}}", p.srv.URL,
		"{{PEER_HOST}}", strings.TrimPrefix(p.srv.URL, "http://"), "{{US}}", c.ActorID(),
		"{{US_BASE}}", c.svc.cfg.BaseURL, "{{NOTE}}", note).Replace(string(data))
	return decodeFixture(c.t, name, text)
}

func decodeFixture(t *testing.T, name, text string) map[string]any {
	t.Helper()
	doc, err := decodeJSONObject([]byte(text))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

// must sends doc signed by p and fails unless the answer is want.
func (c *protoCrieur) must(p *protoPeer, doc map[string]any, want int) {
	c.t.Helper()
	if status, err := c.send(p, doc); status != want {
		c.t.Fatalf("%s: status %d (err %v), want %d", jsonString(doc["type"]), status, err, want)
	}
}

func (c *protoCrieur) interaction(id string) (storage.Interaction, bool) {
	c.t.Helper()
	i, err := c.store.Interaction(id)
	if errors.Is(err, storage.ErrNotFound) {
		return i, false
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return i, true
}

func (c *protoCrieur) counts(note string) map[storage.InteractionKind]int {
	c.t.Helper()
	n, err := c.store.InteractionCounts(note)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

func wantCounts(t *testing.T, got map[storage.InteractionKind]int, want map[storage.InteractionKind]int) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}

func TestInteractionsFromMastodon(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := mastodonPeer(t, c)
	note := c.publishNote("hello", "en")
	replyID := p.ActorID() + "/statuses/110000000000000001"

	c.must(p, c.talk("mastodon_create_reply.json", p, note), http.StatusAccepted)
	got, ok := c.interaction(replyID)
	if !ok {
		t.Fatal("reply not stored")
	}
	want := storage.Interaction{
		ID: replyID, Kind: storage.KindReply, NoteID: note, InReplyTo: note,
		Actor: storage.RemoteActor{ID: p.ActorID(), Name: "Alice Smith :blobcat:", Handle: "alice@127.0.0.1",
			URL: p.srv.URL + "/@alice", Avatar: p.srv.URL + "/system/avatars/alice.png"},
		URL:     p.srv.URL + "/@alice/110000000000000001",
		Content: `<p><span class="h-card" translate="no"><a href="` + c.ActorID() + `" class="u-url mention">@<span>reports</span></a></span> Thanks for the article!</p>`,
		Summary: "about crieur", Sensitive: true, Language: "en",
		ActivityID: replyID + "/activity",
		Published:  time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
	}
	if got.ReceivedAt.IsZero() {
		t.Error("ReceivedAt not set")
	}
	got.ReceivedAt = time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reply\n got %+v\nwant %+v", got, want)
	}
	// The author's display data came with the key: cached, not fetched
	// again for the next interactions.
	if k, err := c.store.RemoteKey(p.KeyID()); err != nil || k.Name != want.Actor.Name || k.URL != want.Actor.URL || k.Avatar != want.Actor.Avatar {
		t.Errorf("cached key %+v %v lacks the display data", k, err)
	}
	fetches := p.count(http.MethodGet, "/users/alice")

	c.must(p, c.talk("mastodon_like.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("mastodon_announce.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("mastodon_create_quote.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("mastodon_create_direct.json", p, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindReply: 1, storage.KindLike: 1, storage.KindAnnounce: 1, storage.KindQuote: 1})
	if n := p.count(http.MethodGet, "/users/alice") - fetches; n != 0 {
		t.Errorf("%d fetches of the author for later interactions, want 0", n)
	}
	if q, ok := c.interaction(p.ActorID() + "/statuses/110000000000000003"); !ok || q.Kind != storage.KindQuote || q.NoteID != note || q.InReplyTo != "" {
		t.Errorf("quote %+v %v", q, ok)
	}
	if a, ok := c.interaction(p.ActorID() + "/statuses/110000000000000002/activity"); !ok || a.Published != time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) {
		t.Errorf("announce %+v %v", a, ok)
	}
	// A direct message about no article: kept for the admin under the
	// bot's actor id, never under a Note.
	dm, ok := c.interaction(p.ActorID() + "/statuses/110000000000000004")
	if !ok || dm.Kind != storage.KindMention || dm.NoteID != c.ActorID() || !strings.Contains(dm.Content, "a private word") {
		t.Errorf("direct message %+v %v", dm, ok)
	}
	wantCounts(t, c.counts(c.ActorID()), map[storage.InteractionKind]int{storage.KindMention: 1})

	// The same Like again (a retry: a new signature, the same id) and the
	// same Create again: still one each, and the reply is not reset.
	c.must(p, c.talk("mastodon_like.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("mastodon_update_reply.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("mastodon_create_reply.json", p, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindReply: 1, storage.KindLike: 1, storage.KindAnnounce: 1, storage.KindQuote: 1})
	edited, _ := c.interaction(replyID)
	if edited.Content != "<p>Thanks for the article! (edited)</p>" || edited.Updated != time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC) ||
		edited.Sensitive || edited.Summary != "" || edited.Kind != storage.KindReply || edited.ActivityID != replyID+"#updates/1764590000" {
		t.Errorf("after the Update: %+v", edited)
	}
	// An older Update arriving late changes nothing.
	older := c.talk("mastodon_update_reply.json", p, note)
	older["object"].(map[string]any)["updated"] = "2026-12-01T10:30:00Z"
	older["object"].(map[string]any)["content"] = "<p>an older edit</p>"
	c.must(p, older, http.StatusAccepted)
	if again, _ := c.interaction(replyID); again.Content != edited.Content {
		t.Errorf("an older Update replaced the newer: %q", again.Content)
	}

	c.must(p, c.talk("mastodon_undo_like.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("mastodon_undo_announce.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("mastodon_delete_reply.json", p, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindQuote: 1})
	if _, ok := c.interaction(replyID); ok {
		t.Error("reply kept after its Delete")
	}
}

func TestInteractionsFromGoToSocial(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := gtsPeer(t, c)
	note := c.publishNote("hello", "en")
	replyID := p.ActorID() + "/statuses/01JEXAMPLE00000000000000RE"

	c.must(p, c.talk("gts_create_reply.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("gts_like.json", p, note), http.StatusAccepted)
	// GoToSocial puts Public in cc of a boost, its followers in to.
	c.must(p, c.talk("gts_announce.json", p, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindReply: 1, storage.KindLike: 1, storage.KindAnnounce: 1})
	r, ok := c.interaction(replyID)
	if !ok || r.Kind != storage.KindReply || r.Language != "en" || r.URL != p.srv.URL+"/@gee/statuses/01JEXAMPLE00000000000000RE" ||
		!strings.Contains(r.Content, "a reply from GoToSocial") || strings.Contains(r.Content, "target=") {
		t.Errorf("reply %+v", r)
	}
	// GoToSocial's key is a stub: the display data come from the actor
	// fetched behind it.
	wantActor := storage.RemoteActor{ID: p.ActorID(), Name: "Gee Tee", Handle: "gee@127.0.0.1", URL: p.srv.URL + "/@gee",
		Avatar: p.srv.URL + "/fileserver/01AV/account/avatar/original/01AV.webp"}
	if r.Actor != wantActor {
		t.Errorf("author %+v, want %+v", r.Actor, wantActor)
	}

	c.must(p, c.talk("gts_undo_like.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("gts_undo_announce.json", p, note), http.StatusAccepted)
	// GoToSocial deletes by bare id.
	c.must(p, c.talk("gts_delete_reply.json", p, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), nil)
}

func TestInteractionsFromMisskeyAndAkkoma(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := misskeyPeer(t, c)
	note := c.publishNote("hello", "en")

	c.must(p, c.talk("misskey_reaction.json", p, note), http.StatusAccepted)
	like, ok := c.interaction(p.srv.URL + "/likes/9xexample0001")
	if !ok || like.Kind != storage.KindLike || like.Emoji != ":blobcat:" || like.Actor.Name != "MissKey" {
		t.Errorf("reaction %+v %v", like, ok)
	}
	c.must(p, c.talk("misskey_quote.json", p, note), http.StatusAccepted)
	q, ok := c.interaction(p.srv.URL + "/notes/9xexample0002")
	if !ok || q.Kind != storage.KindQuote || q.NoteID != note || !strings.Contains(q.Content, "a renote with a word") {
		t.Errorf("quote %+v %v", q, ok)
	}
	c.must(p, c.talk("misskey_announce.json", p, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindLike: 1, storage.KindAnnounce: 1, storage.KindQuote: 1})
	c.must(p, c.talk("misskey_undo_reaction.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("misskey_undo_announce.json", p, note), http.StatusAccepted)
	// Misskey's Tombstone has no formerType.
	c.must(p, c.talk("misskey_delete_quote.json", p, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), nil)

	// Akkoma's EmojiReact counts as a like with its emoji; its Undo names
	// the reaction by id only.
	a := newProtoPeer(t, "akko", keyInActor, testkit.Key(t, 4), &c.key.PublicKey)
	c.must(a, c.talk("akkoma_emoji_react.json", a, note), http.StatusAccepted)
	if r, ok := c.interaction(a.srv.URL + "/activities/emojireact-0001"); !ok || r.Kind != storage.KindLike || r.Emoji != "🎉" {
		t.Errorf("EmojiReact %+v %v", r, ok)
	}
	c.must(a, c.talk("akkoma_undo_by_id.json", a, note), http.StatusAccepted)
	wantCounts(t, c.counts(note), nil)
}

// replyDoc is a minimal Create{Note} by p: id n on p's host, replying to
// inReplyTo, addressed to to and cc.
func replyDoc(p *protoPeer, n, inReplyTo string, to, cc []any) map[string]any {
	id := p.ActorID() + "/statuses/" + n
	obj := map[string]any{"id": id, "type": "Note", "attributedTo": p.ActorID(), "content": "<p>reply " + n + "</p>", "to": to, "cc": cc}
	if inReplyTo != "" {
		obj["inReplyTo"] = inReplyTo
	}
	return map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": id + "/activity", "type": "Create", "actor": p.ActorID(), "to": to, "cc": cc, "object": obj}
}

const public = "https://www.w3.org/ns/activitystreams#Public"

// Addressing decides the kind; threads keep their root; what is about none
// of our posts and not addressed to the bot is not stored.
func TestInteractionsAddressingAndThreads(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	note := c.publishNote("hello", "en")
	us := c.ActorID()
	followers := p.ActorID() + "/followers"
	mention := func(doc map[string]any) map[string]any {
		doc["object"].(map[string]any)["tag"] = []any{map[string]any{"type": "Mention", "href": us}}
		return doc
	}
	cases := []struct {
		name           string
		doc            map[string]any
		kind           storage.InteractionKind // "" : not stored
		noteID, parent string
	}{
		{"public reply", replyDoc(p, "1", note, []any{public}, []any{followers}), storage.KindReply, note, note},
		{"unlisted reply", replyDoc(p, "2", note, []any{followers}, []any{public}), storage.KindReply, note, note},
		{"reply in a thread", replyDoc(p, "3", p.ActorID()+"/statuses/1", []any{public}, nil), storage.KindReply, note, p.ActorID() + "/statuses/1"},
		{"deeper in the thread", replyDoc(p, "4", p.ActorID()+"/statuses/3", []any{public}, nil), storage.KindReply, note, p.ActorID() + "/statuses/3"},
		{"followers-only reply mentioning the bot", mention(replyDoc(p, "5", note, []any{followers}, []any{us})), storage.KindMention, note, note},
		{"public reply to a mention stays a mention", replyDoc(p, "6", p.ActorID()+"/statuses/5", []any{public}, []any{us}), storage.KindMention, note, p.ActorID() + "/statuses/5"},
		{"public reply to a mention, not addressed", replyDoc(p, "7", p.ActorID()+"/statuses/5", []any{public}, nil), "", "", ""},
		{"followers-only reply not addressed to us", replyDoc(p, "8", note, []any{followers}, nil), "", "", ""},
		{"public post about nothing of ours", replyDoc(p, "9", "", []any{public}, nil), "", "", ""},
		{"reply to a post we never kept", replyDoc(p, "10", "https://elsewhere.example/notes/1", []any{public}, nil), "", "", ""},
		{"reply to an unknown Note id of ours", replyDoc(p, "11", c.svc.cfg.NoteID("nothing", "en"), []any{public}, nil), "", "", ""},
		{"public mention, no reply", mention(replyDoc(p, "12", "", []any{public}, []any{us})), storage.KindMention, us, ""},
		{"mention only in tag", mention(replyDoc(p, "13", "https://elsewhere.example/notes/1", []any{public}, nil)), storage.KindMention, us, ""},
		{"reply under a direct message", replyDoc(p, "14", p.ActorID()+"/statuses/12", []any{us}, nil), storage.KindMention, us, p.ActorID() + "/statuses/12"},
		{"Article reply", func() map[string]any {
			d := replyDoc(p, "15", note, []any{public}, nil)
			d["object"].(map[string]any)["type"] = "Article"
			return d
		}(), storage.KindReply, note, note},
		{"Create of a Question is not a reply", func() map[string]any {
			d := replyDoc(p, "16", note, []any{public}, nil)
			d["object"].(map[string]any)["type"] = "Question"
			return d
		}(), "", "", ""},
		{"object by id only", func() map[string]any {
			d := replyDoc(p, "17", note, []any{public}, nil)
			d["object"] = p.ActorID() + "/statuses/17"
			return d
		}(), "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			before := c.snapshot()
			c.must(p, tc.doc, http.StatusAccepted)
			id := jsonID(tc.doc["object"])
			got, ok := c.interaction(id)
			if tc.kind == "" {
				if ok {
					t.Fatalf("stored %+v, want nothing", got)
				}
				if after := c.snapshot(); !reflect.DeepEqual(before, after) {
					t.Errorf("state changed")
				}
				return
			}
			if !ok || got.Kind != tc.kind || got.NoteID != tc.noteID || got.InReplyTo != tc.parent {
				t.Errorf("got %+v (%v), want kind %s under %s, parent %q", got, ok, tc.kind, tc.noteID, tc.parent)
			}
		})
	}
}

// Hostile HTML in a reply is stored as Mastodon's allowlist would keep it.
func TestInteractionsHostileReplySanitised(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	p.profile = map[string]any{"name": `<img src=x onerror=alert(1)>Eve<script>alert(2)</script>`}
	note := c.publishNote("hello", "en")
	doc := replyDoc(p, "1", note, []any{public}, nil)
	obj := doc["object"].(map[string]any)
	obj["content"] = `<p onclick="steal()">hello <script>alert(1)</script><style>body{display:none}</style>` +
		`<iframe src="https://evil.example/"></iframe><a href="javascript:alert(3)">click</a> ` +
		`<a href="https://ok.example/" onmouseover="x()" style="color:red" target="_blank">ok</a>` +
		`<img src="https://tracker.example/pixel.gif" width="1" height="1"><object data="x"></object>` +
		`<form action="https://evil.example/"><input name="p"></form><svg onload="x()"><script>y()</script></svg>` +
		`<a href="vbscript:x">vb</a><a href="data:text/html,<script>z()</script>">data</a></p>`
	obj["summary"] = `<b>CW</b> <script>alert(4)</script>spoilers`
	c.must(p, doc, http.StatusAccepted)
	got, ok := c.interaction(jsonID(obj))
	if !ok {
		t.Fatal("reply not stored")
	}
	for _, bad := range []string{"<script", "alert", "<style", "display:none", "<iframe", "evil.example", "javascript:", "onclick",
		"onmouseover", "style=", "target=", "<img", "tracker.example", "<object", "<form", "<input", "<svg", "vbscript:", "data:"} {
		if strings.Contains(strings.ToLower(got.Content), bad) {
			t.Errorf("stored content keeps %q: %s", bad, got.Content)
		}
	}
	for _, good := range []string{"hello", `<a href="https://ok.example/">ok</a>`, "click", "vb"} {
		if !strings.Contains(got.Content, good) {
			t.Errorf("stored content lost %q: %s", good, got.Content)
		}
	}
	if got.Summary != "CW spoilers" {
		t.Errorf("summary %q, want plain text", got.Summary)
	}
	if got.Actor.Name != "Eve" {
		t.Errorf("author name %q, want plain text", got.Actor.Name)
	}
}

// Each refusal answers its status and changes nothing.
func TestInteractionsRefusals(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	alice := mastodonPeer(t, c)
	mallory := newProtoPeer(t, "mallory", keyInActor, testkit.Key(t, 5), &c.key.PublicKey)
	note := c.publishNote("hello", "en")
	gone := c.publishNote("gone", "en")
	c.deleteNote("gone", "en")
	// alice's reply, like and boost, and a reply in a thread under the
	// article that is deleted next.
	c.must(alice, c.talk("mastodon_create_reply.json", alice, note), http.StatusAccepted)
	c.must(alice, c.talk("mastodon_like.json", alice, note), http.StatusAccepted)
	c.must(alice, c.talk("mastodon_announce.json", alice, note), http.StatusAccepted)
	replyID := alice.ActorID() + "/statuses/110000000000000001"
	third := c.publishNote("third", "en")
	c.must(alice, replyDoc(alice, "30", third, []any{public}, nil), http.StatusAccepted)
	c.deleteNote("third", "en")

	big := replyDoc(mallory, "2", note, []any{public}, nil)
	big["object"].(map[string]any)["content"] = "<p>" + strings.Repeat("a", maxContentBytes) + "</p>"
	otherHost := replyDoc(mallory, "3", note, []any{public}, nil)
	otherHost["object"].(map[string]any)["id"] = alice.ActorID() + "/statuses/110000000000000099"
	hijack := c.talk("mastodon_update_reply.json", alice, note)
	hijack["actor"] = mallory.ActorID()
	hijack["object"].(map[string]any)["attributedTo"] = mallory.ActorID()
	misattributed := replyDoc(mallory, "4", note, []any{public}, nil)
	misattributed["object"].(map[string]any)["attributedTo"] = alice.ActorID()
	likeOtherHost := c.talk("mastodon_like.json", mallory, note)
	likeOtherHost["id"] = alice.ActorID() + "#likes/999"
	undoByID := c.talk("inbox_undo_like_by_id.json", mallory, note)
	undoByID["object"] = alice.ActorID() + "#likes/123"
	undoEmbedded := c.talk("mastodon_undo_like.json", alice, note)
	undoEmbedded["actor"] = mallory.ActorID()
	undoAnnounce := c.talk("mastodon_undo_announce.json", alice, note)
	undoAnnounce["actor"] = mallory.ActorID()
	undoAnnounce["object"].(map[string]any)["actor"] = mallory.ActorID() // lies about the author too
	deleteReply := c.talk("mastodon_delete_reply.json", alice, note)
	deleteReply["actor"] = mallory.ActorID()
	deleteByID := c.talk("gts_delete_reply.json", alice, note)
	deleteByID["actor"] = mallory.ActorID()
	deleteByID["object"] = replyID

	cases := []struct {
		name     string
		signer   *protoPeer
		doc      map[string]any
		sentinel error
		status   int
	}{
		{"reply to a deleted article", alice, replyDoc(alice, "20", gone, []any{public}, nil), federation.ErrGone, 410},
		{"reply in a thread under a deleted article", alice, replyDoc(alice, "31", alice.ActorID()+"/statuses/30", []any{public}, nil), federation.ErrGone, 410},
		{"like of a deleted article", alice, c.talk("gts_like.json", alice, gone), federation.ErrGone, 410},
		{"boost of a deleted article", alice, c.talk("misskey_announce.json", alice, gone), federation.ErrGone, 410},
		{"quote of a deleted article", alice, c.talk("misskey_quote.json", alice, gone), federation.ErrGone, 410},
		{"content over the limit", mallory, big, federation.ErrTooLarge, 413},
		{"post on another host", mallory, otherHost, federation.ErrForbidden, 403},
		{"Update of another's reply", mallory, hijack, federation.ErrForbidden, 403},
		{"post attributed to another", mallory, misattributed, federation.ErrForbidden, 403},
		{"Like id on another host", mallory, likeOtherHost, federation.ErrForbidden, 403},
		{"Undo of another's Like by id", mallory, undoByID, federation.ErrForbidden, 403},
		{"Undo of another's Like embedded", mallory, undoEmbedded, federation.ErrForbidden, 403},
		{"Undo of another's boost, lying about its author", mallory, undoAnnounce, federation.ErrForbidden, 403},
		{"Delete of another's reply (Tombstone)", mallory, deleteReply, federation.ErrForbidden, 403},
		{"Delete of another's reply (id)", mallory, deleteByID, federation.ErrForbidden, 403},
		{"forged: alice's Like signed by mallory", mallory, c.talk("gts_like.json", alice, note), federation.ErrForbidden, 403},
		{"forged: alice's Delete signed by mallory", mallory, c.talk("mastodon_delete_reply.json", alice, note), federation.ErrForbidden, 403},
		{"forged: alice's account Delete signed by mallory", mallory, c.talk("inbox_delete_actor.json", alice, note), federation.ErrForbidden, 403},
		{"unsigned reply", nil, replyDoc(alice, "21", note, []any{public}, nil), federation.ErrUnauthorized, 401},
		{"unsigned Undo", nil, c.talk("mastodon_undo_like.json", alice, note), federation.ErrUnauthorized, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := c.snapshot(alice.KeyID())
			var status int
			var err error
			if tc.signer == nil {
				status, err = c.post(nil, mustJSON(t, tc.doc), nil, "")
			} else {
				status, err = c.post(tc.signer.signer(nil), mustJSON(t, tc.doc), nil, "")
			}
			if status != tc.status || !errors.Is(err, tc.sentinel) {
				t.Errorf("status %d, err %v; want %d (%v)", status, err, tc.status, tc.sentinel)
			}
			if after := c.snapshot(alice.KeyID()); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed:\n%+v\n%+v", before.Interactions, after.Interactions)
			}
		})
	}
	wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindReply: 1, storage.KindLike: 1, storage.KindAnnounce: 1})
	if r, _ := c.interaction(replyID); !strings.Contains(r.Content, "Thanks for the article!") || r.Actor.ID != alice.ActorID() {
		t.Errorf("alice's reply changed: %+v", r)
	}
}

// A deleted account takes its interactions away, with its follow; also when
// its key is gone and it was no follower.
func TestInteractionsAccountDeleted(t *testing.T) {
	t.Run("signed", func(t *testing.T) {
		c := newProtoCrieur(t, protoOptions{})
		p := mastodonPeer(t, c)
		bob := newProtoPeer(t, "bob", keyInActor, testkit.Key(t, 2), &c.key.PublicKey)
		note := c.publishNote("hello", "en")
		c.must(p, c.fixture("inbox_follow.json", p), http.StatusAccepted)
		c.must(p, c.talk("mastodon_create_reply.json", p, note), http.StatusAccepted)
		c.must(p, c.talk("mastodon_like.json", p, note), http.StatusAccepted)
		c.must(bob, c.talk("mastodon_like.json", bob, note), http.StatusAccepted)
		c.must(p, c.talk("inbox_delete_actor.json", p, note), http.StatusAccepted)
		if c.followCount() != 0 {
			t.Error("follower kept")
		}
		wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindLike: 1}) // bob's
	})
	t.Run("key gone, not a follower", func(t *testing.T) {
		c := newProtoCrieur(t, protoOptions{})
		p := mastodonPeer(t, c)
		note := c.publishNote("hello", "en")
		c.must(p, c.talk("mastodon_like.json", p, note), http.StatusAccepted)
		c.store.DeleteRemoteKey(p.KeyID())
		p.setGone(http.StatusGone)
		c.must(p, c.talk("inbox_delete_actor.json", p, note), http.StatusAccepted)
		wantCounts(t, c.counts(note), nil)
	})
	t.Run("key gone, actor alive", func(t *testing.T) {
		c := newProtoCrieur(t, protoOptions{})
		p := gtsPeer(t, c)
		note := c.publishNote("hello", "en")
		c.must(p, c.talk("gts_like.json", p, note), http.StatusAccepted)
		c.store.DeleteRemoteKey(p.KeyID())
		p.setKeyStatus(http.StatusGone)
		c.must(p, c.talk("inbox_delete_actor.json", p, note), http.StatusUnauthorized)
		wantCounts(t, c.counts(note), map[storage.InteractionKind]int{storage.KindLike: 1})
	})
}

// Interactions are in bbolt: a restart keeps them.
func TestInteractionsKeptAcrossRestart(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := gtsPeer(t, c)
	note := c.publishNote("hello", "en")
	c.must(p, c.talk("gts_create_reply.json", p, note), http.StatusAccepted)
	c.must(p, c.talk("gts_like.json", p, note), http.StatusAccepted)
	before := c.snapshot()
	if err := c.store.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(c.dbPath, storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.store = st
	if after := c.snapshot(); !reflect.DeepEqual(before, after) || len(after.Interactions) != 2 {
		t.Errorf("after a restart:\n%+v\nwant\n%+v", after.Interactions, before.Interactions)
	}
}

func TestPlainText(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "",
		"Alice":                              "Alice",
		"  Alice\n\tSmith  ":                 "Alice Smith",
		"<b>Bold</b> &amp; <i>co</i>":        "Bold & co",
		"a<script>alert(1)</script>b":        "ab",
		"a<style>x{}</style>b":               "ab",
		"<p>one</p><p>two</p>":               "one two",
		"right\u202eleft\u200b":              "rightleft",
		"👩\u200d💻 dev":                       "👩\u200d💻 dev",
		"bell\x07":                           "bell",
		strings.Repeat("x", maxNameRunes+10): strings.Repeat("x", maxNameRunes),
	} {
		if got := plainText(in, maxNameRunes); got != want {
			t.Errorf("plainText(%q) = %q, want %q", in, got, want)
		}
	}
}

// A profile Update signed by its actor refreshes the display data cached
// with its key (inboxes untouched); interactions kept keep theirs.
func TestInteractionsProfileUpdate(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	p := mastodonPeer(t, c)
	mallory := newProtoPeer(t, "mallory", keyInActor, testkit.Key(t, 5), &c.key.PublicKey)
	note := c.publishNote("hello", "en")
	c.must(p, c.talk("mastodon_like.json", p, note), http.StatusAccepted)
	actor := p.actorDoc()
	actor["name"] = "Alice <i>Renamed</i>"
	actor["icon"] = map[string]any{"type": "Image", "url": p.srv.URL + "/new.png"}
	actor["inbox"] = "https://elsewhere.example/inbox"
	update := map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": p.ActorID() + "#updates/1",
		"type": "Update", "actor": p.ActorID(), "object": actor}
	// Someone else's word about alice changes nothing.
	forged := map[string]any{"id": mallory.ActorID() + "#updates/1", "type": "Update", "actor": mallory.ActorID(), "object": actor}
	c.must(mallory, forged, http.StatusAccepted)
	if k, _ := c.store.RemoteKey(p.KeyID()); k.Name != "Alice Smith :blobcat:" {
		t.Fatalf("mallory's Update changed alice's name to %q", k.Name)
	}
	c.must(p, update, http.StatusAccepted)
	k, err := c.store.RemoteKey(p.KeyID())
	if err != nil || k.Name != "Alice Renamed" || k.Avatar != p.srv.URL+"/new.png" || k.Inbox != p.Inbox() {
		t.Errorf("cached key after the profile Update: %+v %v", k, err)
	}
	if like, _ := c.interaction(p.ActorID() + "#likes/123"); like.Actor.Name != "Alice Smith :blobcat:" {
		t.Errorf("a kept like's author became %q", like.Actor.Name)
	}
	c.must(p, c.talk("gts_like.json", p, c.publishNote("second", "en")), http.StatusAccepted)
	if like, _ := c.interaction(p.ActorID() + "/liked/01JEXAMPLE00000000000000LK"); like.Actor.Name != "Alice Renamed" {
		t.Errorf("a new like's author is %q, want the new name", like.Actor.Name)
	}
}
