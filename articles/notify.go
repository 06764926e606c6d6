package articles

import (
	"errors"

	"github.com/fsnotify/fsnotify"
)

// changeOp says what happened to a name in a watched folder.
type changeOp uint8

const (
	// opCreate: the name appeared. Where the notifier reports closes, it
	// was created in place and its writer still has it open; elsewhere it
	// may also have been moved in.
	opCreate changeOp = 1 << iota
	// opMovedIn: the name appeared by a rename, so its content is all
	// there (only from notifiers that report closes).
	opMovedIn
	// opWrite: bytes were written to the file.
	opWrite
	// opClose: a writer closed the file: what it wrote is all there.
	opClose
	// opRemove: the name was deleted.
	opRemove
	// opRename: the name was moved away.
	opRename
	// opChmod: metadata only.
	opChmod
)

func (o changeOp) has(x changeOp) bool { return o&x != 0 }

// change is one filesystem event, in the terms the watcher decides on.
type change struct {
	name string // path of the file or folder
	op   changeOp
}

// errOverflow says the notifier lost events: the folder must be read again.
var errOverflow = errors.New("articles: watch: event queue overflowed, events were lost")

// notifier reports changes in the folders it was asked to watch. The
// watcher needs a seam here because platforms differ in what they can say:
// Linux's inotify tells when a writer closes a file and when a file was
// moved in, so a finished article is published within milliseconds;
// fsnotify's portable events cannot tell a file still being written from a
// finished one, so the watcher then waits for the folder to stay quiet.
type notifier interface {
	// add watches one folder (not its subfolders); adding it again is
	// harmless.
	add(dir string) error
	events() <-chan change
	errors() <-chan error
	// reportsCloses tells whether opClose and opMovedIn are ever sent.
	reportsCloses() bool
	close() error
}

// fsnotifyNotifier is the portable notifier.
type fsnotifyNotifier struct {
	w    *fsnotify.Watcher
	out  chan change
	errs chan error
	done chan struct{}
}

func newFSNotify() (notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	n := &fsnotifyNotifier{w: w, out: make(chan change), errs: make(chan error), done: make(chan struct{})}
	go n.forward()
	return n, nil
}

// forward translates fsnotify's events until its channels close.
func (n *fsnotifyNotifier) forward() {
	defer close(n.out)
	defer close(n.errs)
	for {
		select {
		case ev, ok := <-n.w.Events:
			if !ok {
				return
			}
			var op changeOp
			for _, m := range []struct {
				from fsnotify.Op
				to   changeOp
			}{{fsnotify.Create, opCreate}, {fsnotify.Write, opWrite}, {fsnotify.Remove, opRemove}, {fsnotify.Rename, opRename}, {fsnotify.Chmod, opChmod}} {
				if ev.Has(m.from) {
					op |= m.to
				}
			}
			select {
			case n.out <- change{name: ev.Name, op: op}:
			case <-n.done:
				return
			}
		case err, ok := <-n.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				err = errOverflow
			}
			select {
			case n.errs <- err:
			case <-n.done:
				return
			}
		}
	}
}

func (n *fsnotifyNotifier) add(dir string) error  { return n.w.Add(dir) }
func (n *fsnotifyNotifier) events() <-chan change { return n.out }
func (n *fsnotifyNotifier) errors() <-chan error  { return n.errs }
func (n *fsnotifyNotifier) reportsCloses() bool   { return false }

func (n *fsnotifyNotifier) close() error {
	close(n.done)
	return n.w.Close()
}
