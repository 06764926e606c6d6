package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitPage polls a page until it contains want (the watcher debounces).
func waitPage(t *testing.T, url, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, body := getBody(t, url)
		if strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not show %q within %s", url, want, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Editors only touch files: each file event reaches a follower's server as
// the matching signed activity, once.
func TestPublishingThroughFiles(t *testing.T) {
	in := newInstance(t, map[string]string{
		"old.en.md": post("old", "en", "Back catalogue", "2023-01-02", "Already here before the first start."),
	})
	in.start()
	r := newRemote(t)
	if resp := r.send(in.actorID()+"/inbox", "bob", follow(r, in, "bob"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow: %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept", ofType("Accept"))

	// A new article: a Create of a Note, at the shared inbox.
	in.writePost("news.en.md", post("news", "en", "Fresh news", "2024-03-05T10:00:00Z", "Something **new** happened."))
	// Editors expect to see their article online within a second.
	waitPage(t, in.base+"/", "Fresh news", time.Second)
	noteID := in.base + "/posts/news/en"
	create := r.waitFor(10*time.Second, "Create", func(d received) bool {
		o, _ := d.Activity["object"].(map[string]any)
		return d.Activity["type"] == "Create" && o["id"] == noteID
	})
	if create.Path != "/inbox" {
		t.Errorf("Create went to %s, want the shared inbox", create.Path)
	}
	note := create.Activity["object"].(map[string]any)
	if note["type"] != "Note" || !strings.Contains(note["content"].(string), "Fresh news") {
		t.Errorf("Create object: %v", note)
	}
	waitPage(t, in.base+"/feed.atom", "Fresh news", time.Second)
	waitPage(t, in.base+"/feed.rss", "Fresh news", time.Second)

	// An edit: an Update of the same Note id, with a later updated.
	in.writePost("news.en.md", post("news", "en", "Fresh news, corrected", "2024-03-05T10:00:00Z", "Something **new** happened, twice."))
	upd := r.waitFor(10*time.Second, "Update", ofType("Update"))
	un := upd.Activity["object"].(map[string]any)
	if un["id"] != noteID || un["updated"] == nil || !strings.Contains(un["content"].(string), "corrected") {
		t.Errorf("Update object: id %v updated %v", un["id"], un["updated"])
	}

	// A broken file is reported and publishes nothing; the rest stays up.
	in.writePost("broken.en.md", "---\ntitle: [unclosed\n---\nbody\n")
	time.Sleep(700 * time.Millisecond)
	if code, _ := getBody(t, in.base+"/posts/news/en"); code != 200 {
		t.Errorf("after a broken file, news page answers %d", code)
	}

	// A removal: a Delete, and the Note then answers 410 Gone.
	if err := os.Remove(filepath.Join(in.posts, "news.en.md")); err != nil {
		t.Fatal(err)
	}
	del := r.waitFor(10*time.Second, "Delete", ofType("Delete"))
	obj := del.Activity["object"]
	if m, ok := obj.(map[string]any); ok {
		obj = m["id"]
	}
	if obj != noteID {
		t.Errorf("Delete object %v, want %s", del.Activity["object"], noteID)
	}
	if code, _ := in.getJSON(noteID); code != http.StatusGone {
		t.Errorf("deleted Note answers %d, want 410", code)
	}
	if code, _ := getBody(t, noteID); code != http.StatusGone {
		t.Errorf("deleted article page answers %d, want 410", code)
	}

	// A future-dated article waits for its time, then goes out by itself.
	due := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second) // RFC 3339 in the file has whole seconds
	in.writePost("later.en.md", post("later", "en", "Scheduled", due.Format(time.RFC3339), "Tuesday's article."))
	time.Sleep(1500 * time.Millisecond)
	for _, d := range r.deliveries() {
		if o, _ := d.Activity["object"].(map[string]any); o["id"] == in.base+"/posts/later/en" {
			t.Fatalf("scheduled article sent %s before its date", time.Until(due))
		}
	}
	if code, _ := getBody(t, in.base+"/posts/later/en"); code != http.StatusNotFound {
		t.Errorf("scheduled article page before its date: %d, want 404", code)
	}
	r.waitFor(10*time.Second, "scheduled Create", func(d received) bool {
		o, _ := d.Activity["object"].(map[string]any)
		return d.Activity["type"] == "Create" && o["id"] == in.base+"/posts/later/en"
	})
	if time.Now().Before(due) {
		t.Errorf("scheduled article arrived before its date")
	}

	// The back catalogue was never pushed, and nothing arrived twice.
	seen := map[string]int{}
	for _, d := range r.deliveries() {
		id, _ := d.Activity["id"].(string)
		seen[id]++
		if o, _ := d.Activity["object"].(map[string]any); o["id"] == in.base+"/posts/old/en" {
			t.Errorf("back catalogue article was pushed: %v", d.Activity["type"])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("activity %s delivered %d times", id, n)
		}
	}
	out, err := in.admin("check")
	if err == nil || !strings.Contains(out, "broken.en.md") {
		t.Errorf("crieur check did not name the broken file: %v\n%s", err, out)
	}
}

// TestFirstStartTakesTheCatalogueInBeforeAnswering: on a first start, the
// articles already in posts/ are in the outbox by the time crieur answers.
// An article dropped after that is news; were the back catalogue still
// being taken in, the watcher could hand the new article to that first
// pass, which takes everything in without delivering it.
func TestFirstStartTakesTheCatalogueInBeforeAnswering(t *testing.T) {
	const n = 300
	files := map[string]string{}
	for i := range n {
		slug := fmt.Sprintf("old-%03d", i)
		files[slug+".en.md"] = post(slug, "en", "Old "+slug, "2023-01-02", "Before.")
	}
	in := newInstance(t, files)
	in.start()
	code, m := in.getJSON(in.actorID() + "/outbox")
	if code != 200 {
		t.Fatalf("outbox: %d", code)
	}
	if got, _ := m["totalItems"].(float64); int(got) != n {
		t.Errorf("outbox holds %v items when crieur first answers, want the whole back catalogue, %d", m["totalItems"], n)
	}
}
