package web

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// cssVersion is masked in golden pages so a CSS edit does not touch them.
var cssVersion = regexp.MustCompile(`style\.css\?v=[0-9a-f]+`)

// TestGoldenPages compares whole pages with testdata/golden; run
// `go test ./web/ -run Golden -update` after a deliberate change and
// review the diff.
func TestGoldenPages(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct{ path, file string }{
		{"/posts/hello/en", "article-hello-en.html"},
		{"/posts/hello/fr", "article-hello-fr.html"},
	} {
		r := e.get(t, tc.path, "Accept", browserAccept)
		expect(t, r, 200, "text/html; charset=utf-8")
		got := cssVersion.ReplaceAllString(r.body, "style.css?v=VERSION")
		file := filepath.Join("testdata", "golden", tc.file)
		if *update {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from %s (run with -update after a deliberate change)\n--- got\n%s", tc.path, file, got)
		}
	}
}
