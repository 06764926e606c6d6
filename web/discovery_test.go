package web

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

type jrdBack struct {
	Subject string   `json:"subject"`
	Aliases []string `json:"aliases"`
	Links   []struct {
		Rel      string `json:"rel"`
		Type     string `json:"type"`
		Href     string `json:"href"`
		Template string `json:"template"`
	} `json:"links"`
}

func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: JSON does not decode into %T: %v\n%s", r.Request.URL, v, err, r.body)
	}
}

func TestWebFinger(t *testing.T) {
	e := newTestEnv(t)
	for _, resource := range []string{
		"acct:reports@crieur.example",
		"acct:Reports@Crieur.Example", // Mastodon compares case-insensitively
		"reports@crieur.example",
		"acct:@reports@crieur.example",
		testBase + "/@reports", // the actor URL
		testBase + "/",         // the home page
	} {
		// Both encodings: Mastodon sends the resource raw, GoToSocial encoded.
		for _, q := range []string{"resource=" + resource, "resource=" + url.QueryEscape(resource)} {
			r := e.get(t, "/.well-known/webfinger?"+q, "Accept", "application/jrd+json, application/json")
			expect(t, r, http.StatusOK, "application/jrd+json; charset=utf-8")
			if got := r.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("webfinger CORS header %q", got)
			}
			var j jrdBack
			decodeJSON(t, r, &j)
			if j.Subject != "acct:reports@crieur.example" {
				t.Errorf("%s: subject %q", q, j.Subject)
			}
			links := map[string]string{}
			types := map[string]string{}
			for _, l := range j.Links {
				links[l.Rel] = l.Href + l.Template
				types[l.Rel] = l.Type
			}
			if links["self"] != testBase+"/@reports" || types["self"] != "application/activity+json" {
				t.Errorf("%s: self link %q type %q", q, links["self"], types["self"])
			}
			if links[relProfilePage] != testBase+"/@reports" || types[relProfilePage] != "text/html" {
				t.Errorf("%s: profile page %q %q", q, links[relProfilePage], types[relProfilePage])
			}
			if links[relSubscribe] != testBase+"/authorize_interaction?uri={uri}" {
				t.Errorf("%s: subscribe template %q", q, links[relSubscribe])
			}
			if len(j.Aliases) == 0 || j.Aliases[0] != testBase+"/@reports" {
				t.Errorf("%s: aliases %v", q, j.Aliases)
			}
		}
	}
	for _, unknown := range []string{
		"acct:other@crieur.example", "acct:reports@elsewhere.example", "acct:reports@crieur.example@x",
		"https://elsewhere.example/@reports", testBase + "/@other", "reports",
	} {
		r := e.get(t, "/.well-known/webfinger?resource="+url.QueryEscape(unknown))
		expect(t, r, http.StatusNotFound, "application/json")
		contains(t, r, `"error"`)
	}
	for _, missing := range []string{"", "?resource=", "?resource=%20", "?other=1"} {
		r := e.get(t, "/.well-known/webfinger"+missing)
		expect(t, r, http.StatusBadRequest, "application/json")
	}
	// rel filters the links (RFC 7033 §4.3).
	r := e.get(t, "/.well-known/webfinger?resource=acct:reports@crieur.example&rel=self")
	var j jrdBack
	decodeJSON(t, r, &j)
	if len(j.Links) != 1 || j.Links[0].Rel != "self" {
		t.Errorf("rel=self: links %+v", j.Links)
	}
}

func TestWebFingerHostWithPort(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.BaseURL = "http://localhost:8080/" })
	r := e.get(t, "/.well-known/webfinger?resource=acct:reports@localhost:8080")
	expect(t, r, http.StatusOK, "application/jrd+json")
	var j jrdBack
	decodeJSON(t, r, &j)
	if j.Subject != "acct:reports@localhost:8080" || j.Links[0].Href != "http://localhost:8080/@reports" {
		t.Errorf("subject %q, self %q", j.Subject, j.Links[0].Href)
	}
	// The actor URL works too, and Mastodon, which drops ports, is answered.
	for _, res := range []string{"http://localhost:8080/@reports", "acct:reports@localhost"} {
		expect(t, e.get(t, "/.well-known/webfinger?resource="+url.QueryEscape(res)), http.StatusOK, "application/jrd+json")
	}
	expect(t, e.get(t, "/.well-known/webfinger?resource=acct:reports@localhost:9090"), http.StatusNotFound, "")
}

func TestHostMeta(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/.well-known/host-meta", "Accept", "application/xrd+xml, application/xml, text/xml")
	expect(t, r, http.StatusOK, "application/xrd+xml; charset=utf-8")
	var x struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []struct {
			Rel      string `xml:"rel,attr"`
			Template string `xml:"template,attr"`
		} `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 Link"`
	}
	if err := xml.Unmarshal([]byte(r.body), &x); err != nil {
		t.Fatalf("host-meta does not parse: %v\n%s", err, r.body)
	}
	if len(x.Links) != 1 || x.Links[0].Rel != "lrdd" ||
		x.Links[0].Template != testBase+"/.well-known/webfinger?resource={uri}" {
		t.Errorf("host-meta links: %+v", x.Links)
	}
	// The template leads to a working WebFinger answer.
	wf := strings.Replace(strings.TrimPrefix(x.Links[0].Template, testBase), "{uri}", url.QueryEscape("acct:reports@crieur.example"), 1)
	expect(t, e.get(t, wf), http.StatusOK, "application/jrd+json")

	for _, path := range []string{"/.well-known/host-meta.json", "/.well-known/host-meta"} {
		j := e.get(t, path, "Accept", "application/json")
		expect(t, j, http.StatusOK, "application/jrd+json")
		contains(t, j, `"rel":"lrdd"`, `"template":"https://crieur.example/.well-known/webfinger?resource={uri}"`)
	}
}

// nodeinfoBack lists every field the schema allows; unknown fields fail.
type nodeinfoBack struct {
	Version  string `json:"version"`
	Software struct {
		Name       string `json:"name"`
		Version    string `json:"version"`
		Repository string `json:"repository"`
		Homepage   string `json:"homepage"`
	} `json:"software"`
	Protocols []string `json:"protocols"`
	Services  struct {
		Inbound  []string `json:"inbound"`
		Outbound []string `json:"outbound"`
	} `json:"services"`
	OpenRegistrations *bool `json:"openRegistrations"`
	Usage             struct {
		Users struct {
			Total          *int `json:"total"`
			ActiveMonth    *int `json:"activeMonth"`
			ActiveHalfyear *int `json:"activeHalfyear"`
		} `json:"users"`
		LocalPosts *int `json:"localPosts"`
	} `json:"usage"`
	Metadata map[string]any `json:"metadata"`
}

func TestNodeInfo(t *testing.T) {
	e := newTestEnv(t)
	r := e.get(t, "/.well-known/nodeinfo")
	expect(t, r, http.StatusOK, "application/json")
	var links struct {
		Links []struct {
			Rel  string `json:"rel"`
			Href string `json:"href"`
		} `json:"links"`
	}
	decodeJSON(t, r, &links)
	if len(links.Links) != 2 {
		t.Fatalf("nodeinfo links: %+v", links.Links)
	}
	// GoToSocial takes the last schema-2 link and refuses the 2.1 profile.
	last := links.Links[len(links.Links)-1]
	if last.Rel != nodeinfo20Rel || last.Href != testBase+"/nodeinfo/2.0" {
		t.Errorf("last nodeinfo link %+v, want 2.0", last)
	}
	visible := len(e.lib.Visible(testNow))
	for _, l := range links.Links {
		version := l.Rel[strings.LastIndex(l.Rel, "/")+1:]
		doc := e.get(t, strings.TrimPrefix(l.Href, testBase))
		expect(t, doc, http.StatusOK, "application/json")
		if ct := doc.ctype(); !strings.Contains(ct, `profile="http://nodeinfo.diaspora.software/ns/schema/`+version+`#"`) {
			t.Errorf("nodeinfo %s content type %q", version, ct)
		}
		var n nodeinfoBack
		decodeJSON(t, doc, &n)
		if n.Version != version || n.Software.Name != "crieur" || n.Software.Version != "1.2.3" {
			t.Errorf("nodeinfo %s: version %q software %+v", version, n.Version, n.Software)
		}
		if (version == "2.1") != (n.Software.Repository != "") {
			t.Errorf("nodeinfo %s: repository %q (2.1 only)", version, n.Software.Repository)
		}
		if len(n.Protocols) != 1 || n.Protocols[0] != "activitypub" {
			t.Errorf("nodeinfo %s: protocols %v", version, n.Protocols)
		}
		if n.Services.Inbound == nil || len(n.Services.Inbound) != 0 ||
			strings.Join(n.Services.Outbound, ",") != "atom1.0,rss2.0" {
			t.Errorf("nodeinfo %s: services %+v", version, n.Services)
		}
		if n.OpenRegistrations == nil || *n.OpenRegistrations {
			t.Errorf("nodeinfo %s: openRegistrations must be false", version)
		}
		u := n.Usage.Users
		if u.Total == nil || *u.Total != 1 || u.ActiveMonth == nil || *u.ActiveMonth != 1 ||
			u.ActiveHalfyear == nil || *u.ActiveHalfyear != 1 {
			t.Errorf("nodeinfo %s: users %+v", version, u)
		}
		if n.Usage.LocalPosts == nil || *n.Usage.LocalPosts != visible {
			t.Errorf("nodeinfo %s: localPosts %v, want %d", version, n.Usage.LocalPosts, visible)
		}
		if n.Metadata["nodeName"] != "Framasoft reports" {
			t.Errorf("nodeinfo %s: metadata %v", version, n.Metadata)
		}
	}
}

func TestNodeinfoName(t *testing.T) {
	for in, want := range map[string]string{"crieur": "crieur", "Crieur Pro": "crieur-pro", "": "crieur", "ÄÖ": "crieur", "ünï": "n", "a_b.c": "a-b-c"} {
		if got := nodeinfoName(in); got != want {
			t.Errorf("nodeinfoName(%q) = %q, want %q", in, got, want)
		}
	}
}
