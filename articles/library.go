package articles

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Library is an immutable snapshot of the posts folder. Every slice it
// returns is a fresh copy; the *Post values are shared and must not be
// modified.
type Library struct {
	opts Options
	// posts are the loaded non-draft posts, newest first.
	posts []*Post
	// drafts are kept for reporting (crieur check) and for the watcher.
	drafts []*Post
	byKey  map[string]*Post
	// byFile holds every parsed post, drafts included, by File.
	byFile   map[string]*Post
	groups   map[string][]*Post // by TranslationKey, sorted by Lang
	problems []*Problem
}

// TagCount is one tag with the number of visible posts that carry it.
type TagCount struct {
	Slug  string // TagSlug form, for URLs
	Name  string // as editors wrote it (the newest post's spelling)
	Count int
}

// Load reads every article under dir. It fails only when dir cannot be
// read; a bad article becomes one of Library.Problems and the others load.
func Load(dir string, opts Options) (*Library, error) {
	sc, err := scan(dir, func(name string, data []byte) (*Post, error) {
		return Parse(name, data, opts)
	})
	if err != nil {
		return nil, err
	}
	return build(sc.parsed, sc.problems, opts), nil
}

// scanned is one pass over the folder, before indexing.
type scanned struct {
	parsed   []*Post // in file-name order
	problems []*Problem
	// failed are the article files that exist but could not be read or
	// parsed, with their problem.
	failed map[string]*Problem
}

// scan reads the folder and parses each article with parse.
func scan(dir string, parse func(name string, data []byte) (*Post, error)) (scanned, error) {
	files, problems, err := readFolder(dir)
	if err != nil {
		return scanned{}, err
	}
	sc := scanned{parsed: make([]*Post, 0, len(files)), problems: problems, failed: map[string]*Problem{}}
	for _, f := range files {
		if f.problem != nil {
			sc.failed[f.name] = f.problem
			continue
		}
		p, err := parse(f.name, f.data)
		if err != nil {
			prob := asProblem(f.name, err)
			sc.problems = append(sc.problems, prob)
			sc.failed[f.name] = prob
			continue
		}
		sc.parsed = append(sc.parsed, p)
	}
	return sc, nil
}

func asProblem(file string, err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return &Problem{File: file, Msg: err.Error()}
}

// folderFile is one article file read from the folder.
type folderFile struct {
	name    string // slash path relative to the folder
	data    []byte
	problem *Problem
}

// readFolder returns the article files under dir in file-name order, and
// problems for those it could not read.
func readFolder(dir string) ([]folderFile, []*Problem, error) {
	if _, err := os.ReadDir(dir); err != nil {
		return nil, nil, fmt.Errorf("articles: read folder: %w", err)
	}
	var files []folderFile
	var problems []*Problem
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			if rel == "." {
				return err
			}
			// A subfolder or file vanished or is unreadable: report it and
			// keep loading the others.
			if !errors.Is(err, fs.ErrNotExist) {
				problems = append(problems, &Problem{File: rel, Msg: "cannot read: " + err.Error()})
			}
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if skipDir(d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		if !isArticleName(d.Name()) {
			return nil
		}
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		f := folderFile{name: rel}
		f.data, err = readLimited(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we walked
		}
		if err != nil {
			f.problem = &Problem{File: rel, Msg: err.Error()}
			problems = append(problems, f.problem)
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("articles: read folder: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, problems, nil
}

// readLimited reads a file refusing anything beyond MaxPostSize.
func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > MaxPostSize {
		return nil, fmt.Errorf("file is %d bytes, more than the %d allowed for an article", st.Size(), MaxPostSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxPostSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxPostSize {
		return nil, fmt.Errorf("file is more than the %d bytes allowed for an article", MaxPostSize)
	}
	return data, nil
}

// skipDir tells which folders hold no articles: hidden ones (.git, editor
// state) and test fixtures.
func skipDir(name string) bool {
	return strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules"
}

// isArticleName tells whether a file name is an article rather than an
// editor's temporary or backup file.
func isArticleName(name string) bool {
	return !isTempName(name) && strings.HasSuffix(strings.ToLower(name), ".md")
}

// isTempName tells hidden, temporary and backup files apart.
func isTempName(name string) bool {
	lower := strings.ToLower(name)
	return strings.HasPrefix(name, ".") || // hidden, Emacs lock ".#x", vim ".x.swp"
		strings.HasPrefix(name, "#") || // Emacs auto-save "#x#"
		strings.HasSuffix(name, "~") || // backups
		strings.HasSuffix(lower, ".swp") || strings.HasSuffix(lower, ".swx") ||
		strings.HasSuffix(lower, ".tmp") || strings.HasSuffix(lower, ".bak") ||
		name == "4913" // vim's probe of whether it may write in the folder
}

// build indexes parsed posts. posts must be in file-name order: when two
// files claim the same slug and language, the first one wins.
func build(parsed []*Post, problems []*Problem, opts Options) *Library {
	l := &Library{
		opts:   opts,
		byKey:  map[string]*Post{},
		byFile: map[string]*Post{},
		groups: map[string][]*Post{},
	}
	for _, p := range parsed {
		l.byFile[p.File] = p
		if p.Draft {
			l.drafts = append(l.drafts, p)
			continue
		}
		if first, dup := l.byKey[p.Key()]; dup {
			problems = append(problems, &Problem{File: p.File, Msg: fmt.Sprintf(
				"slug %q and language %q are already used by %s: this file is not loaded (change its slug or its language)",
				p.Slug, p.Lang, first.File)})
			delete(l.byFile, p.File)
			continue
		}
		l.byKey[p.Key()] = p
		l.posts = append(l.posts, p)
		l.groups[p.TranslationKey] = append(l.groups[p.TranslationKey], p)
	}
	sort.Slice(l.posts, func(i, j int) bool { return newer(l.posts[i], l.posts[j]) })
	for _, g := range l.groups {
		sort.Slice(g, func(i, j int) bool { return g[i].Lang < g[j].Lang })
	}
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].File != problems[j].File {
			return problems[i].File < problems[j].File
		}
		return problems[i].Line < problems[j].Line
	})
	l.problems = problems
	return l
}

// newer orders posts newest first, then by slug and language so that the
// order is stable between loads.
func newer(a, b *Post) bool {
	if !a.Date.Equal(b.Date) {
		return a.Date.After(b.Date)
	}
	if a.Slug != b.Slug {
		return a.Slug < b.Slug
	}
	return a.Lang < b.Lang
}

func visibleAt(p *Post, now time.Time) bool { return !p.Date.After(now) }

// Visible returns the posts published at now (no drafts, no future dates),
// newest first.
func (l *Library) Visible(now time.Time) []*Post {
	var out []*Post
	for _, p := range l.posts {
		if visibleAt(p, now) {
			out = append(out, p)
		}
	}
	return out
}

// All returns every non-draft post, future ones included, newest first.
func (l *Library) All() []*Post { return append([]*Post(nil), l.posts...) }

// Drafts returns the draft posts in file-name order. They are never
// published; crieur check lists them.
func (l *Library) Drafts() []*Post { return append([]*Post(nil), l.drafts...) }

// Get returns the non-draft post with this slug and language, even when
// its date is in the future: callers check Date.
func (l *Library) Get(slug, lang string) (*Post, bool) {
	p, ok := l.byKey[slug+"/"+lang]
	return p, ok
}

// GetKey is Get with a Post.Key ("slug/lang").
func (l *Library) GetKey(key string) (*Post, bool) {
	p, ok := l.byKey[key]
	return p, ok
}

// Versions returns every language version of slug (future ones included),
// sorted by language.
func (l *Library) Versions(slug string) []*Post {
	var out []*Post
	for _, p := range l.posts {
		if p.Slug == slug {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Lang < out[j].Lang })
	return out
}

// Translations returns the other language versions of p's translation
// group that are visible now (by Options.Now), sorted by language.
func (l *Library) Translations(p *Post) []*Post {
	return l.TranslationsAt(p, l.opts.now())
}

// TranslationsAt is Translations at a given time.
func (l *Library) TranslationsAt(p *Post, now time.Time) []*Post {
	var out []*Post
	for _, s := range l.groups[p.TranslationKey] {
		if s.Key() != p.Key() && visibleAt(s, now) {
			out = append(out, s)
		}
	}
	return out
}

// Group returns every non-draft post of a translation group (future ones
// included), sorted by language.
func (l *Library) Group(translationKey string) []*Post {
	return append([]*Post(nil), l.groups[translationKey]...)
}

// ByTag returns the posts visible at now that carry the tag (in TagSlug
// form), newest first.
func (l *Library) ByTag(tagSlug string, now time.Time) []*Post {
	var out []*Post
	for _, p := range l.posts {
		if !visibleAt(p, now) {
			continue
		}
		for _, t := range p.Tags {
			if TagSlug(t) == tagSlug {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// Tags counts the tags of the posts visible at now, most used first, then
// by slug.
func (l *Library) Tags(now time.Time) []TagCount {
	idx := map[string]int{}
	var out []TagCount
	for _, p := range l.posts {
		if !visibleAt(p, now) {
			continue
		}
		for _, t := range p.Tags {
			s := TagSlug(t)
			if i, ok := idx[s]; ok {
				out[i].Count++
				continue
			}
			idx[s] = len(out)
			out = append(out, TagCount{Slug: s, Name: t, Count: 1})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Slug < out[j].Slug
	})
	return out
}

// Languages returns the languages of the posts visible at now, sorted.
func (l *Library) Languages(now time.Time) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range l.posts {
		if visibleAt(p, now) && !seen[p.Lang] {
			seen[p.Lang] = true
			out = append(out, p.Lang)
		}
	}
	sort.Strings(out)
	return out
}

// Pinned returns the pinned posts visible at now, newest first (the actor's
// featured collection).
func (l *Library) Pinned(now time.Time) []*Post {
	var out []*Post
	for _, p := range l.posts {
		if p.Pinned && visibleAt(p, now) {
			out = append(out, p)
		}
	}
	return out
}

// Problems returns what is wrong with the folder's files, by file and line.
func (l *Library) Problems() []*Problem { return append([]*Problem(nil), l.problems...) }

// NextDue returns the earliest post date after now, if any: when that time
// comes, a post becomes visible.
func (l *Library) NextDue(now time.Time) (time.Time, bool) {
	var next time.Time
	found := false
	for _, p := range l.posts {
		if p.Date.After(now) && (!found || p.Date.Before(next)) {
			next, found = p.Date, true
		}
	}
	return next, found
}

// Due returns the posts whose date is in (after, upTo], oldest first: the
// ones that became visible in that interval.
func (l *Library) Due(after, upTo time.Time) []*Post {
	var out []*Post
	for i := len(l.posts) - 1; i >= 0; i-- {
		p := l.posts[i]
		if p.Date.After(after) && !p.Date.After(upTo) {
			out = append(out, p)
		}
	}
	return out
}

// Len is the number of non-draft posts.
func (l *Library) Len() int { return len(l.posts) }

// file returns the post parsed from a file (drafts included).
func (l *Library) file(name string) (*Post, bool) {
	p, ok := l.byFile[name]
	return p, ok
}
