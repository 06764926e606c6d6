package publish

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/internal/fedtest"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/storage"
)

// TestRetryFailedSendsWhatTheInboxStillNeeds: a server that refused
// everything for a while (400: failed at once) comes back, and the admin
// retries. It gets the current version of a live article as a Create (it
// never had the Note), the Delete of a deleted one, the Accept again; an
// article not visible now stays failed; nothing stale is sent.
func TestRetryFailedSendsWhatTheInboxStillNeeds(t *testing.T) {
	f := newPubFixture(t)
	var up atomic.Bool
	x := refusingInbox(t, f, &up)
	other := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(x, "u", "/inbox")
	f.follow(other, "o", "/inbox")
	f.startEmpty()
	f.Start()
	failNext := func(what string) {
		t.Helper()
		for _, r := range f.NextN(2) {
			want := delivery.OutcomeDelivered
			if strings.HasPrefix(r.Job.Inbox, x.URL("")) {
				want = delivery.OutcomeFailed
			}
			if r.Outcome != want {
				t.Fatalf("%s to %s: %s, want %s", what, r.Job.Inbox, r.Outcome, want)
			}
		}
	}

	f.article("a.en.md", "First title", -time.Hour)
	f.reconcile()
	failNext("create a")
	f.Clock.Advance(time.Minute)
	f.article("a.en.md", "Second title", -time.Hour)
	f.reconcile()
	failNext("update a")
	f.article("b.en.md", "Gone soon", -time.Hour)
	f.reconcile()
	failNext("create b")
	f.remove("b.en.md")
	f.reconcile()
	failNext("delete b")
	accept := f.Enqueue("Accept", "https://remote.example/follows/1", x.URL("/inbox"))
	if r := f.Next(); r.Outcome != delivery.OutcomeFailed {
		t.Fatalf("accept: %s", r.Outcome)
	}
	f.article("d.en.md", "Never edited", -time.Hour)
	f.reconcile()
	failNext("create d")
	createD := f.ledger()["d/en"].ActivityID
	f.article("c.en.md", "Moved away", -time.Hour)
	f.reconcile()
	failNext("create c")
	f.remove("c.en.md")
	f.reload() // not reconciled yet: c is not visible, and not deleted either
	if n := len(f.Failed()); n != 7 {
		t.Fatalf("%d failed deliveries, want 7", n)
	}
	_, outboxBefore, err := f.Store.Outbox(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	firstX := x.Total()

	// Another host's name retries nothing.
	rep, err := f.pub.RetryFailed(context.Background(), "elsewhere.example")
	if err != nil || rep != (RetryReport{}) {
		t.Fatalf("retry for another host: %+v, %v", rep, err)
	}

	up.Store(true)
	host := strings.TrimPrefix(x.URL(""), "http://")
	rep, err = f.pub.RetryFailed(context.Background(), strings.ToUpper(host))
	if err != nil {
		t.Fatal(err)
	}
	if rep != (RetryReport{Requeued: 4, Superseded: 2, Kept: 1}) {
		t.Errorf("report %+v, want 4 requeued, 2 superseded, 1 kept", rep)
	}
	for _, r := range f.NextN(4) {
		if r.Outcome != delivery.OutcomeDelivered {
			t.Errorf("retried %s: %s", r.Job.ActivityID, r.Outcome)
		}
	}
	f.Quiet()
	got := x.Received("/inbox")[firstX:]
	slices.Sort(got)
	if !slices.Equal(got, []string{"Accept", "Create", "Create", "Delete"}) {
		t.Fatalf("the server got %v after the retry", got)
	}
	bodies := x.Bodies("/inbox")[firstX:]
	allIDs := x.IDs("/inbox")
	ids := allIDs[firstX:]
	for i, body := range bodies {
		var head struct{ Type string }
		if err := json.Unmarshal(body, &head); err != nil {
			t.Fatal(err)
		}
		if head.Type == "Accept" {
			if ids[i] != accept.ID {
				t.Errorf("retried Accept has id %s, want the original %s", ids[i], accept.ID)
			}
			continue
		}
		d := decodeNoteDoc(t, body)
		switch d.Type {
		case "Create":
			switch d.Object.ID {
			case "https://crieur.example/posts/a/en":
				// Edited since its Create: a fresh Create of the current text.
				if !strings.Contains(d.Object.Content, "Second title") || d.Object.Updated != "" {
					t.Errorf("retried Create of a: %+v", d.Object)
				}
				if slices.Contains(allIDs[:firstX], ids[i]) {
					t.Errorf("retried Create of the edited article reuses a failed activity id %s", ids[i])
				}
			case "https://crieur.example/posts/d/en":
				// Never edited: its own Create again, so its counts stay whole.
				if ids[i] != createD {
					t.Errorf("retried Create of d has id %s, want the original %s", ids[i], createD)
				}
			default:
				t.Errorf("retried Create of %s", d.Object.ID)
			}
		case "Delete":
			if d.Object.ID != "https://crieur.example/posts/b/en" {
				t.Errorf("retried Delete of %s", d.Object.ID)
			}
		}
	}
	if left := f.Failed(); len(left) != 1 || !strings.Contains(left[0].Topic, "/posts/c/") {
		t.Errorf("still failed: %+v", left)
	}
	if _, outboxAfter, _ := f.Store.Outbox(0, 100); outboxAfter != outboxBefore {
		t.Errorf("outbox went from %d to %d items: a retry is not a new article", outboxBefore, outboxAfter)
	}
	if n := other.Total(); n != 6 {
		t.Errorf("the healthy server got %d activities, want its 6 (nothing retried there)", n)
	}
	if c, err := f.Store.DeliveryCounts(createD); err != nil || c != (storage.DeliveryCounts{Delivered: 2}) {
		t.Errorf("counts of d's Create after the retry: %+v, %v; want both servers delivered", c, err)
	}
	// Nothing failed is left for that host but c: a second retry sends nothing.
	if rep, err := f.pub.RetryFailed(context.Background(), host); err != nil || rep != (RetryReport{Kept: 1}) {
		t.Errorf("second retry: %+v, %v", rep, err)
	}
}

// TestDelivererDropsOldFailures: failed deliveries are kept KeepFailed
// after their last attempt, then dropped when the Deliverer starts (and
// every pruneEvery after): followers on dead servers must not make the
// data file grow with every article forever.
func TestDelivererDropsOldFailures(t *testing.T) {
	h := fedtest.NewHarness(t, delivery.Options{KeepFailed: time.Hour}, fedtest.Options{})
	old := h.Enqueue("Create", "https://crieur.example/posts/old/en", "https://dead.example/inbox")
	jobs := h.Pending()
	if err := h.Store.FailJob(jobs[0].ID, 0, "connection refused"); err != nil {
		t.Fatal(err)
	}
	h.Clock.Advance(2 * time.Hour)
	h.Enqueue("Create", "https://crieur.example/posts/new/en", "https://dead.example/inbox")
	jobs = h.Pending()
	if err := h.Store.FailJob(jobs[0].ID, 0, "connection refused"); err != nil {
		t.Fatal(err)
	}
	h.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := h.Failed()
		if len(left) == 1 && left[0].ActivityID != old.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failed deliveries after start: %+v; want only the recent one", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, _ := h.Store.DeliveryCounts(old.ID); c.Failed != 1 {
		t.Errorf("the old activity's counts %+v lost its failure", c)
	}
}

// TestRetryFailedSendsTheCurrentProfile: a server that refused a profile
// change, then took the next one, gets the profile as it is now when its
// failures are retried, not the refused Update, which would bring back the
// older bio.
func TestRetryFailedSendsTheCurrentProfile(t *testing.T) {
	f := newPubFixture(t)
	var up atomic.Bool
	x := refusingInbox(t, f, &up)
	f.follow(x, "u", "/inbox")
	f.startEmpty()
	f.Start()
	for i, bio := range []string{"First new bio.", "Second new bio."} {
		up.Store(i == 1)
		svc, err := documents.New(documents.Config{BaseURL: "https://crieur.example", Handle: "reports", Bio: bio}, documents.Deps{
			Store: f.Store, Key: &testkit.Key(t, 0).PublicKey, Now: f.Clock.Now, Posts: f.Lib.Load,
		})
		if err != nil {
			t.Fatal(err)
		}
		f.pub = NewPublisher(svc, f.D, Options{})
		f.reconcile()
		want := []delivery.Outcome{delivery.OutcomeFailed, delivery.OutcomeDelivered}[i]
		if r := f.Next(); r.Outcome != want {
			t.Fatalf("profile Update with %q: %s, want %s", bio, r.Outcome, want)
		}
	}
	rep, err := f.pub.RetryFailed(context.Background(), "")
	if err != nil || rep.Requeued != 1 {
		t.Fatalf("retry: %+v, %v; want 1 requeued", rep, err)
	}
	if r := f.Next(); r.Outcome != delivery.OutcomeDelivered {
		t.Fatalf("retried profile: %s", r.Outcome)
	}
	f.Quiet()
	bodies := x.Bodies("/inbox")
	last := string(bodies[len(bodies)-1])
	if !strings.Contains(last, "Second new bio.") || strings.Contains(last, "First new bio.") {
		t.Errorf("the retry sent %s", last)
	}
}

// refusingInbox is an inbox that answers 400 (a permanent failure) until up
// is set, then 202.
func refusingInbox(t *testing.T, f *pubFixture, up *atomic.Bool) *fedtest.Inbox {
	return fedtest.NewInbox(t, f.Harness, func(w http.ResponseWriter, _ *http.Request, _ int) {
		if !up.Load() {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}
