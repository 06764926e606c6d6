//go:build linux

package posts

import (
	"encoding/binary"
	"testing"

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
