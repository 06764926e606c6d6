package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// The admin hides, shows and approves replies, and reads reports, from the
// command line; remote text is printed harmless.
func TestRepliesModerationCommands(t *testing.T) {
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.start()
	in.stop()
	st, err := storage.Open(filepath.Join(in.data, "crieur.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	note := in.base + "/posts/a/en"
	shown := storage.Interaction{ID: "https://remote.example/notes/1", Kind: storage.KindReply, NoteID: note,
		Actor: storage.RemoteActor{ID: "https://remote.example/users/alice", Handle: "alice@remote.example"}, Content: "<p>Nice</p>"}
	waiting := storage.Interaction{ID: "https://remote.example/notes/2", Kind: storage.KindReply, NoteID: note, Moderation: storage.ModerationPending,
		Actor: storage.RemoteActor{ID: "https://remote.example/users/bob", Handle: "bob\x1b[2J@remote.example"}, Content: "<p>Please check <b>this</b></p>"}
	like := storage.Interaction{ID: "https://remote.example/likes/1", Kind: storage.KindLike, NoteID: note,
		Actor: storage.RemoteActor{ID: "https://remote.example/users/carol"}}
	for _, i := range []storage.Interaction{shown, waiting, like} {
		if _, err := st.PutInteraction(i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutReport(storage.Report{ID: "https://remote.example/flags/1", ActorID: "https://remote.example/actor",
		Objects: []string{note}, Content: "spam\nFORGED ROW"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, err := in.admin("replies")
	if err != nil || !strings.Contains(out, "pending") || !strings.Contains(out, waiting.ID) || strings.Contains(out, shown.ID) ||
		strings.Contains(out, "\x1b") || !strings.Contains(out, "Please check this") {
		t.Fatalf("replies waiting: %v\n%q", err, out)
	}
	if out, err := in.admin("replies", "hide", shown.ID); err != nil || !strings.Contains(out, "hidden") {
		t.Fatalf("hide: %v\n%s", err, out)
	}
	if out, err := in.admin("replies", "approve", shown.ID); err == nil {
		t.Fatalf("approving a hidden (not waiting) reply succeeded:\n%s", out)
	}
	if out, err := in.admin("replies", "hide", like.ID); err == nil {
		t.Fatalf("hiding a like succeeded:\n%s", out)
	}
	if out, err := in.admin("replies", "approve", waiting.ID); err != nil || !strings.Contains(out, "approved") {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if out, err := in.admin("replies", "hide", "https://nowhere.example/x"); err == nil || !strings.Contains(out+err.Error(), "no reply") {
		t.Fatalf("unknown reply: %v\n%s", err, out)
	}
	out, err = in.admin("reports")
	if err != nil || !strings.Contains(out, "about "+note) || strings.Contains(out, "\nFORGED ROW") {
		t.Fatalf("reports: %v\n%q", err, out)
	}

	st, err = storage.Open(filepath.Join(in.data, "crieur.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list, total, _ := st.NoteInteractions(note, storage.KindReply, 0, 0, false)
	if total != 1 || len(list) != 1 || list[0].ID != waiting.ID {
		t.Fatalf("replies shown after moderation: %d %+v", total, list)
	}
}
