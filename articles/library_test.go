package articles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// article returns the text of a minimal article.
func article(title, date string, extra ...string) string {
	return "---\ntitle: " + title + "\ndate: " + date + "\n" + strings.Join(extra, "\n") + "\n---\n\n" + title + " body.\n"
}

// writeFiles creates files (slash paths) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func keys(ps []*Post) string {
	var k []string
	for _, p := range ps {
		k = append(k, p.Key())
	}
	return strings.Join(k, " ")
}

func problemsText(ps []*Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Error())
	}
	return strings.Join(s, "\n")
}

func TestLoadLibrary(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"stats.en.md":         article("Stats", "2023-12-28T09:00:00+01:00", "translationKey: stats", "tags: [Framasoft, Figures]"),
		"stats.fr.md":         article("Chiffres", "2023-12-28T09:00:00+01:00", "translationKey: stats", "slug: chiffres", "tags: [framasoft]"),
		"stats.it.md":         article("Cifre", "2023-12-28T09:00:00+01:00", "translationKey: stats", "slug: cifre", "tags: [Framasoft]"),
		"diary/index.en.md":   article("Diary", "2023-06-18", "tags: [ECHO Network]"),
		"diary/index.fr.md":   article("Journal", "2023-06-18", "tags: [echo network]"),
		"diary/photo.jpg":     "not an article",
		"future.en.md":        article("Future", "2030-01-01", "pinned: true"),
		"draft.en.md":         article("Draft", "2020-01-01", "draft: true"),
		"old.md":              article("Old", "2020-01-01", "pinned: true"),
		".hidden.md":          article("Hidden", "2020-01-01"),
		".git/HEAD.md":        article("Git", "2020-01-01"),
		"testdata/fixture.md": article("Fixture", "2020-01-01"),
		"stats.en.md~":        article("Backup", "2020-01-01"),
		".#stats.en.md":       article("Lock", "2020-01-01"),
		"#stats.en.md#":       article("Autosave", "2020-01-01"),
		".stats.en.md.swp":    "binary",
		"4913":                "",
		"README.txt":          "not an article",
	})
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	lib, err := Load(dir, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if len(lib.Problems()) != 0 {
		t.Fatalf("problems:\n%s", problemsText(lib.Problems()))
	}
	if got, want := keys(lib.Visible(now)), "chiffres/fr cifre/it stats/en diary/en diary/fr old/en"; got != want {
		t.Errorf("Visible = %s, want %s", got, want)
	}
	if got, want := keys(lib.All()), "future/en chiffres/fr cifre/it stats/en diary/en diary/fr old/en"; got != want {
		t.Errorf("All = %s, want %s", got, want)
	}
	if got := keys(lib.Drafts()); got != "draft/en" {
		t.Errorf("Drafts = %s", got)
	}
	if _, ok := lib.Get("draft", "en"); ok {
		t.Error("Get returns a draft")
	}
	if p, ok := lib.Get("future", "en"); !ok || p.Title != "Future" {
		t.Error("Get does not return a future post")
	}
	if p, ok := lib.Get("diary", "fr"); !ok || p.File != "diary/index.fr.md" {
		t.Errorf("Get(diary, fr) = %+v, %v", p, ok)
	}
	en, _ := lib.Get("stats", "en")
	if got := keys(lib.Translations(en)); got != "chiffres/fr cifre/it" {
		t.Errorf("Translations(stats/en) = %s", got)
	}
	if got := keys(lib.TranslationsAt(en, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC))); got != "" {
		t.Errorf("TranslationsAt(before publication) = %s", got)
	}
	if got := keys(lib.Group("stats")); got != "stats/en chiffres/fr cifre/it" {
		t.Errorf("Group(stats) = %s", got)
	}
	d, _ := lib.Get("diary", "en")
	if got := keys(lib.Translations(d)); got != "diary/fr" {
		t.Errorf("Translations(diary/en) = %s", got)
	}
	if got := keys(lib.Versions("diary")); got != "diary/en diary/fr" {
		t.Errorf("Versions(diary) = %s", got)
	}
	if got := keys(lib.ByTag("echo-network", now)); got != "diary/en diary/fr" {
		t.Errorf("ByTag(echo-network) = %s", got)
	}
	if got := keys(lib.ByTag(TagSlug("Framasoft"), now)); got != "chiffres/fr cifre/it stats/en" {
		t.Errorf("ByTag(framasoft) = %s", got)
	}
	tags := lib.Tags(now)
	if len(tags) != 3 || tags[0] != (TagCount{Slug: "framasoft", Name: "framasoft", Count: 3}) ||
		tags[1] != (TagCount{Slug: "echo-network", Name: "ECHO Network", Count: 2}) ||
		tags[2] != (TagCount{Slug: "figures", Name: "Figures", Count: 1}) {
		t.Errorf("Tags = %+v", tags)
	}
	if got := strings.Join(lib.Languages(now), ","); got != "en,fr,it" {
		t.Errorf("Languages = %s", got)
	}
	if got := keys(lib.Pinned(now)); got != "old/en" {
		t.Errorf("Pinned = %s", got)
	}
	next, ok := lib.NextDue(now)
	if !ok || !next.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("NextDue = %s, %v", next, ok)
	}
	if _, ok := lib.NextDue(next); ok {
		t.Error("NextDue after the last post")
	}
	if got := keys(lib.Due(now, next)); got != "future/en" {
		t.Errorf("Due = %s", got)
	}
	// The library is a snapshot: callers' slices are their own.
	all := lib.All()
	all[0] = nil
	if lib.All()[0] == nil {
		t.Error("All shares its slice")
	}
}

// TestLoadBadArticles is the list of bad articles: each gets one
// problem naming the file (and line), and every other article loads.
func TestLoadBadArticles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"good.en.md":         article("Good", "2023-01-01"),
		"good.fr.md":         article("Bon", "2023-01-02"),
		"broken.en.md":       "---\ntitle: Broken\ndate: 2023-01-01\ntags: [a, b\n---\nBody\n",
		"untitled.en.md":     "---\ndate: 2023-01-01\n---\nBody\n",
		"klingon.xx.md":      article("Klingon", "2023-01-01"),
		"english.english.md": article("English", "2023-01-01"),
		"a-copy.en.md":       article("Copy", "2023-01-03", "slug: good"),
		"z/good/index.en.md": article("Bundle copy", "2023-01-04"),
		"open.en.md":         "---\ntitle: Open\ndate: 2023-01-01\n",
	})
	lib, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`broken.en.md:4: front matter: did not find expected ',' or ']'`,
		`english.english.md: unknown language code "english": use a two-letter ISO 639-1 code such as en, fr or it`,
		`good.en.md: slug "good" and language "en" are already used by a-copy.en.md: this file is not loaded (change its slug or its language)`,
		`klingon.xx.md: unknown language code "xx": use a two-letter ISO 639-1 code such as en, fr or it`,
		`open.en.md:1: front matter is not closed: add a "---" line after it`,
		`untitled.en.md: missing title: add "title: …" to the front matter`,
		`z/good/index.en.md: slug "good" and language "en" are already used by a-copy.en.md: this file is not loaded (change its slug or its language)`,
	}, "\n")
	if got := problemsText(lib.Problems()); got != want {
		t.Errorf("Problems:\n%s\nwant:\n%s", got, want)
	}
	// The first file by name wins the slug; the others still serve.
	if got := keys(lib.All()); got != "good/en good/fr" {
		t.Errorf("All = %s", got)
	}
	if p, _ := lib.Get("good", "en"); p == nil || p.File != "a-copy.en.md" {
		t.Errorf("Get(good, en) = %+v", p)
	}
}

func TestLoadUnreadableFolder(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing"), Options{}); err == nil {
		t.Error("Load of a missing folder succeeded")
	}
}

func TestLoadStableOrder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"b.fr.md": article("B", "2023-01-01"),
		"b.en.md": article("B", "2023-01-01"),
		"a.it.md": article("A", "2023-01-01"),
		"c.en.md": article("C", "2023-01-01T00:00:01Z"),
	})
	for i := 0; i < 3; i++ {
		lib, err := Load(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(lib.All()); got != "c/en a/it b/en b/fr" {
			t.Fatalf("All = %s", got)
		}
	}
}

func TestIsArticleName(t *testing.T) {
	for name, want := range map[string]bool{
		"a.md": true, "a.fr.md": true, "index.MD": true,
		".a.md": false, ".#a.md": false, "#a.md#": false, "a.md~": false, "a.md.swp": false,
		"a.md.tmp": false, "4913": false, "a.txt": false, "a.markdown": false,
	} {
		if got := isArticleName(name); got != want {
			t.Errorf("isArticleName(%q) = %v", name, got)
		}
	}
}
