package storage

import (
	"fmt"
	"testing"
	"time"
)

func TestReplyLinksAndInteractions(t *testing.T) {
	s, _, _ := newTestStore(t)
	note := "https://crieur.example/posts/a/en"
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	put := func(id, parent string, kind InteractionKind, minute int) {
		t.Helper()
		_, err := s.PutInteraction(Interaction{ID: id, Kind: kind, NoteID: note, InReplyTo: parent,
			Actor: RemoteActor{ID: "https://r.example/u/" + id}, Content: "<p>" + id + "</p>",
			Published: at.Add(time.Duration(minute) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("b", "a", KindReply, 2)
	put("a", note, KindReply, 1)
	put("m", note, KindMention, 3)
	put("l", "", KindLike, 4)
	links, err := s.ReplyLinks(note)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(links); got != fmt.Sprintf("[{a %s} {b a}]", note) {
		t.Errorf("ReplyLinks = %s", got)
	}
	is, err := s.Interactions([]string{"b", "gone", "a"})
	if err != nil || len(is) != 2 || is[0].ID != "b" || is[1].Content != "<p>a</p>" {
		t.Errorf("Interactions = %+v, %v", is, err)
	}
}
