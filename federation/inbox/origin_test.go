package inbox

// The origin rule (issue 19, item 1) against the real inbox on loopback:
// a remote document is believed only when its id is the URL it was served
// from, after redirects on the same origin, with an ActivityStreams
// Content-Type; a key only from its owner's document served from the
// owner's id.

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
)

// victimHost is a remote server with a real actor (a protoPeer) that also
// serves files anyone may upload (/uploads/…, with the Content-Type they
// were given) and has an open redirect (/go?to=…): the paths an attacker
// can borrow on a server it does not control.
type victimHost struct {
	*protoPeer
	mu    sync.Mutex
	files map[string]hostedFile
}

type hostedFile struct {
	contentType string
	body        []byte
}

func newVictimHost(t *testing.T, c *protoCrieur) *victimHost {
	v := &victimHost{files: map[string]hostedFile{}}
	p := &protoPeer{t: t, name: "bob", style: keyInActor, key: testkit.Key(t, 1), crieur: &c.key.PublicKey}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/go":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/uploads/"):
			v.mu.Lock()
			f, ok := v.files[r.URL.Path]
			v.mu.Unlock()
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", f.contentType)
			w.Write(f.body)
		default:
			p.serve(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	v.protoPeer = p
	return v
}

// upload hosts doc at path with contentType.
func (v *victimHost) upload(path, contentType string, doc map[string]any) string {
	v.mu.Lock()
	v.files[path] = hostedFile{contentType, mustJSON(v.t, doc)}
	v.mu.Unlock()
	return v.srv.URL + path
}

// redirect is a URL on the victim's host that redirects to target.
func (v *victimHost) redirect(target string) string {
	return v.srv.URL + "/go?" + url.Values{"to": {target}}.Encode()
}

// attackerHost is the attacker's own server: its inbox, and whatever
// document it wants to serve, counting the requests it gets.
type attackerHost struct {
	srv  *httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	doc  []byte
}

func newAttackerHost(t *testing.T) *attackerHost {
	a := &attackerHost{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		w.Header().Set("Content-Type", "application/activity+json")
		w.Write(a.doc)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *attackerHost) Inbox() string { return a.srv.URL + "/inbox" }

// forgedActor is an actor document claiming id, with the attacker's inbox
// and key (keyID, testkit key 2).
func forgedActor(t *testing.T, id, keyID, inbox string) map[string]any {
	pemText, err := signature.PublicKeyPEM(&testkit.Key(t, 2).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"@context":          []any{"https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"},
		"id":                id,
		"type":              "Person",
		"preferredUsername": "bob",
		"inbox":             inbox,
		"publicKey":         map[string]any{"id": keyID, "owner": id, "publicKeyPem": pemText},
	}
}

// attackerSigner signs with the attacker's key under keyID.
func attackerSigner(t *testing.T, keyID string) *signature.Signer {
	s, err := signature.NewSigner(keyID, testkit.Key(t, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOriginImpersonation: bob on the victim's host follows crieur; an
// attacker then borrows a path of bob's host (an upload, an open redirect)
// or a redirect away from it to serve a document that carries its own key
// under an actor id of that host, and sends Follows (to rewrite bob's
// inbox, or to follow as a new actor of that host) and an Undo (to
// unfollow for bob). Every one is refused, and nothing changes: followers,
// queued jobs, cached keys. Each case was accepted before the origin rule.
func TestOriginImpersonation(t *testing.T) {
	type attack struct {
		keyID   string // the keyId the attacker signs with
		actorID string // the actor its activities name
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, v *victimHost, a *attackerHost) attack
		// noCrossOrigin: the attacker's own host must see no request.
		noCrossOrigin bool
	}{
		{"upload on the victim's host claims the victim's id", func(t *testing.T, v *victimHost, a *attackerHost) attack {
			keyID := v.srv.URL + "/uploads/evil.json#main-key"
			v.upload("/uploads/evil.json", "application/activity+json", forgedActor(t, v.ActorID(), keyID, a.Inbox()))
			return attack{keyID, v.ActorID()}
		}, false},
		{"redirect on the victim's host to an upload claiming the victim's id", func(t *testing.T, v *victimHost, a *attackerHost) attack {
			keyID := v.redirect("/uploads/evil.json") + "#main-key"
			v.upload("/uploads/evil.json", "application/activity+json", forgedActor(t, v.ActorID(), keyID, a.Inbox()))
			return attack{keyID, v.ActorID()}
		}, false},
		{"redirect on the victim's host to an upload claiming the URL asked for", func(t *testing.T, v *victimHost, a *attackerHost) attack {
			// What Mastodon's fetch_resource (id == URL asked for) would
			// believe: only the final URL counts.
			actor := v.redirect("/uploads/evil.json")
			v.upload("/uploads/evil.json", "application/activity+json", forgedActor(t, actor, actor+"#main-key", a.Inbox()))
			return attack{actor + "#main-key", actor}
		}, false},
		{"redirect to another origin", func(t *testing.T, v *victimHost, a *attackerHost) attack {
			keyID := v.redirect(a.srv.URL+"/evil.json") + "#main-key"
			a.mu.Lock()
			a.doc = mustJSON(t, forgedActor(t, v.ActorID(), keyID, a.Inbox()))
			a.mu.Unlock()
			return attack{keyID, v.ActorID()}
		}, true},
	}
	for _, ct := range []string{"application/json", "text/plain; charset=utf-8", "application/ld+json", "image/png"} {
		cases = append(cases, struct {
			name          string
			setup         func(t *testing.T, v *victimHost, a *attackerHost) attack
			noCrossOrigin bool
		}{"upload served as " + ct + ", its own id", func(t *testing.T, v *victimHost, a *attackerHost) attack {
			// The document speaks for its own URL, but a file served as
			// plain JSON (or anything but ActivityStreams) is no actor.
			actor := v.srv.URL + "/uploads/me.json"
			v.upload("/uploads/me.json", ct, forgedActor(t, actor, actor+"#main-key", a.Inbox()))
			return attack{actor + "#main-key", actor}
		}, false})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newProtoCrieur(t, protoOptions{})
			v := newVictimHost(t, c)
			a := newAttackerHost(t)
			follow := map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": v.ActorID() + "/follows/1",
				"type": "Follow", "actor": v.ActorID(), "object": c.ActorID()}
			if status, err := c.send(v.protoPeer, follow); status != http.StatusAccepted {
				t.Fatalf("bob's own Follow: %d %v", status, err)
			}
			at := tc.setup(t, v, a)
			before := c.snapshot(v.KeyID(), at.keyID)
			if !before.Keys[v.KeyID()] || len(before.Followers) != 1 || before.Followers[0].Inbox != v.Inbox() {
				t.Fatalf("bob is not a follower with his inbox: %+v", before)
			}
			hits := a.hits.Load()
			signer := attackerSigner(t, at.keyID)
			for _, doc := range []map[string]any{
				{"@context": "https://www.w3.org/ns/activitystreams", "id": at.actorID + "/follows/evil",
					"type": "Follow", "actor": at.actorID, "object": c.ActorID()},
				{"@context": "https://www.w3.org/ns/activitystreams", "id": at.actorID + "/undo/evil", "type": "Undo",
					"actor": at.actorID, "object": map[string]any{"id": v.ActorID() + "/follows/1", "type": "Follow",
						"actor": at.actorID, "object": c.ActorID()}},
			} {
				status, err := c.post(signer, mustJSON(t, doc), nil, "")
				if status != http.StatusUnauthorized || !errors.Is(err, federation.ErrUnauthorized) {
					t.Errorf("%s: status %d, err %v; want 401", doc["type"], status, err)
				}
			}
			if after := c.snapshot(v.KeyID(), at.keyID); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
			if tc.noCrossOrigin && a.hits.Load() != hits {
				t.Errorf("the attacker's host got %d requests: a cross-origin redirect was followed", a.hits.Load()-hits)
			}
		})
	}
}

// TestFetchObjectOrigin: the rule for every object the inbox dereferences
// (actors now, replies later): the id must be the final URL, redirects
// stay on the origin, the type is ActivityStreams; a 404/410 is still
// "gone" whatever its Content-Type.
func TestFetchObjectOrigin(t *testing.T) {
	c := newProtoCrieur(t, protoOptions{})
	a := newDocServer(t)
	other := newDocServer(t)
	A := a.srv.URL
	obj := func(id string) map[string]any { return map[string]any{"id": id, "type": "Note"} }
	a.set("/notes/1", 0, obj(A+"/notes/1"))
	a.set("/moved", 0, obj(A+"/moved"))
	a.setRedirect("/old", "/moved")
	a.set("/uploads/x.json", 0, obj(A+"/notes/2"))
	a.setRedirect("/notes/2", "/uploads/x.json")
	a.set("/notes/3", 0, obj(A+"/notes/4"))
	a.setRedirect("/notes/5", other.srv.URL+"/notes/5")
	other.set("/notes/5", 0, obj(A+"/notes/5"))
	a.setTyped("/notes/6", 0, "application/json", obj(A+"/notes/6"))
	a.setTyped("/gone", http.StatusGone, "text/html", "<p>gone</p>")
	a.set("/frag", 0, obj(A+"/frag#x"))

	// A fragment id names a part of the document served from its URL:
	// that document speaks for it; callers compare the id they want.
	good := map[string]string{"/notes/1": A + "/notes/1", "/old": A + "/moved", "/frag": A + "/frag#x"}
	for path, id := range good {
		doc, err := c.svc.fetchObject(testkit.Context(t), A+path)
		if err != nil || jsonID(doc["id"]) != id {
			t.Errorf("%s: %v %v", path, doc, err)
		}
	}
	for path, want := range map[string]error{
		"/notes/2": nil, // redirected to an upload that claims the URL asked for
		"/notes/3": nil, // served from its URL, claims another
		"/notes/5": transport.ErrCrossOrigin,
		"/notes/6": transport.ErrNotActivityStreams,
		"/gone":    errKeyGone,
	} {
		doc, err := c.svc.fetchObject(testkit.Context(t), A+path)
		if err == nil || doc != nil || (want != nil && !errors.Is(err, want)) {
			t.Errorf("%s: %v, err %v; want a refusal (%v)", path, doc, err, want)
		}
	}
	if n := other.count(); n != 0 {
		t.Errorf("the other origin got %d requests", n)
	}
}
