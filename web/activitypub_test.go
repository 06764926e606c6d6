package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// acceptCase is one row of the content negotiation matrix.
type acceptCase struct {
	name    string
	accept  []string // each value is sent as its own Accept header
	wantAct bool
}

var acceptMatrix = []acceptCase{
	{"activity+json", []string{"application/activity+json"}, true},
	{"ld+json quoted profile", []string{`application/ld+json; profile="https://www.w3.org/ns/activitystreams"`}, true},
	{"ld+json unquoted profile", []string{`application/ld+json;profile=https://www.w3.org/ns/activitystreams`}, true},
	{"ld+json params in another order", []string{`application/ld+json; charset=utf-8; profile="https://www.w3.org/ns/activitystreams"`}, true},
	{"ld+json without profile", []string{"application/ld+json"}, true},
	{"Mastodon search", []string{`application/ld+json; profile="https://www.w3.org/ns/activitystreams", application/activity+json, text/html;q=0.1`}, true},
	{"Mastodon fetch", []string{"application/activity+json, application/ld+json"}, true},
	{"GoToSocial", []string{`application/ld+json; profile="https://www.w3.org/ns/activitystreams",application/activity+json`}, true},
	{"Misskey", []string{`application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"`}, true},
	{"upper case", []string{"APPLICATION/ACTIVITY+JSON"}, true},
	{"tie with HTML", []string{"application/activity+json, text/html"}, true},
	{"two Accept headers", []string{"text/html;q=0.5", "application/activity+json"}, true},
	{"browser", []string{browserAccept}, false},
	{"no Accept", nil, false},
	{"any", []string{"*/*"}, false},
	{"html", []string{"text/html"}, false},
	{"plain JSON", []string{"application/json"}, false},
	{"HTML preferred", []string{"text/html, application/activity+json;q=0.5"}, false},
	{"JSON refused", []string{"application/activity+json;q=0"}, false},
	{"other JSON-LD profile", []string{`application/ld+json; profile="https://example.org/other"`}, false},
	{"application wildcard", []string{"application/*"}, false},
	{"two headers, HTML preferred", []string{"application/activity+json;q=0.2", "text/html"}, false},
}

func TestContentNegotiationMatrix(t *testing.T) {
	e := newTestEnv(t)
	for _, path := range []string{"/@reports", "/posts/hello/en"} {
		for _, tc := range acceptMatrix {
			var headers []string
			for _, a := range tc.accept {
				headers = append(headers, "Accept", a)
			}
			r := e.get(t, path, headers...)
			want := "text/html; charset=utf-8"
			if tc.wantAct {
				want = "application/activity+json; charset=utf-8"
			}
			if r.StatusCode != http.StatusOK || r.ctype() != want {
				t.Errorf("%s, %s: status %d, Content-Type %q, want %q", path, tc.name, r.StatusCode, r.ctype(), want)
			}
			if !hasVaryAccept(r) {
				t.Errorf("%s, %s: no Vary: Accept", path, tc.name)
			}
			if tc.wantAct && !json.Valid([]byte(r.body)) {
				t.Errorf("%s, %s: body is not JSON", path, tc.name)
			}
		}
	}
}

// asDoc decodes an ActivityStreams answer.
func asDoc(t *testing.T, r response) map[string]any {
	t.Helper()
	if r.ctype() != typeActivityJSON {
		t.Fatalf("%s: Content-Type %q", r.Request.URL, r.ctype())
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		t.Fatalf("%s: %v", r.Request.URL, err)
	}
	return d
}

func TestActorAndNoteDocuments(t *testing.T) {
	e := newTestEnv(t)
	const ap = "application/activity+json"
	actor := asDoc(t, e.get(t, "/@reports", "Accept", ap))
	if actor["id"] != testBase+"/@reports" || actor["preferredUsername"] != testHandle ||
		actor["inbox"] != testBase+"/@reports/inbox" {
		t.Errorf("actor: id %v preferredUsername %v inbox %v", actor["id"], actor["preferredUsername"], actor["inbox"])
	}
	// Every URL the actor names is served here.
	for _, key := range []string{"outbox", "followers", "following", "featured"} {
		u, _ := actor[key].(string)
		if !strings.HasPrefix(u, testBase+"/") {
			t.Fatalf("actor %s = %v", key, actor[key])
		}
		doc := asDoc(t, e.get(t, strings.TrimPrefix(u, testBase), "Accept", ap))
		if doc["id"] != u || doc["type"] != "OrderedCollection" {
			t.Errorf("%s: id %v type %v", key, doc["id"], doc["type"])
		}
	}
	note := asDoc(t, e.get(t, "/posts/hello/en", "Accept", ap))
	if note["id"] != testBase+"/posts/hello/en" || note["type"] != "Note" {
		t.Errorf("note: id %v type %v", note["id"], note["type"])
	}
	for _, p := range []string{"/posts/draft/en", "/posts/future/en", "/posts/nothing/en"} {
		r := e.get(t, p, "Accept", ap)
		expect(t, r, http.StatusNotFound, "application/json")
		if !hasVaryAccept(r) {
			t.Errorf("%s JSON 404 without Vary: Accept", p)
		}
	}
	// The featured collection holds the pinned article.
	featured := e.get(t, "/@reports/featured")
	contains(t, featured, testBase+"/posts/hello/en")
}

func TestCollectionsPaging(t *testing.T) {
	e := newTestEnv(t)
	if _, err := e.store.Publish(ledgerEntry("hello/en", testNow), activityFor("hello/en"), nil); err != nil {
		t.Fatal(err)
	}
	out := asDoc(t, e.get(t, "/@reports/outbox"))
	if out["totalItems"] != float64(1) {
		t.Errorf("outbox totalItems %v", out["totalItems"])
	}
	page := asDoc(t, e.get(t, "/@reports/outbox?page=1"))
	if page["type"] != "OrderedCollectionPage" {
		t.Errorf("outbox page type %v", page["type"])
	}
	for _, bad := range []string{"?page=0", "?page=-2", "?page=x"} {
		r := e.get(t, "/@reports/outbox"+bad)
		expect(t, r, http.StatusBadRequest, "application/json")
		if r.body != `{"error":"bad request"}`+"\n" {
			t.Errorf("outbox%s body %q", bad, r.body)
		}
	}
	// The followers list is hidden by default: its pages are not found.
	expect(t, e.get(t, "/@reports/followers?page=1"), http.StatusNotFound, "application/json")
	expect(t, e.get(t, "/@reports/following?page=1"), http.StatusOK, typeActivityJSON)
}

func TestActivityEndpoint(t *testing.T) {
	e := newTestEnv(t)
	act := activityFor("hello/en")
	if _, err := e.store.Publish(ledgerEntry("hello/en", testNow), act, nil); err != nil {
		t.Fatal(err)
	}
	r := e.get(t, strings.TrimPrefix(act.ID, testBase))
	expect(t, r, http.StatusOK, typeActivityJSON)
	if r.body != string(act.JSON) {
		t.Errorf("activity body %q, want the stored bytes %q", r.body, act.JSON)
	}
	unknown := e.get(t, "/activities/ffffffffffffffffffffffffffffffff")
	expect(t, unknown, http.StatusNotFound, "application/json")
	contains(t, unknown, `{"error":"not found"}`)
}

func TestInboxErrorMapping(t *testing.T) {
	const limit = 4096
	e := newTestEnv(t, func(c *Config) { c.InboxMaxBody = limit })
	follow := `{"@context":"https://www.w3.org/ns/activitystreams","id":"https://remote.example/follows/1",` +
		`"type":"Follow","actor":"https://remote.example/users/alice","object":"https://crieur.example/@reports"}`
	apType := "application/activity+json"
	big := `{"type":"Note","content":"` + strings.Repeat("x", limit) + `"}`

	for _, inbox := range []string{"/inbox", "/@reports/inbox"} {
		for _, tc := range []struct {
			name   string
			body   io.Reader
			ctype  string
			status int
			msg    string
		}{
			{"over the limit, declared", strings.NewReader(big), apType, http.StatusRequestEntityTooLarge, "request body too large"},
			// io.MultiReader hides the length: the body is sent chunked.
			{"unsigned, chunked", io.MultiReader(strings.NewReader(big)), apType, http.StatusUnauthorized, "signature missing or not valid"},
			{"unsigned, malformed JSON", strings.NewReader(`{"type":"Follow",`), apType, http.StatusUnauthorized, "signature missing or not valid"},
			{"not ActivityStreams", strings.NewReader(follow), "text/plain", http.StatusUnsupportedMediaType, "unsupported media type"},
			{"unsigned Follow", strings.NewReader(follow), apType, http.StatusUnauthorized, "signature missing or not valid"},
			{"unsigned Follow, ld+json", strings.NewReader(follow), `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`, http.StatusUnauthorized, "signature missing or not valid"},
		} {
			r := e.do(t, http.MethodPost, inbox, tc.body, "Content-Type", tc.ctype)
			if r.StatusCode != tc.status {
				t.Errorf("%s %s: status %d, want %d (%s)", inbox, tc.name, r.StatusCode, tc.status, r.body)
				continue
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(body) != 1 || body["error"] != tc.msg {
				t.Errorf("%s %s: body %q, want {\"error\":%q}", inbox, tc.name, r.body, tc.msg)
			}
			if cc := r.Header.Get("Cache-Control"); cc != cacheNone {
				t.Errorf("%s %s: Cache-Control %q", inbox, tc.name, cc)
			}
		}
		r := e.get(t, inbox)
		expect(t, r, http.StatusMethodNotAllowed, "application/json")
		if allow := r.Header.Get("Allow"); allow != http.MethodPost {
			t.Errorf("GET %s: Allow %q", inbox, allow)
		}
	}
	n, err := e.store.CountFollowers()
	if err != nil || n != 0 {
		t.Errorf("followers after refused requests: %d, %v", n, err)
	}
	// The causes are in the log, once per request, and never in answers.
	logs := e.logs.String()
	if got := strings.Count(logs, `msg="web: request" method=POST path=/inbox status=401`); got != 4 {
		t.Errorf("%d log lines for the four unsigned POSTs to /inbox, want 4\n%s", got, logs)
	}
	if !strings.Contains(logs, "no Signature header") {
		t.Errorf("the 401 cause is not logged\n%s", logs)
	}
}

func TestInternalErrorIsLoggedOnceAndNotLeaked(t *testing.T) {
	e := newTestEnv(t)
	// A closed store makes every storage call fail.
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.get(t, "/@reports/outbox")
	expect(t, r, http.StatusInternalServerError, "application/json")
	if r.body != `{"error":"internal error"}`+"\n" {
		t.Errorf("500 body %q", r.body)
	}
	if r.Header.Get("Cache-Control") != cacheNone {
		t.Errorf("500 Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	var errLines []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			errLines = append(errLines, line)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], "path=/@reports/outbox") ||
		!strings.Contains(errLines[0], "error=") || !strings.Contains(errLines[0], "outbox") {
		t.Errorf("want one ERROR line with the cause, got %q", errLines)
	}
	// HTML pages still answer from the library when the ledger is down.
	expect(t, e.get(t, "/posts/hello/en"), http.StatusOK, "text/html")
}

func TestUnknownRouteAnswersInKind(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/nowhere", "Accept", "application/activity+json")
	expect(t, r, http.StatusNotFound, "application/json")
	h := e.get(t, "/nowhere", "Accept", browserAccept)
	expect(t, h, http.StatusNotFound, "text/html")
	m := e.do(t, http.MethodDelete, "/@reports", bytes.NewReader(nil))
	expect(t, m, http.StatusMethodNotAllowed, "")
}
