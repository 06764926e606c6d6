package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A block given to a running server applies at once: the blocked actor's
// follow is gone, its requests get 403 and change nothing, and crieur
// delivers nothing more to it; lifting the block lets a new Follow in.
func TestBlocksApplyAtOnceOnARunningServer(t *testing.T) {
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.start()
	r := newRemote(t)
	for _, name := range []string{"carol", "dave"} {
		if resp := r.send(in.actorID()+"/inbox", name, follow(r, in, name), nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("Follow from %s: %d", name, resp.StatusCode)
		}
	}
	r.waitFor(10*time.Second, "two Accepts", func(received) bool { return len(r.deliveries()) >= 2 })
	out, err := in.admin("blocks", "add", r.actorID("carol"))
	if err != nil || !strings.Contains(out, "removed 1 follower(s)") {
		t.Fatalf("blocks add: %v\n%s", err, out)
	}
	if n := in.followerCount(); n != 1 {
		t.Fatalf("followers after blocking carol: %d, want 1", n)
	}
	resp, err := r.trySend(in.actorID()+"/inbox", "carol", follow(r, in, "carol"), time.Now(), nil)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Follow from the blocked actor: %v %v, want 403", resp, err)
	}
	if n := in.followerCount(); n != 1 {
		t.Fatalf("a blocked actor's Follow was taken: %d followers", n)
	}
	before := len(r.deliveries())
	in.writePost("b.en.md", post("b", "en", "B", "2024-02-02", "B."))
	r.waitFor(10*time.Second, "Create of b", ofType("Create"))
	for _, d := range r.deliveries()[before:] {
		if strings.Contains(d.Path, "carol") {
			t.Errorf("delivered to the blocked actor: %s", d.Path)
		}
	}
	out, err = in.admin("blocks")
	if err != nil || !strings.Contains(out, r.actorID("carol")) {
		t.Fatalf("blocks list: %v\n%s", err, out)
	}
	if out, err := in.admin("blocks", "add", strings.TrimPrefix(in.base, "http://")); err == nil {
		t.Errorf("blocking crieur's own host succeeded:\n%s", out)
	}
	if out, err := in.admin("blocks", "remove", r.actorID("carol")); err != nil {
		t.Fatalf("blocks remove: %v\n%s", err, out)
	}
	if resp, err := r.trySend(in.actorID()+"/inbox", "carol", follow(r, in, "carol"), time.Now().Add(time.Second), nil); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow after the block was lifted: %v %v", resp, err)
	}
}

// A Mastodon blocklist is imported with its bad lines reported by number,
// and exported back in the same format.
func TestBlocksImportExport(t *testing.T) {
	in := newInstance(t, nil)
	in.start()
	file := filepath.Join(t.TempDir(), "blocklist.csv")
	csv := "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n" +
		"spam.example,suspend,false,false,Spam,false\n" +
		"not a domain,suspend,false,false,,false\n" +
		"b\u00fccher.example,silence,false,false,,false\n"
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := in.admin("blocks", "import", file)
	if err != nil || !strings.Contains(out, "skipped line 3") || !strings.Contains(out, "blocked 2 domain(s), skipped 1 line(s)") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err = in.admin("blocks", "export")
	if err != nil || !strings.Contains(out, "spam.example,suspend,false,false,Spam,false") || !strings.Contains(out, "xn--bcher-kva.example,silence") {
		t.Fatalf("export: %v\n%s", err, out)
	}
}
