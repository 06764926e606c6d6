package web

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Link relations and profiles of the discovery documents.
const (
	relProfilePage = "http://webfinger.net/rel/profile-page"
	relAvatar      = "http://webfinger.net/rel/avatar"
	relSubscribe   = "http://ostatus.org/schema/1.0/subscribe"
	nodeinfo20Rel  = "http://nodeinfo.diaspora.software/ns/schema/2.0"
	nodeinfo21Rel  = "http://nodeinfo.diaspora.software/ns/schema/2.1"
	nsXRD          = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
)

// jrd is a WebFinger answer (RFC 7033).
type jrd struct {
	Subject string    `json:"subject"`
	Aliases []string  `json:"aliases,omitempty"`
	Links   []jrdLink `json:"links"`
}

type jrdLink struct {
	Rel      string `json:"rel"`
	Type     string `json:"type,omitempty"`
	Href     string `json:"href,omitempty"`
	Template string `json:"template,omitempty"`
}

// cors lets browser-side tools (remote-follow widgets, instance explorers)
// read the discovery documents, as Mastodon allows (INTEROP-DETAILS WF-11).
func cors(c *gin.Context) { c.Header("Access-Control-Allow-Origin", "*") }

// webfinger answers /.well-known/webfinger?resource=… for the bot: as
// acct:handle@host, handle@host, the actor URL or the profile URL.
func (s *server) webfinger(c *gin.Context) {
	cors(c)
	resource := strings.TrimSpace(c.Query("resource"))
	if resource == "" {
		s.jsonStatus(c, http.StatusBadRequest, "resource parameter missing", nil)
		return
	}
	if !s.isSelf(resource) {
		s.jsonStatus(c, http.StatusNotFound, "unknown resource", nil)
		return
	}
	links := []jrdLink{
		{Rel: "self", Type: "application/activity+json", Href: s.actorID},
		{Rel: relProfilePage, Type: "text/html", Href: s.actorID},
		{Rel: relAvatar, Type: s.cfg.AvatarType(), Href: s.cfg.AvatarURL()},
		{Rel: relSubscribe, Template: s.base + "/authorize_interaction?uri={uri}"},
		// FEP-3b86: crieur has no accounts to act from, so each intent
		// leads to the page that explains how to do it from one's own
		// server, naming what was asked about.
		{Rel: relIntentFollow, Template: s.base + "/authorize_interaction?uri={object}"},
		{Rel: relIntentObject, Template: s.base + "/authorize_interaction?uri={object}"},
		{Rel: relIntentCreate, Template: s.base + "/authorize_interaction?uri={inReplyTo}"},
		{Rel: relIntentLike, Template: s.base + "/authorize_interaction?uri={object}"},
		{Rel: relIntentAnnounce, Template: s.base + "/authorize_interaction?uri={object}"},
	}
	// RFC 7033 §4.3: with rel parameters, only the links asked for.
	if rels := c.QueryArray("rel"); len(rels) > 0 {
		var kept []jrdLink
		for _, l := range links {
			for _, r := range rels {
				if l.Rel == r {
					kept = append(kept, l)
					break
				}
			}
		}
		links = kept
	}
	if links == nil {
		links = []jrdLink{}
	}
	c.Header("Cache-Control", cacheDiscovery)
	writeJSON(c, http.StatusOK, typeJRD, jrd{
		Subject: "acct:" + s.acct,
		Aliases: []string{s.actorID, s.base + "/"},
		Links:   links,
	})
}

// isSelf reports whether a WebFinger resource names the bot. The user part
// and the host compare case-insensitively (as Mastodon does); the host may
// come with or without the port of BaseURL, since Mastodon drops ports.
func (s *server) isSelf(resource string) bool {
	switch {
	case resource == s.actorID, resource == s.base, resource == s.base+"/":
		return true
	case strings.HasPrefix(resource, "http://"), strings.HasPrefix(resource, "https://"):
		return false
	}
	acct := resource
	if len(acct) >= 5 && strings.EqualFold(acct[:5], "acct:") {
		acct = acct[5:]
	}
	acct = strings.TrimPrefix(acct, "@")
	user, host, ok := strings.Cut(acct, "@")
	if !ok || strings.Contains(host, "@") || !strings.EqualFold(user, s.cfg.Handle) {
		return false
	}
	hostname, _, _ := strings.Cut(s.host, ":")
	return strings.EqualFold(host, s.host) || strings.EqualFold(host, hostname)
}

// xrd is the host-meta document (RFC 6415).
type xrd struct {
	XMLName xml.Name  `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
	Links   []xrdLink `xml:"Link"`
}

type xrdLink struct {
	Rel      string `xml:"rel,attr"`
	Type     string `xml:"type,attr,omitempty"`
	Template string `xml:"template,attr"`
}

func (s *server) lrddTemplate() string {
	return s.base + "/.well-known/webfinger?resource={uri}"
}

// hostMeta serves the XRD form, or the JSON form to a client that asks
// for JSON and not XML.
func (s *server) hostMeta(c *gin.Context) {
	addVary(c, "Accept")
	if prefersJSONOverXML(c.Request.Header.Values("Accept")) {
		s.hostMetaJSON(c)
		return
	}
	cors(c)
	body, err := xml.Marshal(xrd{Links: []xrdLink{{Rel: "lrdd", Template: s.lrddTemplate()}}})
	if err != nil {
		s.jsonError(c, fmt.Errorf("web: encode host-meta: %w", err))
		return
	}
	c.Header("Cache-Control", cacheDiscovery)
	writeBody(c, http.StatusOK, typeXRD, append([]byte(xml.Header), append(body, '\n')...))
}

// hostMetaJSON serves /.well-known/host-meta.json (JRD form of host-meta).
func (s *server) hostMetaJSON(c *gin.Context) {
	cors(c)
	c.Header("Cache-Control", cacheDiscovery)
	writeJSON(c, http.StatusOK, typeJRD, struct {
		Links []jrdLink `json:"links"`
	}{Links: []jrdLink{{Rel: "lrdd", Template: s.lrddTemplate()}}})
}

// prefersJSONOverXML is the host-meta negotiation: JSON only when a JSON
// type is named and no XML type is; Mastodon asks for XRD/XML.
func prefersJSONOverXML(headers []string) bool {
	jsonAsked, xmlAsked := false, false
	for _, h := range headers {
		for _, rng := range splitOutsideQuotes(h, ',') {
			mt, params, ok := parseMediaRange(rng)
			if !ok {
				continue
			}
			if q, ok := parseQ(params["q"]); !ok || q == 0 {
				continue
			}
			switch {
			case strings.HasSuffix(mt, "/json") || strings.HasSuffix(mt, "+json"):
				jsonAsked = true
			case strings.HasSuffix(mt, "/xml") || strings.HasSuffix(mt, "+xml"):
				xmlAsked = true
			}
		}
	}
	return jsonAsked && !xmlAsked
}

// NodeInfo (https://nodeinfo.diaspora.software), schemas 2.0 and 2.1.
type nodeinfo struct {
	Version           string           `json:"version"`
	Software          nodeinfoSoftware `json:"software"`
	Protocols         []string         `json:"protocols"`
	Services          nodeinfoServices `json:"services"`
	OpenRegistrations bool             `json:"openRegistrations"`
	Usage             nodeinfoUsage    `json:"usage"`
	Metadata          nodeinfoMetadata `json:"metadata"`
}

type nodeinfoSoftware struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Repository string `json:"repository,omitempty"` // 2.1 only
	Homepage   string `json:"homepage,omitempty"`   // 2.1 only
}

type nodeinfoServices struct {
	Inbound  []string `json:"inbound"`
	Outbound []string `json:"outbound"`
}

type nodeinfoUsage struct {
	Users      nodeinfoUsers `json:"users"`
	LocalPosts int           `json:"localPosts"`
}

type nodeinfoUsers struct {
	Total          int `json:"total"`
	ActiveMonth    int `json:"activeMonth"`
	ActiveHalfyear int `json:"activeHalfyear"`
}

type nodeinfoMetadata struct {
	NodeName        string `json:"nodeName"`
	NodeDescription string `json:"nodeDescription,omitempty"`
}

// nodeinfoLinks serves /.well-known/nodeinfo. 2.1 is listed before 2.0:
// GoToSocial takes the last schema-2 link and refuses a 2.1 profile, so it
// reads 2.0; others pick the newest they know.
func (s *server) nodeinfoLinks(c *gin.Context) {
	cors(c)
	c.Header("Cache-Control", cacheDiscovery)
	writeJSON(c, http.StatusOK, typeJSON, struct {
		Links []jrdLink `json:"links"`
	}{Links: []jrdLink{
		{Rel: nodeinfo21Rel, Href: s.base + "/nodeinfo/2.1"},
		{Rel: nodeinfo20Rel, Href: s.base + "/nodeinfo/2.0"},
	}})
}

func (s *server) nodeinfo20(c *gin.Context) { s.serveNodeinfo(c, "2.0") }

func (s *server) nodeinfo21(c *gin.Context) { s.serveNodeinfo(c, "2.1") }

func (s *server) serveNodeinfo(c *gin.Context, version string) {
	count := 0
	if lib := s.library(); lib != nil {
		count = len(lib.Visible(s.now()))
	}
	sw := nodeinfoSoftware{Name: nodeinfoName(s.cfg.Software), Version: s.cfg.Version}
	if version == "2.1" {
		sw.Repository = s.cfg.Repository
		sw.Homepage = s.cfg.Homepage
	}
	doc := nodeinfo{
		Version:   version,
		Software:  sw,
		Protocols: []string{"activitypub"},
		Services:  nodeinfoServices{Inbound: []string{}, Outbound: []string{"atom1.0", "rss2.0"}},
		// One bot, always active: it is the only account there will be.
		Usage:    nodeinfoUsage{Users: nodeinfoUsers{Total: 1, ActiveMonth: 1, ActiveHalfyear: 1}, LocalPosts: count},
		Metadata: nodeinfoMetadata{NodeName: s.cfg.DisplayName, NodeDescription: strings.Join(strings.Fields(s.cfg.Bio), " ")},
	}
	cors(c)
	c.Header("Cache-Control", cacheDiscovery)
	writeJSON(c, http.StatusOK,
		`application/json; charset=utf-8; profile="http://nodeinfo.diaspora.software/ns/schema/`+version+`#"`, doc)
}

// nodeinfoName fits the software name to the schema's ^[a-z0-9-]+$.
func nodeinfoName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == ' ' || r == '_' || r == '.':
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "crieur"
	}
	return b.String()
}
