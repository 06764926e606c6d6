package web

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// acceptSeeds reads testdata/accept.txt: header value, tab, expected answer.
func acceptSeeds(t testing.TB) map[string]bool {
	t.Helper()
	f, err := os.Open("testdata/accept.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seeds := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		header, want, ok := strings.Cut(line, "\t")
		if !ok || (want != "json" && want != "html") {
			t.Fatalf("testdata/accept.txt: bad line %q", line)
		}
		seeds[header] = want == "json"
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seeds
}

func TestAcceptSeeds(t *testing.T) {
	seeds := acceptSeeds(t)
	if len(seeds) < 20 {
		t.Fatalf("only %d seeds", len(seeds))
	}
	for header, want := range seeds {
		if got := prefersActivityJSON([]string{header}); got != want {
			t.Errorf("Accept %q: activity JSON %v, want %v", header, got, want)
		}
	}
}

func TestAcceptSeveralHeaders(t *testing.T) {
	for _, tc := range []struct {
		headers []string
		want    bool
	}{
		{[]string{"text/html;q=0.5", "application/activity+json"}, true},
		{[]string{"application/activity+json;q=0.5", "text/html"}, false},
		{[]string{"", "application/activity+json"}, true},
		{[]string{"*/*", `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`}, true},
		{nil, false},
	} {
		if got := prefersActivityJSON(tc.headers); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.headers, got, tc.want)
		}
	}
}

func TestParseMediaRange(t *testing.T) {
	mt, params, ok := parseMediaRange(` Application/LD+JSON ; Profile = "https://x/a\"b" ; q=0.5; profile=ignored; empty`)
	if !ok || mt != "application/ld+json" || params["profile"] != `https://x/a"b` || params["q"] != "0.5" || len(params) != 2 {
		t.Errorf("got %q %v %v", mt, params, ok)
	}
	for _, bad := range []string{"", "text", "/x", "x/", "te xt/html", `"text/html"`} {
		if _, _, ok := parseMediaRange(bad); ok {
			t.Errorf("parseMediaRange(%q) accepted", bad)
		}
	}
	if got := splitOutsideQuotes(`a;b="c;d\";e";f`, ';'); len(got) != 3 || got[1] != `b="c;d\";e"` {
		t.Errorf("splitOutsideQuotes = %q", got)
	}
}

// FuzzAcceptNegotiation checks the parser never panics and keeps its
// invariants: no JSON without an explicit JSON type, the same answer for
// one header and for that header split into several, and q=0 on every
// range never asks for JSON.
func FuzzAcceptNegotiation(f *testing.F) {
	for header := range acceptSeeds(f) {
		f.Add(header)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got := prefersActivityJSON([]string{header})
		if got && !strings.Contains(strings.ToLower(header), "json") {
			t.Fatalf("%q: activity JSON without a JSON type", header)
		}
		if got != prefersActivityJSON([]string{header, ""}) {
			t.Fatalf("%q: an extra empty header changed the answer", header)
		}
		if got != prefersActivityJSON(splitOutsideQuotes(header, ',')) {
			t.Fatalf("%q: one range per header changed the answer", header)
		}
		// A second copy of every range changes no maximum.
		if got != prefersActivityJSON([]string{header, header}) {
			t.Fatalf("%q: a repeated header changed the answer", header)
		}
		for _, rng := range splitOutsideQuotes(header, ',') {
			if _, params, ok := parseMediaRange(rng); ok && params == nil {
				t.Fatalf("%q: nil params for a valid range", rng)
			}
		}
	})
}
