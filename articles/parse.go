package articles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits a single article must respect; a file beyond them is a Problem,
// not a crash or a slow request.
const (
	// MaxPostSize caps one article file: the seed articles are ~30 KiB,
	// so 1 MiB leaves room for anything a person writes by hand.
	MaxPostSize = 1 << 20
	// maxNesting caps quote and list levels on one line: goldmark's time
	// grows steeply with nesting (thousands of levels take minutes).
	maxNesting = 32
	// maxIndent caps leading white space, in columns, for the same reason.
	maxIndent = 256
	// renderTimeout bounds Markdown rendering, the backstop for inputs
	// that are slow to render without being deeply nested. Real articles
	// render in milliseconds.
	renderTimeout = 10 * time.Second
	// maxSlugLen keeps URLs and ledger keys short.
	maxSlugLen = 200
	// summaryLen is the length (in characters) a derived summary is cut to.
	summaryLen = 300
)

// DefaultLanguage is used for files without a language suffix when
// Options.DefaultLanguage is empty.
const DefaultLanguage = "en"

// DefaultMediaPrefix is the URL path under which images that live beside
// articles are served (see the web room's /media/ route).
const DefaultMediaPrefix = "/media/"

// Options tune how articles are read.
type Options struct {
	// DefaultLanguage is the language of files without a ".xx.md" suffix
	// ("en" when empty).
	DefaultLanguage string
	// MediaPrefix is prepended to the folder-relative path of local images
	// in the rendered HTML ("/media/" when empty), so that the HTML works
	// from any page. Post.Images keeps the folder-relative path.
	MediaPrefix string
	// Now is the clock used where the Library contract has no now argument
	// (Translations); time.Now when nil.
	Now func() time.Time
}

func (o Options) defaultLanguage() string {
	if o.DefaultLanguage == "" {
		return DefaultLanguage
	}
	return strings.ToLower(o.DefaultLanguage)
}

func (o Options) mediaPrefix() string {
	if o.MediaPrefix == "" {
		return DefaultMediaPrefix
	}
	return o.MediaPrefix
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Problem is one thing wrong with one article file. Line is the 1-based
// line in the file, 0 when the problem is not tied to a line.
type Problem struct {
	File string
	Line int
	Msg  string
}

// Error formats the problem as editors' tools do: "file:line: msg".
func (p *Problem) Error() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return p.File + ": " + p.Msg
}

// frontMatter is the YAML header as editors write it. Keys that Hugo knows
// but crieur does not use are ignored, so Hugo files can be reused as is.
type frontMatter struct {
	Title          string      `yaml:"title"`
	Date           dateValue   `yaml:"date"`
	Lastmod        dateValue   `yaml:"lastmod"`
	Draft          bool        `yaml:"draft"`
	Summary        string      `yaml:"summary"`
	Tags           stringList  `yaml:"tags"`
	TranslationKey string      `yaml:"translationKey"`
	Slug           yaml.Node   `yaml:"slug"`
	Author         string      `yaml:"author"`
	DateNote       string      `yaml:"date_note"`
	ContentWarning string      `yaml:"content_warning"`
	Sensitive      bool        `yaml:"sensitive"`
	Pinned         bool        `yaml:"pinned"`
	Images         []imageSpec `yaml:"images"`
	Attribution    struct {
		Author     string     `yaml:"author"`
		Source     string     `yaml:"source"`
		Licence    string     `yaml:"licence"`
		License    string     `yaml:"license"`
		LicenceURL string     `yaml:"licence_url"`
		LicenseURL string     `yaml:"license_url"`
		Credits    stringList `yaml:"credits"`
	} `yaml:"attribution"`
}

// dateValue keeps the raw text and line of a date so that it can be parsed
// with crieur's formats and reported at the right line.
type dateValue struct {
	set  bool
	text string
	line int
}

func (d *dateValue) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: date must be a single value", n.Line)
	}
	d.set, d.text, d.line = true, strings.TrimSpace(n.Value), n.Line
	return nil
}

// stringList accepts both "tags: [a, b]" and "tags: a" (as Hugo does).
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*s = nil
			return nil
		}
		*s = stringList{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	return fmt.Errorf("line %d: expected a list of strings", n.Line)
}

// imageSpec accepts Hugo's plain "images: [a.jpg]" and crieur's
// "images: [{src: a.jpg, alt: …, title: …}]".
type imageSpec struct {
	Src   string `yaml:"src"`
	Alt   string `yaml:"alt"`
	Title string `yaml:"title"`
	line  int
}

func (im *imageSpec) UnmarshalYAML(n *yaml.Node) error {
	im.line = n.Line
	if n.Kind == yaml.ScalarNode {
		im.Src = n.Value
		return nil
	}
	type plain imageSpec
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	im.Src, im.Alt, im.Title = p.Src, p.Alt, p.Title
	return nil
}

// dateLayouts are tried in order; layouts without a zone are read as UTC.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

func parseDate(s string) (time.Time, bool) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$`)

var yamlInnerLineRE = regexp.MustCompile(`line \d+`)

// yamlParserProblems are the messages of yaml.v3's parser errors, whose
// line number is 0-based (its scanner's are 1-based).
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlLineRE finds the line yaml.v3 puts in its messages.
var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// Parse reads one article. file is its slash path relative to the posts
// folder; it gives the slug and language by Hugo's conventions:
// "<slug>.<lang>.md", "<slug>.md" (default language), or a page bundle
// "<slug>/index.<lang>.md". Any error is a *Problem.
func Parse(file string, data []byte, opts Options) (*Post, error) {
	file = path.Clean(strings.ReplaceAll(file, "\\", "/"))
	problem := func(line int, format string, args ...any) error {
		return &Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxPostSize {
		return nil, problem(0, "file is %d bytes, more than the %d allowed for an article", len(data), MaxPostSize)
	}
	if !utf8.Valid(data) {
		return nil, problem(0, "file is not valid UTF-8 text")
	}
	slug, lang, err := nameParts(file, opts)
	if err != nil {
		return nil, err
	}

	fmText, body, err := splitFrontMatter(file, data)
	if err != nil {
		return nil, err
	}
	var fm frontMatter
	if err := decodeFrontMatter(fmText, &fm); err != nil {
		line, msg := yamlProblem(err)
		if line > 0 {
			line++ // the opening "---" is line 1 of the file
		}
		return nil, problem(line, "front matter: %s", msg)
	}

	p := &Post{
		File:           file,
		Slug:           slug,
		Lang:           lang,
		Title:          strings.TrimSpace(fm.Title),
		Draft:          fm.Draft,
		DateNote:       strings.TrimSpace(fm.DateNote),
		ContentWarning: strings.TrimSpace(fm.ContentWarning),
		Sensitive:      fm.Sensitive,
		Pinned:         fm.Pinned,
		TranslationKey: strings.TrimSpace(fm.TranslationKey),
	}
	if fm.Slug.Kind != 0 && fm.Slug.Tag != "!!null" {
		s := strings.ToLower(strings.TrimSpace(fm.Slug.Value))
		if fm.Slug.Kind != yaml.ScalarNode || !slugRE.MatchString(s) || len(s) > maxSlugLen {
			return nil, problem(fm.Slug.Line+1, "slug %q: use lower-case letters, digits, '-' and '_' only", fm.Slug.Value)
		}
		p.Slug = s
	}
	if p.Title == "" {
		return nil, problem(0, "missing title: add \"title: …\" to the front matter")
	}
	if !fm.Date.set || fm.Date.text == "" {
		return nil, problem(0, "missing date: add \"date: 2006-01-02\" (or a full RFC 3339 time) to the front matter")
	}
	if p.Date, err = readDate(fm.Date); err != nil {
		return nil, problem(fm.Date.line+1, "date: %v", err)
	}
	if fm.Lastmod.set && fm.Lastmod.text != "" {
		if p.Lastmod, err = readDate(fm.Lastmod); err != nil {
			return nil, problem(fm.Lastmod.line+1, "lastmod: %v", err)
		}
	}
	if p.TranslationKey == "" {
		p.TranslationKey = p.Slug
	}
	p.Tags = cleanTags(fm.Tags)
	p.Attribution = Attribution{
		Author:     strings.TrimSpace(firstNonEmpty(fm.Attribution.Author, fm.Author)),
		Source:     strings.TrimSpace(fm.Attribution.Source),
		Licence:    strings.TrimSpace(firstNonEmpty(fm.Attribution.Licence, fm.Attribution.License)),
		LicenceURL: strings.TrimSpace(firstNonEmpty(fm.Attribution.LicenceURL, fm.Attribution.LicenseURL)),
		Credits:    cleanList(fm.Attribution.Credits),
	}

	dir := path.Dir(file)
	for _, im := range fm.Images {
		src, ok := resolveImage(dir, im.Src)
		if !ok {
			return nil, problem(im.line+1, "image %q: use a path beside the article or an http(s) URL", im.Src)
		}
		p.Images = appendImage(p.Images, Image{Src: src, Alt: strings.TrimSpace(im.Alt), Title: strings.TrimSpace(im.Title)})
	}

	if line, msg := checkNesting(body); msg != "" {
		return nil, problem(line+bytes.Count(data[:len(data)-len(body)], []byte("\n")), "%s", msg)
	}
	r, err := renderWithin(body, dir, opts.mediaPrefix(), renderTimeout)
	if err != nil {
		return nil, problem(0, "%v", err)
	}
	p.HTML = r.html
	for _, im := range r.images {
		p.Images = appendImage(p.Images, im)
	}
	if s := strings.TrimSpace(fm.Summary); s != "" {
		p.Summary = strings.Join(strings.Fields(s), " ")
	} else {
		p.Summary = truncateWords(r.firstParagraph, summaryLen)
	}

	sum := sha256.Sum256(data)
	p.Hash = hex.EncodeToString(sum[:])
	p.NoteHash = p.Hash
	if rest, cut := withoutPinned(data); cut {
		sum = sha256.Sum256(rest)
		p.NoteHash = hex.EncodeToString(sum[:])
	}
	return p, nil
}

// pinnedLine is a top-level "pinned:" key of the front matter.
var pinnedLine = regexp.MustCompile(`^pinned[ \t]*:`)

// withoutPinned returns data without the "pinned:" lines of its front
// matter (between the first two "---" lines), and whether it cut any.
func withoutPinned(data []byte) ([]byte, bool) {
	var out []byte
	cut, inside := false, false
	for n, rest := 0, data; len(rest) > 0; n++ {
		line, tail, found := bytes.Cut(rest, []byte("\n"))
		if found {
			line = rest[:len(line)+1]
		}
		rest = tail
		trimmed := string(bytes.TrimRight(bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")), " \t\r\n"))
		switch {
		case n == 0:
			inside = trimmed == "---"
		case inside && trimmed == "---":
			inside = false
		case inside && pinnedLine.Match(line):
			cut = true
			continue
		}
		out = append(out, line...)
	}
	return out, cut
}

// checkNesting refuses lines nested deeper than maxNesting quotes or list
// items, or indented more than maxIndent columns. line is 1-based in body.
func checkNesting(body []byte) (line int, msg string) {
	for n := 1; len(body) > 0; n++ {
		var l []byte
		l, body, _ = bytes.Cut(body, []byte("\n"))
		depth, cols := 0, 0
	prefix:
		for i := 0; i < len(l); i++ {
			switch c := l[i]; {
			case c == ' ':
				cols++
			case c == '\t':
				cols += 4
			case c == '>':
				depth++
			case (c == '-' || c == '*' || c == '+') && i+1 < len(l) && (l[i+1] == ' ' || l[i+1] == '\t'):
				depth++
			case c >= '0' && c <= '9':
				j := i
				for j < len(l) && l[j] >= '0' && l[j] <= '9' {
					j++
				}
				if j+1 < len(l) && (l[j] == '.' || l[j] == ')') && (l[j+1] == ' ' || l[j+1] == '\t') {
					depth++
					i = j
					continue
				}
				break prefix
			default:
				break prefix
			}
		}
		if depth > maxNesting {
			return n, fmt.Sprintf("more than %d nested quotes or list levels on one line", maxNesting)
		}
		if cols > maxIndent {
			return n, fmt.Sprintf("line indented by more than %d columns", maxIndent)
		}
	}
	return 0, ""
}

// renderWithin renders the body, giving up after timeout: a runaway render
// then finishes in the background instead of stalling a reload, and a
// panic in the Markdown library becomes an error.
func renderWithin(body []byte, dir, mediaPrefix string, timeout time.Duration) (rendered, error) {
	type result struct {
		r   rendered
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				ch <- result{err: fmt.Errorf("cannot render the Markdown (%v): simplify the text around the last change", v)}
			}
		}()
		ch <- result{r: renderMarkdown(body, dir, mediaPrefix)}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-ch:
		return res.r, res.err
	case <-t.C:
		return rendered{}, fmt.Errorf("the Markdown takes more than %s to render: simplify it (thousands of unclosed links, brackets or nested blocks?)", timeout)
	}
}

// nameParts derives slug and language from the file name.
func nameParts(file string, opts Options) (slug, lang string, err error) {
	base := path.Base(file)
	if !strings.HasSuffix(strings.ToLower(base), ".md") {
		return "", "", &Problem{File: file, Msg: "not a Markdown file (.md)"}
	}
	name := base[:len(base)-len(".md")]
	lang = opts.defaultLanguage()
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name, lang = name[:i], strings.ToLower(name[i+1:])
	}
	if !ValidLanguage(lang) {
		return "", "", &Problem{File: file, Msg: fmt.Sprintf("unknown language code %q: use a two-letter ISO 639-1 code such as en, fr or it", lang)}
	}
	if name == "index" || name == "_index" {
		// A page bundle: the article is named after its folder.
		dir := path.Dir(file)
		if dir == "." || dir == "/" {
			return "", "", &Problem{File: file, Msg: "an index file must be inside the article's folder (page bundle), e.g. my-article/index.en.md"}
		}
		name = path.Base(dir)
	}
	slug = strings.ToLower(name)
	if !slugRE.MatchString(slug) || len(slug) > maxSlugLen {
		return "", "", &Problem{File: file, Msg: fmt.Sprintf("slug %q taken from the file name: use lower-case letters, digits, '-' and '_' only (or set \"slug:\" in the front matter)", name)}
	}
	return slug, lang, nil
}

// splitFrontMatter returns the YAML between the "---" lines and the body
// after them.
func splitFrontMatter(file string, data []byte) (fm, body []byte, err error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM some editors add
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	switch string(bytes.TrimRight(first, " \t\r")) {
	case "---":
	case "+++":
		return nil, nil, &Problem{File: file, Line: 1, Msg: "TOML front matter (+++) is not supported: use YAML between --- lines"}
	default:
		return nil, nil, &Problem{File: file, Line: 1, Msg: "missing front matter: the file must start with a \"---\" line, then title and date, then \"---\""}
	}
	for off := 0; off < len(rest); {
		l, _, found := bytes.Cut(rest[off:], []byte("\n"))
		if string(bytes.TrimRight(l, " \t\r")) == "---" {
			end := off + len(l)
			if found {
				end++
			}
			return rest[:off], rest[end:], nil
		}
		off += len(l) + 1
	}
	return nil, nil, &Problem{File: file, Line: 1, Msg: "front matter is not closed: add a \"---\" line after it"}
}

func decodeFrontMatter(text []byte, fm *frontMatter) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil // empty front matter: the missing title is reported next
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: front matter must be \"key: value\" lines", root.Line)
	}
	return root.Decode(fm)
}

// yamlProblem extracts the YAML line and a readable message from yaml.v3's
// errors ("yaml: line 3: …", or a TypeError listing "line 5: …").
func yamlProblem(err error) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if yamlParserProblems[msg] {
			// yaml.v3 reports its parser's (not scanner's) errors with a
			// 0-based line.
			n++
		}
		return n, fileLines(msg)
	}
	return 0, fileLines(strings.TrimPrefix(msg, "yaml: "))
}

// fileLines shifts the YAML line numbers quoted inside a message ("already
// defined at line 2") to lines of the file.
func fileLines(msg string) string {
	return yamlInnerLineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, err := strconv.Atoi(m[len("line "):])
		if err != nil {
			return m
		}
		return "line " + strconv.Itoa(n+1)
	})
}

func readDate(d dateValue) (time.Time, error) {
	t, ok := parseDate(d.text)
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a date: use 2006-01-02, 2006-01-02 15:04 or RFC 3339 (2006-01-02T15:04:05+01:00)", d.text)
	}
	// Year 1 parses, and is Go's zero time: the article would count as
	// undated, and servers would show it as published two thousand years
	// ago. No association archive starts before 1900.
	if t.UTC().Year() < minYear {
		return time.Time{}, fmt.Errorf("%q is before %d: give the article's real date", d.text, minYear)
	}
	return t, nil
}

// minYear is the earliest year an article's date may have.
const minYear = 1900

func cleanTags(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range in {
		t = strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(t), "#")), " ")
		s := TagSlug(t)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, t)
	}
	return out
}

func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

func appendImage(list []Image, im Image) []Image {
	for i, old := range list {
		if old.Src == im.Src {
			// The front matter may name an image without alt text that the
			// body describes: keep the most complete description.
			if old.Alt == "" {
				list[i].Alt = im.Alt
			}
			if old.Title == "" {
				list[i].Title = im.Title
			}
			return list
		}
	}
	return append(list, im)
}

// resolveImage turns an image reference into Image.Src: http(s) URLs are
// kept, other paths are resolved against the article's folder into a slash
// path relative to the posts folder. It refuses other schemes and paths
// that climb out of the posts folder.
func resolveImage(dir, src string) (string, bool) {
	src = strings.TrimSpace(src)
	if src == "" {
		return "", false
	}
	lower := strings.ToLower(src)
	if strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
		return src, true
	}
	if strings.HasPrefix(src, "//") || strings.Contains(src, "\\") {
		return "", false
	}
	if i := strings.IndexAny(src, ":?#"); i >= 0 {
		if src[i] == ':' {
			return "", false // another scheme (data:, javascript:, file:…)
		}
		src = src[:i]
	}
	var p string
	if strings.HasPrefix(src, "/") {
		p = path.Clean(src)[1:] // rooted at the posts folder
	} else {
		p = path.Clean(path.Join(dir, src))
	}
	if p == "" || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}

// truncateWords shortens s to at most n characters, cutting on a word
// boundary and marking the cut with an ellipsis.
func truncateWords(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut, runes := 0, 0
	for i, r := range s {
		if runes >= n-1 {
			if r == ' ' {
				cut = i // the word ending exactly at the limit still fits
			}
			break
		}
		if r == ' ' {
			cut = i
		}
		runes++
	}
	if cut == 0 {
		// One enormous word: cut inside it.
		return string([]rune(s)[:n-1]) + "…"
	}
	return strings.TrimRight(s[:cut], " ,;:–—-") + "…"
}
