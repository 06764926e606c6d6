package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A remote actor follows, is accepted with a signed Accept that embeds its
// Follow, survives a restart, and unfollows.
func TestFollowAcceptRestartUndo(t *testing.T) {
	in := newInstance(t, map[string]string{"hello.en.md": post("hello", "en", "Hello", "2023-01-02", "First.")})
	in.start()
	r := newRemote(t)

	if n := in.followerCount(); n != 0 {
		t.Fatalf("followers before: %d", n)
	}
	f := follow(r, in, "alice")
	if resp := r.send(in.actorID()+"/inbox", "alice", f, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow answered %d, want 202", resp.StatusCode)
	}
	acc := r.waitFor(10*time.Second, "Accept", ofType("Accept"))
	if acc.Path != "/users/alice/inbox" {
		t.Errorf("Accept went to %s, want the follower's own inbox", acc.Path)
	}
	if acc.KeyID != in.actorID()+"#main-key" {
		t.Errorf("Accept signed with keyId %q", acc.KeyID)
	}
	if acc.Activity["actor"] != in.actorID() {
		t.Errorf("Accept actor %v", acc.Activity["actor"])
	}
	id, _ := acc.Activity["id"].(string)
	if !strings.HasPrefix(id, in.base+"/activities/") {
		t.Errorf("Accept id %q is not one of ours", id)
	}
	obj, _ := acc.Activity["object"].(map[string]any)
	if obj == nil || obj["id"] != f["id"] || obj["type"] != "Follow" {
		t.Errorf("Accept object %v does not embed the Follow %v", acc.Activity["object"], f["id"])
	}
	// The Accept's id dereferences to the same document.
	if code, m := in.getJSON(id); code != 200 || m["type"] != "Accept" {
		t.Errorf("GET Accept id: %d %v", code, m["type"])
	}
	if n := in.followerCount(); n != 1 {
		t.Fatalf("followers after Follow: %d, want 1", n)
	}

	in.stop()
	in.start()
	if n := in.followerCount(); n != 1 {
		t.Fatalf("followers after restart: %d, want 1", n)
	}
	out, err := in.admin("followers")
	if err != nil || !strings.Contains(out, r.actorID("alice")) {
		t.Errorf("crieur followers while serving: %v\n%s", err, out)
	}

	undo := map[string]any{
		"@context": "https://www.w3.org/ns/activitystreams",
		"id":       r.actorID("alice") + "/undo/1",
		"type":     "Undo",
		"actor":    r.actorID("alice"),
		"object":   f,
	}
	// Through the shared inbox this time: both inboxes handle everything.
	if resp := r.send(in.base+"/inbox", "alice", undo, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Undo answered %d", resp.StatusCode)
	}
	if n := in.followerCount(); n != 0 {
		t.Fatalf("followers after Undo: %d, want 0", n)
	}
}

// Forged or malformed requests get a 4xx and change nothing.
func TestInboxRefusesBadRequests(t *testing.T) {
	in := newInstance(t, nil)
	in.start()
	r := newRemote(t)
	inbox := in.actorID() + "/inbox"
	f := follow(r, in, "mallory")
	cases := []struct {
		name   string
		actor  string
		mutate func(*http.Request, []byte) []byte
	}{
		{"unsigned", "mallory", func(req *http.Request, _ []byte) []byte { req.Header.Del("Signature"); return nil }},
		{"key of another actor", "eve", nil},
		{"body changed after signing", "mallory", func(_ *http.Request, b []byte) []byte {
			return []byte(strings.Replace(string(b), "mallory", "mallorx", 1))
		}},
		{"malformed JSON", "mallory", func(_ *http.Request, b []byte) []byte { return b[:len(b)-2] }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := r.send(inbox, c.actor, f, c.mutate)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("answered %d, want 4xx", resp.StatusCode)
			}
			if n := in.followerCount(); n != 0 {
				t.Errorf("followers: %d, want 0", n)
			}
		})
	}
	// A Date two hours old: signed honestly, but stale.
	t.Run("stale date", func(t *testing.T) {
		resp := r.sendDated(inbox, "mallory", f, time.Now().Add(-2*time.Hour))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("answered %d, want 401", resp.StatusCode)
		}
		if n := in.followerCount(); n != 0 {
			t.Errorf("followers: %d", n)
		}
	})
	t.Run("body over the limit", func(t *testing.T) {
		big := map[string]any{"type": "Follow", "actor": r.actorID("mallory"), "object": in.actorID(),
			"padding": strings.Repeat("x", 2<<20)}
		resp := r.send(inbox, "mallory", big, nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("answered %d, want 413", resp.StatusCode)
		}
	})
	time.Sleep(300 * time.Millisecond)
	if len(r.deliveries()) != 0 {
		t.Errorf("crieur answered a refused Follow: %v", summarize(r.deliveries()))
	}
}

// A new bio, avatar or pinned article reaches followers as a signed Update
// of the actor (Mastodon and GoToSocial fetch the actor again on it); a
// restart with nothing changed sends nothing.
func TestProfileChangeReachesFollowers(t *testing.T) {
	in := newInstance(t, map[string]string{"hello.en.md": post("hello", "en", "Hello", "2023-01-02", "First.")})
	in.start()
	r := newRemote(t)
	if resp := r.send(in.actorID()+"/inbox", "alice", follow(r, in, "alice"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow answered %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept", ofType("Accept"))

	// Restart with a new bio and an avatar.
	in.stop()
	avatar := filepath.Join(t.TempDir(), "logo.png")
	png, err := os.ReadFile("../../web/testdata/posts/bundle/pic.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(avatar, png, 0o644); err != nil {
		t.Fatal(err)
	}
	in.extraEnv["CRIEUR_BIO"] = "Reports of the association, now weekly."
	in.extraEnv["CRIEUR_AVATAR"] = avatar
	in.start()
	isProfile := func(d received) bool {
		obj, _ := d.Activity["object"].(map[string]any)
		return d.Activity["type"] == "Update" && obj["type"] == "Service"
	}
	upd := r.waitFor(10*time.Second, "Update of the actor", isProfile)
	obj := upd.Activity["object"].(map[string]any)
	if obj["id"] != in.actorID() || upd.Activity["actor"] != in.actorID() || upd.KeyID != in.actorID()+"#main-key" {
		t.Errorf("Update of %v by %v signed with %q", obj["id"], upd.Activity["actor"], upd.KeyID)
	}
	if s, _ := obj["summary"].(string); !strings.Contains(s, "now weekly") {
		t.Errorf("Update carries the summary %q", s)
	}
	icon, _ := obj["icon"].(map[string]any)
	if u, _ := icon["url"].(string); !strings.HasPrefix(u, in.base+"/avatar.png?v=") {
		t.Errorf("avatar URL %q has no content version", icon["url"])
	} else if code, _ := getStatus(u); code != http.StatusOK {
		t.Errorf("GET %s: %d", u, code)
	}

	// Pinning an article while running: an Update of the profile (not of
	// the article, which did not change).
	in.writePost("hello.en.md", strings.Replace(post("hello", "en", "Hello", "2023-01-02", "First."), "---\n\n", "pinned: true\n---\n\n", 1))
	deadline := time.Now().Add(10 * time.Second)
	for countProfileUpdates(r, isProfile) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second Update of the actor after pinning; got %v", summarize(r.deliveries()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range r.deliveries() {
		if obj, _ := d.Activity["object"].(map[string]any); d.Activity["type"] == "Update" && obj["type"] == "Note" {
			t.Errorf("pinning sent an Update of the Note %v: servers would show it as edited", obj["id"])
		}
	}

	// Nothing changed: a restart sends nothing more.
	in.stop()
	in.start()
	in.waitQueueEmpty(10*time.Second, "the restart")
	time.Sleep(300 * time.Millisecond)
	if n := countProfileUpdates(r, isProfile); n != 2 {
		t.Errorf("%d Updates of the actor after an unchanged restart, want 2", n)
	}
}

func countProfileUpdates(r *remote, match func(received) bool) int {
	n := 0
	for _, d := range r.deliveries() {
		if match(d) {
			n++
		}
	}
	return n
}

func getStatus(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// An SVG avatar shows on the web pages, but fediverse servers refuse it:
// serve says so at start.
func TestSVGAvatarIsWarnedAbout(t *testing.T) {
	in := newInstance(t, nil)
	svg := filepath.Join(t.TempDir(), "logo.svg")
	if err := os.WriteFile(svg, []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>`), 0o644); err != nil {
		t.Fatal(err)
	}
	in.extraEnv["CRIEUR_AVATAR"] = svg
	in.start()
	if !strings.Contains(in.out.String(), "level=WARN msg=\"an SVG avatar shows on the web pages only") {
		t.Errorf("no warning about the SVG avatar:\n%s", in.out.String())
	}
	if strings.Contains(in.out.String(), "an SVG header") {
		t.Errorf("warned about a header that is not set:\n%s", in.out.String())
	}
}
