package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

const (
	quoteOfA = "https://remote.example/users/ann/statuses/1"
	authA    = "https://crieur.example/authorizations/aaaa"
)

func grantFixture(id, object, actorID string) (Authorization, Activity, []Job) {
	a := Authorization{
		ID: id, Kind: KindQuote, RequestID: actorID + "/quote_requests/1", AcceptID: "https://crieur.example/activities/" + id[len(id)-4:],
		ActorID: actorID, InteractingObject: object, InteractionTarget: noteA,
	}
	act := Activity{ID: a.AcceptID, Type: "Accept", ObjectID: a.RequestID, JSON: []byte(`{"type":"Accept"}`)}
	jobs := []Job{{Inbox: actorID + "/inbox", Topic: object}}
	return a, act, jobs
}

// A grant stores the authorization, the Accept and its job in one
// transaction; the same grant again renews it and queues one more Accept.
func TestGrantAuthorizationStoresAcceptAndJob(t *testing.T) {
	s, clock, _ := newTestStore(t)
	ann := actor("ann").ID
	a, act, jobs := grantFixture(authA, quoteOfA, ann)
	created, err := s.GrantAuthorization(a, act, jobs)
	if err != nil || !created {
		t.Fatalf("grant: created %v, %v", created, err)
	}
	got, err := s.Authorization(authA)
	if err != nil {
		t.Fatal(err)
	}
	if got.ActorID != ann || got.InteractingObject != quoteOfA || got.InteractionTarget != noteA || got.CreatedAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Errorf("stored %+v", got)
	}
	if _, err := s.Activity(act.ID); err != nil {
		t.Errorf("Accept not stored: %v", err)
	}
	pending, err := s.PendingJobs()
	if err != nil || len(pending) != 1 || pending[0].ActivityID != act.ID || pending[0].Inbox != ann+"/inbox" {
		t.Fatalf("jobs %+v, %v", pending, err)
	}

	clock.Advance(time.Hour)
	a2, act2, jobs2 := grantFixture(authA, quoteOfA, ann)
	act2.ID, a2.AcceptID = "https://crieur.example/activities/again", "https://crieur.example/activities/again"
	created, err = s.GrantAuthorization(a2, act2, jobs2)
	if err != nil || created {
		t.Fatalf("grant again: created %v, %v", created, err)
	}
	again, _ := s.Authorization(authA)
	if !again.CreatedAt.Equal(got.CreatedAt) || again.AcceptID != act2.ID {
		t.Errorf("renewed %+v, first %+v", again, got)
	}
	if pending, _ := s.PendingJobs(); len(pending) != 2 {
		t.Errorf("%d jobs after the second grant, want 2", len(pending))
	}
	checkInvariants(t, s)
	checkAuthorizationIndex(t, s)
}

// Another actor cannot take over an authorization, and a revoked one is
// never granted again; neither queues anything.
func TestGrantAuthorizationRefusals(t *testing.T) {
	s, _, _ := newTestStore(t)
	ann, bob := actor("ann").ID, actor("bob").ID
	a, act, jobs := grantFixture(authA, quoteOfA, ann)
	if _, err := s.GrantAuthorization(a, act, jobs); err != nil {
		t.Fatal(err)
	}
	b, bact, bjobs := grantFixture(authA, quoteOfA, bob)
	bact.ID = "https://crieur.example/activities/bob"
	if _, err := s.GrantAuthorization(b, bact, bjobs); !errors.Is(err, ErrNotOwner) {
		t.Errorf("grant by another actor: %v, want ErrNotOwner", err)
	}
	if _, err := s.Activity(bact.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused grant stored its Accept: %v", err)
	}
	if _, err := s.RevokeAuthorizations(quoteOfA, ann, time.Now()); err != nil {
		t.Fatal(err)
	}
	a.AcceptID, act.ID = "https://crieur.example/activities/late", "https://crieur.example/activities/late"
	if _, err := s.GrantAuthorization(a, act, jobs); !errors.Is(err, ErrRevoked) {
		t.Errorf("grant after revocation: %v, want ErrRevoked", err)
	}
	if pending, _ := s.PendingJobs(); len(pending) != 1 {
		t.Errorf("%d jobs, want the first Accept's only", len(pending))
	}
	if _, err := s.GrantAuthorization(Authorization{ID: "x"}, act, jobs); err == nil {
		t.Error("incomplete authorization stored")
	}
	if _, err := s.Authorization("https://crieur.example/authorizations/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

// Revocation takes only the author's authorizations of that object, keeps
// the records (for 410), and is idempotent; it survives a reopen.
func TestRevokeAuthorizations(t *testing.T) {
	clock := newClock()
	path := filepath.Join(t.TempDir(), "crieur.db")
	s := openTest(t, path, clock)
	ann, bob := actor("ann").ID, actor("bob").ID
	for _, g := range []struct{ id, object, actor string }{
		{authA, quoteOfA, ann},
		{"https://crieur.example/authorizations/bbbb", quoteOfA + "0", ann}, // an object whose id extends the first
		{"https://crieur.example/authorizations/cccc", "https://other.example/users/bob/statuses/1", bob},
	} {
		a, act, jobs := grantFixture(g.id, g.object, g.actor)
		if _, err := s.GrantAuthorization(a, act, jobs); err != nil {
			t.Fatal(err)
		}
	}
	at := clock.Now()
	if got, err := s.RevokeAuthorizations(quoteOfA, bob, at); err != nil || len(got) != 0 {
		t.Errorf("revoke by another actor: %v, %v", got, err)
	}
	got, err := s.RevokeAuthorizations(quoteOfA, ann, at)
	if err != nil || len(got) != 1 || got[0].ID != authA || !got[0].RevokedAt.Equal(at) {
		t.Fatalf("revoke: %+v, %v", got, err)
	}
	if again, err := s.RevokeAuthorizations(quoteOfA, ann, at.Add(time.Hour)); err != nil || len(again) != 0 {
		t.Errorf("revoke twice: %+v, %v", again, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, clock)
	if a, err := s.Authorization(authA); err != nil || !a.RevokedAt.Equal(at) {
		t.Errorf("after reopen: %+v, %v", a, err)
	}
	for _, id := range []string{"https://crieur.example/authorizations/bbbb", "https://crieur.example/authorizations/cccc"} {
		if a, err := s.Authorization(id); err != nil || !a.RevokedAt.IsZero() {
			t.Errorf("%s: %+v, %v", id, a, err)
		}
	}
	list, err := s.AuthorizationsFor(quoteOfA)
	if err != nil || len(list) != 1 {
		t.Errorf("AuthorizationsFor: %+v, %v", list, err)
	}
	checkInvariants(t, s)
	checkAuthorizationIndex(t, s)
}

// Concurrent identical grants (a request delivered twice at once) leave one
// authorization and one Accept each.
func TestGrantAuthorizationConcurrent(t *testing.T) {
	s, _, _ := newTestStore(t)
	ann := actor("ann").ID
	var wg sync.WaitGroup
	created := make(chan bool, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, act, jobs := grantFixture(authA, quoteOfA, ann)
			act.ID = act.ID + string(rune('a'+i))
			a.AcceptID = act.ID
			c, err := s.GrantAuthorization(a, act, jobs)
			if err != nil {
				t.Error(err)
			}
			created <- c
		}()
	}
	wg.Wait()
	close(created)
	n := 0
	for c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d grants created the authorization, want 1", n)
	}
	if list, _ := s.AuthorizationsFor(quoteOfA); len(list) != 1 {
		t.Errorf("%d authorizations", len(list))
	}
	checkInvariants(t, s)
	checkAuthorizationIndex(t, s)
}

// checkAuthorizationIndex: every authorization is indexed once under its
// interacting object, and every index entry names a record of that object.
func checkAuthorizationIndex(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		records := tx.Bucket(bucketAuthorizations)
		index := tx.Bucket(bucketAuthorizationObject)
		n := 0
		err := records.ForEach(func(k, v []byte) error {
			var a Authorization
			if err := decode(v, &a); err != nil {
				return err
			}
			if a.ID != string(k) || index.Get(authorizationObjectKey(a.InteractingObject, a.ID)) == nil {
				return fmt.Errorf("authorization %q not indexed", k)
			}
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if got := index.Stats().KeyN; got != n {
			return fmt.Errorf("%d index entries for %d authorizations", got, n)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// An account's deletion revokes all its authorizations, no one else's.
func TestRevokeActorAuthorizations(t *testing.T) {
	s, clock, _ := newTestStore(t)
	ann, bob := actor("ann").ID, actor("bob").ID
	for _, g := range []struct{ id, object, actor string }{
		{authA, quoteOfA, ann},
		{"https://crieur.example/authorizations/bbbb", ann + "/likes/2", ann},
		{"https://crieur.example/authorizations/cccc", bob + "/statuses/1", bob},
	} {
		a, act, jobs := grantFixture(g.id, g.object, g.actor)
		if _, err := s.GrantAuthorization(a, act, jobs); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RevokeActorAuthorizations(ann, clock.Now())
	if err != nil || len(got) != 2 {
		t.Fatalf("revoked %+v, %v", got, err)
	}
	if a, _ := s.Authorization("https://crieur.example/authorizations/cccc"); !a.RevokedAt.IsZero() {
		t.Errorf("bob's revoked: %+v", a)
	}
	if again, err := s.RevokeActorAuthorizations(ann, clock.Now()); err != nil || len(again) != 0 {
		t.Errorf("twice: %+v, %v", again, err)
	}
	checkAuthorizationIndex(t, s)
}
