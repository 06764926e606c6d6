package storage

import (
	"errors"
	"testing"
	"time"
)

func TestAvatars(t *testing.T) {
	s, _, _ := newTestStore(t)
	if _, err := s.AvatarInfo("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing avatar: %v", err)
	}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.PutAvatar("k", Avatar{URL: "https://r.example/a.png", ContentType: "image/png", FetchedAt: at}, []byte("png")); err != nil {
		t.Fatal(err)
	}
	a, body, err := s.AvatarImage("k")
	if err != nil || string(body) != "png" || a.ContentType != "image/png" || a.Size != 3 || !a.FetchedAt.Equal(at) {
		t.Fatalf("AvatarImage = %+v, %q, %v", a, body, err)
	}
	// Refused later (the server now sends something else): the bytes go.
	if err := s.PutAvatar("k", Avatar{URL: "https://r.example/a.png", Refused: "not an image", FetchedAt: at}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AvatarImage("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused avatar image: %v", err)
	}
	if a, err := s.AvatarInfo("k"); err != nil || a.Refused != "not an image" {
		t.Errorf("AvatarInfo = %+v, %v", a, err)
	}
}
