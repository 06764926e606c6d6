package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// aliceQuoteRequest is Mastodon's QuoteRequest of our Note hello/en, the
// quoting post embedded (quote_request_serializer.rb, note_serializer.rb).
func aliceQuoteRequest(n int) []byte {
	post := fmt.Sprintf("%s/statuses/%d", aliceActor, n)
	return fmt.Appendf(nil, `{"@context":["https://www.w3.org/ns/activitystreams",{"QuoteRequest":"https://w3id.org/fep/044f#QuoteRequest"}],`+
		`"id":"%s/quote_requests/%d","type":"QuoteRequest","actor":%q,"object":"%s/posts/hello/en",`+
		`"instrument":{"id":%q,"type":"Note","attributedTo":%q,"content":"<p>Read this</p>","quote":"%s/posts/hello/en"}}`,
		aliceActor, n, aliceActor, testBase, post, aliceActor, testBase)
}

// A QuoteRequest through the real inbox leaves an authorization served at
// its own URL by content negotiation: the document for servers, the
// article for browsers; once revoked, 410 with a Tombstone.
func TestAuthorizationServedAtItsURL(t *testing.T) {
	e := newTestEnv(t)
	e.trustAlice(t)
	status, _ := send(t, e.signedInboxRequest(t, "/@reports/inbox", aliceQuoteRequest(7), time.Second))
	if status != http.StatusAccepted {
		t.Fatalf("QuoteRequest: status %d\n%s", status, e.logs.String())
	}
	jobs, err := e.store.PendingJobs()
	if err != nil || len(jobs) != 1 || jobs[0].Inbox != aliceActor+"/inbox" {
		t.Fatalf("jobs %+v, %v", jobs, err)
	}
	accept, err := e.store.Activity(jobs[0].ActivityID)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(accept.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	authID, _ := doc["result"].(string)
	if doc["type"] != "Accept" || !strings.HasPrefix(authID, testBase+"/authorizations/") {
		t.Fatalf("accept %s", accept.JSON)
	}
	path := strings.TrimPrefix(authID, testBase)

	r := e.get(t, path, "Accept", `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`)
	expect(t, r, http.StatusOK, typeActivityJSON)
	a := asDoc(t, r)
	if a["id"] != authID || a["type"] != "QuoteAuthorization" || a["attributedTo"] != testBase+"/@reports" ||
		a["interactingObject"] != aliceActor+"/statuses/7" || a["interactionTarget"] != testBase+"/posts/hello/en" {
		t.Errorf("authorization %s", r.body)
	}
	if v := r.Header.Get("Vary"); !strings.Contains(v, "Accept") {
		t.Errorf("Vary %q", v)
	}
	page := e.get(t, path, "Accept", browserAccept)
	if page.StatusCode != http.StatusSeeOther || page.Header.Get("Location") != testBase+"/posts/hello/en" {
		t.Errorf("browser: %d to %q", page.StatusCode, page.Header.Get("Location"))
	}

	if _, err := e.store.RevokeAuthorizations(aliceActor+"/statuses/7", aliceActor, testNow); err != nil {
		t.Fatal(err)
	}
	gone := e.get(t, path, "Accept", "application/activity+json")
	expect(t, gone, http.StatusGone, typeActivityJSON)
	if g := asDoc(t, gone); g["type"] != "Tombstone" || g["formerType"] != "QuoteAuthorization" || g["id"] != authID {
		t.Errorf("tombstone %s", gone.body)
	}
	if p := e.get(t, path, "Accept", browserAccept); p.StatusCode != http.StatusGone {
		t.Errorf("browser after revocation: %d", p.StatusCode)
	}
	unknown := e.get(t, "/authorizations/ffffffffffffffffffffffffffffffff", "Accept", "application/activity+json")
	expect(t, unknown, http.StatusNotFound, "application/json")
	if p := e.get(t, "/authorizations/ffffffffffffffffffffffffffffffff", "Accept", browserAccept); p.StatusCode != http.StatusNotFound {
		t.Errorf("browser, unknown: %d", p.StatusCode)
	}
	if _, err := e.store.Authorization(authID); err != nil {
		t.Error(err)
	}
}
