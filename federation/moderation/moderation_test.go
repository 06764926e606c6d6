package moderation

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

func newList(t *testing.T) *Blocklist {
	t.Helper()
	st, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := New(st, "crieur.example:8080")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBlocklistHostsAndActors(t *testing.T) {
	l := newList(t)
	if l.Host("bad.example") {
		t.Fatal("blocked before any block")
	}
	if _, _, err := l.Add("*.Bad.Example.", "", "spam"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Add("https://good.example/users/troll", "", ""); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"bad.example": true, "a.b.bad.example:443": true, "notbad.example": false, "good.example": false} {
		if got := l.Host(host); got != want {
			t.Errorf("Host(%q) = %v", host, got)
		}
	}
	for actor, want := range map[string]bool{"https://mail.bad.example/u/x": true, "https://good.example/users/troll": true, "https://good.example/users/friend": false} {
		if got := l.Actor(actor); got != want {
			t.Errorf("Actor(%q) = %v", actor, got)
		}
	}
	// A second Blocklist over the same store sees the same (kept across restarts).
	l2, err := New(l.store, "crieur.example")
	if err != nil || !l2.Host("bad.example") {
		t.Fatalf("reloaded: %v", err)
	}
	if _, found, err := l.Remove("bad.example"); err != nil || !found {
		t.Fatalf("remove: %v %v", found, err)
	}
	if l.Host("bad.example") {
		t.Fatal("still blocked after remove")
	}
}

func TestNormalizeDomainRefusals(t *testing.T) {
	for _, s := range []string{"", "https://x.example", "x.example/path", "x.example:443", "10.0.0.1", "[::1]", "localhost",
		"crieur.example", "example", "sub.crieur.example", "a b.example", "<script>.example"} {
		if d, err := NormalizeDomain(s, "sub.crieur.example"); err == nil {
			t.Errorf("%q accepted as %q", s, d)
		}
	}
	if d, err := NormalizeDomain("Bücher.Example", ""); err != nil || d != "xn--bcher-kva.example" {
		t.Errorf("IDN: %q %v", d, err)
	}
	// A look-alike is blocked as what it is, not as the real domain.
	if d, _ := NormalizeDomain("exаmple.org", ""); d == "example.org" {
		t.Error("a Cyrillic look-alike normalised to the Latin domain")
	}
}

// An imported list keeps its good lines, reports the others with their
// line numbers, and exports back in Mastodon's format.
func TestCSVImportExport(t *testing.T) {
	in := "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n" +
		"spam.example,suspend,false,false,Spam,false\n" +
		"garbage line with \"quote,x\n" +
		"10.0.0.1,suspend,false,false,,false\n" +
		"quiet.example,noop,false,false,,false\n" +
		"crieur.example,suspend,false,false,,false\n" +
		"loud.example,silence,true,false,,false\n" +
		",suspend\n"
	entries, bad, err := ParseCSV(strings.NewReader(in), "crieur.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0] != (Entry{Domain: "spam.example", Severity: "suspend", Comment: "Spam"}) || entries[1].Domain != "loud.example" {
		t.Fatalf("entries: %+v", entries)
	}
	var lines []int
	for _, e := range bad {
		lines = append(lines, e.Line)
	}
	if len(bad) != 5 {
		t.Fatalf("bad lines %v: %v", lines, bad)
	}
	var out bytes.Buffer
	if err := WriteCSV(&out, []storage.Block{{Kind: storage.BlockDomain, Value: "spam.example", Severity: "suspend", Comment: "Spam"},
		{Kind: storage.BlockActor, Value: "https://x.example/u"}}); err != nil {
		t.Fatal(err)
	}
	want := "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\nspam.example,suspend,false,false,Spam,false\n"
	if out.String() != want {
		t.Fatalf("export:\n%s", out.String())
	}
	again, bad, _ := ParseCSV(&out, "")
	if len(bad) != 0 || len(again) != 1 || again[0].Domain != "spam.example" {
		t.Fatalf("round trip: %+v %v", again, bad)
	}
	// A bare list of domains, as shared lists often are.
	bare, bad, _ := ParseCSV(strings.NewReader("a.example\nb.example\n"), "")
	if len(bare) != 2 || len(bad) != 0 {
		t.Fatalf("bare list: %+v %v", bare, bad)
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("#domain,#severity\nspam.example,suspend\n")
	f.Add("a.example\n\"b.example\n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, _, err := ParseCSV(strings.NewReader(in), "crieur.example")
		if err != nil {
			return
		}
		for _, e := range entries {
			if d, err := NormalizeDomain(e.Domain, "crieur.example"); err != nil || d != e.Domain {
				t.Fatalf("entry %q not normalised: %v", e.Domain, err)
			}
		}
	})
}
