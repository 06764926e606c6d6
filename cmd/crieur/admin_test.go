package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// With manual approval, a Follow waits until the admin approves it from the
// command line, which talks to the running server over its socket.
func TestManualApprovalThroughTheAdminCommands(t *testing.T) {
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.extraEnv["CRIEUR_MANUAL_APPROVAL"] = "true"
	in.start()
	r := newRemote(t)
	if code, actor := in.getJSON(in.actorID()); code != 200 || actor["manuallyApprovesFollowers"] != true {
		t.Fatalf("actor: %d manuallyApprovesFollowers=%v", code, actor["manuallyApprovesFollowers"])
	}
	for _, name := range []string{"carol", "dave"} {
		if resp := r.send(in.actorID()+"/inbox", name, follow(r, in, name), nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("Follow from %s: %d", name, resp.StatusCode)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if len(r.deliveries()) != 0 || in.followerCount() != 0 {
		t.Fatalf("a pending follow was answered or counted: %v", summarize(r.deliveries()))
	}
	out, err := in.admin("followers", "pending")
	if err != nil || !strings.Contains(out, r.actorID("carol")) || !strings.Contains(out, r.actorID("dave")) {
		t.Fatalf("followers pending: %v\n%s", err, out)
	}

	if out, err := in.admin("followers", "approve", r.actorID("carol")); err != nil {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	acc := r.waitFor(10*time.Second, "Accept", ofType("Accept"))
	if obj, _ := acc.Activity["object"].(map[string]any); obj["actor"] != r.actorID("carol") {
		t.Errorf("Accept object %v", acc.Activity["object"])
	}
	if out, err := in.admin("followers", "reject", r.actorID("dave")); err != nil {
		t.Fatalf("reject: %v\n%s", err, out)
	}
	rej := r.waitFor(10*time.Second, "Reject", ofType("Reject"))
	if obj, _ := rej.Activity["object"].(map[string]any); obj["actor"] != r.actorID("dave") {
		t.Errorf("Reject object %v", rej.Activity["object"])
	}
	if n := in.followerCount(); n != 1 {
		t.Errorf("followers after approve+reject: %d, want 1", n)
	}
	if _, err := in.admin("followers", "approve", "https://nobody.example/users/x"); err == nil {
		t.Errorf("approving an unknown actor succeeded")
	}

	// Publishing reports: dry run, an announcement on purpose, per-article status.
	out, err = in.admin("publish", "-dry-run")
	if err != nil || !strings.Contains(out, "nothing to publish") {
		t.Errorf("dry run with everything announced: %v\n%s", err, out)
	}
	in.writePost("b.en.md", post("b", "en", "B", "2024-02-02", "B."))
	create := r.waitFor(10*time.Second, "Create", ofType("Create"))
	out, err = in.admin("publish", "-again", "a/en")
	if err != nil || !strings.Contains(out, "1 deliveries queued") {
		t.Fatalf("publish -again: %v\n%s", err, out)
	}
	// a/en was back catalogue, never pushed: followers' servers do not
	// have it, so it goes out as a Create; announced again, as an Update.
	announced := func(typ string) func(received) bool {
		return func(d received) bool {
			o, _ := d.Activity["object"].(map[string]any)
			return d.Activity["type"] == typ && o["id"] == in.base+"/posts/a/en"
		}
	}
	r.waitFor(10*time.Second, "Create of the back-catalogue post", announced("Create"))
	if out, err := in.admin("publish", "-again", "a/en"); err != nil {
		t.Fatalf("publish -again: %v\n%s", err, out)
	}
	r.waitFor(10*time.Second, "Update of the announced-again post", announced("Update"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err = in.admin("status", "b/en")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		// One follower, one delivery done, none pending or failed.
		f := strings.Fields(out)
		if strings.Contains(out, "b/en") && strings.Contains(out, "create") &&
			strings.Join(f[len(f)-3:], " ") == "1 0 0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the Create of b/en delivered (activity %v):\n%s", create.Activity["id"], out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := in.admin("status", "nope/en"); err == nil {
		t.Errorf("status of an unknown article succeeded")
	}
}

// Without a running server the admin commands open the data folder
// themselves; with one they must not fight it for the file.
func TestAdminCommandsWithoutAServer(t *testing.T) {
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	out, err := in.admin("queue")
	if err != nil || !strings.HasPrefix(out, "pending 0, retrying 0, failed 0") {
		t.Fatalf("queue on a fresh data folder: %v\n%s", err, out)
	}
	out, err = in.admin("publish", "-dry-run")
	if err != nil || !strings.Contains(out, "a/en") {
		t.Fatalf("dry run before the first start should list the back catalogue: %v\n%s", err, out)
	}
	out, err = in.admin("followers")
	if err != nil || !strings.Contains(out, "0 in all") {
		t.Fatalf("followers: %v\n%s", err, out)
	}
}

// A server that refused a delivery for good gets it once the admin retries
// its failed deliveries from the command line.
func TestQueueRetryAfterAServerComesBack(t *testing.T) {
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.start()
	r := newRemote(t)
	var refusing atomic.Bool
	r.status = func(string) int {
		if refusing.Load() {
			return http.StatusBadRequest // permanent: failed at once
		}
		return 0
	}
	if resp := r.send(in.actorID()+"/inbox", "carol", follow(r, in, "carol"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow: %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept", ofType("Accept"))
	refusing.Store(true)
	in.writePost("b.en.md", post("b", "en", "B", "2024-02-02", "B."))
	queueShows := func(what string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := in.admin("queue")
			if err != nil {
				t.Fatalf("queue: %v\n%s", err, out)
			}
			if strings.HasPrefix(out, what) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue never showed %q:\n%s", what, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	queueShows("pending 0, retrying 0, failed 1")

	refusing.Store(false)
	if out, err := in.admin("queue", "retry", "elsewhere.example"); err != nil || !strings.HasPrefix(out, "0 deliveries queued again") {
		t.Fatalf("retry for another host: %v\n%s", err, out)
	}
	host := strings.TrimPrefix(r.srv.URL, "http://")
	out, err := in.admin("queue", "retry", host)
	if err != nil || !strings.HasPrefix(out, "1 deliveries queued again") {
		t.Fatalf("queue retry: %v\n%s", err, out)
	}
	got := r.waitFor(10*time.Second, "Create of b after the retry", func(d received) bool {
		o, _ := d.Activity["object"].(map[string]any)
		return d.Activity["type"] == "Create" && o["id"] == in.base+"/posts/b/en"
	})
	if o, _ := got.Activity["object"].(map[string]any); !strings.Contains(fmt.Sprint(o["content"]), "B.") {
		t.Errorf("retried Create content %v", o["content"])
	}
	queueShows("pending 0, retrying 0, failed 0")
	if _, err := in.admin("queue", "again"); err == nil {
		t.Errorf("crieur queue again: no usage error")
	}
}

// crieur status reports an article's last activity: after an edit its
// Update, after a removal its Delete, each with its own delivery counts.
func TestStatusFollowsTheLastActivity(t *testing.T) {
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.start()
	r := newRemote(t)
	if resp := r.send(in.actorID()+"/inbox", "carol", follow(r, in, "carol"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow: %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept", ofType("Accept"))
	statusShows := func(what, last string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := in.admin("status", "b/en")
			if err != nil {
				t.Fatalf("status: %v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			f := strings.Fields(lines[len(lines)-1])
			if len(f) >= 7 && f[1] == what && f[2] == last && strings.Join(f[len(f)-3:], " ") == "1 0 0" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never showed b/en %s, last %s, delivered once:\n%s", what, last, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	in.writePost("b.en.md", post("b", "en", "B", "2024-02-02", "B."))
	r.waitFor(10*time.Second, "Create", ofType("Create"))
	statusShows("published", "create")
	in.writePost("b.en.md", post("b", "en", "B", "2024-02-02", "B, edited."))
	r.waitFor(10*time.Second, "Update", ofType("Update"))
	statusShows("edited", "update")
	if err := os.Remove(filepath.Join(in.posts, "b.en.md")); err != nil {
		t.Fatal(err)
	}
	r.waitFor(10*time.Second, "Delete", ofType("Delete"))
	statusShows("deleted", "delete")
}

// An admin command pointed at a folder that does not exist (a typo, a flag
// forgotten) says so and creates nothing, instead of making a new actor key
// and reporting an empty database; flags after the command's words count.
func TestAdminCommandNamesAMissingDataFolder(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere")
	env := func(k string) string {
		if k == "CRIEUR_POSTS" {
			return t.TempDir()
		}
		return ""
	}
	var out syncBuffer
	err := run(context.Background(), []string{"followers", "pending", "-data", missing}, env, &out, &out)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("followers pending -data %s: %v\n%s", missing, err, out.String())
	}
	if _, serr := os.Stat(missing); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("the command created %s: %v", missing, serr)
	}
}

// TestQueueShowsNextAttemptAndGiveUp: per host, crieur queue tells when
// the next attempt is due and when the oldest delivery being retried will
// be given up (its creation plus -retry-for). Golden file:
// testdata/queue.golden.
func TestQueueShowsNextAttemptAndGiveUp(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	clock := now
	st, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	act := storage.Activity{ID: "https://crieur.example/activities/1", Type: "Create", ObjectID: "https://crieur.example/posts/a/en",
		Published: now, JSON: []byte(`{}`)}
	if err := st.Enqueue(act, []storage.Job{{Inbox: "https://down.example/inbox"}}); err != nil {
		t.Fatal(err)
	}
	clock = now.Add(2 * time.Hour)
	act2 := act
	act2.ID, act2.ObjectID = "https://crieur.example/activities/2", "https://crieur.example/posts/b/en"
	jobs := []storage.Job{{Inbox: "https://down.example/inbox"}, {Inbox: "https://up.example/inbox"}, {Inbox: "https://gone.example/inbox"}}
	if err := st.Enqueue(act2, jobs); err != nil {
		t.Fatal(err)
	}
	all, err := st.PendingJobs()
	if err != nil || len(all) != 4 {
		t.Fatalf("PendingJobs = %d jobs, %v", len(all), err)
	}
	// down.example failed both deliveries once; the first has been
	// retried since 09:00, the second is due again at 11:30.
	if err := st.RetryJob(all[0].ID, now.Add(3*time.Hour), 502, "HTTP 502 Bad Gateway", true); err != nil {
		t.Fatal(err)
	}
	if err := st.RetryJob(all[1].ID, now.Add(2*time.Hour+30*time.Minute), 0, "connection refused", true); err != nil {
		t.Fatal(err)
	}
	if err := st.FailJob(all[3].ID, 403, "HTTP 403 Forbidden"); err != nil {
		t.Fatal(err)
	}
	stats, err := st.QueueStats()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := writeQueueStats(&out, stats, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/queue.golden")
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("crieur queue printed:\n%s\nwant (testdata/queue.golden):\n%s", out.String(), want)
	}
}

// crieur status shows each article's interactions as the inbox kept them,
// between its last activity and its deliveries.
func TestStatusCountsInteractions(t *testing.T) {
	st, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	note := "https://crieur.example/posts/a/en"
	act := storage.Activity{ID: "https://crieur.example/activities/1", Type: "Create", ObjectID: note,
		Published: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), InOutbox: true, JSON: []byte(`{}`)}
	if _, err := st.Publish(storage.LedgerEntry{Key: "a/en", NoteID: note, Pushed: true}, act, nil); err != nil {
		t.Fatal(err)
	}
	who := func(n string) storage.RemoteActor {
		return storage.RemoteActor{ID: "https://remote.example/users/" + n}
	}
	for _, i := range []storage.Interaction{
		{ID: "https://remote.example/notes/1", Kind: storage.KindReply, NoteID: note, Actor: who("a")},
		{ID: "https://remote.example/notes/2", Kind: storage.KindReply, NoteID: note, Actor: who("b")},
		{ID: "https://remote.example/likes/1", Kind: storage.KindLike, NoteID: note, Actor: who("a")},
		{ID: "https://remote.example/boosts/1", Kind: storage.KindAnnounce, NoteID: note, Actor: who("a")},
		{ID: "https://remote.example/notes/3", Kind: storage.KindMention, NoteID: note, Actor: who("c")},
	} {
		if _, err := st.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := opStatus(context.Background(), &app{store: st}, nil, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if h := strings.Fields(lines[0]); strings.Join(h[3:8], " ") != "REPLIES LIKES BOOSTS QUOTES MENTIONS" {
		t.Errorf("header %q", lines[0])
	}
	if f := strings.Fields(lines[1]); len(f) != 13 || strings.Join(f[5:10], " ") != "2 1 1 0 1" {
		t.Errorf("line %q, want 2 replies, 1 like, 1 boost, 0 quotes, 1 mention", lines[1])
	}
}
