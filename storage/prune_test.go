package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPruneFailed(t *testing.T) {
	s, clock, _ := newTestStore(t)
	a := activity(1, clock.Now(), true)
	start := clock.Now()
	var jobs []Job
	for i := range 6 {
		jobs = append(jobs, Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", i), NextAttempt: start.Add(time.Duration(i) * time.Hour)})
	}
	if err := s.Enqueue(a, jobs); err != nil {
		t.Fatal(err)
	}
	pending, _ := s.PendingJobs()
	for _, j := range pending[:5] { // the last one stays pending
		if err := s.FailJob(j.ID, 503, "down"); err != nil {
			t.Fatal(err)
		}
	}
	// Failed jobs whose last attempt was due before start+3h: h0, h1, h2.
	n, err := s.PruneFailed(start.Add(3 * time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("PruneFailed = %d, %v; want 3", n, err)
	}
	left, _ := s.FailedJobs()
	if len(left) != 2 || left[0].Inbox != "https://h3.example/inbox" || left[1].Inbox != "https://h4.example/inbox" {
		t.Errorf("failed after pruning: %+v", left)
	}
	if p, _ := s.PendingJobs(); len(p) != 1 {
		t.Errorf("pending after pruning: %+v", p)
	}
	if c, _ := s.DeliveryCounts(a.ID); c != (DeliveryCounts{Pending: 1, Failed: 5}) {
		t.Errorf("counts after pruning %+v: the article still had 5 failures", c)
	}
	if n, err := s.PruneFailed(start.Add(3 * time.Hour)); err != nil || n != 0 {
		t.Errorf("second prune = %d, %v", n, err)
	}
	if n, err := s.PruneFailed(start.Add(24 * time.Hour)); err != nil || n != 2 {
		t.Errorf("prune of the rest = %d, %v", n, err)
	}
	checkInvariants(t, s)
}

// answer is an Accept (or Reject) of follower i's Follow.
func answer(typ string, i int, at time.Time) Activity {
	id := fmt.Sprintf("https://b.example/activities/%s-%d", typ, i)
	return Activity{ID: id, Type: typ, ObjectID: fmt.Sprintf("https://h%d.example/follows/%d", i%3, i),
		Published: at, JSON: fmt.Appendf(nil, `{"id":%q,"type":%q}`, id, typ)}
}

// TestPruneAnswers: answers to Follows go once nothing can send them
// again; what a job still names, what is too recent and what the outbox or
// the ledger need stays, whatever its age.
func TestPruneAnswers(t *testing.T) {
	s, clock, path := newTestStore(t)
	start := clock.Now()

	// Four Accepts: delivered, still retrying, given up, and one that was
	// never queued. A Reject, delivered.
	delivered, retrying, givenUp, unsent := answer("Accept", 1, start), answer("Accept", 2, start), answer("Accept", 3, start), answer("Accept", 4, start)
	for i, a := range []Activity{delivered, retrying, givenUp} {
		f := follower(i+1, FollowerAccepted)
		if err := s.AcceptFollower(f, a, []Job{{Inbox: f.Inbox}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutActivity(unsent); err != nil {
		t.Fatal(err)
	}
	pendingFollower := follower(5, FollowerPending)
	if err := s.PutFollower(pendingFollower); err != nil {
		t.Fatal(err)
	}
	rejected := answer("Reject", 5, start)
	if err := s.RejectFollower(pendingFollower.ActorID, rejected, []Job{{Inbox: pendingFollower.Inbox}}); err != nil {
		t.Fatal(err)
	}
	// The posts' own activities, not in the outbox for the Update and
	// the Delete, are as old.
	create := activity(6, start, true)
	update, del := activity(7, start, false), activity(8, start, false)
	update.Type, del.Type = "Update", "Delete"
	for _, a := range []Activity{create, update, del} {
		if err := s.Enqueue(a, []Job{{Inbox: "https://h0.example/inbox"}}); err != nil {
			t.Fatal(err)
		}
	}
	byActivity := map[string]Job{}
	pending, _ := s.PendingJobs()
	for _, j := range pending {
		byActivity[j.ActivityID] = j
	}
	for _, id := range []string{delivered.ID, rejected.ID, create.ID, update.ID, del.ID} {
		if err := s.CompleteJob(byActivity[id].ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FailJob(byActivity[givenUp.ID].ID, 0, "connection refused"); err != nil {
		t.Fatal(err)
	}

	clock.Advance(time.Hour)
	recent := answer("Accept", 9, clock.Now())
	if err := s.PutActivity(recent); err != nil {
		t.Fatal(err)
	}

	n, err := s.PruneAnswers(start.Add(time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("PruneAnswers = %d, %v; want 3 (delivered, unsent, rejected)", n, err)
	}
	for _, a := range []Activity{delivered, unsent, rejected} {
		if _, err := s.Activity(a.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s still there after pruning: %v", a.ID, err)
		}
		if c, _ := s.DeliveryCounts(a.ID); c != (DeliveryCounts{}) {
			t.Errorf("%s still counted: %+v", a.ID, c)
		}
	}
	for _, a := range []Activity{retrying, givenUp, recent, create, update, del} {
		if _, err := s.Activity(a.ID); err != nil {
			t.Errorf("%s (%s) pruned: %v", a.ID, a.Type, err)
		}
	}
	checkInvariants(t, s)

	// Once the failed job is gone too, its Accept follows; the retrying
	// one stays as long as it is pending.
	if _, err := s.PruneFailed(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneAnswers(clock.Now().Add(time.Second)); err != nil || n != 2 {
		t.Errorf("second PruneAnswers = %d, %v; want 2 (given up, recent)", n, err)
	}
	if _, err := s.Activity(retrying.ID); err != nil {
		t.Errorf("the retrying Accept was pruned: %v", err)
	}
	if c, _ := s.DeliveryCounts(retrying.ID); c != (DeliveryCounts{Pending: 1}) {
		t.Errorf("retrying Accept counts %+v", c)
	}
	if _, total, _ := s.Outbox(0, 10); total != 1 {
		t.Errorf("outbox holds %d activities after pruning, want the Create", total)
	}

	// Reopened, the pruned records stay gone and the rest is sound.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, clock)
	if _, err := s.Activity(delivered.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("pruned Accept back after reopen: %v", err)
	}
	checkInvariants(t, s)
}

// TestPruneRemoteKeys: keys of strangers go once they are old; followers'
// keys (accepted or pending) stay, and so do recent keys.
func TestPruneRemoteKeys(t *testing.T) {
	s, clock, _ := newTestStore(t)
	start := clock.Now()
	accepted, asking := follower(1, FollowerAccepted), follower(2, FollowerPending)
	for _, f := range []Follower{accepted, asking} {
		if err := s.PutFollower(f); err != nil {
			t.Fatal(err)
		}
	}
	key := func(owner string, at time.Time) RemoteKey {
		return RemoteKey{KeyID: owner + "#main-key", Owner: owner, PublicKeyPEM: "pem", FetchedAt: at}
	}
	old := []RemoteKey{
		key(accepted.ActorID, start),
		key(asking.ActorID, start),
		key("https://stranger.example/users/a", start),
		key("https://gone.example/users/b", start),
	}
	fresh := key("https://stranger.example/users/c", start.Add(2*time.Hour))
	for _, k := range append(old, fresh) {
		if err := s.PutRemoteKey(k); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneRemoteKeys(start.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PruneRemoteKeys = %d, %v; want the two strangers' old keys", n, err)
	}
	for _, k := range old[2:] {
		if _, err := s.RemoteKey(k.KeyID); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s kept: %v", k.KeyID, err)
		}
	}
	for _, k := range []RemoteKey{old[0], old[1], fresh} {
		if _, err := s.RemoteKey(k.KeyID); err != nil {
			t.Errorf("%s dropped: %v", k.KeyID, err)
		}
	}
	// An Undo later makes the follower's key a stranger's.
	if _, err := s.DeleteFollower(accepted.ActorID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneRemoteKeys(start.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("after the Undo PruneRemoteKeys = %d, %v; want 1", n, err)
	}
	checkInvariants(t, s)
}
