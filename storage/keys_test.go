package storage

import (
	"bytes"
	"testing"
	"time"
)

// FuzzTimeKey: byte order of timeKey is time order, for any instant
// including the zero time and times before 1970.
func FuzzTimeKey(f *testing.F) {
	f.Add(int64(0), uint32(0), int64(0), uint32(1))
	f.Add(int64(-62135596800), uint32(0), int64(1_700_000_000), uint32(5)) // zero time.Time
	f.Add(int64(-1), uint32(999_999_999), int64(0), uint32(0))
	f.Add(int64(1<<62), uint32(3), int64(-1<<62), uint32(7))
	f.Fuzz(func(t *testing.T, s1 int64, n1 uint32, s2 int64, n2 uint32) {
		a := time.Unix(s1, int64(n1%1_000_000_000))
		b := time.Unix(s2, int64(n2%1_000_000_000))
		got := bytes.Compare(timeKey(a), timeKey(b))
		want := a.Compare(b)
		if got != want {
			t.Errorf("timeKey order %d, time order %d for %v and %v", got, want, a, b)
		}
	})
}

// FuzzChainPrefix: a chain's prefix starts the chain key of exactly that
// (Inbox, Topic) and no other, whatever bytes the URLs hold.
func FuzzChainPrefix(f *testing.F) {
	f.Add("https://a.example/inbox", "t", "https://a.example/inbox", "t2")
	f.Add("a\x00b", "c", "a", "b\x00c")
	f.Add("", "", "", "x")
	f.Fuzz(func(t *testing.T, inbox1, topic1, inbox2, topic2 string) {
		j1 := Job{ID: 7, Inbox: inbox1, Topic: topic1}
		j2 := Job{ID: 9, Inbox: inbox2, Topic: topic2}
		key2 := append(chainPrefix(j2), u64(j2.ID)...)
		same := inbox1 == inbox2 && topic1 == topic2
		if got := bytes.HasPrefix(key2, chainPrefix(j1)) && len(key2) == len(chainPrefix(j1))+8; got != same {
			t.Errorf("prefix of (%q,%q) matches key of (%q,%q): %v", inbox1, topic1, inbox2, topic2, got)
		}
	})
}
