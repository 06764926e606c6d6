package articles

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultDebounce is how long the folder must stay quiet before it is
	// reloaded when a file may still be being written (a Write, or an
	// article created empty): editors write a file in several steps (temp
	// file, rename, chmod), and one reload per save is enough.
	DefaultDebounce = 200 * time.Millisecond
	// DefaultSettle is the quiet time before a reload when no file is being
	// written but some were removed or renamed away (or, where the system
	// cannot tell a file moved in from one created in place, created): a
	// few milliseconds merge an editor's remove and rename steps into one
	// reload, so a save never looks like a deletion. Where the system
	// reports closes and moves in (Linux), an article written in place
	// waits Settle after its close rather than Debounce after its last
	// write, and one moved into place only quietWait.
	DefaultSettle = 20 * time.Millisecond
	// quietWait is the quiet time before a reload when every article of the
	// burst is known to be complete (moved in, or closed by its writer):
	// the files of one operation (a git checkout, a mv of several files)
	// come microseconds apart, and a translation group dropped together
	// must go out together, or its first article would be sent twice
	// (Create, then Update to link the others).
	quietWait = 5 * time.Millisecond
	// maxDebounceWaits bounds the wait of a burst to this many Debounce
	// periods, so that a file rewritten without pause is still picked up.
	maxDebounceWaits = 10
	// DefaultEventBuffer is the capacity of each Subscribe channel.
	DefaultEventBuffer = 256
	// maxScheduleWait makes the schedule re-read the clock at least this
	// often, so that a suspended machine or a changed clock does not delay
	// a due post by more than that.
	maxScheduleWait = time.Minute
	// minScheduleWait keeps a timer that fires a little early (or an
	// injected clock that lags) from turning into a busy loop.
	minScheduleWait = 10 * time.Millisecond
)

// EventType says what happened to a post.
type EventType int

const (
	// Added: a post (slug/lang) appeared, or a draft stopped being one.
	Added EventType = iota + 1
	// Changed: the file of a post changed (its Hash or its File).
	Changed
	// Removed: the post is gone (file deleted, renamed to another slug or
	// language, turned into a draft, or now a duplicate). Post is the last
	// version.
	Removed
	// Due: the date of a post already in the library has come; it is
	// visible from now on.
	Due
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "added"
	case Changed:
		return "changed"
	case Removed:
		return "removed"
	case Due:
		return "due"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event reports one change to one post. Events are hints: a subscriber
// that must be exact reconciles Watcher.Library() with its own state.
type Event struct {
	Type EventType
	File string // the post's file, relative to the folder
	Key  string // "slug/lang"
	Post *Post
}

// WatchOptions configure a Watcher.
type WatchOptions struct {
	Options
	// Debounce is the quiet time before a reload while a file may still be
	// being written (DefaultDebounce if 0).
	Debounce time.Duration
	// Settle is the quiet time before a reload when files were only
	// created, removed or renamed (DefaultSettle if 0; at most Debounce).
	Settle time.Duration
	// notifier replaces the platform's notifier, and quiet quietWait
	// (tests).
	notifier func() (notifier, error)
	quiet    time.Duration
	// Now is the clock for schedules (time.Now if nil). It also becomes
	// Options.Now when that is nil.
	Now func() time.Time
	// Logger receives problems and reloads (slog.Default if nil).
	Logger *slog.Logger
	// EventBuffer is the capacity of each Subscribe channel
	// (DefaultEventBuffer if 0).
	EventBuffer int
}

// Watcher keeps a Library in step with the posts folder and reports what
// changes. Library and Subscribe are safe for concurrent use; Run is called
// once.
type Watcher struct {
	dir      string
	opts     Options
	debounce time.Duration
	settle   time.Duration
	quiet    time.Duration
	notifier func() (notifier, error)
	now      func() time.Time
	log      *slog.Logger
	buffer   int

	lib     atomic.Pointer[Library]
	running atomic.Bool

	mu     sync.Mutex
	subs   []chan Event
	closed bool

	// The fields below belong to the goroutine that runs Run (and to
	// NewWatcher before it).
	reported map[string]bool // "file\x00msg" of problems already logged
	loadErr  string          // last folder error logged
	// dueUpTo is the time up to which due posts have been reported.
	dueUpTo time.Time
	// cache holds the last reload's parse results by file name and
	// content, so a reload parses only what changed.
	cache map[string]parsed
}

// parsed is one cached Parse result.
type parsed struct {
	post *Post
	err  error
}

// NewWatcher loads the folder once. It fails only when the folder cannot
// be read.
func NewWatcher(dir string, opts WatchOptions) (*Watcher, error) {
	w := &Watcher{
		dir:      dir,
		opts:     opts.Options,
		debounce: opts.Debounce,
		settle:   opts.Settle,
		quiet:    opts.quiet,
		notifier: opts.notifier,
		now:      opts.Now,
		log:      opts.Logger,
		buffer:   opts.EventBuffer,
		reported: map[string]bool{},
	}
	if w.debounce <= 0 {
		w.debounce = DefaultDebounce
	}
	if w.settle <= 0 {
		w.settle = DefaultSettle
	}
	if w.notifier == nil {
		w.notifier = newNotifier
	}
	if w.quiet <= 0 {
		w.quiet = quietWait
	}
	w.settle = min(w.settle, w.debounce)
	if w.now == nil {
		w.now = time.Now
	}
	if w.opts.Now == nil {
		w.opts.Now = w.now
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.buffer <= 0 {
		w.buffer = DefaultEventBuffer
	}
	lib, err := Load(dir, w.opts)
	if err != nil {
		return nil, err
	}
	w.lib.Store(lib)
	w.dueUpTo = w.now()
	w.logProblems(lib, nil)
	w.log.Info("posts loaded", "dir", dir, "posts", lib.Len(), "problems", len(lib.problems))
	return w, nil
}

// Library returns the current snapshot.
func (w *Watcher) Library() *Library { return w.lib.Load() }

// Subscribe returns a channel of events. It is buffered; when a subscriber
// falls more than the buffer behind, events are dropped (and logged) rather
// than stalling the watcher. The channel is closed when Run returns.
func (w *Watcher) Subscribe() <-chan Event {
	ch := make(chan Event, w.buffer)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		close(ch)
		return ch
	}
	w.subs = append(w.subs, ch)
	return ch
}

func (w *Watcher) emit(ev Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.subs {
		select {
		case ch <- ev:
		default:
			w.log.Warn("articles: subscriber is not keeping up, event dropped",
				"event", ev.Type.String(), "key", ev.Key, "file", ev.File)
		}
	}
}

func (w *Watcher) closeSubscribers() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, ch := range w.subs {
		close(ch)
	}
	w.subs = nil
}

// burst is what the watcher knows of the changes since the last reload.
type burst struct {
	start time.Time // first relevant event, zero when there is none
	// writing: a file may still be being written and nothing will say
	// when it is done: wait Debounce.
	writing bool
	// open holds the articles being written whose close will be reported:
	// wait Debounce while any is open (a writer that never closes).
	open map[string]bool
	// settle: something was removed, renamed away or created without a
	// close to come: wait Settle.
	settle bool
}

// Run watches the folder until ctx ends, reloading it after changes and
// reporting posts as they become due. It returns nil when ctx ends.
//
// A reload waits until the folder has been quiet for Settle, or for
// Debounce once the burst of changes includes a file that may still be
// being written; a burst never waits more than maxDebounceWaits Debounces
// from its first event.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("articles: watch: already running")
	}
	defer w.closeSubscribers()

	fsw, err := w.notifier()
	if err != nil {
		return fmt.Errorf("articles: watch: %w", err)
	}
	defer fsw.close()
	if err := w.watchTree(fsw, w.dir); err != nil {
		return err
	}

	// Changes made between NewWatcher and now were not seen by fsnotify.
	w.reload()

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var b burst

	schedule := time.NewTimer(time.Hour)
	defer schedule.Stop()
	w.arm(schedule)

	for {
		select {
		case <-ctx.Done():
			return nil

		case ev, ok := <-fsw.events():
			if !ok {
				return errors.New("articles: watch: the notifier closed its event channel")
			}
			if w.note(fsw, ev, &b) {
				debounce.Reset(w.wait(b, time.Now()))
			}

		case err, ok := <-fsw.errors():
			if !ok {
				return errors.New("articles: watch: the notifier closed its error channel")
			}
			w.log.Warn("articles: watch error", "dir", w.dir, "err", err)
			// After an overflow events were lost, writes maybe among them:
			// reload to be sure, after the full Debounce.
			b = burst{writing: true}
			debounce.Reset(w.debounce)

		case <-debounce.C:
			// When the timer and an event were ready together, select may
			// have picked the timer: an event already sent goes first, as
			// it may be the Write that follows a Create. Once a burst is
			// writing, or past its cap, the reload does not wait.
			if !b.writing && len(b.open) == 0 && w.wait(b, time.Now()) > 0 && w.drain(fsw, &b) {
				debounce.Reset(w.wait(b, time.Now()))
				continue
			}
			b = burst{}
			// New subfolders may have appeared before their watch was added
			// (mkdir -p, a moved-in page bundle): watching the whole tree
			// again is cheap and idempotent.
			if err := w.watchTree(fsw, w.dir); err != nil {
				w.log.Warn("articles: watch subfolders", "dir", w.dir, "err", err)
			}
			w.reload()
			w.arm(schedule)

		case <-schedule.C:
			w.checkDue(nil)
			w.arm(schedule)
		}
	}
}

// note adds a filesystem event to the burst, and tells whether it can
// change the library.
func (w *Watcher) note(fsw notifier, ev change, b *burst) bool {
	if !w.relevant(fsw, ev, b) {
		return false
	}
	if b.start.IsZero() {
		b.start = time.Now()
	}
	return true
}

// drain notes the events the notifier has already sent, without waiting, and
// tells whether one of them was relevant. A closed channel is left to Run.
func (w *Watcher) drain(fsw notifier, b *burst) bool {
	got := false
	for {
		select {
		case ev, ok := <-fsw.events():
			if !ok {
				return got
			}
			if w.note(fsw, ev, b) {
				got = true
			}
		default:
			return got
		}
	}
}

// wait returns how long the folder must now stay quiet before the burst is
// reloaded, within the burst's cap: Debounce while a file may be being
// written, else Settle after removals, renames and creations the system
// says nothing more about, else quietWait: every article in the burst is
// known to be complete.
func (w *Watcher) wait(b burst, now time.Time) time.Duration {
	d := min(w.quiet, w.settle)
	switch {
	case b.writing || len(b.open) > 0:
		d = w.debounce
	case b.settle:
		d = w.settle
	}
	left := b.start.Add(maxDebounceWaits * w.debounce).Sub(now)
	return max(min(d, left), 0)
}

// relevant tells whether a filesystem event can change the library, and
// records in the burst what it says of the wait: whether a file named may
// still be being written (Debounce), or whether editors' steps may follow
// (Settle). It starts watching new subfolders.
func (w *Watcher) relevant(fsw notifier, ev change, b *burst) bool {
	name := filepath.Base(ev.name)
	if ev.op == opChmod {
		return false
	}
	var st fs.FileInfo
	if ev.op.has(opCreate | opMovedIn | opClose) {
		if fi, err := os.Stat(ev.name); err == nil {
			st = fi
		}
	}
	if st != nil && st.IsDir() {
		if skipDir(name) {
			return false
		}
		if err := w.watchTree(fsw, ev.name); err != nil {
			w.log.Warn("articles: watch new folder", "dir", ev.name, "err", err)
		}
		// Files made in it before its watch was added sent no event: one
		// still empty is being written (later writes do send events).
		b.settle = true
		b.writing = b.writing || hasEmptyArticle(ev.name)
		return true
	}
	// Editors' temporary files only matter once renamed to the article's
	// name, which is an event of its own.
	if isArticleName(name) {
		// An article created empty (open with O_CREAT, or touch) is about
		// to get its bytes, whatever else is known.
		empty := st != nil && st.Mode().IsRegular() && st.Size() == 0
		if fsw.reportsCloses() {
			w.noteWithCloses(ev, empty, b)
		} else {
			// A file moved into place is complete. One being written may
			// not be, and nothing will say when it is.
			b.settle = true
			b.writing = b.writing || ev.op.has(opWrite) || empty
		}
		return true
	}
	if isTempName(name) {
		return false
	}
	// A removed or renamed folder (a page bundle) has no ".md" but matters;
	// it can no longer be told from a file, so reload to be sure.
	if ev.op.has(opRemove | opRename) {
		b.settle = true
		return true
	}
	return false
}

// noteWithCloses records an article's event from a notifier that reports
// closes and moves in: a file moved into place is complete, and one
// written in place is once its writer closed it and Settle passed without
// another session.
func (w *Watcher) noteWithCloses(ev change, empty bool, b *burst) {
	if b.open == nil {
		b.open = map[string]bool{}
	}
	switch {
	case ev.op.has(opRemove | opRename):
		// Removed or moved away: an editor's save may put it back next.
		delete(b.open, ev.name)
		b.settle = true
	case ev.op.has(opClose):
		// Whole for now; a program may write it in several sessions
		// (a script appending line by line), which Settle merges.
		delete(b.open, ev.name)
		b.settle = true
		b.writing = b.writing || empty
	case ev.op.has(opMovedIn):
		b.writing = b.writing || empty
	case ev.op.has(opCreate | opWrite):
		// Created in place or written: complete at its close.
		b.open[ev.name] = true
	}
}

// hasEmptyArticle tells whether root holds an empty article file, in the
// folders that are watched.
func hasEmptyArticle(root string) bool {
	found := false
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // vanished meanwhile
		case d.IsDir():
			if p != root && skipDir(d.Name()) {
				return fs.SkipDir
			}
		case d.Type().IsRegular() && isArticleName(d.Name()):
			if fi, err := d.Info(); err == nil && fi.Size() == 0 {
				found = true
				return fs.SkipAll
			}
		}
		return nil
	})
	return found
}

// watchTree adds root and every subfolder that may hold articles.
func (w *Watcher) watchTree(fsw notifier, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && root == w.dir {
				return fmt.Errorf("articles: watch %s: %w", root, err)
			}
			return nil // vanished meanwhile: the reload will tell
		}
		if !d.IsDir() {
			return nil
		}
		if p != w.dir && skipDir(d.Name()) {
			return fs.SkipDir
		}
		if err := fsw.add(p); err != nil {
			if p == w.dir {
				return fmt.Errorf("articles: watch %s: %w", p, err)
			}
			w.log.Warn("articles: watch folder", "dir", p, "err", err)
		}
		return nil
	})
}

// reload reads the folder again, keeps the last good version of files that
// no longer parse, swaps the snapshot and reports the differences.
func (w *Watcher) reload() {
	old := w.lib.Load()
	cache := make(map[string]parsed, len(w.cache))
	sc, err := scan(w.dir, func(name string, data []byte) (*Post, error) {
		sum := sha256.Sum256(data)
		id := name + "\x00" + string(sum[:])
		res, ok := w.cache[id]
		if !ok {
			res.post, res.err = Parse(name, data, w.opts)
		}
		cache[id] = res
		return res.post, res.err
	})
	if err != nil {
		if msg := err.Error(); msg != w.loadErr {
			w.loadErr = msg
			w.log.Error("articles: reload failed, keeping the previous articles", "dir", w.dir, "err", err)
		}
		return
	}
	if w.loadErr != "" {
		w.log.Info("articles: folder readable again", "dir", w.dir)
		w.loadErr = ""
	}
	w.cache = cache
	kept := map[string]bool{}
	for file := range sc.failed {
		if p, ok := old.file(file); ok {
			// A half-written or broken save must not unpublish the article:
			// serve the last good version until the file parses again.
			sc.parsed = append(sc.parsed, p)
			kept[file] = true
		}
	}
	if len(kept) > 0 {
		sort.Slice(sc.parsed, func(i, j int) bool { return sc.parsed[i].File < sc.parsed[j].File })
	}
	lib := build(sc.parsed, sc.problems, w.opts)
	w.lib.Store(lib)
	w.logProblems(lib, kept)

	events := diff(old, lib)
	touched := map[string]bool{}
	for _, ev := range events {
		touched[ev.Key] = true
		w.log.Info("articles: "+ev.Type.String(), "key", ev.Key, "file", ev.File)
		w.emit(ev)
	}
	w.checkDue(touched)
}

// diff lists what changed between two snapshots, by key: removals first,
// then changes and additions, each in key order.
func diff(old, cur *Library) []Event {
	var removed, other []Event
	for k, p := range old.byKey {
		if _, ok := cur.byKey[k]; !ok {
			removed = append(removed, Event{Type: Removed, File: p.File, Key: k, Post: p})
		}
	}
	for k, p := range cur.byKey {
		o, ok := old.byKey[k]
		switch {
		case !ok:
			other = append(other, Event{Type: Added, File: p.File, Key: k, Post: p})
		case o.Hash != p.Hash || o.File != p.File:
			other = append(other, Event{Type: Changed, File: p.File, Key: k, Post: p})
		}
	}
	byKey := func(l []Event) {
		sort.Slice(l, func(i, j int) bool { return l[i].Key < l[j].Key })
	}
	byKey(removed)
	byKey(other)
	return append(removed, other...)
}

// checkDue reports the posts whose date passed since the last check,
// except those just reported as added or changed.
func (w *Watcher) checkDue(skip map[string]bool) {
	now := w.now()
	if !now.After(w.dueUpTo) {
		return
	}
	for _, p := range w.lib.Load().Due(w.dueUpTo, now) {
		if skip[p.Key()] {
			continue
		}
		w.log.Info("articles: due", "key", p.Key(), "file", p.File, "date", p.Date)
		w.emit(Event{Type: Due, File: p.File, Key: p.Key(), Post: p})
	}
	w.dueUpTo = now
}

// arm sets the schedule timer for the next future post.
func (w *Watcher) arm(t *time.Timer) {
	now := w.now()
	next, ok := w.lib.Load().NextDue(now)
	wait := maxScheduleWait
	if ok {
		wait = min(max(next.Sub(now), minScheduleWait), maxScheduleWait)
	}
	t.Reset(wait)
}

// logProblems logs each problem once per (file, message), and says when
// one is fixed.
func (w *Watcher) logProblems(lib *Library, kept map[string]bool) {
	current := map[string]bool{}
	for _, p := range lib.problems {
		id := p.File + "\x00" + p.Msg
		current[id] = true
		if w.reported[id] {
			continue
		}
		w.reported[id] = true
		attrs := []any{"file", p.File, "line", p.Line, "problem", p.Msg}
		if kept[p.File] {
			attrs = append(attrs, "serving", "the previous version")
		}
		w.log.Warn("articles: article problem", attrs...)
	}
	for id := range w.reported {
		if !current[id] {
			delete(w.reported, id)
			file, _, _ := strings.Cut(id, "\x00")
			w.log.Info("articles: article problem fixed", "file", file)
		}
	}
}
