package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/transport"
)

// standInHost is the visitor's server in tests: a name, as people type
// it, answered by a loopback stand-in.
const standInHost = "visitor.test"

// standInHandler answers as the visitor's server would: WebFinger for a
// few accounts that each advertise a different set of pages, NodeInfo
// naming Mastodon, and the pages themselves (for the browser).
func standInHandler() http.Handler {
	mux := http.NewServeMux()
	base := "https://" + standInHost
	mux.HandleFunc("/.well-known/webfinger", func(w http.ResponseWriter, r *http.Request) {
		var links []jrdLink
		switch r.URL.Query().Get("resource") {
		case "acct:alice@" + standInHost: // FEP-3b86 and the subscribe template
			links = []jrdLink{
				{Rel: relSubscribe, Template: base + "/authorize_interaction?uri={uri}"},
				{Rel: relIntentFollow, Template: base + "/intents/follow?object={object}"},
				{Rel: relIntentCreate, Template: base + "/intents/create?inReplyTo={inReplyTo}{&content}"},
				{Rel: relIntentLike, Template: base + "/intents/like?object={object}"},
				{Rel: relIntentAnnounce, Template: base + "/intents/announce?object={object}"},
			}
		case "acct:bob@" + standInHost: // Mastodon: the subscribe template only
			links = []jrdLink{{Rel: relSubscribe, Template: base + "/authorize_interaction?uri={uri}"}}
		case "acct:gts@" + standInHost: // GoToSocial: no page at all
			links = []jrdLink{{Rel: "self", Type: "application/activity+json", Href: base + "/users/gts"}}
		case "acct:evil@" + standInHost: // a page on another host
			links = []jrdLink{{Rel: relSubscribe, Template: "https://elsewhere.example/authorize_interaction?uri={uri}"}}
		case "acct:plain@" + standInHost: // a page over http
			links = []jrdLink{{Rel: relSubscribe, Template: "http://" + standInHost + "/authorize_interaction?uri={uri}"}}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", typeJRD)
		body, _ := encodeJSON(jrd{Subject: r.URL.Query().Get("resource"), Links: links})
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/.well-known/nodeinfo", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"links":[{"rel":%q,"href":%q}]}`, nodeinfo20Rel, base+"/nodeinfo/2.0")
	})
	mux.HandleFunc("/nodeinfo/2.0", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"version":"2.0","software":{"name":"mastodon","version":"4.3.0"}}`))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprintf(w, "<!DOCTYPE html><title>stand-in</title><h1>Stand-in page %s</h1>", r.URL.Path)
	})
	return mux
}

// standInFetch is the visitor fetcher tests inject: the real guarded
// client, with the loopback allowance tests only get, and a map from the
// names tests type to where they are served: visitor.test to the
// stand-in, private.test to a private address (refused by the guard
// before anything is dialled), dead.test to a closed loopback port.
// Other names are never looked up.
func standInFetch(t testing.TB, standIn string) FetchJSONFunc {
	t.Helper()
	client := transport.NewClient(transport.ClientConfig{UserAgent: "crieur-test", AllowPrefixes: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	hosts := map[string]string{standInHost: standIn, "private.test": "http://10.1.2.3", "dead.test": dead}
	return func(ctx context.Context, raw string) ([]byte, string, error) {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, "", err
		}
		to, ok := hosts[u.Hostname()]
		if !ok {
			return nil, "", fmt.Errorf("test: %s is not served here", u.Hostname())
		}
		f, err := client.FetchJSON(ctx, to+u.RequestURI())
		if transport.IsRefused(err) {
			return nil, "", fmt.Errorf("%w: %w", federation.ErrForbidden, err)
		}
		if err != nil {
			return nil, "", err
		}
		return f.Body, f.URL, nil
	}
}

// testBlocked is the admin's blocklist in tests.
func testBlocked(host string) bool {
	return host == "blocked.test" || strings.HasSuffix(host, ".blocked.test")
}

// newVisitEnv is a test server with the visitor's fetcher and blocks.
func newVisitEnv(t *testing.T) *testEnv {
	t.Helper()
	standIn := httptest.NewServer(standInHandler())
	t.Cleanup(standIn.Close)
	fetch := standInFetch(t, standIn.URL)
	return newTestEnvDeps(t, "testdata/posts", func(d *Deps) {
		d.FetchJSON = fetch
		d.BlockedHost = testBlocked
	})
}

func TestParseHandle(t *testing.T) {
	for in, want := range map[string]remoteHandle{
		"@alice@social.example":       {"alice", "social.example"},
		"alice@Social.Example":        {"alice", "social.example"},
		" acct:alice@social.example ": {"alice", "social.example"},
		"social.example":              {"", "social.example"},
		"social.example.":             {"", "social.example"},
		"@a.b-c_d@münchen.example":    {"a.b-c_d", "xn--mnchen-3ya.example"},
		"bob@日本.example":              {"bob", "xn--wgv71a.example"},
	} {
		got, err := parseHandle(in)
		if err != nil || got != want {
			t.Errorf("parseHandle(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, key := range map[string]string{
		"":                                   "visit_err_empty",
		"https://social.example/@alice":      "visit_err_path",
		"alice@social.example/admin":         "visit_err_path",
		"social.example?x=1":                 "visit_err_path",
		`alice@social.example\x`:             "visit_err_path",
		"alice@social.example:8443":          "visit_err_port",
		"alice@127.0.0.1":                    "visit_err_ip",
		"alice@[::1]":                        "visit_err_ip",
		"10.0.0.1":                           "visit_err_ip",
		"alice@127.1":                        "visit_err_ip",
		"alice@localhost":                    "visit_err_private",
		"alice@printer.local":                "visit_err_private",
		"alice@intranet":                     "visit_err_private",
		"alice@vault.internal":               "visit_err_private",
		"alice@раураl.com":                   "visit_err_lookalike", // Cyrillic with Latin
		"alice@аррӏе.com":                    "visit_err_lookalike", // all Cyrillic look-alikes
		"alice@οκο.com":                      "visit_err_lookalike", // all Greek look-alikes
		"<script>alert(1)</script>":          "visit_err_script",
		"javascript:alert(1)":                "visit_err_script",
		`alice@social.example"onmouseover=x`: "visit_err_script",
		"alice@@social.example":              "visit_err_bad",
		"al ice@social.example":              "visit_err_bad",
		"alice@social\u200b.example":         "visit_err_bad",
		"al!ce@social.example":               "visit_err_bad",
		"alice@bad_host.example":             "visit_err_bad",
		strings.Repeat("a", 400):             "visit_err_bad",
	} {
		_, err := parseHandle(in)
		var ve *visitError
		if !errors.As(err, &ve) || ve.key != key {
			t.Errorf("parseHandle(%q): %v, want %s", in, err, key)
		}
	}
}

func TestExpandTemplateAndTargetHost(t *testing.T) {
	got := expandTemplate("https://s.example/share?inReplyTo={inReplyTo}{&content}", "inReplyTo", "https://crieur.example/posts/a/en")
	if got != "https://s.example/share?inReplyTo=https%3A%2F%2Fcrieur.example%2Fposts%2Fa%2Fen" {
		t.Errorf("expand: %s", got)
	}
	if got := expandTemplate("https://s.example/x?a={uri", "uri", "v"); got != "https://s.example/x?a={uri" {
		t.Errorf("unclosed expression: %s", got)
	}
	for raw, ok := range map[string]bool{
		"https://s.example/authorize_interaction?uri=x": true,
		"https://S.EXAMPLE/x":                           true,
		"http://s.example/x":                            false,
		"https://s.example:8443/x":                      false,
		"https://user@s.example/x":                      false,
		"https://s.example.evil/x":                      false,
		"https://evil.example/x?s.example":              false,
		"javascript:alert(1)//s.example":                false,
		"//s.example/x":                                 false,
	} {
		if _, err := checkTarget(raw, "s.example"); (err == nil) != ok {
			t.Errorf("checkTarget(%q): %v, want ok=%v", raw, err, ok)
		}
	}
}

// postVisit submits the visit form.
func postVisit(t *testing.T, e *testEnv, handle, action, object string) response {
	t.Helper()
	form := url.Values{"handle": {handle}, "action": {action}, "object": {object}}.Encode()
	return e.do(t, http.MethodPost, visitPath, strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded")
}

func TestVisitRedirectsToTheVisitorsServer(t *testing.T) {
	e := newVisitEnv(t)
	actor := testBase + "/@" + testHandle
	note := testBase + "/posts/hello/en"
	for _, tc := range []struct{ handle, action, object, want string }{
		{"@alice@visitor.test", "follow", "", "https://visitor.test/intents/follow?object=" + url.QueryEscape(actor)},
		{"alice@visitor.test", "reply", note, "https://visitor.test/intents/create?inReplyTo=" + url.QueryEscape(note)},
		{"alice@visitor.test", "like", note, "https://visitor.test/intents/like?object=" + url.QueryEscape(note)},
		{"alice@visitor.test", "boost", note, "https://visitor.test/intents/announce?object=" + url.QueryEscape(note)},
		{"bob@visitor.test", "follow", "", "https://visitor.test/authorize_interaction?uri=" + url.QueryEscape(actor)},
		{"bob@visitor.test", "reply", note, "https://visitor.test/authorize_interaction?uri=" + url.QueryEscape(note)},
		// A server name alone: NodeInfo says Mastodon.
		{"visitor.test", "like", note, "https://visitor.test/authorize_interaction?uri=" + url.QueryEscape(note)},
	} {
		r := postVisit(t, e, tc.handle, tc.action, tc.object)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != tc.want {
			t.Errorf("%s %s: %d %q, want 303 %q", tc.handle, tc.action, r.StatusCode, r.Header.Get("Location"), tc.want)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP on the redirect: %q", csp)
		}
	}
}

func TestVisitRefusals(t *testing.T) {
	e := newVisitEnv(t)
	note := testBase + "/posts/hello/en"
	for _, tc := range []struct {
		handle, action string
		status         int
		key            string
		copyText       string
	}{
		{"alice@social.example/x", "follow", 400, "visit_err_path", "@reports@crieur.example"},
		{"alice@127.0.0.1", "reply", 400, "visit_err_ip", note},
		{"alice@blocked.test", "follow", 403, "visit_err_blocked", "@reports@crieur.example"},
		{"alice@sub.blocked.test", "like", 403, "visit_err_blocked", note},
		{"alice@private.test", "follow", 403, "visit_err_private", "@reports@crieur.example"},
		{"alice@dead.test", "reply", 200, "visit_err_dead", note},
		{"nobody@visitor.test", "follow", 200, "visit_err_dead", "@reports@crieur.example"},
		{"gts@visitor.test", "reply", 200, "visit_err_nopage", note},
		{"evil@visitor.test", "follow", 502, "visit_err_badpage", "@reports@crieur.example"},
		{"plain@visitor.test", "follow", 502, "visit_err_badpage", "@reports@crieur.example"},
		{"reports@crieur.example", "follow", 400, "visit_err_self", "@reports@crieur.example"},
		{"<script>alert(1)</script>", "follow", 400, "visit_err_script", "@reports@crieur.example"},
	} {
		r := postVisit(t, e, tc.handle, tc.action, note)
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.handle, r.StatusCode, tc.status)
		}
		if !strings.Contains(r.body, htmlEscape(message("en", tc.key))) {
			t.Errorf("%s: page lacks the message %s", tc.handle, tc.key)
		}
		if !strings.Contains(r.body, `value="`+tc.copyText+`"`) {
			t.Errorf("%s: page lacks the address to copy %q", tc.handle, tc.copyText)
		}
		if strings.Contains(r.body, "<script>") {
			t.Errorf("%s: the typed text came back unescaped", tc.handle)
		}
		if r.Header.Get("Location") != "" {
			t.Errorf("%s: redirected to %s", tc.handle, r.Header.Get("Location"))
		}
	}
	// A form about something that is not one of our articles.
	for _, object := range []string{"https://elsewhere.example/posts/a/en", testBase + "/posts/nope/en", testBase + "/posts/future/en"} {
		if r := postVisit(t, e, "alice@visitor.test", "reply", object); r.StatusCode != http.StatusBadRequest {
			t.Errorf("object %s: %d, want 400", object, r.StatusCode)
		}
	}
	if r := postVisit(t, e, "alice@visitor.test", "delete", note); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown action: %d", r.StatusCode)
	}
}

func TestVisitWithoutFetcherShowsTheAddress(t *testing.T) {
	e := newTestEnv(t)
	r := postVisit(t, e, "alice@visitor.test", "follow", "")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, message("en", "visit_err_nopage")) {
		t.Errorf("no fetcher: %d", r.StatusCode)
	}
}

func TestFormPagesAllowTheirRedirect(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"/", "/posts/hello/en", visitPath} {
		r := e.do(t, http.MethodGet, p, nil)
		csp := r.Header.Get("Content-Security-Policy")
		if r.StatusCode != 200 || !strings.Contains(csp, "form-action 'self' https:;") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: %d CSP %q", p, r.StatusCode, csp)
		}
		if !strings.Contains(r.body, `<form class="visit" method="post" action="/visit">`) {
			t.Errorf("%s: no visit form", p)
		}
	}
	if csp := e.do(t, http.MethodGet, "/tags", nil).Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
		t.Errorf("a page without the form keeps form-action 'self': %q", csp)
	}
}

func TestWebFingerAdvertisesIntents(t *testing.T) {
	e := newTestEnv(t)
	r := e.do(t, http.MethodGet, "/.well-known/webfinger?resource=acct:reports@crieur.example", nil)
	for _, want := range []string{
		`"rel":"` + relIntentFollow + `","template":"` + testBase + `/authorize_interaction?uri={object}"`,
		`"rel":"` + relIntentCreate + `","template":"` + testBase + `/authorize_interaction?uri={inReplyTo}"`,
		`"rel":"` + relIntentObject + `"`, `"rel":"` + relIntentLike + `"`, `"rel":"` + relIntentAnnounce + `"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("webfinger lacks %s:\n%s", want, r.body)
		}
	}
}

// htmlEscape is what html/template makes of a message in a text node.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func TestVisitSplitDomain(t *testing.T) {
	// Accounts named @alice@example-domain.test, served by
	// social.example-domain.test: WebFinger on the domain redirects there.
	fetch := func(_ context.Context, raw string) ([]byte, string, error) {
		body := `{"subject":"acct:alice@example-domain.test","links":[{"rel":"` + relSubscribe +
			`","template":"https://social.example-domain.test/authorize_interaction?uri={uri}"}]}`
		return []byte(body), "https://social.example-domain.test/.well-known/webfinger?resource=x", nil
	}
	s := newServer(Config{BaseURL: testBase, Handle: testHandle}, Deps{FetchJSON: fetch})
	got, err := s.visitFor(context.Background(), "alice@example-domain.test", actionFollow, testBase+"/@reports")
	if want := "https://social.example-domain.test/authorize_interaction?uri=" + url.QueryEscape(testBase+"/@reports"); err != nil || got != want {
		t.Errorf("split domain: %q, %v; want %q", got, err, want)
	}
	for final, want := range map[string]string{
		"https://social.example/x":   "social.example",
		"https://Social.Example/x":   "social.example",
		"http://social.example/x":    "",
		"https://social.example:8/x": "",
		"https://203.0.113.7/x":      "",
		"":                           "",
	} {
		if got := answeredBy(final); got != want {
			t.Errorf("answeredBy(%q) = %q, want %q", final, got, want)
		}
	}
}

func TestVisitLookupsAreBounded(t *testing.T) {
	calls := 0
	fetch := func(context.Context, string) ([]byte, string, error) { calls++; return nil, "", errors.New("down") }
	s := newServer(Config{BaseURL: testBase, Handle: testHandle}, Deps{FetchJSON: fetch})
	for range visitLookups {
		s.visitSlots <- struct{}{}
	}
	_, err := s.visitFor(context.Background(), "alice@social.example", actionFollow, testBase+"/@reports")
	var ve *visitError
	if !errors.As(err, &ve) || ve.key != "visit_err_busy" || ve.status != http.StatusTooManyRequests || calls != 0 {
		t.Errorf("all slots taken: %v after %d fetches, want visit_err_busy and none", err, calls)
	}
	<-s.visitSlots
	if _, err := s.visitFor(context.Background(), "alice@social.example", actionFollow, testBase+"/@reports"); !errors.As(err, &ve) || ve.key != "visit_err_dead" || calls != 1 {
		t.Errorf("a slot free: %v after %d fetches", err, calls)
	}
}
