package web

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestIsSelf(t *testing.T) {
	s := newServer(Config{BaseURL: "https://crieur.example", Handle: "reports"}, Deps{})
	for res, want := range map[string]bool{
		"acct:reports@crieur.example":        true,
		"ACCT:reports@crieur.example":        true,
		"reports@crieur.example":             true,
		"@reports@crieur.example":            true,
		"https://crieur.example/@reports":    true,
		"https://crieur.example":             true,
		"https://crieur.example/":            true,
		"http://crieur.example/@reports":     false, // ids are exact
		"https://crieur.example/@reports/":   false,
		"acct:reports@crieur.example.evil":   false,
		"acct:reports@@crieur.example":       false,
		"acct:reportsx@crieur.example":       false,
		"acct:reports":                       false,
		"mailto:reports@crieur.example":      false,
		"acct:reports@crieur.example:443@xx": false,
	} {
		if got := s.isSelf(res); got != want {
			t.Errorf("isSelf(%q) = %v, want %v", res, got, want)
		}
	}
}

func TestCleanMediaPath(t *testing.T) {
	for p, want := range map[string]bool{
		"a.png":            true,
		"bundle/pic.png":   true,
		"":                 false,
		"../a.png":         false,
		"bundle/../a.png":  false,
		"/etc/a.png":       false,
		"bundle//a.png":    false,
		".git/a.png":       false,
		"bundle/.a.png":    false,
		`bundle\..\a.png`:  false,
		"bundle/a.png\x00": false,
	} {
		if got := cleanMediaPath(p); got != want {
			t.Errorf("cleanMediaPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestFormatDateAndLanguageName(t *testing.T) {
	d := time.Date(2023, 12, 1, 9, 0, 0, 0, time.UTC)
	for lang, want := range map[string]string{
		"en": "1 December 2023", "fr": "1er décembre 2023", "it": "1º dicembre 2023",
		"fr-CA": "1er décembre 2023", "de": "2023-12-01",
	} {
		if got := formatDate(d, lang); got != want {
			t.Errorf("formatDate(%s) = %q, want %q", lang, got, want)
		}
	}
	for code, want := range map[string]string{"fr": "français", "it": "italiano", "en": "English", "zz-!!": "zz-!!"} {
		if got := languageName(code); got != want {
			t.Errorf("languageName(%q) = %q, want %q", code, got, want)
		}
	}
	if message("de", "home") != "Home" || message("fr", "home") != "Accueil" || message("fr", "no-such-key") != "no-such-key" {
		t.Errorf("message fallbacks broken")
	}
	// Every language has every key English has.
	for lang, table := range messages {
		for key := range messages["en"] {
			if _, ok := table[key]; !ok {
				t.Errorf("messages[%s] lacks %q", lang, key)
			}
		}
	}
}

func TestAbsoluteHTML(t *testing.T) {
	s := newServer(Config{BaseURL: "https://crieur.example/"}, Deps{})
	in := `<a href="/posts/a/en">a</a><img src="/media/x.png"><a href="//cdn.example/x">c</a><a href="https://o.example/">o</a><a href="#n">n</a>`
	want := `<a href="https://crieur.example/posts/a/en">a</a><img src="https://crieur.example/media/x.png"><a href="//cdn.example/x">c</a><a href="https://o.example/">o</a><a href="#n">n</a>`
	if got := s.absoluteHTML(in); got != want {
		t.Errorf("absoluteHTML:\n got %s\nwant %s", got, want)
	}
}

func TestHostMetaNegotiation(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{[]string{"application/json"}, true},
		{[]string{"application/jrd+json"}, true},
		{[]string{"application/xrd+xml, application/xml, text/xml"}, false},
		{[]string{"application/json, application/xml"}, false},
		{[]string{"*/*"}, false},
		{nil, false},
		{[]string{"application/json;q=0"}, false},
	} {
		if got := prefersJSONOverXML(tc.accept); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestRecoveryAnswers500AndLogs(t *testing.T) {
	e := newTestEnv(t)
	eng, ok := e.srv.Config.Handler.(*gin.Engine)
	if !ok {
		t.Fatalf("New does not return a *gin.Engine")
	}
	eng.GET("/test-panic", func(*gin.Context) { panic("boom") })
	r := e.get(t, "/test-panic")
	expect(t, r, http.StatusInternalServerError, "text/plain")
	if strings.Contains(r.body, "boom") {
		t.Errorf("panic value leaked: %q", r.body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "web: handler panicked") || !strings.Contains(logs, "panic=boom") {
		t.Errorf("panic not logged:\n%s", logs)
	}
	// The server keeps serving.
	expect(t, e.get(t, "/"), http.StatusOK, "text/html")
}

func TestConfigMediaHelpers(t *testing.T) {
	c := Config{BaseURL: "https://crieur.example/"}
	if c.AvatarURL() != "https://crieur.example/avatar.png" || c.AvatarType() != "image/png" ||
		c.HeaderURL() != "" || c.HeaderType() != "" {
		t.Errorf("defaults: %q %q %q %q", c.AvatarURL(), c.AvatarType(), c.HeaderURL(), c.HeaderType())
	}
	c.AvatarPath, c.HeaderPath = "/srv/me.JPG", "/srv/banner.webp"
	if c.AvatarURL() != "https://crieur.example/avatar.jpg" || c.AvatarType() != "image/jpeg" ||
		c.HeaderURL() != "https://crieur.example/header.webp" || c.HeaderType() != "image/webp" {
		t.Errorf("configured: %q %q %q %q", c.AvatarURL(), c.AvatarType(), c.HeaderURL(), c.HeaderType())
	}
}

// TestImageVersionFollowsTheContent: a replaced avatar gets a new URL (so
// Mastodon, which keeps remote avatars by URL, fetches it again), the same
// content keeps its URL, and the versioned URL serves the image.
func TestImageVersionFollowsTheContent(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "me.png")
	write := func(b []byte) string {
		t.Helper()
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ImageVersion(file)
	}
	png, err := os.ReadFile("testdata/posts/bundle/pic.png")
	if err != nil {
		t.Fatal(err)
	}
	v1 := write(png)
	v2 := write(append(png, 0))
	if v1 == "" || v1 == v2 {
		t.Fatalf("versions %q and %q for different images", v1, v2)
	}
	if v := write(png); v != v1 {
		t.Errorf("same image, version %q then %q", v1, v)
	}
	if v := ImageVersion(filepath.Join(dir, "missing.png")); v != "" {
		t.Errorf("missing file has version %q", v)
	}
	e := newTestEnv(t, func(c *Config) {
		c.AvatarPath, c.AvatarVersion = file, v1
		c.HeaderPath, c.HeaderVersion = file, v1
	})
	if got, want := e.cfg.AvatarURL(), testBase+"/avatar.png?v="+v1; got != want {
		t.Errorf("avatar URL %q, want %q", got, want)
	}
	if got, want := e.cfg.HeaderURL(), testBase+"/header.png?v="+v1; got != want {
		t.Errorf("header URL %q, want %q", got, want)
	}
	av := e.get(t, strings.TrimPrefix(e.cfg.AvatarURL(), testBase))
	expect(t, av, http.StatusOK, "image/png")
	contains(t, e.get(t, "/"), `src="/header?v=`+v1+`"`, `src="/avatar?v=`+v1+`"`)
}
