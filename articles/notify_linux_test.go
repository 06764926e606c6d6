//go:build linux

package articles

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inotifyRecord builds one record as the kernel writes it, the name padded
// with NULs to pad bytes.
func inotifyRecord(wd int32, mask uint32, name string, pad int) []byte {
	b := make([]byte, unix.SizeofInotifyEvent, unix.SizeofInotifyEvent+len(name)+pad)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(len(name)+pad))
	b = append(b, name...)
	return append(b, make([]byte, pad)...)
}

func TestParseInotify(t *testing.T) {
	var buf []byte
	buf = append(buf, inotifyRecord(1, unix.IN_MOVED_TO, "post.en.md", 6)...)
	buf = append(buf, inotifyRecord(2, unix.IN_DELETE_SELF, "", 0)...)
	buf = append(buf, inotifyRecord(1, unix.IN_CLOSE_WRITE, "x.md", 4)[:20]...) // cut short
	type rec struct {
		wd   int32
		mask uint32
		name string
	}
	var got []rec
	if !parseInotify(buf, func(wd int32, mask uint32, name string) bool {
		got = append(got, rec{wd, mask, name})
		return true
	}) {
		t.Fatal("parseInotify stopped although each never did")
	}
	want := []rec{{1, unix.IN_MOVED_TO, "post.en.md"}, {2, unix.IN_DELETE_SELF, ""}}
	if len(got) != len(want) {
		t.Fatalf("records = %+v, want %+v (the cut one ignored)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if parseInotify(buf, func(int32, uint32, string) bool { return false }) {
		t.Error("parseInotify went on after each returned false")
	}
}

// FuzzParseInotify: whatever the bytes, parsing neither panics nor reads
// past them, and every name it reports lies within them.
func FuzzParseInotify(f *testing.F) {
	f.Add(inotifyRecord(1, unix.IN_CREATE, "a.md", 4))
	f.Add(append(inotifyRecord(3, unix.IN_MODIFY, "b.en.md", 1), inotifyRecord(3, unix.IN_Q_OVERFLOW, "", 0)...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, buf []byte) {
		total := 0
		parseInotify(buf, func(_ int32, _ uint32, name string) bool {
			total += unix.SizeofInotifyEvent + len(name)
			if total > len(buf) {
				t.Fatalf("names add up to %d bytes of records in %d bytes", total, len(buf))
			}
			return true
		})
	})
}

// TestInotifyTranslate: each kind of record becomes the change the watcher
// decides on, an overflow an error, and a watch the kernel dropped is
// forgotten.
func TestInotifyTranslate(t *testing.T) {
	n, err := newInotify()
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	dir := t.TempDir()
	if err := n.add(dir); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	var wd int32
	for k := range n.dirs {
		wd = k
	}
	n.mu.Unlock()

	for _, tc := range []struct {
		mask uint32
		name string
		want change
	}{
		{unix.IN_MOVED_TO, "a.en.md", change{name: dir + "/a.en.md", op: opMovedIn}},
		{unix.IN_CREATE, "b.en.md", change{name: dir + "/b.en.md", op: opCreate}},
		{unix.IN_MODIFY, "b.en.md", change{name: dir + "/b.en.md", op: opWrite}},
		{unix.IN_CLOSE_WRITE, "b.en.md", change{name: dir + "/b.en.md", op: opClose}},
		{unix.IN_MOVED_FROM, "a.en.md", change{name: dir + "/a.en.md", op: opRename}},
		{unix.IN_DELETE, "b.en.md", change{name: dir + "/b.en.md", op: opRemove}},
		{unix.IN_DELETE_SELF, "", change{name: dir, op: opRemove}},
		{unix.IN_CREATE | unix.IN_ISDIR, "bundle", change{name: dir + "/bundle", op: opCreate}},
	} {
		go n.translate(wd, tc.mask, tc.name)
		select {
		case got := <-n.events():
			if got != tc.want {
				t.Errorf("mask %#x %q: %+v, want %+v", tc.mask, tc.name, got, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("mask %#x %q: no change", tc.mask, tc.name)
		}
	}

	go n.translate(wd, unix.IN_Q_OVERFLOW, "")
	select {
	case err := <-n.errors():
		if !errors.Is(err, errOverflow) {
			t.Errorf("overflow: %v, want errOverflow", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("overflow: no error")
	}

	// IN_IGNORED: the kernel dropped the watch; later records naming it
	// (none should come) are not reported.
	if !n.translate(wd, unix.IN_IGNORED, "") {
		t.Fatal("translate of IN_IGNORED asked to stop")
	}
	n.mu.Lock()
	_, still := n.dirs[wd]
	n.mu.Unlock()
	if still {
		t.Error("the dropped watch is still known")
	}
	if !n.translate(wd, unix.IN_CREATE, "late.md") {
		t.Fatal("translate asked to stop")
	}
	select {
	case got := <-n.events():
		t.Errorf("a record of a dropped watch was reported: %+v", got)
	case <-time.After(50 * time.Millisecond):
	}
}
