package inbox

// Consent: QuoteRequest (Mastodon) and LikeRequest, ReplyRequest,
// AnnounceRequest (GoToSocial), signed by loopback peers, through the real
// inbox, with a real Deliverer sending the answers back to the peers.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// consentPost is the one article of the consent tests: its Note is
// BASE/posts/hello/en.
const consentPost = `---
title: "Hello"
date: 2024-01-10T09:00:00+01:00
slug: hello
---
A first article.
`

// consentCrieur is a protoCrieur with a posts folder, a quote policy and a
// running Deliverer whose outcomes arrive on done.
type consentCrieur struct {
	*protoCrieur
	done chan delivery.Result
}

func newConsentCrieur(t *testing.T, quotes documents.QuotePolicy) *consentCrieur {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.en.md"), []byte(consentPost), 0o644); err != nil {
		t.Fatal(err)
	}
	lib, err := articles.Load(dir, articles.Options{})
	if err != nil || len(lib.Problems()) > 0 {
		t.Fatalf("posts: %v %v", err, lib.Problems())
	}
	c := &protoCrieur{t: t, key: testkit.Key(t, 0), now: time.Now}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	c.store, err = storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.store.Close() })
	client := transport.NewClient(transport.ClientConfig{UserAgent: "crieur-test", AllowPrefixes: testkit.Loopback(), Timeout: 10 * time.Second})
	t.Cleanup(client.CloseIdleConnections)
	c.docs, err = documents.New(documents.Config{BaseURL: c.srv.URL, Handle: "reports", Quotes: quotes},
		documents.Deps{Store: c.store, Key: &c.key.PublicKey, Posts: func() *articles.Library { return lib }})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(c.docs.Config().KeyID(), c.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := &consentCrieur{protoCrieur: c, done: make(chan delivery.Result, 64)}
	d := delivery.NewDeliverer(c.store, client, signer, delivery.Options{
		Timeout: 10 * time.Second,
		OnDone:  func(r delivery.Result) { cc.done <- r },
	})
	c.svc, err = New(Deps{Docs: c.docs, Store: c.store, Signer: signer, Client: client, Queued: d.Wake})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("deliverer: %v", err)
		}
	})
	return cc
}

func (c *consentCrieur) NoteID() string { return c.docs.Config().NoteID("hello", "en") }

// delivered waits for the next delivery and returns the body the peer got
// at path, checking it was delivered and signed by crieur.
func (c *consentCrieur) delivered(p *protoPeer, path string) map[string]any {
	c.t.Helper()
	select {
	case r := <-c.done:
		if r.Outcome != delivery.OutcomeDelivered {
			c.t.Fatalf("delivery: %+v", r)
		}
	case <-time.After(60 * time.Second):
		c.t.Fatal("no delivery")
	}
	var last *peerRequest
	for _, r := range p.Requests() {
		if r.Method == http.MethodPost && r.Path == path {
			last = &r
		}
	}
	if last == nil {
		c.t.Fatalf("peer got no POST at %s", path)
	}
	if !last.SignedByCrieur {
		c.t.Errorf("answer not signed by crieur")
	}
	var doc map[string]any
	if err := json.Unmarshal(last.Body, &doc); err != nil {
		c.t.Fatal(err)
	}
	if _, ok := doc["@context"]; !ok {
		c.t.Errorf("answer without @context: %s", last.Body)
	}
	return doc
}

// nothingQueued checks that no answer waits for delivery.
func (c *consentCrieur) nothingQueued() {
	c.t.Helper()
	if jobs, err := c.store.PendingJobs(); err != nil || len(jobs) != 0 {
		c.t.Errorf("queued %+v, %v", jobs, err)
	}
}

// mastodonQuoteRequest is Mastodon's QuoteRequest (quote_request_serializer.rb)
// with the quoting Note embedded as quote_request_worker.rb sends it.
func mastodonQuoteRequest(p *protoPeer, author, note string, n string) map[string]any {
	post := p.ActorID() + "/statuses/" + n
	return map[string]any{
		"@context":   []any{"https://www.w3.org/ns/activitystreams", map[string]any{"QuoteRequest": "https://w3id.org/fep/044f#QuoteRequest"}},
		"id":         p.ActorID() + "/quote_requests/" + n,
		"type":       "QuoteRequest",
		"actor":      p.ActorID(),
		"object":     note,
		"instrument": map[string]any{"id": post, "type": "Note", "attributedTo": author, "content": "<p>RE: " + note + "</p>", "quote": note, "to": []string{documents.Public}},
	}
}

// gtsRequest is GoToSocial's polite request of kind typ: the instrument
// embedded with its id, type and actor or attributedTo.
func gtsRequest(p *protoPeer, typ, note, n string) map[string]any {
	var instrument map[string]any
	switch typ {
	case "LikeRequest":
		instrument = map[string]any{"id": p.ActorID() + "/likes/" + n, "type": "Like", "actor": p.ActorID(), "object": note}
	case "AnnounceRequest":
		instrument = map[string]any{"id": p.ActorID() + "/statuses/" + n, "type": "Announce", "actor": p.ActorID(), "object": note}
	case "ReplyRequest":
		instrument = map[string]any{"id": p.ActorID() + "/statuses/" + n, "type": "Note", "attributedTo": p.ActorID(), "inReplyTo": note, "content": "<p>@reports yes</p>"}
	}
	return map[string]any{
		"@context":   []any{"https://gotosocial.org/ns", "https://www.w3.org/ns/activitystreams"},
		"id":         p.ActorID() + "/requests/" + n,
		"type":       typ,
		"actor":      p.ActorID(),
		"object":     note,
		"instrument": instrument,
	}
}

// Mastodon's QuoteRequest gets an Accept at the quoter's personal inbox,
// with the request embedded and result naming the QuoteAuthorization,
// which dereferences; the same request again names the same authorization;
// the quote's deletion by its author revokes it (410), another actor's
// does not.
func TestQuoteRequestAcceptedWithAuthorization(t *testing.T) {
	c := newConsentCrieur(t, "")
	alice := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	req := mastodonQuoteRequest(alice, alice.ActorID(), c.NoteID(), "1")
	if status, err := c.send(alice, req); status != http.StatusAccepted {
		t.Fatalf("QuoteRequest: %d %v", status, err)
	}
	accept := c.delivered(alice, "/users/alice/inbox")
	obj, _ := accept["object"].(map[string]any)
	result, _ := accept["result"].(string)
	quote := alice.ActorID() + "/statuses/1"
	if accept["type"] != "Accept" || accept["actor"] != c.ActorID() || jsonID(accept["id"]) == "" ||
		obj["type"] != "QuoteRequest" || obj["id"] != req["id"] || obj["actor"] != alice.ActorID() ||
		obj["object"] != c.NoteID() || obj["instrument"] != quote {
		t.Errorf("accept %v", accept)
	}
	if !strings.HasPrefix(result, c.srv.URL+"/authorizations/") {
		t.Fatalf("result %q is not an authorization of ours", result)
	}
	if to, _ := accept["to"].([]any); len(to) != 1 || to[0] != alice.ActorID() {
		t.Errorf("accept to %v", accept["to"])
	}
	body, err := c.docs.AuthorizationJSON(result)
	if err != nil {
		t.Fatal(err)
	}
	var auth map[string]any
	if err := json.Unmarshal(body, &auth); err != nil {
		t.Fatal(err)
	}
	if auth["type"] != "QuoteAuthorization" || auth["id"] != result || auth["attributedTo"] != c.ActorID() ||
		auth["interactingObject"] != quote || auth["interactionTarget"] != c.NoteID() {
		t.Errorf("authorization %s", body)
	}

	// Sent again (a retry): one authorization, one more Accept.
	if status, err := c.send(alice, req); status != http.StatusAccepted {
		t.Fatalf("again: %d %v", status, err)
	}
	if again := c.delivered(alice, "/users/alice/inbox"); again["result"] != result || again["id"] == accept["id"] {
		t.Errorf("second accept %v", again)
	}

	// Someone else's Delete of the quote, signed and sent to the inbox,
	// revokes nothing; the author's does.
	deleteOf := func(p *protoPeer) map[string]any {
		return map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": p.ActorID() + "#delete-" + quote,
			"type": "Delete", "actor": p.ActorID(), "object": map[string]any{"id": quote, "type": "Tombstone"}}
	}
	eve := newProtoPeer(t, "eve", keyInActor, testkit.Key(t, 3), &c.key.PublicKey)
	c.send(eve, deleteOf(eve))
	if _, err := c.docs.AuthorizationJSON(result); err != nil {
		t.Errorf("revoked by another actor: %v", err)
	}
	if status, err := c.send(alice, deleteOf(alice)); status != http.StatusAccepted {
		t.Fatalf("the author's Delete of the quote: %d %v", status, err)
	}
	if _, err := c.docs.AuthorizationJSON(result); !errors.Is(err, federation.ErrGone) {
		t.Errorf("after the quote's deletion: %v, want ErrGone", err)
	}
	if _, err := c.docs.AuthorizationTombstoneJSON(result); err != nil {
		t.Errorf("tombstone: %v", err)
	}
	// Revocation sends nothing (see revokeAuthorizationsFor), and a late
	// request about the deleted quote is not authorized again.
	c.nothingQueued()
	if status, err := c.send(alice, req); status != http.StatusAccepted || err != nil {
		t.Fatalf("request after revocation: %d %v", status, err)
	}
	c.nothingQueued()
	if _, err := c.docs.AuthorizationJSON(result); !errors.Is(err, federation.ErrGone) {
		t.Errorf("re-granted after revocation: %v", err)
	}
}

// GoToSocial's polite requests each get an Accept embedding the request
// (its type, id, actor, object, instrument by id) with result naming the
// matching authorization type.
func TestGoToSocialRequestsAccepted(t *testing.T) {
	c := newConsentCrieur(t, documents.QuotesNobody) // the quote policy does not touch these
	bob := newProtoPeer(t, "bob", keyStub, testkit.Key(t, 2), &c.key.PublicKey)
	for i, tc := range []struct{ typ, auth string }{
		{"LikeRequest", "LikeAuthorization"},
		{"ReplyRequest", "ReplyAuthorization"},
		{"AnnounceRequest", "AnnounceAuthorization"},
	} {
		n := string(rune('1' + i))
		req := gtsRequest(bob, tc.typ, c.NoteID(), n)
		if status, err := c.post(bob.signer(nil), mustJSON(t, req), nil, `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`); status != http.StatusAccepted {
			t.Fatalf("%s: %d %v", tc.typ, status, err)
		}
		accept := c.delivered(bob, "/users/bob/inbox")
		obj, _ := accept["object"].(map[string]any)
		instrument := jsonID(req["instrument"])
		if accept["type"] != "Accept" || obj["type"] != tc.typ || obj["id"] != req["id"] || obj["actor"] != bob.ActorID() ||
			obj["object"] != c.NoteID() || obj["instrument"] != instrument {
			t.Errorf("%s: accept %v", tc.typ, accept)
		}
		result, _ := accept["result"].(string)
		body, err := c.docs.AuthorizationJSON(result)
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		var auth map[string]any
		_ = json.Unmarshal(body, &auth)
		if auth["type"] != tc.auth || auth["interactingObject"] != instrument || auth["interactionTarget"] != c.NoteID() ||
			auth["attributedTo"] != c.ActorID() {
			t.Errorf("%s: authorization %s", tc.typ, body)
		}
		if i == 0 {
			continue // the Like is revoked with the account below
		}
		// The Undo or Delete of the interaction revokes it.
		if err := c.svc.revokeAuthorizationsFor(testkit.Context(t), instrument, bob.ActorID()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.docs.AuthorizationJSON(result); !errors.Is(err, federation.ErrGone) {
			t.Errorf("%s: after revocation %v", tc.typ, err)
		}
	}
	// The account's deletion revokes what is left (the Like).
	like := c.docs.Config().AuthorizationID(storage.KindLike, bob.ActorID()+"/likes/1", c.NoteID())
	if _, err := c.docs.AuthorizationJSON(like); err != nil {
		t.Fatalf("like before the account's deletion: %v", err)
	}
	if err := c.svc.revokeActorAuthorizations(testkit.Context(t), bob.ActorID()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.docs.AuthorizationJSON(like); !errors.Is(err, federation.ErrGone) {
		t.Errorf("like after the account's deletion: %v", err)
	}
}

// A QuoteRequest the policy refuses gets a Reject (Mastodon's quote would
// stay pending for ever without one) and no authorization; with
// "followers", a follower's is accepted.
func TestQuoteRequestRejectedByPolicy(t *testing.T) {
	for _, quotes := range []documents.QuotePolicy{documents.QuotesNobody, documents.QuotesFollowers} {
		t.Run(string(quotes), func(t *testing.T) {
			c := newConsentCrieur(t, quotes)
			alice := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
			req := mastodonQuoteRequest(alice, alice.ActorID(), c.NoteID(), "1")
			if status, err := c.send(alice, req); status != http.StatusAccepted {
				t.Fatalf("QuoteRequest: %d %v", status, err)
			}
			reject := c.delivered(alice, "/users/alice/inbox")
			obj, _ := reject["object"].(map[string]any)
			if reject["type"] != "Reject" || reject["result"] != nil || obj["type"] != "QuoteRequest" || obj["id"] != req["id"] {
				t.Errorf("reject %v", reject)
			}
			id := c.docs.Config().AuthorizationID(storage.KindQuote, alice.ActorID()+"/statuses/1", c.NoteID())
			if _, err := c.store.Authorization(id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("authorization stored: %v", err)
			}
			if quotes != documents.QuotesFollowers {
				return
			}
			if err := c.store.PutFollower(storage.Follower{ActorID: alice.ActorID(), Inbox: alice.Inbox(), FollowID: alice.ActorID() + "/follows/1"}); err != nil {
				t.Fatal(err)
			}
			if status, err := c.send(alice, req); status != http.StatusAccepted {
				t.Fatalf("follower's QuoteRequest: %d %v", status, err)
			}
			if accept := c.delivered(alice, "/users/alice/inbox"); accept["type"] != "Accept" || accept["result"] != id {
				t.Errorf("follower: %v", accept)
			}
		})
	}
}

// Requests that must change nothing: about someone else's object, about a
// Note that is not ours, from another host than their actor, with an
// instrument that does not name our Note or cannot be fetched. Nothing is
// stored or sent.
func TestInteractionRequestsRefused(t *testing.T) {
	c := newConsentCrieur(t, "")
	alice := newProtoPeer(t, "alice", keyInActor, testkit.Key(t, 1), &c.key.PublicKey)
	bob := newProtoPeer(t, "bob", keyStub, testkit.Key(t, 2), &c.key.PublicKey)

	othersQuote := mastodonQuoteRequest(bob, alice.ActorID(), c.NoteID(), "1") // bob asks for alice's post
	notOurs := mastodonQuoteRequest(alice, alice.ActorID(), alice.ActorID()+"/statuses/99", "2")
	unknownNote := mastodonQuoteRequest(alice, alice.ActorID(), c.srv.URL+"/posts/nothing/en", "3")
	foreignID := mastodonQuoteRequest(alice, alice.ActorID(), c.NoteID(), "4")
	foreignID["id"] = bob.ActorID() + "/quote_requests/4"
	otherQuote := mastodonQuoteRequest(alice, alice.ActorID(), c.NoteID(), "5")
	otherQuote["instrument"].(map[string]any)["quote"] = alice.ActorID() + "/statuses/98"
	likeOfOther := gtsRequest(bob, "LikeRequest", c.NoteID(), "6")
	likeOfOther["instrument"].(map[string]any)["actor"] = alice.ActorID()
	byIRI := gtsRequest(bob, "ReplyRequest", c.NoteID(), "7")
	byIRI["instrument"] = bob.ActorID() + "/statuses/7" // the peer answers 404
	elsewhere := gtsRequest(bob, "AnnounceRequest", c.NoteID(), "8")
	elsewhere["instrument"].(map[string]any)["id"] = alice.ActorID() + "/statuses/8"
	noInstrument := gtsRequest(bob, "LikeRequest", c.NoteID(), "9")
	delete(noInstrument, "instrument")

	for _, tc := range []struct {
		name   string
		peer   *protoPeer
		doc    map[string]any
		status int
	}{
		{"someone else's post", bob, othersQuote, http.StatusForbidden},
		{"a Note that is not ours", alice, notOurs, http.StatusAccepted},
		{"an unknown Note of ours", alice, unknownNote, http.StatusAccepted},
		{"request id on another host", alice, foreignID, http.StatusForbidden},
		{"quote of another post", alice, otherQuote, http.StatusForbidden},
		{"Like by someone else", bob, likeOfOther, http.StatusForbidden},
		{"instrument that is gone", bob, byIRI, http.StatusAccepted},
		{"instrument on another host", bob, elsewhere, http.StatusForbidden},
		{"no instrument", bob, noInstrument, http.StatusBadRequest},
	} {
		status, err := c.send(tc.peer, tc.doc)
		if status != tc.status {
			t.Errorf("%s: status %d (%v), want %d", tc.name, status, err, tc.status)
		}
		c.nothingQueued()
		if instrument := jsonID(tc.doc["instrument"]); instrument != "" {
			if list, err := c.store.AuthorizationsFor(instrument); err != nil || len(list) != 0 {
				t.Errorf("%s: authorizations %+v, %v", tc.name, list, err)
			}
		}
	}
	// Unsigned: refused before anything.
	if status, _ := c.post(nil, mustJSON(t, mastodonQuoteRequest(alice, alice.ActorID(), c.NoteID(), "10")), nil, ""); status != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", status)
	}
	c.nothingQueued()
}
