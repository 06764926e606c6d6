package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// seedData writes records into the instance's data folder before crieur
// runs there, as if they had come in earlier: the actor key first, since
// a database with followers belongs to a key.
func (in *instance) seedData(fill func(st *storage.Store)) {
	in.t.Helper()
	if _, err := signature.LoadOrCreateKey(filepath.Join(in.data, "actor.pem")); err != nil {
		in.t.Fatal(err)
	}
	st, err := storage.Open(filepath.Join(in.data, "crieur.db"), storage.Options{})
	if err != nil {
		in.t.Fatal(err)
	}
	fill(st)
	if err := st.Close(); err != nil {
		in.t.Fatal(err)
	}
}

// hostile is what a remote server may put in its actor document or its
// error answers: colour and screen-clearing escapes, a newline and a tab
// that would forge a row, a C1 CSI, DEL, and a bidi override.
const hostile = "mallory\x1b[2J\x1b[H\x1b[32m\nhttps://friend.example/users/admin\tadmin@friend.example\t2020-01-01T00:00:00Z\u009b0m\x7f\u202egpj.exe"

// A remote actor's preferredUsername, id and inbox, and the error text its
// server answered, all reach the admin's terminal through crieur followers
// and crieur queue: none may act on the terminal or add a row.
func TestAdminOutputNeutralisesRemoteText(t *testing.T) {
	in := newInstance(t, nil)
	in.seedData(func(st *storage.Store) {
		for _, status := range []storage.FollowerStatus{storage.FollowerAccepted, storage.FollowerPending} {
			id := "https://evil.example/users/" + string(status) + hostile
			if err := st.PutFollower(storage.Follower{ActorID: id, Inbox: id + "/inbox", Host: "evil.example",
				Handle: hostile + "@evil.example", FollowID: id + "/follow", Status: status, CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		act := storage.Activity{ID: in.base + "/activities/1", Type: "Create", ObjectID: in.base + "/posts/a/en",
			Published: time.Now(), JSON: []byte(`{}`)}
		if err := st.Enqueue(act, []storage.Job{{Inbox: "https://evil.example/inbox", Host: "evil.example" + hostile}}); err != nil {
			t.Fatal(err)
		}
		jobs, err := st.PendingJobs()
		if err != nil || len(jobs) != 1 {
			t.Fatalf("pending jobs %v, %v", jobs, err)
		}
		if err := st.FailJob(jobs[0].ID, 400, "HTTP 400: "+hostile); err != nil {
			t.Fatal(err)
		}
	})
	for _, args := range [][]string{{"followers"}, {"followers", "pending"}, {"queue"}} {
		out, err := in.admin(args...)
		if err != nil {
			t.Fatalf("crieur %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if bad := terminalActive(out); len(bad) > 0 {
			t.Errorf("crieur %s printed characters a terminal acts on: %q", strings.Join(args, " "), bad)
		}
		// A header, one row, and a count (after for followers, before for
		// the queue): a newline in a remote string would make one more.
		const want = 3
		if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != want {
			t.Errorf("crieur %s printed %d lines, want %d:\n%s", strings.Join(args, " "), len(lines), want, out)
		}
		if !strings.Contains(out, `mallory\x1b[2J`) {
			t.Errorf("crieur %s does not show the escape visibly:\n%s", strings.Join(args, " "), out)
		}
	}
	// An error quoting a remote string ends crieur on one inert line.
	var b strings.Builder
	out, err := in.admin("followers", "remove", "https://evil.example/users/x"+hostile)
	if err == nil {
		t.Fatalf("removing an unknown follower succeeded: %s", out)
	}
	printError(&b, err)
	if bad := terminalActive(strings.TrimSuffix(b.String(), "\n")); len(bad) > 0 || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("the error line is not one inert line: %q", b.String())
	}
}
