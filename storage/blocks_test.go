package storage

import (
	"errors"
	"testing"
	"time"
)

// A block removes, in one transaction, the followers, interactions and
// keys it covers (a domain: itself and its subdomains), and nothing else.
func TestPutBlockPurges(t *testing.T) {
	s, _, path := newTestStore(t)
	for _, a := range []string{"https://bad.example/users/a", "https://sub.bad.example/users/b", "https://notbad.example/users/c", "https://good.example/users/d"} {
		if err := s.PutFollower(Follower{ActorID: a, Inbox: a + "/inbox"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutInteraction(Interaction{ID: a + "/likes/1", Kind: KindLike, NoteID: noteA, Actor: RemoteActor{ID: a}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRemoteKey(RemoteKey{KeyID: a + "#main-key", Owner: a, PublicKeyPEM: "pem"}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.PutBlock(Block{Kind: BlockDomain, Value: "bad.example", Severity: "suspend"})
	if err != nil || p != (Purged{Followers: 2, Interactions: 2, Keys: 2}) {
		t.Fatalf("domain block: %+v %v", p, err)
	}
	p, err = s.PutBlock(Block{Kind: BlockActor, Value: "https://good.example/users/d"})
	if err != nil || p != (Purged{Followers: 1, Interactions: 1, Keys: 1}) {
		t.Fatalf("actor block: %+v %v", p, err)
	}
	s.Close()
	s = openTest(t, path, newClock())
	if f, _ := s.Followers(FollowerAccepted); len(f) != 1 || f[0].ActorID != "https://notbad.example/users/c" {
		t.Fatalf("followers left: %+v", f)
	}
	if c, _ := s.InteractionCounts(noteA); c[KindLike] != 1 {
		t.Fatalf("likes left: %v", c)
	}
	blocks, _ := s.Blocks()
	if len(blocks) != 2 || blocks[0].Kind != BlockActor || blocks[1].Value != "bad.example" || blocks[1].Severity != "suspend" {
		t.Fatalf("blocks: %+v", blocks)
	}
	if found, err := s.DeleteBlock(BlockDomain, "bad.example"); err != nil || !found {
		t.Fatalf("unblock: %v %v", found, err)
	}
	if found, _ := s.DeleteBlock(BlockDomain, "bad.example"); found {
		t.Fatal("unblocked twice")
	}
	if _, err := s.Follower("https://bad.example/users/a"); !errors.Is(err, ErrNotFound) {
		t.Fatal("an unblock brought a follower back")
	}
	checkInteractionIndexes(t, s)
}

func TestDomainCovers(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{{"bad.example", true}, {"a.bad.example", true}, {"BAD.example.", true}, {"notbad.example", false}, {"bad.example.org", false}} {
		if got := DomainCovers("bad.example", tc.host); got != tc.want {
			t.Errorf("%s: %v", tc.host, got)
		}
	}
}

func TestReports(t *testing.T) {
	s, clock, _ := newTestStore(t)
	r1 := Report{ID: "https://remote.example/flags/1", ActorID: "https://remote.example/actor", Objects: []string{noteA}, Content: "spam"}
	if created, err := s.PutReport(r1); err != nil || !created {
		t.Fatalf("put: %v %v", created, err)
	}
	clock.Advance(time.Minute)
	if created, _ := s.PutReport(r1); created {
		t.Fatal("the same Flag recorded twice")
	}
	if _, err := s.PutReport(Report{ID: "https://remote.example/flags/2", ActorID: "x"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.Reports()
	if err != nil || len(list) != 2 || list[0].ID != "https://remote.example/flags/2" || list[1].Content != "spam" {
		t.Fatalf("reports: %+v %v", list, err)
	}
}
