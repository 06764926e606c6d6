package documents

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// The policy carries both of GoToSocial's vocabularies for like, reply and
// boost (v0.19.2 refuses everything when it finds only the new words) and
// canQuote in Mastodon's words, following the -quotes setting.
func TestInteractionPolicy(t *testing.T) {
	for _, tc := range []struct {
		quotes QuotePolicy
		want   string
	}{
		{"", Public},
		{QuotesAuto, Public},
		{QuotesFollowers, "https://blog.example/@reports/followers"},
		{QuotesNobody, "https://blog.example/@reports"},
	} {
		cfg := vocabConfig()
		cfg.Quotes = tc.quotes
		var p map[string]map[string][]string
		b, _ := json.Marshal(cfg.InteractionPolicy())
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"canLike", "canReply", "canAnnounce"} {
			for _, key := range []string{"automaticApproval", "always"} {
				if got := p[sub][key]; len(got) != 1 || got[0] != Public {
					t.Errorf("%q: %s.%s = %v, want [Public]", tc.quotes, sub, key, got)
				}
			}
			if len(p[sub]) != 2 {
				t.Errorf("%q: %s has %v: approval would be asked of someone", tc.quotes, sub, p[sub])
			}
		}
		if got := p["canQuote"]["automaticApproval"]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("%q: canQuote.automaticApproval = %v, want [%s]", tc.quotes, got, tc.want)
		}
	}
}

func TestParseQuotePolicy(t *testing.T) {
	for in, want := range map[string]QuotePolicy{"": QuotesAuto, "auto": QuotesAuto, " Followers ": QuotesFollowers, "nobody": QuotesNobody} {
		if got, err := ParseQuotePolicy(in); err != nil || got != want {
			t.Errorf("%q: %q, %v", in, got, err)
		}
	}
	if _, err := ParseQuotePolicy("everyone"); err == nil {
		t.Error("everyone accepted")
	}
}

// Every Note carries the policy, with the terms defined by its @context.
func TestNoteCarriesInteractionPolicy(t *testing.T) {
	cfg := vocabConfig()
	cfg.Quotes = QuotesFollowers
	s := newVocabService(t, cfg, "testdata/vocab_posts")
	b, err := s.NoteJSON("sample", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := decodeJSON(t, b)
	p, _ := n["interactionPolicy"].(map[string]any)
	q, _ := p["canQuote"].(map[string]any)
	if a, _ := q["automaticApproval"].([]any); len(a) != 1 || a[0] != cfg.FollowersURL() {
		t.Errorf("canQuote = %v", p["canQuote"])
	}
	for _, term := range []string{`"interactionPolicy":{"@id":"gts:interactionPolicy"`, `"canQuote":`, `"always":`, `"automaticApproval":`, `"gts":"https://gotosocial.org/ns#"`} {
		if !bytes.Contains(b, []byte(term)) {
			t.Errorf("@context lacks %s", term)
		}
	}
}

// AuthorizationID is stable for one interaction and differs between kinds,
// objects and Notes.
func TestAuthorizationID(t *testing.T) {
	c := vocabConfig()
	a := c.AuthorizationID(storage.KindQuote, "https://m.example/s/1", c.NoteID("a", "en"))
	if a != c.AuthorizationID(storage.KindQuote, "https://m.example/s/1", c.NoteID("a", "en")) {
		t.Error("not stable")
	}
	if !regexp.MustCompile(`^https://blog\.example/authorizations/[0-9a-f]{32}$`).MatchString(a) {
		t.Errorf("id %s", a)
	}
	for _, other := range []string{
		c.AuthorizationID(storage.KindReply, "https://m.example/s/1", c.NoteID("a", "en")),
		c.AuthorizationID(storage.KindQuote, "https://m.example/s/2", c.NoteID("a", "en")),
		c.AuthorizationID(storage.KindQuote, "https://m.example/s/1", c.NoteID("a", "fr")),
	} {
		if other == a {
			t.Errorf("collision %s", a)
		}
	}
}

// sampleRequest is a QuoteRequest as Mastodon sends it, in crieur's words.
func sampleRequest(s *Builder, kind storage.InteractionKind) (Request, storage.Authorization) {
	r := Request{
		ID:         "https://mastodon.example/users/alice/quote_requests/0f2c",
		Kind:       kind,
		Actor:      "https://mastodon.example/users/alice",
		Object:     s.cfg.NoteID("sample", "en"),
		Instrument: "https://mastodon.example/users/alice/statuses/115",
	}
	a := storage.Authorization{
		ID: s.cfg.AuthorizationID(kind, r.Instrument, r.Object), Kind: kind, RequestID: r.ID, ActorID: r.Actor,
		InteractingObject: r.Instrument, InteractionTarget: r.Object, CreatedAt: vocabNow,
	}
	return r, a
}

// fixedID replaces the random activity id so that golden files are stable.
func fixedID(b []byte, id string) []byte {
	return bytes.Replace(b, []byte(`"`+id+`"`), []byte(`"https://blog.example/activities/ACTIVITY"`), 1)
}

// The authorization documents and the Accept and Reject of requests, as
// golden files; the shapes are checked field by field too.
func TestAuthorizationGolden(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "testdata/vocab_posts")
	for _, tc := range []struct {
		kind   storage.InteractionKind
		typ    string
		golden string
	}{
		{storage.KindQuote, "QuoteAuthorization", "golden_quote_authorization.json"},
		{storage.KindLike, "LikeAuthorization", "golden_like_authorization.json"},
		{storage.KindReply, "ReplyAuthorization", "golden_reply_authorization.json"},
		{storage.KindAnnounce, "AnnounceAuthorization", "golden_announce_authorization.json"},
	} {
		r, a := sampleRequest(s, tc.kind)
		act, err := s.AcceptRequest(r, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		a.AcceptID = act.ID
		if _, err := s.store.GrantAuthorization(a, act, nil); err != nil {
			t.Fatal(err)
		}
		b, err := s.AuthorizationJSON(a.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkContext(t, tc.typ, b)
		checkGoldenJSON(t, tc.golden, b)
		d := decodeJSON(t, b)
		want := map[string]any{
			"id": a.ID, "type": tc.typ, "attributedTo": s.cfg.ActorID(),
			"interactingObject": r.Instrument, "interactionTarget": r.Object,
		}
		for k, v := range want {
			if d[k] != v {
				t.Errorf("%s.%s = %v, want %v", tc.typ, k, d[k], v)
			}
		}
		if len(d) != len(want)+1 {
			t.Errorf("%s has keys %v", tc.typ, keys(d))
		}
	}

	r, a := sampleRequest(s, storage.KindQuote)
	accept, err := s.AcceptRequest(r, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkContext(t, "accept", accept.JSON)
	checkGoldenJSON(t, "golden_accept_quote_request.json", fixedID(accept.JSON, accept.ID))
	d := decodeJSON(t, accept.JSON)
	obj, _ := d["object"].(map[string]any)
	if d["type"] != "Accept" || d["actor"] != s.cfg.ActorID() || d["result"] != a.ID || accept.ObjectID != r.ID ||
		obj["id"] != r.ID || obj["type"] != "QuoteRequest" || obj["actor"] != r.Actor || obj["object"] != r.Object || obj["instrument"] != r.Instrument {
		t.Errorf("accept %s", accept.JSON)
	}
	if to, _ := d["to"].([]any); len(to) != 1 || to[0] != r.Actor {
		t.Errorf("accept to = %v", d["to"])
	}

	lr, _ := sampleRequest(s, storage.KindLike)
	lr.ID = "https://gts.example/users/bob/likes/01J/request"
	like, err := s.AcceptRequest(lr, "https://blog.example/authorizations/x")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := decodeJSON(t, like.JSON)["object"].(map[string]any); o["type"] != "LikeRequest" {
		t.Errorf("accept of a LikeRequest embeds %v", o["type"])
	}

	reject, err := s.RejectRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	checkGoldenJSON(t, "golden_reject_quote_request.json", fixedID(reject.JSON, reject.ID))
	if d := decodeJSON(t, reject.JSON); d["type"] != "Reject" || d["result"] != nil {
		t.Errorf("reject %s", reject.JSON)
	}
	if _, err := s.RejectRequest(Request{ID: "x", Actor: "y"}); err == nil {
		t.Error("request of no kind answered")
	}
}

// A revoked authorization is ErrGone with a Tombstone for the 410; an
// unknown one ErrNotFound.
func TestAuthorizationRevoked(t *testing.T) {
	s := newVocabService(t, vocabConfig(), "")
	r, a := sampleRequest(s, storage.KindQuote)
	act, err := s.AcceptRequest(r, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.GrantAuthorization(a, act, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthorizationTombstoneJSON(a.ID); !errors.Is(err, federation.ErrNotFound) {
		t.Errorf("tombstone of a standing authorization: %v", err)
	}
	if _, err := s.store.RevokeAuthorizations(r.Instrument, r.Actor, vocabNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthorizationJSON(a.ID); !errors.Is(err, federation.ErrGone) {
		t.Errorf("revoked: %v, want ErrGone", err)
	}
	tomb, err := s.AuthorizationTombstoneJSON(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	d := decodeJSON(t, tomb)
	if d["type"] != "Tombstone" || d["formerType"] != "QuoteAuthorization" || d["id"] != a.ID || d["deleted"] != "2024-06-01T13:00:00Z" {
		t.Errorf("tombstone %s", tomb)
	}
	if _, err := s.AuthorizationJSON(s.cfg.BaseURL + "/authorizations/none"); !errors.Is(err, federation.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	if !strings.HasPrefix(a.ID, s.cfg.BaseURL+AuthorizationPath) {
		t.Errorf("id %s not under %s", a.ID, AuthorizationPath)
	}
}
