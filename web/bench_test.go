package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// seedThread stores n public replies under the Note: a fifth answer the
// article, the others answer one of those or each other (threads of five,
// two levels deep), from 50 authors whose avatars are already kept.
func seedThread(b testing.TB, e *testEnv, note string, n int) {
	b.Helper()
	const authors = 50
	for a := range authors {
		url := fmt.Sprintf("https://social.example/media/%d.png", a)
		if err := e.store.PutAvatar(avatarKey(url), storage.Avatar{URL: url, ContentType: "image/png", FetchedAt: testNow}, pngBytes); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		parent := note
		switch {
		case i%5 == 1 || i%5 == 2:
			parent = fmt.Sprintf("https://social.example/notes/%d", i-i%5)
		case i%5 >= 3:
			parent = fmt.Sprintf("https://social.example/notes/%d", i-1)
		}
		a := i % authors
		_, err := e.store.PutInteraction(storage.Interaction{
			ID: fmt.Sprintf("https://social.example/notes/%d", i), Kind: storage.KindReply, NoteID: note, InReplyTo: parent,
			Actor: storage.RemoteActor{ID: fmt.Sprintf("https://social.example/users/%d", a), Name: fmt.Sprintf("Author %d", a),
				Handle: fmt.Sprintf("u%d@social.example", a), URL: fmt.Sprintf("https://social.example/@u%d", a),
				Avatar: fmt.Sprintf("https://social.example/media/%d.png", a)},
			URL: fmt.Sprintf("https://social.example/@u%d/%d", a, i),
			Content: `<p>A reply of a few lines, with a <a href="https://example.org/">link</a>, ` +
				`<strong>some emphasis</strong> and a <span class="h-card"><a href="https://social.example/@x" class="u-url mention">@<span>x</span></a></span> mention.</p>` +
				`<p>` + strings.Repeat("Words of a second paragraph. ", 8) + `</p>`,
			Published: testNow.Add(-48*time.Hour + time.Duration(i)*time.Minute),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// serve runs one request through the handler, no network in between.
func serve(b *testing.B, h http.Handler, path, accept string) time.Duration {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Accept", accept)
	w := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(w, req)
	d := time.Since(start)
	if w.Code != http.StatusOK {
		b.Fatalf("%s: %d", path, w.Code)
	}
	return d
}

// BenchmarkThread1000 renders, in the same run and the same loop, the
// article page with no replies, the same page under a thread of 1,000
// replies (its first page of comments: 30 threads, 150 comments), and
// the first page of that thread's replies collection; it reports each as
// ns per render and the thread page against the empty one.
func BenchmarkThread1000(b *testing.B) {
	empty := newTestEnv(b)
	full := newTestEnv(b)
	note := testBase + "/posts/hello/en"
	seedThread(b, full, note, 1000)
	const as = "application/activity+json"
	// Warm both (templates, bbolt pages) before measuring.
	serve(b, empty.handler, "/posts/hello/en", browserAccept)
	serve(b, full.handler, "/posts/hello/en", browserAccept)
	var tEmpty, tFull, tReplies, tNote time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tEmpty += serve(b, empty.handler, "/posts/hello/en", browserAccept)
		tFull += serve(b, full.handler, "/posts/hello/en", browserAccept)
		tReplies += serve(b, full.handler, "/posts/hello/en/replies", as)
		tNote += serve(b, full.handler, "/posts/hello/en", as)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tEmpty.Nanoseconds())/n, "ns-page-empty/op")
	b.ReportMetric(float64(tFull.Nanoseconds())/n, "ns-page-1000/op")
	b.ReportMetric(float64(tReplies.Nanoseconds())/n, "ns-replies-1000/op")
	b.ReportMetric(float64(tNote.Nanoseconds())/n, "ns-note-1000/op")
	b.ReportMetric(float64(tFull)/float64(tEmpty), "page-1000/empty")
	b.ReportMetric(float64(tReplies)/float64(tEmpty), "replies-1000/empty")
}
