package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// pngBytes is the start of a PNG file: enough for the type checks.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")

// avatarServer is a remote server's media host on loopback: a good
// avatar, one too large, one that is HTML, and a count of requests.
func avatarServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	hits := new(atomic.Int32)
	mux := http.NewServeMux()
	mux.HandleFunc("/good.png", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(pngBytes)
	})
	mux.HandleFunc("/huge.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(append(append([]byte(nil), pngBytes...), make([]byte, 2<<20)...))
	})
	mux.HandleFunc("/page.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<script>alert(1)</script>"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, hits
}

// put stores an interaction as the inbox handlers would.
func put(t *testing.T, e *testEnv, i storage.Interaction) {
	t.Helper()
	if _, err := e.store.PutInteraction(i); err != nil {
		t.Fatalf("put %s: %v", i.ID, err)
	}
}

func remoteActor(name, avatar string) storage.RemoteActor {
	return storage.RemoteActor{
		ID: "https://social.example/users/" + strings.ToLower(name), Name: name,
		Handle: strings.ToLower(name) + "@social.example", URL: "https://social.example/@" + strings.ToLower(name),
		Avatar: avatar,
	}
}

// waitFor polls until cond holds: avatars are fetched in the background.
// The deadline is generous; nothing depends on how fast it happens.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestArticleShowsConversation: what a reader sees under an article with
// replies, a nested thread, a mention, likes, a boost and a quote.
func TestArticleShowsConversation(t *testing.T) {
	e := newTestEnv(t)
	media, hits := avatarServer(t)
	note := testBase + "/posts/hello/en"
	at := func(m int) time.Time { return testNow.Add(-24*time.Hour + time.Duration(m)*time.Minute) }
	alice := remoteActor("Alice", media.URL+"/good.png")
	bob := remoteActor("Bob", media.URL+"/huge.png")
	carol := remoteActor("Carol", media.URL+"/page.png")
	dave := remoteActor("Dave", "http://10.1.2.3/private.png")
	put(t, e, storage.Interaction{ID: "https://social.example/notes/1", Kind: storage.KindReply, NoteID: note, InReplyTo: note,
		Actor: alice, URL: "https://social.example/@alice/1", Content: "<p>First, from Alice</p>", Published: at(1)})
	put(t, e, storage.Interaction{ID: "https://social.example/notes/2", Kind: storage.KindReply, NoteID: note,
		InReplyTo: "https://social.example/notes/1", Actor: bob, Content: "<p>Bob answers Alice</p>",
		Published: at(2), Updated: at(30)})
	put(t, e, storage.Interaction{ID: "https://social.example/notes/3", Kind: storage.KindReply, NoteID: note,
		InReplyTo: "https://social.example/notes/2", Actor: carol, Content: "<p>Carol answers Bob</p>", Published: at(3)})
	put(t, e, storage.Interaction{ID: "https://social.example/notes/4", Kind: storage.KindReply, NoteID: note, InReplyTo: note,
		Actor: dave, Content: `<p>Dave second<script>alert(1)</script><style>body{}</style></p>` +
			`<iframe src="https://evil.example/"></iframe><img src="https://tracker.example/pixel.gif">` +
			`<a href="javascript:alert(2)" onclick="alert(3)">click</a><span onmouseover="alert(4)">hover</span>`,
		Published: at(4)})
	put(t, e, storage.Interaction{ID: "https://social.example/notes/secret", Kind: storage.KindMention, NoteID: note,
		InReplyTo: note, Actor: alice, Content: "<p>Private word to the bot</p>", Published: at(5)})
	for i, k := range []storage.InteractionKind{storage.KindLike, storage.KindLike, storage.KindAnnounce, storage.KindQuote} {
		put(t, e, storage.Interaction{ID: fmt.Sprintf("https://social.example/act/%d", i), Kind: k, NoteID: note,
			Actor: remoteActor(fmt.Sprintf("fan%d", i), ""), Content: "<p>quoting</p>", Published: at(10 + i)})
	}

	r := e.get(t, "/posts/hello/en", "Accept", browserAccept)
	expect(t, r, http.StatusOK, "text/html")
	contains(t, r, `id="comments"`, "First, from Alice", "Bob answers Alice", "Carol answers Bob", "Dave second",
		"Replies: 4", "Likes: 2", "Boosts: 1", "Quotes: 1",
		`<a href="https://social.example/@alice" rel="nofollow noopener ugc"><bdi>Alice</bdi></a> <span class="handle">@alice@social.example</span>`,
		`href="https://social.example/@alice/1"`, // the original
		`<span class="edited" title="`,           // Bob's edit
		"in reply to Bob",                        // Carol, shown one level down
		"Reply from your server", `value="`+note+`"`,
		`<span class="avatar placeholder" aria-hidden="true">A</span>`) // not fetched yet
	lacks(t, r, "Private word", "<script>alert", "<style>body", "<iframe", "tracker.example", "javascript:",
		"onclick", "onmouseover", "social.example/good.png", media.URL)

	// Oldest first; Bob and Carol nested under Alice; Dave after them.
	iA, iB, iC, iD := strings.Index(r.body, "First, from Alice"), strings.Index(r.body, "Bob answers"),
		strings.Index(r.body, "Carol answers"), strings.Index(r.body, "Dave second")
	if !(iA < iB && iB < iC && iC < iD) {
		t.Errorf("order: Alice %d, Bob %d, Carol %d, Dave %d", iA, iB, iC, iD)
	}
	nested := r.body[iA:iD]
	if strings.Count(nested, `<ol class="comments replies">`) != 1 {
		t.Errorf("Bob and Carol are not nested under Alice:\n%s", nested)
	}

	// The avatars are fetched in the background; Alice's is then served
	// by crieur, the refused ones stay placeholders.
	good := "/avatars/" + avatarKey(alice.Avatar)
	waitFor(t, "Alice's avatar", func() bool {
		return strings.Contains(e.get(t, "/posts/hello/en", "Accept", browserAccept).body, `src="`+good+`"`)
	})
	for _, a := range []storage.RemoteActor{bob, carol, dave} {
		waitFor(t, a.Name+"'s avatar refusal", func() bool {
			info, err := e.store.AvatarInfo(avatarKey(a.Avatar))
			return err == nil && info.Refused != ""
		})
	}
	r = e.get(t, "/posts/hello/en", "Accept", browserAccept)
	contains(t, r, `<img class="avatar" src="`+good+`"`, `aria-hidden="true">B</span>`,
		`aria-hidden="true">C</span>`, `aria-hidden="true">D</span>`)
	lacks(t, r, media.URL, "10.1.2.3")
	img := e.get(t, good)
	expect(t, img, http.StatusOK, "image/png")
	if img.body != string(pngBytes) || img.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(img.Header.Get("Cache-Control"), "max-age=31536000") {
		t.Errorf("avatar answer: %q, headers %v", img.body, img.Header)
	}
	for _, a := range []storage.RemoteActor{bob, carol, dave} {
		expect(t, e.get(t, "/avatars/"+avatarKey(a.Avatar)), http.StatusNotFound, "")
	}
	// Fetched once, whatever the number of views.
	for range 3 {
		e.get(t, "/posts/hello/en", "Accept", browserAccept)
	}
	if hits.Load() != 1 {
		t.Errorf("the good avatar was fetched %d times, want 1", hits.Load())
	}
	// The policy still forbids scripts and anything remote but images.
	csp := r.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") {
		t.Errorf("CSP allows scripts: %q", csp)
	}
}

// TestArticleCommentsPaged: a long conversation is cut between threads,
// ?comments=N pages through it without JavaScript, and a page past the
// end is not found.
func TestArticleCommentsPaged(t *testing.T) {
	e := newTestEnv(t)
	note := testBase + "/posts/hello/en"
	for i := range threadsPerPage + 3 {
		put(t, e, storage.Interaction{ID: fmt.Sprintf("https://social.example/notes/%03d", i), Kind: storage.KindReply,
			NoteID: note, InReplyTo: note, Actor: remoteActor(fmt.Sprintf("u%03d", i), ""),
			Content: fmt.Sprintf("<p>reply number %03d</p>", i), Published: testNow.Add(time.Duration(i-100) * time.Minute)})
	}
	r := e.get(t, "/posts/hello/en", "Accept", browserAccept)
	expect(t, r, http.StatusOK, "text/html")
	contains(t, r, "reply number 000", fmt.Sprintf("reply number %03d", threadsPerPage-1),
		`href="/posts/hello/en?comments=2#comments" rel="next"`, "Replies: 33")
	lacks(t, r, fmt.Sprintf("reply number %03d", threadsPerPage))
	r = e.get(t, "/posts/hello/en?comments=2", "Accept", browserAccept)
	expect(t, r, http.StatusOK, "text/html")
	contains(t, r, fmt.Sprintf("reply number %03d", threadsPerPage+2), `href="/posts/hello/en#comments" rel="prev"`)
	lacks(t, r, "reply number 000")
	expect(t, e.get(t, "/posts/hello/en?comments=3", "Accept", browserAccept), http.StatusNotFound, "")
	expect(t, e.get(t, "/posts/hello/en?comments=x", "Accept", browserAccept), http.StatusBadRequest, "")
}

// TestNoteCollectionsServed: the replies, likes and shares collections
// answer ActivityStreams at their ids, browsers are sent to the comments.
func TestNoteCollectionsServed(t *testing.T) {
	e := newTestEnv(t)
	note := testBase + "/posts/hello/en"
	put(t, e, storage.Interaction{ID: "https://social.example/notes/1", Kind: storage.KindReply, NoteID: note,
		InReplyTo: note, Actor: remoteActor("Alice", ""), Content: "<p>hi</p>", Published: testNow.Add(-time.Hour)})
	put(t, e, storage.Interaction{ID: "https://social.example/likes/1", Kind: storage.KindLike, NoteID: note,
		Actor: remoteActor("Bob", ""), Published: testNow.Add(-time.Hour)})
	as := "application/activity+json"
	r := e.get(t, "/posts/hello/en/replies", "Accept", as)
	expect(t, r, http.StatusOK, as)
	contains(t, r, `"id":"`+note+`/replies"`, `"totalItems":1`, `"orderedItems":["https://social.example/notes/1"]`)
	r = e.get(t, "/posts/hello/en/replies?page=1", "Accept", as)
	expect(t, r, http.StatusOK, as)
	contains(t, r, `"type":"OrderedCollectionPage"`, `"partOf":"`+note+`/replies"`)
	contains(t, e.get(t, "/posts/hello/en/likes", "Accept", as), `"totalItems":1`)
	contains(t, e.get(t, "/posts/hello/en/shares", "Accept", as), `"totalItems":0`)
	expect(t, e.get(t, "/posts/hello/en/likes?page=1", "Accept", as), http.StatusNotFound, "")
	expect(t, e.get(t, "/posts/nope/en/replies", "Accept", as), http.StatusNotFound, "")
	r = e.get(t, "/posts/hello/en/replies", "Accept", browserAccept)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/posts/hello/en#comments" || !hasVaryAccept(r) {
		t.Errorf("browser on replies: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// The Note itself carries them.
	contains(t, e.get(t, "/posts/hello/en", "Accept", as), `"replies":{`, `"likes":{`, `"shares":{`)
}

func TestThreadsAndInitials(t *testing.T) {
	note := "https://crieur.example/posts/a/en"
	rs := []storage.ReplyLink{
		{ID: "a", InReplyTo: note},
		{ID: "loop1", InReplyTo: "loop2"}, // a parent loop ends
		{ID: "loop2", InReplyTo: "loop1"},
		{ID: "orphan", InReplyTo: "https://gone.example/1"}, // parent not kept
		{ID: "b", InReplyTo: "a"},
	}
	th := threads(rs, note)
	var got []string
	for _, x := range th {
		s := x.root + ":"
		for _, c := range x.children {
			s += c.id + ","
		}
		got = append(got, s)
	}
	if strings.Join(got, " ") != "a:b, loop1: loop2: orphan:" {
		t.Errorf("threads = %v", got)
	}
	for in, want := range map[string]string{"alice": "A", "  «Émile»": "É", "🙂": "?", "": "?", "42x": "4"} {
		if got := initials(in); got != want {
			t.Errorf("initials(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConversationFollowsEditsAndDeletes: an edited reply shows its new
// text and the edited mark; a deleted one leaves the page and the counts,
// and its answer stays, opening a thread of its own.
func TestConversationFollowsEditsAndDeletes(t *testing.T) {
	e := newTestEnv(t)
	note := testBase + "/posts/hello/en"
	alice, bob := remoteActor("Alice", ""), remoteActor("Bob", "")
	first := storage.Interaction{ID: "https://social.example/notes/1", Kind: storage.KindReply, NoteID: note, InReplyTo: note,
		Actor: alice, Content: "<p>first version</p>", Published: testNow.Add(-2 * time.Hour)}
	put(t, e, first)
	put(t, e, storage.Interaction{ID: "https://social.example/notes/2", Kind: storage.KindReply, NoteID: note,
		InReplyTo: first.ID, Actor: bob, Content: "<p>Bob agrees</p>", Published: testNow.Add(-time.Hour)})
	r := e.get(t, "/posts/hello/en", "Accept", browserAccept)
	contains(t, r, "first version", "Bob agrees", "Replies: 2", `<ol class="comments replies">`)
	lacks(t, r, `class="edited"`)

	edited := first
	edited.Content, edited.Updated = "<p>second version</p>", testNow.Add(-30*time.Minute)
	put(t, e, edited)
	r = e.get(t, "/posts/hello/en", "Accept", browserAccept)
	contains(t, r, "second version", `class="edited"`, "Replies: 2")
	lacks(t, r, "first version")

	if _, _, err := e.store.DeleteInteraction(first.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	r = e.get(t, "/posts/hello/en", "Accept", browserAccept)
	contains(t, r, "Bob agrees", "Replies: 1")
	lacks(t, r, "second version", `<ol class="comments replies">`)
}
