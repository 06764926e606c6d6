package storage

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestMetaRoundTripAndPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Meta("publisher.state"); err != nil || ok {
		t.Fatalf("unset key: ok=%v err=%v", ok, err)
	}
	if err := s.SetMeta("publisher.state", "done"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMeta("", "x"); err == nil {
		t.Fatal("empty key accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, ok, err := s.Meta("publisher.state")
	if err != nil || !ok || v != "done" {
		t.Fatalf("after reopen: %q %v %v", v, ok, err)
	}
	// The schema marker written by Open lives in the same bucket.
	if v, ok, _ := s.Meta("schema"); !ok || v == "" {
		t.Fatalf("schema marker not visible: %q %v", v, ok)
	}
}

// TestEnqueueWithMeta: the activity, its jobs and the meta value are
// written together, or, when one job is refused, none of them.
func TestEnqueueWithMeta(t *testing.T) {
	s, clock, _ := newTestStore(t)
	a := activity(1, clock.Now(), false)
	a.Type = "Update"
	bad := []Job{{Inbox: "https://h1.example/inbox"}, {}}
	if err := s.EnqueueWithMeta("publisher.profile", "v2", a, bad); err == nil {
		t.Fatal("a job without inbox was accepted")
	}
	if _, ok, _ := s.Meta("publisher.profile"); ok {
		t.Error("meta set although the jobs were refused")
	}
	if _, err := s.Activity(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("activity stored although the jobs were refused: %v", err)
	}
	if p, _ := s.PendingJobs(); len(p) != 0 {
		t.Errorf("%d jobs queued although one was refused", len(p))
	}
	good := []Job{{Inbox: "https://h1.example/inbox"}, {Inbox: "https://h2.example/inbox"}}
	if err := s.EnqueueWithMeta("publisher.profile", "v2", a, good); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.Meta("publisher.profile"); v != "v2" {
		t.Errorf("meta %q", v)
	}
	if p, _ := s.PendingJobs(); len(p) != 2 || p[0].ActivityID != a.ID {
		t.Errorf("pending %+v", p)
	}
	checkInvariants(t, s)
}
