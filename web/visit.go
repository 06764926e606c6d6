package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/idna"

	"github.com/crieur/crieur/federation"
)

// The visitor's way in: a form on the profile and on each article takes a
// fediverse address (or a server name), finds the visitor's own server's
// page for following the bot or interacting with the Note, and answers
// with a 303 there. Nothing runs in the browser.

// FEP-3b86 Activity Intents link relations.
const (
	relIntentFollow   = "https://w3id.org/fep/3b86/Follow"
	relIntentCreate   = "https://w3id.org/fep/3b86/Create"
	relIntentLike     = "https://w3id.org/fep/3b86/Like"
	relIntentAnnounce = "https://w3id.org/fep/3b86/Announce"
	relIntentObject   = "https://w3id.org/fep/3b86/Object"
)

const (
	// visitPath is the form's target.
	visitPath = "/visit"
	// visitMaxForm bounds the form body: an address and a URL.
	visitMaxForm = 4 << 10
	// maxHandle bounds what is typed (RFC 5321's address length).
	maxHandle = 320
	// visitLookups is how many visitors' servers are looked up at once:
	// the form makes crieur fetch from hosts anyone names, so it must not
	// become a way to make crieur send many requests.
	visitLookups = 8
)

// FetchJSONFunc fetches a small public JSON document (WebFinger, NodeInfo)
// through the guarded client (transport.Client.FetchJSON in cmd/crieur):
// its body and the URL that answered. An error from the address guard
// (private or reserved address, blocked host) wraps federation.ErrForbidden.
type FetchJSONFunc func(ctx context.Context, rawURL string) (body []byte, finalURL string, err error)

// visitError is a refusal the visitor reads: a message key and a status.
type visitError struct {
	key    string
	status int
	err    error // the cause, for the log; may be nil
}

func (e *visitError) Error() string {
	if e.err != nil {
		return "web: visit: " + e.key + ": " + e.err.Error()
	}
	return "web: visit: " + e.key
}

func (e *visitError) Unwrap() error { return e.err }

func refuse(key string) *visitError { return &visitError{key: key, status: http.StatusBadRequest} }

// remoteHandle is a parsed visitor address: user may be empty (a server
// name alone); host is lower-case ASCII (IDNA A-labels).
type remoteHandle struct {
	user, host string
}

// parseHandle reads what the visitor typed: @user@server, user@server,
// acct:user@server or server. It refuses what is not a plain public host
// name, each case with its own message.
func parseHandle(in string) (remoteHandle, error) {
	in = strings.TrimSpace(in)
	switch {
	case in == "":
		return remoteHandle{}, refuse("visit_err_empty")
	case len(in) > maxHandle:
		return remoteHandle{}, refuse("visit_err_bad")
	case strings.ContainsAny(in, "<>\"'`(){};") || strings.Contains(strings.ToLower(in), "script:"):
		return remoteHandle{}, refuse("visit_err_script")
	}
	for _, r := range in {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u200b' || r == '\ufeff' {
			return remoteHandle{}, refuse("visit_err_bad")
		}
	}
	lower := strings.ToLower(in)
	if strings.HasPrefix(lower, "http:") || strings.HasPrefix(lower, "https:") || strings.ContainsAny(in, "/\\?#") {
		return remoteHandle{}, refuse("visit_err_path")
	}
	if strings.HasPrefix(lower, "acct:") {
		in = in[len("acct:"):]
	}
	in = strings.TrimPrefix(in, "@")
	if strings.ContainsAny(in, "[]") {
		return remoteHandle{}, refuse("visit_err_ip")
	}
	var h remoteHandle
	host := in
	if user, rest, ok := strings.Cut(in, "@"); ok {
		h.user, host = user, rest
		if !plainUser(user) || strings.Contains(rest, "@") {
			return remoteHandle{}, refuse("visit_err_bad")
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return remoteHandle{}, refuse("visit_err_ip")
	}
	if strings.Contains(host, ":") {
		return remoteHandle{}, refuse("visit_err_port")
	}
	ascii, err := asciiHost(host)
	if err != nil {
		return remoteHandle{}, err
	}
	h.host = ascii
	return h, nil
}

// plainUser accepts the user names fediverse servers give out: ASCII
// letters, digits, '_', '.', '-'.
func plainUser(u string) bool {
	if u == "" || len(u) > 64 {
		return false
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// hostProfile is UTS #46 for look-up, with the bidi and label rules and
// strict host names (no '_' or other punctuation).
var hostProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.ValidateLabels(true),
	idna.StrictDomainName(true), idna.Transitional(false))

// localSuffixes name hosts that are never a public server.
var localSuffixes = []string{".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp", ".private", ".onion"}

// asciiHost turns a typed server name into its lower-case A-label form.
// A non-ASCII name is accepted only when each label is written in one
// script (Latin may go with Han, Hiragana, Katakana or Hangul, as in
// browsers) and a label in Cyrillic or Greek is not made only of letters
// that look like Latin ones: the two ways a look-alike of a known server
// is built.
func asciiHost(host string) (string, error) {
	host = strings.TrimSuffix(host, ".")
	ascii, err := hostProfile.ToASCII(host)
	if err != nil || ascii == "" || len(ascii) > 253 {
		return "", &visitError{key: "visit_err_bad", status: http.StatusBadRequest, err: err}
	}
	ascii = strings.ToLower(ascii)
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 || ascii == "localhost" {
		return "", refuse("visit_err_private")
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" || strings.HasPrefix(tld, "0x") {
		// 127.1, 0x7f.1: numeric forms the resolver reads as addresses.
		return "", refuse("visit_err_ip")
	}
	for _, suf := range localSuffixes {
		if strings.HasSuffix("."+ascii, suf) {
			return "", refuse("visit_err_private")
		}
	}
	uni, err := hostProfile.ToUnicode(ascii)
	if err != nil {
		return "", &visitError{key: "visit_err_bad", status: http.StatusBadRequest, err: err}
	}
	for _, label := range strings.Split(uni, ".") {
		if lookalikeLabel(label) {
			return "", refuse("visit_err_lookalike")
		}
	}
	return ascii, nil
}

// scripts are the scripts a label's letters are sorted into.
var scripts = []struct {
	name  string
	table *unicode.RangeTable
}{
	{"Latin", unicode.Latin}, {"Cyrillic", unicode.Cyrillic}, {"Greek", unicode.Greek},
	{"Armenian", unicode.Armenian}, {"Georgian", unicode.Georgian}, {"Arabic", unicode.Arabic},
	{"Hebrew", unicode.Hebrew}, {"Han", unicode.Han}, {"Hiragana", unicode.Hiragana},
	{"Katakana", unicode.Katakana}, {"Hangul", unicode.Hangul}, {"Thai", unicode.Thai},
	{"Devanagari", unicode.Devanagari}, {"Cherokee", unicode.Cherokee},
}

// latinLookalikes are Cyrillic and Greek lower-case letters drawn like
// Latin ones.
const latinLookalikes = "аеорсухіјѕһԁԛԝӏвкмнтьαεικνορτυχ"

// lookalikeLabel reports a label mixing scripts (other than Latin with
// the East Asian ones), or a Cyrillic or Greek label made only of Latin
// look-alikes ("аррӏе").
func lookalikeLabel(label string) bool {
	seen := map[string]bool{}
	letters, alike := 0, 0
	for _, r := range label {
		if !unicode.IsLetter(r) {
			continue
		}
		letters++
		name := "Other"
		for _, sc := range scripts {
			if unicode.Is(sc.table, r) {
				name = sc.name
				break
			}
		}
		seen[name] = true
		if strings.ContainsRune(latinLookalikes, r) {
			alike++
		}
	}
	delete(seen, "Latin")
	eastAsian := seen["Han"] || seen["Hiragana"] || seen["Katakana"] || seen["Hangul"]
	others := len(seen)
	if eastAsian {
		for _, n := range []string{"Han", "Hiragana", "Katakana", "Hangul"} {
			delete(seen, n)
		}
		others = len(seen)
		if others == 0 {
			return false
		}
	}
	latinToo := false
	for _, r := range label {
		if r < unicode.MaxASCII && unicode.IsLetter(r) {
			latinToo = true
			break
		}
	}
	switch {
	case others > 1, others == 1 && latinToo, others == 1 && eastAsian:
		return true
	case (seen["Cyrillic"] || seen["Greek"]) && letters > 0 && alike == letters:
		return true
	}
	return false
}

// visitAction is what the visitor wants to do on their server.
type visitAction string

const (
	actionFollow visitAction = "follow"
	actionReply  visitAction = "reply"
	actionLike   visitAction = "like"
	actionBoost  visitAction = "boost"
)

// intentRels are the FEP-3b86 links to try for an action, best first, with
// the template variable that carries our URL; the subscribe template comes
// last for every action (Mastodon, Akkoma/Pleroma and Misskey resolve an
// account or a post from it).
func intentRels(a visitAction) [][2]string {
	var rels [][2]string
	switch a {
	case actionFollow:
		rels = [][2]string{{relIntentFollow, "object"}}
	case actionReply:
		rels = [][2]string{{relIntentCreate, "inReplyTo"}, {relIntentObject, "object"}}
	case actionLike:
		rels = [][2]string{{relIntentLike, "object"}, {relIntentObject, "object"}}
	case actionBoost:
		rels = [][2]string{{relIntentAnnounce, "object"}, {relIntentObject, "object"}}
	}
	return append(rels, [2]string{relSubscribe, "uri"})
}

// expandTemplate fills a WebFinger link template (RFC 6570 simple
// expressions): the named variable gets value, query-escaped; any other
// expression is dropped, as an undefined variable is.
func expandTemplate(tmpl, name, value string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		if tmpl[i+1:i+j] == name {
			b.WriteString(url.QueryEscape(value))
		}
		tmpl = tmpl[i+j+1:]
	}
}

// checkTarget accepts a page on the visitor's own server only: https, one
// of hosts (the host typed, and the one its WebFinger redirected to, for
// a server whose accounts are named after another domain), no port, no
// credentials. A server that points elsewhere could send the visitor
// anywhere under crieur's name.
func checkTarget(raw string, hosts ...string) (string, error) {
	u, err := url.Parse(raw)
	if err == nil && u.Scheme == "https" && u.User == nil && u.Port() == "" {
		for _, h := range hosts {
			if h != "" && strings.EqualFold(u.Hostname(), h) {
				return u.String(), nil
			}
		}
	}
	return "", &visitError{key: "visit_err_badpage", status: http.StatusBadGateway,
		err: fmt.Errorf("template points at %q, not https://%s", raw, strings.Join(hosts, " or https://"))}
}

// answeredBy is the host that served a WebFinger answer after redirects,
// when it is an https host name (not an address): the domain delegated its
// accounts to it. "" otherwise.
func answeredBy(finalURL string) string {
	u, err := url.Parse(finalURL)
	if err != nil || u.Scheme != "https" || u.Port() != "" {
		return ""
	}
	if _, err := netip.ParseAddr(u.Hostname()); err != nil && u.Hostname() != "" {
		return strings.ToLower(u.Hostname())
	}
	return ""
}

// visitTarget finds the page of the visitor's server for action on
// object (the actor for a follow, a Note otherwise).
func (s *server) visitTarget(ctx context.Context, h remoteHandle, action visitAction, object string) (string, error) {
	if s.fetchJSON == nil {
		return "", &visitError{key: "visit_err_nopage", status: http.StatusOK}
	}
	if h.user == "" {
		return s.visitByServer(ctx, h.host, object)
	}
	resource := "acct:" + h.user + "@" + h.host
	body, final, err := s.fetchJSON(ctx, "https://"+h.host+"/.well-known/webfinger?"+url.Values{"resource": {resource}}.Encode())
	if err != nil {
		return "", fetchRefusal(err)
	}
	var doc jrd
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", &visitError{key: "visit_err_dead", status: http.StatusOK, err: fmt.Errorf("decode webfinger of %s: %w", h.host, err)}
	}
	for _, want := range intentRels(action) {
		for _, l := range doc.Links {
			if l.Rel == want[0] && l.Template != "" {
				return checkTarget(expandTemplate(l.Template, want[1], object), h.host, answeredBy(final))
			}
		}
	}
	return "", &visitError{key: "visit_err_nopage", status: http.StatusOK}
}

// visitByServer handles a server name alone: there is no account to ask
// WebFinger about, so NodeInfo names the software, and the software's
// known page is used: Mastodon and its forks /authorize_interaction?uri=,
// Akkoma and Pleroma /ostatus_subscribe?acct=, Misskey and its forks
// /authorize-follow?acct= (which opens a post too). GoToSocial has no such
// page; other software gets asked for the full address.
func (s *server) visitByServer(ctx context.Context, host, object string) (string, error) {
	body, _, err := s.fetchJSON(ctx, "https://"+host+"/.well-known/nodeinfo")
	if err != nil {
		return "", fetchRefusal(err)
	}
	var links struct {
		Links []jrdLink `json:"links"`
	}
	if err := json.Unmarshal(body, &links); err != nil {
		return "", &visitError{key: "visit_err_needhandle", status: http.StatusOK, err: fmt.Errorf("decode nodeinfo links of %s: %w", host, err)}
	}
	href := ""
	for _, l := range links.Links {
		if strings.HasPrefix(l.Rel, "http://nodeinfo.diaspora.software/ns/schema/2.") {
			href = l.Href
		}
	}
	if u, err := url.Parse(href); err != nil || u.Scheme != "https" || !strings.EqualFold(u.Hostname(), host) {
		return "", &visitError{key: "visit_err_needhandle", status: http.StatusOK, err: fmt.Errorf("nodeinfo of %s at %q", host, href)}
	}
	body, _, err = s.fetchJSON(ctx, href)
	if err != nil {
		return "", fetchRefusal(err)
	}
	var ni struct {
		Software struct {
			Name string `json:"name"`
		} `json:"software"`
	}
	if err := json.Unmarshal(body, &ni); err != nil {
		return "", &visitError{key: "visit_err_needhandle", status: http.StatusOK, err: fmt.Errorf("decode nodeinfo of %s: %w", host, err)}
	}
	q := url.QueryEscape(object)
	switch strings.ToLower(ni.Software.Name) {
	case "mastodon", "hometown", "glitchsoc", "fedibird", "kmyblue":
		return "https://" + host + "/authorize_interaction?uri=" + q, nil
	case "akkoma", "pleroma":
		return "https://" + host + "/ostatus_subscribe?acct=" + q, nil
	case "misskey", "sharkey", "firefish", "iceshrimp", "cherrypick", "foundkey":
		return "https://" + host + "/authorize-follow?acct=" + q, nil
	case "gotosocial":
		return "", &visitError{key: "visit_err_nopage", status: http.StatusOK}
	}
	return "", &visitError{key: "visit_err_needhandle", status: http.StatusOK}
}

// fetchRefusal turns a failed fetch into what the visitor reads: the
// guard's refusal (a private address, a blocked host) or a dead server.
func fetchRefusal(err error) error {
	if errors.Is(err, federation.ErrForbidden) {
		return &visitError{key: "visit_err_private", status: http.StatusForbidden, err: err}
	}
	return &visitError{key: "visit_err_dead", status: http.StatusOK, err: err}
}

// visitView is what the visit form and its answer page show.
type visitView struct {
	Action  string // "" on the profile's form
	Object  string // our URL the action is about
	Handle  string // what was typed, shown again
	Message string // a refusal, translated
	Copy    string // what to paste in one's app instead
}

// visitObject checks the form's object: the actor for a follow, one of
// our visible articles otherwise; it returns the URL to hand over.
func (s *server) visitObject(action visitAction, object string) (string, bool) {
	if action == actionFollow {
		return s.actorID, true
	}
	rest, ok := strings.CutPrefix(object, s.base+"/posts/")
	if !ok {
		return "", false
	}
	slug, lang, ok := strings.Cut(rest, "/")
	lib := s.library()
	if !ok || lib == nil {
		return "", false
	}
	slug, err1 := url.PathUnescape(slug)
	lang, err2 := url.PathUnescape(lang)
	if err1 != nil || err2 != nil {
		return "", false
	}
	p, ok := lib.Get(slug, lang)
	if !ok || p.Date.After(s.now()) {
		return "", false
	}
	return s.base + postURL(p), true
}

// visit is POST /visit: the form's answer, a 303 to the visitor's server,
// or the page again with a message and the address to copy.
func (s *server) visit(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, visitMaxForm)
	if err := c.Request.ParseForm(); err != nil {
		s.htmlError(c, http.StatusBadRequest, fmt.Errorf("web: visit: read form: %w", err))
		return
	}
	action := visitAction(c.Request.PostForm.Get("action"))
	switch action {
	case actionFollow, actionReply, actionLike, actionBoost:
	default:
		s.htmlError(c, http.StatusBadRequest, nil)
		return
	}
	object, ok := s.visitObject(action, c.Request.PostForm.Get("object"))
	if !ok {
		s.htmlError(c, http.StatusBadRequest, nil)
		return
	}
	typed := c.Request.PostForm.Get("handle")
	target, err := s.visitFor(c.Request.Context(), typed, action, object)
	if err == nil {
		c.Header("Cache-Control", cacheNone)
		c.Redirect(http.StatusSeeOther, target)
		return
	}
	var ve *visitError
	if !errors.As(err, &ve) {
		ve = &visitError{key: "visit_err_dead", status: http.StatusOK, err: err}
	}
	if ve.err != nil {
		_ = c.Error(ve)
	}
	d := s.newPage(s.cfg.SiteLanguage)
	d.Title = d.T("visit_title")
	copyText := s.acct
	if action != actionFollow {
		copyText = object
	} else {
		copyText = "@" + copyText
	}
	if len(typed) > maxHandle {
		typed = typed[:maxHandle]
	}
	d.Visit = &visitView{Action: string(action), Object: object, Handle: typed, Message: d.T(ve.key), Copy: copyText}
	c.Header("Cache-Control", cacheNone)
	c.Header("X-Robots-Tag", "noindex")
	allowFormRedirect(c)
	s.render(c, ve.status, "visit", d)
}

// visitFor parses what was typed, checks the blocks and finds the page.
func (s *server) visitFor(ctx context.Context, typed string, action visitAction, object string) (string, error) {
	h, err := parseHandle(typed)
	if err != nil {
		return "", err
	}
	select {
	case s.visitSlots <- struct{}{}:
		defer func() { <-s.visitSlots }()
	default:
		return "", &visitError{key: "visit_err_busy", status: http.StatusTooManyRequests}
	}
	own, _, _ := strings.Cut(s.host, ":")
	if strings.EqualFold(h.host, own) {
		return "", refuse("visit_err_self")
	}
	if s.blockedHost != nil && s.blockedHost(h.host) {
		return "", &visitError{key: "visit_err_blocked", status: http.StatusForbidden}
	}
	return s.visitTarget(ctx, h, action, object)
}

// visitPage is GET /visit: the form alone (a bookmarked or reloaded
// answer page).
func (s *server) visitPage(c *gin.Context) {
	d := s.newPage(s.cfg.SiteLanguage)
	d.Title = d.T("visit_title")
	d.Visit = &visitView{Action: string(actionFollow), Object: s.actorID, Copy: "@" + s.acct}
	c.Header("Cache-Control", cachePages)
	allowFormRedirect(c)
	s.render(c, http.StatusOK, "visit", d)
}
