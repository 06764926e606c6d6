package main

import (
	"encoding/xml"
	"html"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Front matter is editor text. Where a reader decodes HTML (a Note's
// summary, an RSS description) it must arrive as that text, never as live
// markup: checked on the wire of a running crieur, in the Note it serves,
// the Create it delivers and the RSS feed.
func TestEditorTextIsNotMarkupOnTheWire(t *testing.T) {
	const cw = `Spoilers <img src=x onerror=alert(1)>`
	const summary = `Read <script>alert(2)</script> & weep`
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.start()
	r := newRemote(t)
	if resp := r.send(in.actorID()+"/inbox", "alice", follow(r, in, "alice"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow: %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept", ofType("Accept"))
	in.writePost("b.en.md", "---\ntitle: \"B\"\ndate: 2024-02-02\nslug: b\ncontent_warning: \""+cw+"\"\nsummary: \""+summary+"\"\n---\n\nB.\n")
	create := r.waitFor(10*time.Second, "Create", ofType("Create"))
	note, _ := create.Activity["object"].(map[string]any)
	_, served := in.getJSON(in.base + "/posts/b/en")
	for where, n := range map[string]map[string]any{"delivered Create": note, "served Note": served} {
		s, _ := n["summary"].(string)
		if strings.Contains(s, "<") || html.UnescapeString(s) != cw {
			t.Errorf("%s: summary %q, want %q escaped", where, s, cw)
		}
	}
	resp, err := http.Get(in.base + "/feed.rss")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var feed struct {
		Items []struct {
			Link        string `xml:"link"`
			Description string `xml:"description"`
		} `xml:"channel>item"`
	}
	if err := xml.Unmarshal(body, &feed); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range feed.Items {
		if it.Link == in.base+"/posts/b/en" {
			found = true
			// The reader decodes the description as HTML once.
			if strings.Contains(it.Description, "<") || html.UnescapeString(it.Description) != summary {
				t.Errorf("RSS description %q, want %q escaped", it.Description, summary)
			}
		}
	}
	if !found {
		t.Errorf("b/en not in the RSS feed:\n%s", body)
	}
}
