package articles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventTimeout is how long a test waits for an event that must come.
const eventTimeout = 5 * time.Second

// forNotifiers runs a watcher test with the platform's notifier and, where
// that is not fsnotify, with fsnotify's portable one as well.
func forNotifiers(t *testing.T, test func(*testing.T, func() (notifier, error))) {
	n, err := newNotifier()
	if err != nil {
		t.Fatal(err)
	}
	closes := n.reportsCloses()
	if err := n.close(); err != nil {
		t.Fatal(err)
	}
	t.Run("platform", func(t *testing.T) { test(t, newNotifier) })
	if closes {
		t.Run("fsnotify", func(t *testing.T) { test(t, newFSNotify) })
	}
}

// syncBuffer collects log output written by the watcher's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	t      *testing.T
	dir    string
	w      *Watcher
	events <-chan Event
	logs   *syncBuffer
	marker int
}

// startWatcher runs a watcher on dir until the test ends.
func startWatcher(t *testing.T, dir string, opts WatchOptions) *harness {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	if opts.Debounce == 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	w, err := NewWatcher(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, w: w, events: w.Subscribe(), logs: logs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(eventTimeout):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

func (h *harness) write(name, text string) {
	h.t.Helper()
	writeFiles(h.t, h.dir, map[string]string{name: text})
}

func (h *harness) path(name string) string { return filepath.Join(h.dir, filepath.FromSlash(name)) }

// next returns the next event.
func (h *harness) next() Event {
	h.t.Helper()
	return h.within(eventTimeout)
}

// sync writes a new marker article and returns every event up to (not
// including) the marker's Added: since the folder is reloaded as a whole,
// any event caused by earlier changes comes in an earlier reload or in the
// same one, where events are sorted by key and the marker's sorts last.
func (h *harness) sync() []Event {
	h.t.Helper()
	h.marker++
	slug := fmt.Sprintf("zzzz-marker-%d", h.marker)
	h.write(slug+".en.md", article("Marker", "2020-01-01"))
	var got []Event
	for {
		ev := h.next()
		if ev.Type == Added && ev.Key == slug+"/en" {
			return got
		}
		got = append(got, ev)
	}
}

func describe(evs []Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.Type.String()+" "+ev.Key)
	}
	return strings.Join(s, ", ")
}

func (h *harness) expect(want string) []Event {
	h.t.Helper()
	evs := h.sync()
	if got := describe(evs); got != want {
		h.t.Errorf("events = [%s], want [%s]", got, want)
	}
	return evs
}

func TestWatcherAddChangeRemove(t *testing.T) { forNotifiers(t, testWatcherAddChangeRemove) }

func testWatcherAddChangeRemove(t *testing.T, n func() (notifier, error)) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"first.en.md": article("First", "2023-01-01")})
	h := startWatcher(t, dir, WatchOptions{notifier: n})
	if _, ok := h.w.Library().Get("first", "en"); !ok {
		t.Fatal("initial load lacks first/en")
	}

	h.write("second.fr.md", article("Deuxième", "2023-01-02"))
	evs := h.expect("added second/fr")
	if len(evs) == 1 && (evs[0].File != "second.fr.md" || evs[0].Post.Title != "Deuxième") {
		t.Errorf("Added event = %+v", evs[0])
	}
	if p, ok := h.w.Library().Get("second", "fr"); !ok || p.Title != "Deuxième" {
		t.Error("Library lacks the added post")
	}

	old, _ := h.w.Library().Get("first", "en")
	h.write("first.en.md", article("First, edited", "2023-01-01"))
	evs = h.expect("changed first/en")
	if len(evs) == 1 && (evs[0].Post.Title != "First, edited" || evs[0].Post.Hash == old.Hash) {
		t.Errorf("Changed event = %+v", evs[0].Post)
	}

	// Rewriting the same bytes is not an edit.
	h.write("first.en.md", article("First, edited", "2023-01-01"))
	h.expect("")

	if err := os.Remove(h.path("second.fr.md")); err != nil {
		t.Fatal(err)
	}
	evs = h.expect("removed second/fr")
	if len(evs) == 1 && evs[0].Post.Title != "Deuxième" {
		t.Errorf("Removed event carries %+v, want the last version", evs[0].Post)
	}
	if _, ok := h.w.Library().Get("second", "fr"); ok {
		t.Error("removed post still in the library")
	}

	// Changing the slug is a removal and an addition.
	h.write("first.en.md", article("First, moved", "2023-01-01", "slug: moved"))
	h.expect("removed first/en, added moved/en")

	// Turning a post into a draft removes it; publishing it adds it back.
	h.write("first.en.md", article("First, moved", "2023-01-01", "slug: moved", "draft: true"))
	h.expect("removed moved/en")
	h.write("first.en.md", article("First, moved", "2023-01-01", "slug: moved", "draft: false"))
	h.expect("added moved/en")
}

func TestWatcherTempFileRename(t *testing.T) { forNotifiers(t, testWatcherTempFileRename) }

func testWatcherTempFileRename(t *testing.T, n func() (notifier, error)) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"post.fr.md": article("Avant", "2023-01-01")})
	h := startWatcher(t, dir, WatchOptions{notifier: n})

	// Atomic save (most editors, and tools such as rsync): write a hidden
	// temporary file, then rename it over the article.
	tmp := h.path(".post.fr.md.tmp1234")
	if err := os.WriteFile(tmp, []byte(article("Après", "2023-01-01")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path("post.fr.md")); err != nil {
		t.Fatal(err)
	}
	evs := h.expect("changed post/fr")
	if len(evs) == 1 && evs[0].Post.Title != "Après" {
		t.Errorf("Changed carries %q", evs[0].Post.Title)
	}

	// Vim without backupcopy: probe file, move the original to a backup,
	// write the new file, delete the backup.
	if err := os.WriteFile(h.path("4913"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.path("4913")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(h.path("post.fr.md"), h.path("post.fr.md~")); err != nil {
		t.Fatal(err)
	}
	h.write("post.fr.md", article("Encore après", "2023-01-01"))
	if err := os.Remove(h.path("post.fr.md~")); err != nil {
		t.Fatal(err)
	}
	evs = h.expect("changed post/fr")
	if len(evs) == 1 && evs[0].Post.Title != "Encore après" {
		t.Errorf("Changed carries %q", evs[0].Post.Title)
	}

	// Remove, then rename the new version in: for a moment the article is
	// gone, and a reload then would send a Delete that Mastodon never
	// undoes.
	if err := os.WriteFile(tmp, []byte(article("Toujours après", "2023-01-01")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.path("post.fr.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path("post.fr.md")); err != nil {
		t.Fatal(err)
	}
	evs = h.expect("changed post/fr")
	if len(evs) == 1 && evs[0].Post.Title != "Toujours après" {
		t.Errorf("Changed carries %q", evs[0].Post.Title)
	}
}

func TestWatcherHalfWrittenKeepsLastGood(t *testing.T) {
	forNotifiers(t, testWatcherHalfWrittenKeepsLastGood)
}

func testWatcherHalfWrittenKeepsLastGood(t *testing.T, n func() (notifier, error)) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"post.en.md": article("Good", "2023-01-01")})
	h := startWatcher(t, dir, WatchOptions{notifier: n})

	// The editor's save is caught in the middle: front matter not closed.
	h.write("post.en.md", "---\ntitle: Better\ndate: 2023-01-01\n")
	h.expect("")
	lib := h.w.Library()
	if p, ok := lib.Get("post", "en"); !ok || p.Title != "Good" {
		t.Fatalf("half-written file unpublished the last good version: %+v, %v", p, ok)
	}
	if got := problemsText(lib.Problems()); got != `post.en.md:1: front matter is not closed: add a "---" line after it` {
		t.Errorf("Problems = %q", got)
	}
	if p, _ := lib.Get("post", "en"); p.File != "post.en.md" {
		t.Errorf("kept post File = %q", p.File)
	}

	// Another reload while the file is still broken logs nothing new.
	h.expect("")
	if n := strings.Count(h.logs.String(), "front matter is not closed"); n != 1 {
		t.Errorf("problem logged %d times, want once:\n%s", n, h.logs)
	}

	// Broken YAML: still the last good version.
	h.write("post.en.md", "---\ntitle: [Better\ndate: 2023-01-01\n---\nBody\n")
	h.expect("")
	if p, ok := h.w.Library().Get("post", "en"); !ok || p.Title != "Good" {
		t.Fatalf("broken file unpublished the last good version")
	}

	// The save completes.
	h.write("post.en.md", article("Better", "2023-01-01"))
	evs := h.expect("changed post/en")
	if len(evs) == 1 && evs[0].Post.Title != "Better" {
		t.Errorf("Changed carries %q", evs[0].Post.Title)
	}
	if probs := h.w.Library().Problems(); len(probs) != 0 {
		t.Errorf("Problems after the fix: %s", problemsText(probs))
	}
	if !strings.Contains(h.logs.String(), "article problem fixed") {
		t.Errorf("fix not logged:\n%s", h.logs)
	}

	// A new file that was never valid is a problem, not a post.
	h.write("new.en.md", "---\ndate: 2023-01-01\n---\n")
	h.expect("")
	if got := problemsText(h.w.Library().Problems()); !strings.Contains(got, "new.en.md: missing title") {
		t.Errorf("Problems = %q", got)
	}
	// A broken file that is then deleted is removed.
	h.write("post.en.md", "---\ntitle: half")
	h.expect("")
	if err := os.Remove(h.path("post.en.md")); err != nil {
		t.Fatal(err)
	}
	h.expect("removed post/en")
}

func TestWatcherPageBundleSubfolder(t *testing.T) { forNotifiers(t, testWatcherPageBundleSubfolder) }

func testWatcherPageBundleSubfolder(t *testing.T, n func() (notifier, error)) {
	dir := t.TempDir()
	h := startWatcher(t, dir, WatchOptions{notifier: n})

	if err := os.Mkdir(h.path("brussels"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.write("brussels/index.fr.md", article("Bruxelles", "2023-06-18"))
	h.write("brussels/photo.jpg", "jpeg")
	evs := h.expect("added brussels/fr")
	if len(evs) == 1 && evs[0].File != "brussels/index.fr.md" {
		t.Errorf("File = %q", evs[0].File)
	}

	// The subfolder is watched: an edit inside it is seen on its own.
	h.write("brussels/index.fr.md", article("Bruxelles, juin", "2023-06-18"))
	h.expect("changed brussels/fr")

	// Nested folders made at once (mkdir -p) and a second language.
	h.write("2023/berlin/index.en.md", article("Berlin", "2023-06-19"))
	h.expect("added berlin/en")
	h.write("2023/berlin/index.en.md", article("Berlin, March", "2023-06-19"))
	h.expect("changed berlin/en")

	// A page bundle moved in from elsewhere.
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"echo/index.en.md": article("Echo", "2023-06-20")})
	if err := os.Rename(filepath.Join(outside, "echo"), h.path("echo")); err != nil {
		t.Fatal(err)
	}
	h.expect("added echo/en")
	h.write("echo/index.en.md", article("Echo, edited", "2023-06-20"))
	h.expect("changed echo/en")

	// Removing the whole bundle removes its post.
	if err := os.RemoveAll(h.path("brussels")); err != nil {
		t.Fatal(err)
	}
	h.expect("removed brussels/fr")
}

func TestWatcherDuplicateAppearing(t *testing.T) { forNotifiers(t, testWatcherDuplicateAppearing) }

func testWatcherDuplicateAppearing(t *testing.T, n func() (notifier, error)) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"b-post.en.md": article("Post", "2023-01-01", "slug: post")})
	h := startWatcher(t, dir, WatchOptions{notifier: n})
	// A file that sorts first takes the slug over: the post changes file.
	h.write("a-post.en.md", article("Other", "2023-01-01", "slug: post"))
	h.expect("changed post/en")
	probs := problemsText(h.w.Library().Problems())
	if !strings.Contains(probs, "b-post.en.md") || !strings.Contains(probs, "a-post.en.md") {
		t.Errorf("duplicate problem does not name both files: %q", probs)
	}
}

func TestWatcherSchedule(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	date := start.Add(300 * time.Millisecond).UTC()
	writeFiles(t, dir, map[string]string{
		"now.en.md":    article("Now", "2023-01-01"),
		"later.en.md":  article("Later", date.Format(time.RFC3339Nano)),
		"much.en.md":   article("Much later", "2999-01-01"),
		"draft.en.md":  article("Draft", date.Format(time.RFC3339Nano), "draft: true"),
		"second.fr.md": article("Plus tard", date.Add(200*time.Millisecond).Format(time.RFC3339Nano)),
	})
	h := startWatcher(t, dir, WatchOptions{})
	if got := keys(h.w.Library().Visible(start)); got != "now/en" {
		t.Fatalf("Visible at start = %s", got)
	}

	ev := h.next()
	if ev.Type != Due || ev.Key != "later/en" || ev.Post.Title != "Later" {
		t.Fatalf("event = %s %s, want due later/en", ev.Type, ev.Key)
	}
	if now := time.Now(); now.Before(date) {
		t.Errorf("Due reported at %s, before the post's date %s", now, date)
	}
	if got := keys(h.w.Library().Visible(time.Now())); !strings.HasPrefix(got, "later/en") {
		t.Errorf("Visible after Due = %s", got)
	}

	// The timer re-arms for the next post.
	ev = h.next()
	if ev.Type != Due || ev.Key != "second/fr" {
		t.Fatalf("event = %s %s, want due second/fr", ev.Type, ev.Key)
	}

	// A future post added while running: Added now, Due when its date comes.
	soon := time.Now().Add(300 * time.Millisecond).UTC()
	h.write("soon.en.md", article("Soon", soon.Format(time.RFC3339Nano)))
	ev = h.next()
	if ev.Type != Added || ev.Key != "soon/en" {
		t.Fatalf("event = %s %s, want added soon/en", ev.Type, ev.Key)
	}
	ev = h.next()
	if ev.Type != Due || ev.Key != "soon/en" {
		t.Fatalf("event = %s %s, want due soon/en", ev.Type, ev.Key)
	}
	if time.Now().Before(soon) {
		t.Error("Due before the date")
	}
	// Nothing else is due: the draft never is, and 2999 is far.
	h.expect("")
}

// TestWatcherInjectedClock drives the schedule with a clock that runs a
// day ahead: the post dated tomorrow is due at once.
func TestWatcherInjectedClock(t *testing.T) {
	dir := t.TempDir()
	tomorrow := time.Now().Add(24 * time.Hour).UTC()
	writeFiles(t, dir, map[string]string{"tomorrow.en.md": article("Tomorrow", tomorrow.Format(time.RFC3339))})
	var mu sync.Mutex
	offset := time.Duration(0)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	h := startWatcher(t, dir, WatchOptions{Now: clock})
	mu.Lock()
	offset = 25 * time.Hour
	mu.Unlock()
	// The schedule re-reads the clock on its next tick; an edit elsewhere
	// makes the watcher look at once.
	h.write("other.en.md", article("Other", "2020-01-01"))
	var got []string
	for len(got) < 2 {
		ev := h.next()
		got = append(got, ev.Type.String()+" "+ev.Key)
	}
	// Run may have started before or after the clock moved: the order of
	// the two events depends on it, not their presence.
	sort.Strings(got)
	if strings.Join(got, ", ") != "added other/en, due tomorrow/en" {
		t.Errorf("events = %v", got)
	}
	// Options.Now follows the injected clock.
	tr, _ := h.w.Library().Get("tomorrow", "en")
	if h.w.Library().opts.now().Before(tr.Date) {
		t.Error("Options.Now does not follow WatchOptions.Now")
	}
}

func TestWatcherRunEnds(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWatcher(dir, WatchOptions{Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ch := w.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(eventTimeout):
		t.Fatal("Run did not return")
	}
	if _, ok := <-ch; ok {
		t.Error("subscriber channel not closed after Run")
	}
	if _, ok := <-w.Subscribe(); ok {
		t.Error("Subscribe after Run returned an open channel")
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
	if _, err := NewWatcher(filepath.Join(dir, "missing"), WatchOptions{}); err == nil {
		t.Error("NewWatcher on a missing folder succeeded")
	}
}

// drop puts a finished file in place the way tools publish atomically:
// written under a hidden temporary name, then renamed to name.
func (h *harness) drop(name, text string) {
	h.t.Helper()
	p := h.path(name)
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		h.t.Fatal(err)
	}
}

// ready returns once the watcher sees the folder: Run may not have added
// its watch yet when startWatcher returns, and a file made before that is
// only found by Run's first reload, whatever the timers. The ready marker
// is dropped so that it takes Settle, not Debounce.
func (h *harness) ready() {
	h.t.Helper()
	h.drop("zzzz-ready.en.md", article("Ready", "2020-01-01"))
	for {
		if ev := h.next(); ev.Type == Added && ev.Key == "zzzz-ready/en" {
			return
		}
	}
}

// within returns the next event, failing if it does not come within d.
func (h *harness) within(d time.Duration) Event {
	h.t.Helper()
	select {
	case ev, ok := <-h.events:
		if !ok {
			h.t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(d):
		h.t.Fatalf("no event within %s", d)
	}
	return Event{}
}

// TestWatcherDroppedFileSettles: a file moved into place is complete, so it
// is published after Settle (DefaultSettle here), long before Debounce.
func TestWatcherDroppedFileSettles(t *testing.T) { forNotifiers(t, testWatcherDroppedFileSettles) }

func testWatcherDroppedFileSettles(t *testing.T, n func() (notifier, error)) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"old.en.md": article("Old", "2023-01-01")})
	h := startWatcher(t, dir, WatchOptions{Debounce: 5 * time.Second, notifier: n})
	h.ready()

	// 2 s leaves room for a loaded machine, and is far below the 5 s
	// Debounce that an event arriving after it would have waited.
	const soon = 2 * time.Second
	h.drop("new.en.md", article("New", "2023-01-02"))
	if ev := h.within(soon); ev.Type != Added || ev.Key != "new/en" || ev.Post.Title != "New" {
		t.Fatalf("event = %s %s, want added new/en", ev.Type, ev.Key)
	}
	// Renamed over an existing article.
	h.drop("old.en.md", article("Old, edited", "2023-01-01"))
	if ev := h.within(soon); ev.Type != Changed || ev.Key != "old/en" || ev.Post.Title != "Old, edited" {
		t.Fatalf("event = %s %s, want changed old/en", ev.Type, ev.Key)
	}
	if err := os.Remove(h.path("new.en.md")); err != nil {
		t.Fatal(err)
	}
	if ev := h.within(soon); ev.Type != Removed || ev.Key != "new/en" {
		t.Fatalf("event = %s %s, want removed new/en", ev.Type, ev.Key)
	}
}

// TestWatcherWrittenFileDebounces: with a notifier that does not report
// closes, a file written in place (Create, then Write) may be incomplete,
// so the reload waits the full Debounce.
func TestWatcherWrittenFileDebounces(t *testing.T) {
	dir := t.TempDir()
	h := startWatcher(t, dir, WatchOptions{Debounce: 600 * time.Millisecond, Settle: 10 * time.Millisecond, notifier: newFSNotify})
	h.ready()

	start := time.Now()
	h.write("post.en.md", article("Post", "2023-01-01"))
	select {
	case ev := <-h.events:
		t.Fatalf("%s %s reported after %s, before the Debounce", ev.Type, ev.Key, time.Since(start))
	case <-time.After(300 * time.Millisecond):
	}
	if ev := h.next(); ev.Type != Added || ev.Key != "post/en" || ev.Post.Title != "Post" {
		t.Fatalf("event = %s %s, want added post/en", ev.Type, ev.Key)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("reported after %s, before the Debounce", d)
	}
}

// TestWatcherEmptyCreateDebounces: an article created empty gets its bytes
// next; it is published once, complete, not first as a broken file.
func TestWatcherEmptyCreateDebounces(t *testing.T) { forNotifiers(t, testWatcherEmptyCreateDebounces) }

func testWatcherEmptyCreateDebounces(t *testing.T, n func() (notifier, error)) {
	dir := t.TempDir()
	h := startWatcher(t, dir, WatchOptions{Debounce: 400 * time.Millisecond, Settle: 10 * time.Millisecond, notifier: n})
	h.ready()

	f, err := os.Create(h.path("post.en.md"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the writer is slow, not the test
	text := article("Complete", "2023-01-01")
	h.write("post.en.md", text)

	ev := h.next()
	if ev.Type != Added || ev.Key != "post/en" {
		t.Fatalf("event = %s %s, want added post/en", ev.Type, ev.Key)
	}
	if sum := sha256.Sum256([]byte(text)); ev.Post.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("Added carries %q with hash %s, not the complete file", ev.Post.Title, ev.Post.Hash)
	}
	h.expect("")
	if strings.Contains(h.logs.String(), "article problem") {
		t.Errorf("the empty file was loaded:\n%s", h.logs)
	}
}

// closesReported skips a test that needs a notifier reporting closes and
// moves in (inotify); elsewhere the watcher waits for quiet instead.
func closesReported(t *testing.T) {
	t.Helper()
	n, err := newNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	if !n.reportsCloses() {
		t.Skip("this platform's notifier does not report closes")
	}
}

// TestWatcherMovedInFileNeedsNoSettle: an article moved into place is
// complete, and is reloaded at once: Settle and Debounce here are far
// longer than the test waits. A removal still waits Settle, in case the
// file comes back.
func TestWatcherMovedInFileNeedsNoSettle(t *testing.T) {
	closesReported(t)
	dir := t.TempDir()
	h := startWatcher(t, dir, WatchOptions{Debounce: time.Minute, Settle: time.Minute})
	h.ready()

	h.drop("moved.en.md", article("Moved in", "2023-01-02"))
	if ev := h.next(); ev.Type != Added || ev.Key != "moved/en" || ev.Post.Title != "Moved in" {
		t.Fatalf("event = %s %s, want added moved/en", ev.Type, ev.Key)
	}
	if err := os.Remove(h.path("moved.en.md")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-h.events:
		t.Fatalf("%s %s reported before Settle", ev.Type, ev.Key)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWatcherClosedFileWaitsSettle: an article written in place is
// reported once its writer closed it and Settle passed (another writing
// session may follow at once), not after Debounce; never before the close.
func TestWatcherClosedFileWaitsSettle(t *testing.T) {
	closesReported(t)
	dir := t.TempDir()
	h := startWatcher(t, dir, WatchOptions{Debounce: time.Minute, Settle: 50 * time.Millisecond})
	h.ready()

	// Written in two steps, with a pause between them: nothing is
	// reported before the close, and then the whole article.
	f, err := os.OpenFile(h.path("written.en.md"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	text := article("Written in place", "2023-01-03")
	if _, err := f.WriteString(text[:len(text)/2]); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-h.events:
		t.Fatalf("%s %s reported while its writer still had it open", ev.Type, ev.Key)
	case <-time.After(200 * time.Millisecond): // the writer is slow, not the test
	}
	if _, err := f.WriteString(text[len(text)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ev := h.next()
	if ev.Type != Added || ev.Key != "written/en" {
		t.Fatalf("event = %s %s, want added written/en", ev.Type, ev.Key)
	}
	if sum := sha256.Sum256([]byte(text)); ev.Post.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("Added carries %q with hash %s, not the complete file", ev.Post.Title, ev.Post.Hash)
	}
}

// TestWatcherCompleteFilesTogether: complete articles arriving one after
// the other (the languages of one article) come in one reload, so the
// first is not announced alone and then updated to link the others. The
// quiet time is longer here than the gaps, which are real pauses.
func TestWatcherCompleteFilesTogether(t *testing.T) {
	closesReported(t)
	dir := t.TempDir()
	h := startWatcher(t, dir, WatchOptions{Debounce: time.Minute, Settle: time.Minute, quiet: 500 * time.Millisecond})
	h.ready()
	for i, lang := range []string{"fr", "en", "it"} {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		h.drop("trio."+lang+".md", article("Trio", "2023-01-04"))
	}
	if ev := h.next(); ev.Type != Added || !strings.HasPrefix(ev.Key, "trio/") {
		t.Fatalf("event = %s %s, want added trio/…", ev.Type, ev.Key)
	}
	for _, lang := range []string{"fr", "en", "it"} {
		if _, ok := h.w.Library().Get("trio", lang); !ok {
			t.Errorf("trio/%s not in the library of the first reload", lang)
		}
	}
}

// TestWatcherWritingSessionsMerge: a program that writes an article in
// several sessions (open, write, close, then append) within Settle gets
// one report, with everything it wrote.
func TestWatcherWritingSessionsMerge(t *testing.T) {
	closesReported(t)
	dir := t.TempDir()
	h := startWatcher(t, dir, WatchOptions{Debounce: time.Minute, Settle: 500 * time.Millisecond})
	h.ready()

	first := article("Sessions", "2023-01-05")
	h.write("sessions.en.md", first)
	time.Sleep(20 * time.Millisecond) // the program's next step
	f, err := os.OpenFile(h.path("sessions.en.md"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	more := "\nA paragraph appended by a second session.\n"
	if _, err := f.WriteString(more); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ev := h.next()
	if ev.Type != Added || ev.Key != "sessions/en" {
		t.Fatalf("event = %s %s, want added sessions/en", ev.Type, ev.Key)
	}
	if sum := sha256.Sum256([]byte(first + more)); ev.Post.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("Added carries hash %s, not the file both sessions wrote", ev.Post.Hash)
	}
	h.expect("")
}
