package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/signature"
)

// config is every setting of crieur, parsed once from flags and environment
// variables and handed down to the rooms as their own small structs.
type config struct {
	BaseURL       string
	Listen        string
	PostsDir      string
	DataDir       string
	Handle        string
	DisplayName   string
	Bio           string
	Language      string
	Avatar        string
	Header        string
	Fields        []string // "Name=Value" pairs
	ManualApprove bool
	Replies       string // whose replies show at once: everyone, followers or approval
	ShowFollowers bool
	LedeOnly      bool
	Quotes        documents.QuotePolicy
	AllowPrivate  bool
	Workers       int
	PerHost       int
	RetryFor      time.Duration
	KeepFailed    time.Duration
	RSA           signature.RSAEngine
	LogLevel      string
	LogFormat     string
	// Metrics is the address of the listener for /metrics and /healthz;
	// empty: none.
	Metrics string
	// given names the settings a flag or the environment set, as opposed
	// to their defaults (by flag name).
	given map[string]bool
}

// isGiven tells whether a flag or the environment set the setting named
// by its flag.
func (c config) isGiven(flag string) bool { return c.given[flag] }

// setting ties one flag to its environment variable; the README's
// configuration table is written from the same list.
type setting struct {
	flag, env, def, help string
}

var settingsDoc = []setting{
	{"base-url", "CRIEUR_BASE_URL", "http://localhost:8080", "public URL of the site, used in every ActivityPub id"},
	{"listen", "CRIEUR_LISTEN", ":8080", "address the HTTP server listens on"},
	{"posts", "CRIEUR_POSTS", "./posts", "folder of Markdown articles"},
	{"data", "CRIEUR_DATA", "./data", "folder for crieur.db and the actor key"},
	{"handle", "CRIEUR_HANDLE", "reports", "the bot's user name (@handle@host)"},
	{"name", "CRIEUR_NAME", "Reports", "display name"},
	{"bio", "CRIEUR_BIO", "Articles of the association, published in the fediverse.", "short biography (plain text)"},
	{"lang", "CRIEUR_LANG", "en", "site language and language of articles without a language suffix"},
	{"avatar", "CRIEUR_AVATAR", "", "image file for the avatar (PNG, JPEG, GIF, WebP or SVG)"},
	{"header", "CRIEUR_HEADER", "", "image file for the profile header"},
	{"field", "CRIEUR_FIELDS", "", "profile field Name=Value; repeat the flag, or separate with ';' in the variable"},
	{"manual-approval", "CRIEUR_MANUAL_APPROVAL", "false", "keep follow requests pending until `crieur followers approve`"},
	{"replies", "CRIEUR_REPLIES", "everyone", "whose replies show under articles at once: everyone, followers, or approval (each waits for crieur replies approve)"},
	{"show-followers", "CRIEUR_SHOW_FOLLOWERS", "false", "list followers in the public followers collection (the count is always shown)"},
	{"lede-only", "CRIEUR_LEDE_ONLY", "false", "publish the summary and a link instead of the full article"},
	{"quotes", "CRIEUR_QUOTES", "auto", "who may quote the articles: auto (anyone, approved at once), followers or nobody (quote requests get a Reject)"},
	{"allow-private", "CRIEUR_ALLOW_PRIVATE", "false", "let outgoing requests reach loopback and private addresses (tests, local federation)"},
	{"workers", "CRIEUR_WORKERS", "0", "requests in flight (0: 4096; signing is limited to one per CPU apart from this)"},
	{"per-host", "CRIEUR_PER_HOST", "4", "concurrent deliveries to one remote host"},
	{"retry-for", "CRIEUR_RETRY_FOR", "48h", "how long a failing delivery is retried before it is given up"},
	{"keep-failed", "CRIEUR_KEEP_FAILED", "720h", "how long a given-up delivery stays listed for crieur queue retry"},
	{"rsa", "CRIEUR_RSA", "auto", "what makes and verifies RSA signatures: auto (OpenSSL's libcrypto.so.3 when it loads, else Go), openssl or go"},
	{"log-level", "CRIEUR_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"log-format", "CRIEUR_LOG_FORMAT", "text", "text or json"},
	{"metrics", "CRIEUR_METRICS", "", "host:port of a second listener for Prometheus's /metrics and /healthz; bind it to loopback or a private interface (empty: off)"},
}

type fieldList []string

func (f *fieldList) String() string     { return strings.Join(*f, ";") }
func (f *fieldList) Set(v string) error { *f = append(*f, v); return nil }

// text and boolText keep every setting as text until it is validated, so
// that a bad environment value gets the same message as a bad flag.
type text string

func (t *text) String() string     { return string(*t) }
func (t *text) Set(v string) error { *t = text(v); return nil }

type boolText string

func (b *boolText) String() string     { return string(*b) }
func (b *boolText) Set(v string) error { *b = boolText(v); return nil }
func (b *boolText) IsBoolFlag() bool   { return true }

var handleRE = regexp.MustCompile(`^[a-z0-9_]{1,30}$`)

// parseConfig reads flags from args, falling back to env, then to defaults.
// Flags given on the command line win over the environment.
// extra registers a subcommand's own flags; the positional arguments left
// after the flags are returned.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (config, []string, error) {
	var c config
	fs := flag.NewFlagSet("crieur "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if extra != nil {
		extra(fs)
	}
	values := map[string]*string{}
	var fields fieldList
	for _, s := range settingsDoc {
		if s.flag == "field" {
			fs.Var(&fields, s.flag, s.help+" (env "+s.env+")")
			continue
		}
		v := new(string)
		def := s.def
		if e := getenv(s.env); e != "" {
			def = e
		}
		*v = def
		if s.def == "true" || s.def == "false" {
			// A switch: "-allow-private" alone means true.
			fs.Var((*boolText)(v), s.flag, s.help+" (env "+s.env+")")
		} else {
			fs.Var((*text)(v), s.flag, s.help+" (env "+s.env+")")
		}
		values[s.flag] = v
	}
	// Flags may come after the words too (`crieur followers pending -data
	// DIR`): the flag package stops at the first word, and a flag left
	// unparsed there would silently point the command at ./data.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			// The flag package has printed the problem and the usage.
			return c, nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			rest = append(rest, args[1:]...)
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	if len(fields) == 0 {
		if e := getenv("CRIEUR_FIELDS"); e != "" {
			for _, f := range strings.Split(e, ";") {
				if strings.TrimSpace(f) != "" {
					fields = append(fields, f)
				}
			}
		}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settingsDoc {
		if getenv(s.env) != "" {
			given[s.flag] = true
		}
	}
	get := func(k string) string { return strings.TrimSpace(*values[k]) }
	c = config{
		given:       given,
		BaseURL:     strings.TrimRight(get("base-url"), "/"),
		Listen:      get("listen"),
		PostsDir:    get("posts"),
		DataDir:     get("data"),
		Handle:      get("handle"),
		DisplayName: get("name"),
		Bio:         get("bio"),
		Language:    get("lang"),
		Avatar:      get("avatar"),
		Header:      get("header"),
		Fields:      fields,
		LogLevel:    get("log-level"),
		LogFormat:   get("log-format"),
		Metrics:     get("metrics"),
	}
	var errs []error
	boolOf := func(k string) bool {
		b, err := strconv.ParseBool(get(k))
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s: %q is not true or false", k, get(k)))
		}
		return b
	}
	intOf := func(k string) int {
		n, err := strconv.Atoi(get(k))
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("-%s: %q is not a whole number >= 0", k, get(k)))
		}
		return n
	}
	c.ManualApprove = boolOf("manual-approval")
	switch c.Replies = get("replies"); c.Replies {
	case "everyone", "followers", "approval":
	default:
		errs = append(errs, fmt.Errorf("-replies: %q is not everyone, followers or approval", c.Replies))
	}
	c.ShowFollowers = boolOf("show-followers")
	c.LedeOnly = boolOf("lede-only")
	quotes, err := documents.ParseQuotePolicy(get("quotes"))
	c.Quotes = quotes
	if err != nil {
		errs = append(errs, fmt.Errorf("-quotes: %q must be auto, followers or nobody", get("quotes")))
	}
	c.AllowPrivate = boolOf("allow-private")
	c.Workers = intOf("workers")
	c.PerHost = intOf("per-host")
	var d time.Duration
	d, err = time.ParseDuration(get("retry-for"))
	if err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("-retry-for: %q is not a positive duration such as 48h", get("retry-for")))
	}
	c.RetryFor = d
	if d, err = time.ParseDuration(get("keep-failed")); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("-keep-failed: %q is not a positive duration such as 720h", get("keep-failed")))
	}
	c.KeepFailed = d
	if c.RSA, err = signature.ParseRSAEngine(get("rsa")); err != nil {
		errs = append(errs, fmt.Errorf("-rsa: %w", err))
	}
	errs = append(errs, c.validate()...)
	if err := errors.Join(errs...); err != nil {
		return c, nil, fmt.Errorf("configuration: %w", err)
	}
	return c, rest, nil
}

func (c config) validate() []error {
	var errs []error
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("-base-url: %v", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("-base-url: %q must start with https:// (or http:// for a local run)", c.BaseURL))
	case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("-base-url: %q must be scheme://host[:port] with no path: ActivityPub ids live at the root", c.BaseURL))
	}
	if !handleRE.MatchString(c.Handle) {
		errs = append(errs, fmt.Errorf("-handle: %q must be 1-30 characters of a-z, 0-9 and _", c.Handle))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("-listen: empty"))
	}
	if c.PostsDir == "" || c.DataDir == "" {
		errs = append(errs, errors.New("-posts and -data must not be empty"))
	}
	if len(c.Language) != 2 {
		errs = append(errs, fmt.Errorf("-lang: %q must be a two-letter ISO 639-1 code", c.Language))
	}
	for _, f := range c.Fields {
		if k, _, ok := strings.Cut(f, "="); !ok || strings.TrimSpace(k) == "" {
			errs = append(errs, fmt.Errorf("-field: %q must be Name=Value", f))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("-log-level: %q must be debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("-log-format: %q must be text or json", c.LogFormat))
	}
	if c.Metrics != "" {
		if err := checkListenAddr(c.Metrics); err != nil {
			errs = append(errs, fmt.Errorf("-metrics: %q %v (host:port, such as 127.0.0.1:9464)", c.Metrics, err))
		} else if c.Metrics == c.Listen {
			errs = append(errs, fmt.Errorf("-metrics: %q is -listen's address: the metrics need a listener of their own", c.Metrics))
		}
	}
	return errs
}

// checkListenAddr checks that addr is host:port with a port number, as
// net.Listen takes it; whether it can be bound is only known at start.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("is not host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("has no port number 0-65535")
	}
	if strings.ContainsAny(host, " /") {
		return errors.New("has no valid host")
	}
	return nil
}

func (c config) dbPath() string   { return filepath.Join(c.DataDir, "crieur.db") }
func (c config) keyPath() string  { return filepath.Join(c.DataDir, "actor.pem") }
func (c config) sockPath() string { return filepath.Join(c.DataDir, "admin.sock") }
