package storage

import (
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
