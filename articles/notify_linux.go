//go:build linux

package articles

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// newNotifier is inotify on Linux: it reports closes and moves in, which
// fsnotify keeps to itself.
func newNotifier() (notifier, error) { return newInotify() }

// inotifyMask is what crieur asks inotify about a folder. IN_CLOSE_WRITE
// and IN_MOVED_TO are the reason for this file: they say that an article is
// complete.
const inotifyMask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MODIFY | unix.IN_CLOSE_WRITE |
	unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR

// inotifyReadSize holds many events per read; one event is at most
// SizeofInotifyEvent+NAME_MAX+1 bytes.
const inotifyReadSize = 64 << 10

// inotifyNotifier reads one inotify instance.
type inotifyNotifier struct {
	f    *os.File // non-blocking: reads go through Go's poller, Close ends them
	out  chan change
	errs chan error
	done chan struct{}

	mu   sync.Mutex
	dirs map[int32]string // watch descriptor → folder
}

func newInotify() (*inotifyNotifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	n := &inotifyNotifier{
		f:    os.NewFile(uintptr(fd), "inotify"),
		out:  make(chan change),
		errs: make(chan error),
		done: make(chan struct{}),
		dirs: map[int32]string{},
	}
	go n.read()
	return n, nil
}

func (n *inotifyNotifier) add(dir string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var wd int
	var err error
	// The descriptor is borrowed only for the call; Fd would make the
	// file blocking.
	rc, cerr := n.f.SyscallConn()
	if cerr != nil {
		return cerr
	}
	if cerr := rc.Control(func(fd uintptr) { wd, err = unix.InotifyAddWatch(int(fd), dir, inotifyMask) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	// The same folder added again gets the same descriptor back.
	n.dirs[int32(wd)] = dir
	return nil
}

func (n *inotifyNotifier) events() <-chan change { return n.out }
func (n *inotifyNotifier) errors() <-chan error  { return n.errs }
func (n *inotifyNotifier) reportsCloses() bool   { return true }

func (n *inotifyNotifier) close() error {
	close(n.done)
	return n.f.Close()
}

// read turns inotify's records into changes until the file is closed.
func (n *inotifyNotifier) read() {
	defer close(n.out)
	defer close(n.errs)
	buf := make([]byte, inotifyReadSize)
	for {
		k, err := n.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				n.send(nil, fmt.Errorf("articles: watch: read inotify: %w", err))
			}
			return
		}
		if !parseInotify(buf[:k], n.translate) {
			return
		}
	}
}

// parseInotify calls each for the records in buf (whole records, as read
// from an inotify descriptor), with the name's NUL padding removed, until
// each returns false; it reports whether each always returned true. A
// truncated record at the end is ignored: the kernel never splits one.
func parseInotify(buf []byte, each func(wd int32, mask uint32, name string) bool) bool {
	// struct inotify_event: int wd; uint32_t mask, cookie, len; char name[len].
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		rec := buf[off:]
		wd := int32(binary.NativeEndian.Uint32(rec[0:4]))
		mask := binary.NativeEndian.Uint32(rec[4:8])
		n := binary.NativeEndian.Uint32(rec[12:16])
		rec = rec[unix.SizeofInotifyEvent:]
		if uint64(n) > uint64(len(rec)) {
			return true
		}
		name := rec[:n]
		off += unix.SizeofInotifyEvent + int(n)
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		if !each(wd, mask, string(name)) {
			return false
		}
	}
	return true
}

// translate sends the change one record stands for, if any; it returns
// false when the notifier is closing.
func (n *inotifyNotifier) translate(wd int32, mask uint32, name string) bool {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		return n.send(nil, errOverflow)
	}
	n.mu.Lock()
	dir, known := n.dirs[wd]
	if mask&unix.IN_IGNORED != 0 {
		delete(n.dirs, wd) // the folder is gone or no longer watched
	}
	n.mu.Unlock()
	if !known {
		return true
	}
	path := dir
	if name != "" {
		path = filepath.Join(dir, name)
	}
	var op changeOp
	for _, m := range []struct {
		from uint32
		to   changeOp
	}{
		{unix.IN_CREATE, opCreate}, {unix.IN_MOVED_TO, opMovedIn},
		{unix.IN_MODIFY, opWrite}, {unix.IN_CLOSE_WRITE, opClose},
		{unix.IN_DELETE | unix.IN_DELETE_SELF, opRemove}, {unix.IN_MOVED_FROM | unix.IN_MOVE_SELF, opRename},
		{unix.IN_ATTRIB, opChmod},
	} {
		if mask&m.from != 0 {
			op |= m.to
		}
	}
	if op == 0 {
		return true
	}
	return n.send(&change{name: path, op: op}, nil)
}

func (n *inotifyNotifier) send(c *change, err error) bool {
	if c != nil {
		select {
		case n.out <- *c:
			return true
		case <-n.done:
			return false
		}
	}
	select {
	case n.errs <- err:
		return true
	case <-n.done:
		return false
	}
}
