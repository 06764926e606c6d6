package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/internal/fedtest"
	"github.com/crieur/crieur/federation/internal/testkit"
	"github.com/crieur/crieur/storage"
)

// pubFixture is a posts folder on disk, the real articles.Library loaded from
// it, and a Publisher over the delivery harness.
type pubFixture struct {
	*fedtest.Harness
	dir string
	pub *Publisher
}

func newPubFixture(t *testing.T) *pubFixture {
	t.Helper()
	h := fedtest.NewHarness(t, delivery.Options{}, fedtest.Options{})
	f := &pubFixture{Harness: h, dir: t.TempDir()}
	f.reload()
	f.pub = NewPublisher(h.Docs, h.D, Options{})
	return f
}

// article writes one article file; date is relative to the test clock.
func (f *pubFixture) article(file, title string, date time.Duration, extra ...string) {
	f.T.Helper()
	fm := []string{
		"title: " + fmt.Sprintf("%q", title),
		"date: " + f.Clock.Now().Add(date).Format(time.RFC3339),
	}
	fm = append(fm, extra...)
	text := "---\n" + strings.Join(fm, "\n") + "\n---\n\nThe text of " + title + ".\n"
	path := filepath.Join(f.dir, file)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		f.T.Fatal(err)
	}
}

func (f *pubFixture) remove(file string) {
	f.T.Helper()
	if err := os.Remove(filepath.Join(f.dir, file)); err != nil {
		f.T.Fatal(err)
	}
}

// reload loads the folder like the watcher would after a change.
func (f *pubFixture) reload() {
	f.T.Helper()
	lib, err := articles.Load(f.dir, articles.Options{Now: f.Clock.Now})
	if err != nil {
		f.T.Fatal(err)
	}
	if p := lib.Problems(); len(p) > 0 {
		f.T.Fatalf("posts problems: %v", p)
	}
	f.Lib.Store(lib)
}

func (f *pubFixture) reconcile() {
	f.T.Helper()
	f.reload()
	if err := f.pub.Reconcile(context.Background()); err != nil {
		f.T.Fatal(err)
	}
}

// follow adds an accepted follower on an inbox server; shared may be "".
func (f *pubFixture) follow(in *fedtest.Inbox, user, shared string) {
	f.T.Helper()
	fl := storage.Follower{
		ActorID: in.URL("/users/" + user), Inbox: in.URL("/users/" + user + "/inbox"),
		Status: storage.FollowerAccepted,
	}
	if shared != "" {
		fl.SharedInbox = in.URL(shared)
	}
	if err := f.Store.PutFollower(fl); err != nil {
		f.T.Fatal(err)
	}
}

func (f *pubFixture) ledger() map[string]storage.LedgerEntry {
	f.T.Helper()
	entries, err := f.Store.Ledger()
	if err != nil {
		f.T.Fatal(err)
	}
	m := map[string]storage.LedgerEntry{}
	for _, e := range entries {
		m[e.Key] = e
	}
	return m
}

// startEmpty makes the first reconcile over an empty folder, so that what
// the test writes next is new, not back catalogue.
func (f *pubFixture) startEmpty() {
	f.T.Helper()
	f.reconcile()
	if v, _, _ := f.Store.Meta(publisherStateKey); v != stateReady {
		f.T.Fatalf("state after the first start: %q", v)
	}
}

// activities lists the stored activities of the pending jobs by inbox.
func (f *pubFixture) jobsByInbox() map[string][]string {
	f.T.Helper()
	out := map[string][]string{}
	for _, j := range f.Pending() {
		act, err := f.Store.Activity(j.ActivityID)
		if err != nil {
			f.T.Fatal(err)
		}
		out[j.Inbox] = append(out[j.Inbox], act.Type)
	}
	return out
}

type noteDoc struct {
	Type   string `json:"type"`
	Object struct {
		ID         string            `json:"id"`
		Type       string            `json:"type"`
		Published  string            `json:"published"`
		Updated    string            `json:"updated"`
		Content    string            `json:"content"`
		FormerType string            `json:"formerType"`
		ContentMap map[string]string `json:"contentMap"`
	} `json:"object"`
}

func decodeNoteDoc(t *testing.T, body []byte) noteDoc {
	t.Helper()
	var d noteDoc
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPublisherFanOutDedupsSharedInboxes(t *testing.T) {
	f := newPubFixture(t)
	// Server A: four followers behind one shared inbox. Server B: two
	// followers without a shared inbox (GoToSocial). Server C: one.
	a, b, c := fedtest.NewInbox(t, f.Harness, nil), fedtest.NewInbox(t, f.Harness, nil), fedtest.NewInbox(t, f.Harness, nil)
	for _, u := range []string{"a1", "a2", "a3", "a4"} {
		f.follow(a, u, "/inbox")
	}
	f.follow(b, "b1", "")
	f.follow(b, "b2", "")
	f.follow(c, "c1", "/inbox")
	// A pending follow request gets nothing.
	pending := storage.Follower{ActorID: c.URL("/users/p"), Inbox: c.URL("/users/p/inbox"), Status: storage.FollowerPending}
	if err := f.Store.PutFollower(pending); err != nil {
		t.Fatal(err)
	}
	f.startEmpty()
	f.Start()
	f.article("hello.en.md", "Hello", -time.Minute)
	f.reconcile()
	f.NextN(4)
	f.Quiet()
	want := map[*fedtest.Inbox]map[string]int{
		a: {"/inbox": 1},
		b: {"/users/b1/inbox": 1, "/users/b2/inbox": 1},
		c: {"/inbox": 1},
	}
	for in, paths := range want {
		if got := in.Counts(); fmt.Sprint(got) != fmt.Sprint(paths) {
			t.Errorf("server %s received %v, want %v", in.URL(""), got, paths)
		}
	}
	d := decodeNoteDoc(t, a.Bodies("/inbox")[0])
	if d.Type != "Create" || d.Object.ID != "https://crieur.example/posts/hello/en" || d.Object.Updated != "" {
		t.Fatalf("delivered %+v", d)
	}
}

func TestPublisherCreateUpdateDeleteInOrder(t *testing.T) {
	f := newPubFixture(t)
	// The first Create fails with 500: the Update and the Delete must
	// wait behind it.
	in := fedtest.NewInbox(t, f.Harness, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(202)
	})
	f.follow(in, "u", "/inbox")
	f.startEmpty()
	f.Start()

	f.article("post.en.md", "First title", -time.Hour)
	f.reconcile()
	if r := f.Next(); r.Outcome != delivery.OutcomeRetry {
		t.Fatalf("create: %s", r.Outcome)
	}
	f.Clock.Advance(time.Second)
	f.article("post.en.md", "Second title", -time.Hour)
	f.reconcile()
	f.Clock.Advance(time.Second)
	f.remove("post.en.md")
	f.reconcile()
	if got := f.jobsByInbox()[in.URL("/inbox")]; !slices.Equal(got, []string{"Create", "Update", "Delete"}) {
		t.Fatalf("queued %v", got)
	}
	f.Quiet() // the Update and the Delete wait behind the failed Create
	f.Advance(30 * time.Second)
	f.NextN(3)
	got := in.Received("/inbox")
	if !slices.Equal(got, []string{"Create", "Create", "Update", "Delete"}) {
		t.Fatalf("received %v", got)
	}
	bodies := in.Bodies("/inbox")
	create, update, del := decodeNoteDoc(t, bodies[1]), decodeNoteDoc(t, bodies[2]), decodeNoteDoc(t, bodies[3])
	id := "https://crieur.example/posts/post/en"
	if create.Object.ID != id || update.Object.ID != id || del.Object.ID != id {
		t.Fatalf("ids: %s %s %s", create.Object.ID, update.Object.ID, del.Object.ID)
	}
	if !strings.Contains(update.Object.Content, "Second title") || update.Object.Updated <= update.Object.Published {
		t.Fatalf("update: updated %q published %q", update.Object.Updated, update.Object.Published)
	}
	if del.Object.Type != "Tombstone" || del.Object.FormerType != "Note" {
		t.Fatalf("delete object: %+v", del.Object)
	}
	if _, err := f.Docs.NoteJSON("post", "en"); !errors.Is(err, federation.ErrGone) {
		t.Fatalf("NoteJSON after Delete: %v", err)
	}
	e := f.ledger()["post/en"]
	if e.Deleted.IsZero() || e.Updated.IsZero() || !e.Pushed {
		t.Fatalf("ledger: %+v", e)
	}
}

func TestPublisherBackCatalogueIsNotPushed(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "/inbox")
	f.article("old.en.md", "Old", -72*time.Hour)
	f.article("older.en.md", "Older", -96*time.Hour)
	f.article("later.en.md", "Later", time.Hour) // future: not yet
	f.reload()
	plan, err := f.pub.DryRun()
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 || plan[0].Type != ActionImport || plan[0].Key != "older/en" || plan[0].Inboxes != 0 {
		t.Fatalf("dry run: %+v", plan)
	}
	f.reconcile()
	led := f.ledger()
	if len(led) != 2 || led["old/en"].Pushed || led["older/en"].Pushed {
		t.Fatalf("ledger: %+v", led)
	}
	if p := f.Pending(); len(p) != 0 {
		t.Fatalf("back catalogue queued %d jobs", len(p))
	}
	acts, total, err := f.Store.Outbox(0, 10)
	if err != nil || total != 2 {
		t.Fatalf("outbox: %d %v", total, err)
	}
	// Newest first, by the articles' dates.
	if acts[0].Type != "Create" || acts[0].ObjectID != "https://crieur.example/posts/old/en" {
		t.Fatalf("outbox order: %s %s", acts[0].Type, acts[0].ObjectID)
	}
	if v, _, _ := f.Store.Meta(publisherStateKey); v != stateReady {
		t.Fatalf("state: %q", v)
	}
	// From now on new posts are delivered.
	f.article("new.en.md", "New", -time.Minute)
	f.reconcile()
	if got := f.jobsByInbox(); len(got) != 1 || !slices.Equal(got[in.URL("/inbox")], []string{"Create"}) {
		t.Fatalf("after the first start: %v", got)
	}
	// And the future post when it is due.
	f.Clock.Advance(time.Hour)
	f.reconcile()
	if got := f.jobsByInbox()[in.URL("/inbox")]; !slices.Equal(got, []string{"Create", "Create"}) {
		t.Fatalf("after the due date: %v", got)
	}
}

func TestPublisherImportResumesAfterACrash(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "/inbox")
	f.article("a.en.md", "A", -time.Hour)
	f.article("b.en.md", "B", -2*time.Hour)
	// A crash after the marker and the first import.
	if err := f.Store.SetMeta(publisherStateKey, stateImporting); err != nil {
		t.Fatal(err)
	}
	f.reload()
	b, _ := f.Lib.Load().GetKey("b/en")
	imported := storage.LedgerEntry{Key: "b/en", NoteID: "https://crieur.example/posts/b/en",
		Hash: noteHash(f.Lib.Load(), b, f.Clock.Now()), Published: b.Date}
	if _, err := f.Store.Publish(imported, storage.Activity{ID: f.Docs.NewActivityID(), Type: "Create"}, nil); err != nil {
		t.Fatal(err)
	}
	f.reconcile()
	if p := f.Pending(); len(p) != 0 {
		t.Fatalf("the rest of the back catalogue was pushed: %d jobs", len(p))
	}
	if e, ok := f.ledger()["a/en"]; !ok || e.Pushed {
		t.Fatalf("a/en: %+v %v", e, ok)
	}
}

func TestPublisherLedgerWithoutMarkerIsReady(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "/inbox")
	f.article("a.en.md", "A", -time.Hour)
	// A database with a ledger from before the marker existed.
	if _, err := f.Store.Publish(storage.LedgerEntry{Key: "gone/en", NoteID: "https://crieur.example/posts/gone/en", Hash: "x"},
		storage.Activity{ID: f.Docs.NewActivityID(), Type: "Create"}, nil); err != nil {
		t.Fatal(err)
	}
	f.reconcile()
	got := f.jobsByInbox()[in.URL("/inbox")]
	slices.Sort(got)
	// The Update is the profile's: such an old database recorded none.
	if !slices.Equal(got, []string{"Create", "Delete", "Update"}) {
		t.Fatalf("queued %v", got)
	}
	if v, _, _ := f.Store.Meta(publisherStateKey); v != stateReady {
		t.Fatalf("state: %q", v)
	}
}

func TestPublisherFutureDatedPostWaits(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "")
	f.startEmpty()
	f.article("tuesday.en.md", "Tuesday", 10*time.Minute)
	f.reconcile()
	if plan, _ := f.pub.DryRun(); len(plan) != 0 {
		t.Fatalf("future post planned: %+v", plan)
	}
	if len(f.ledger()) != 0 || len(f.Pending()) != 0 {
		t.Fatal("a future post was announced")
	}
	f.Clock.Advance(10 * time.Minute)
	f.reconcile()
	if got := f.jobsByInbox()[in.URL("/users/u/inbox")]; !slices.Equal(got, []string{"Create"}) {
		t.Fatalf("when due: %v", got)
	}
	e := f.ledger()["tuesday/en"]
	if !e.Published.Equal(f.Clock.Now()) {
		t.Fatalf("published %s, want the post date %s", e.Published, f.Clock.Now())
	}
}

func TestPublisherTranslationChangesUpdateSiblings(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "/inbox")
	f.startEmpty()
	f.article("report.en.md", "Report", -time.Hour, "translationKey: report")
	f.reconcile()
	f.article("rapport.fr.md", "Rapport", -time.Hour, "translationKey: report")
	f.reload()
	plan, err := f.pub.DryRun()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range plan {
		got = append(got, a.Type+" "+a.Key)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"Create rapport/fr", "Update report/en"}) {
		t.Fatalf("translation added: %v", got)
	}
	f.reconcile()
	// Removing the translation changes the English Note again.
	f.remove("rapport.fr.md")
	f.reload()
	plan, _ = f.pub.DryRun()
	got = nil
	for _, a := range plan {
		got = append(got, a.Type+" "+a.Key)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"Delete rapport/fr", "Update report/en"}) {
		t.Fatalf("translation removed: %v", got)
	}
	f.reconcile()
	if plan, _ := f.pub.DryRun(); len(plan) != 0 {
		t.Fatalf("after reconciling: %+v", plan)
	}
}

func TestPublisherDraftIsDeletedAndReturnIsCreated(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "/inbox")
	f.startEmpty()
	f.article("p.en.md", "P", -time.Hour)
	f.reconcile()
	f.article("p.en.md", "P", -time.Hour, "draft: true")
	f.reconcile()
	if e := f.ledger()["p/en"]; e.Deleted.IsZero() {
		t.Fatalf("draft not deleted: %+v", e)
	}
	// Back from draft: announced again (the site shows it again).
	f.article("p.en.md", "P", -time.Hour)
	f.reconcile()
	if e := f.ledger()["p/en"]; !e.Deleted.IsZero() {
		t.Fatalf("still deleted: %+v", e)
	}
	if got := f.jobsByInbox()[in.URL("/inbox")]; !slices.Equal(got, []string{"Create", "Delete", "Create"}) {
		t.Fatalf("queued %v", got)
	}
}

func TestPublisherDryRunWritesNothing(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "a", "/inbox")
	f.follow(in, "b", "/inbox")
	f.follow(in, "c", "")
	f.startEmpty()
	f.article("p.en.md", "P", -time.Hour)
	f.reload()
	plan, err := f.pub.DryRun()
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || plan[0] != (PlannedAction{Type: ActionCreate, Key: "p/en", Inboxes: 2, Reason: "new"}) {
		t.Fatalf("plan %+v", plan)
	}
	if len(f.ledger()) != 0 || len(f.Pending()) != 0 {
		t.Fatal("dry run wrote")
	}
}

func TestPublisherRepublish(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "/inbox")
	f.article("old.en.md", "Old", -72*time.Hour)
	f.reconcile() // back catalogue
	ctx := context.Background()

	n, err := f.pub.Republish(ctx, "old/en")
	if err != nil || n != 1 {
		t.Fatalf("republish back catalogue: %d %v", n, err)
	}
	if e := f.ledger()["old/en"]; !e.Pushed || !e.Updated.IsZero() {
		t.Fatalf("ledger after a first push: %+v", e)
	}
	f.Clock.Advance(time.Minute)
	if n, err := f.pub.Republish(ctx, "old/en"); err != nil || n != 1 {
		t.Fatalf("republish again: %d %v", n, err)
	}
	e := f.ledger()["old/en"]
	if !e.Updated.Equal(f.Clock.Now()) {
		t.Fatalf("updated %s", e.Updated)
	}
	if got := f.jobsByInbox()[in.URL("/inbox")]; !slices.Equal(got, []string{"Create", "Update"}) {
		t.Fatalf("queued %v", got)
	}
	if _, err := f.pub.Republish(ctx, "nope/en"); !errors.Is(err, federation.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	f.remove("old.en.md")
	f.reconcile()
	if _, err := f.pub.Republish(ctx, "old/en"); !errors.Is(err, federation.ErrGone) {
		t.Fatalf("deleted: %v", err)
	}
}

func TestNextUpdatedMovesForward(t *testing.T) {
	base := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		e    storage.LedgerEntry
		now  time.Time
		want time.Time
	}{
		{"now", storage.LedgerEntry{Published: base}, base.Add(time.Hour), base.Add(time.Hour)},
		{"same second as published", storage.LedgerEntry{Published: base}, base.Add(300 * time.Millisecond), base.Add(time.Second)},
		{"same second as last update", storage.LedgerEntry{Published: base, Updated: base.Add(time.Minute)}, base.Add(time.Minute), base.Add(time.Minute + time.Second)},
		{"clock went back", storage.LedgerEntry{Published: base, Updated: base.Add(time.Hour)}, base, base.Add(time.Hour + time.Second)},
	} {
		if got := nextUpdated(tc.e, tc.now); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestPublisherRunReactsToEventsAndSchedule(t *testing.T) {
	f := newPubFixture(t)
	f.Clock.FollowWallClock() // Run's own timers are under test
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "u", "/inbox")
	f.startEmpty()
	events := make(chan articles.Event, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.pub.Run(ctx, events) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A new file and its event.
	f.article("now.en.md", "Now", -time.Minute)
	f.reload()
	events <- articles.Event{Type: articles.Added, Key: "now/en"}
	waitFor("the Create", func() bool { return len(f.ledger()) == 1 })
	// A future post: the reconcile on its event finds it not yet due, the
	// schedule announces it when it is.
	f.article("soon.en.md", "Soon", 300*time.Millisecond)
	f.reload()
	events <- articles.Event{Type: articles.Added, Key: "soon/en"}
	waitFor("the due post", func() bool { _, ok := f.ledger()["soon/en"]; return ok })
	if got := f.jobsByInbox()[in.URL("/inbox")]; !slices.Equal(got, []string{"Create", "Create"}) {
		t.Fatalf("queued %v", got)
	}
}

// TestPublisherAnnouncesProfileChanges: what servers show of the bot (the
// actor document, the pinned articles) reaches followers as an Update of
// the actor when it changes, after the articles' own activities, and only
// then: not on the first start, not when nothing changed.
func TestPublisherAnnouncesProfileChanges(t *testing.T) {
	f := newPubFixture(t)
	in := fedtest.NewInbox(t, f.Harness, nil)
	f.follow(in, "a", "/inbox")
	f.follow(in, "b", "/inbox")
	f.startEmpty()
	f.reconcile()
	if p := f.Pending(); len(p) != 0 {
		t.Fatalf("first starts queued %d jobs", len(p))
	}
	actorID := f.Docs.Config().ActorID()
	// queued returns the pending activities in queue order, and clears
	// the queue for the next step.
	queued := func() []storage.Activity {
		t.Helper()
		var out []storage.Activity
		for _, j := range f.Pending() {
			act, err := f.Store.Activity(j.ActivityID)
			if err != nil {
				t.Fatal(err)
			}
			if j.Inbox != in.URL("/inbox") {
				t.Errorf("%s queued for %s", act.Type, j.Inbox)
			}
			out = append(out, act)
			if err := f.Store.CompleteJob(j.ID); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	summary := func(acts []storage.Activity) []string {
		var s []string
		for _, a := range acts {
			s = append(s, a.Type+" "+a.ObjectID)
		}
		return s
	}

	f.article("pinned.en.md", "Pinned", -time.Minute, "pinned: true")
	f.reconcile()
	acts := queued()
	want := []string{"Create https://crieur.example/posts/pinned/en", "Update " + actorID}
	if !slices.Equal(summary(acts), want) {
		t.Fatalf("pinning a new article queued %v, want %v", summary(acts), want)
	}
	var upd struct {
		Actor  string         `json:"actor"`
		To     []string       `json:"to"`
		Object map[string]any `json:"object"`
	}
	if err := json.Unmarshal(acts[1].JSON, &upd); err != nil {
		t.Fatal(err)
	}
	if upd.Actor != actorID || upd.Object["id"] != actorID || upd.Object["type"] != "Service" ||
		upd.Object["featured"] != f.Docs.Config().FeaturedURL() || !slices.Contains(upd.To, documents.Public) {
		t.Errorf("profile Update %s", acts[1].JSON)
	}

	f.reconcile()
	if acts := queued(); len(acts) != 0 {
		t.Errorf("nothing changed, yet %v queued", summary(acts))
	}

	// A restart with a new bio: the Update carries it, dry-run shows it.
	svc, err := documents.New(documents.Config{BaseURL: "https://crieur.example", Handle: "reports", Bio: "Now with a new bio."}, documents.Deps{
		Store: f.Store, Key: &testkit.Key(t, 0).PublicKey, Now: f.Clock.Now, Posts: f.Lib.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.pub = NewPublisher(svc, f.D, Options{})
	plan, err := f.pub.DryRun()
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || plan[0] != (PlannedAction{Type: ActionUpdate, Key: ProfileKey, Inboxes: 1, Reason: "profile or pinned articles changed"}) {
		t.Fatalf("dry run after a new bio: %+v", plan)
	}
	f.reconcile()
	acts = queued()
	if !slices.Equal(summary(acts), []string{"Update " + actorID}) || !strings.Contains(string(acts[0].JSON), "Now with a new bio.") {
		t.Fatalf("after a new bio: %v", summary(acts))
	}

	// Unpinned: the profile changes, the Note does not (followers'
	// servers would show the article as edited).
	f.article("pinned.en.md", "Pinned", -time.Minute)
	f.reconcile()
	if acts := queued(); !slices.Equal(summary(acts), []string{"Update " + actorID}) {
		t.Errorf("unpinning queued %v, want the profile's Update only", summary(acts))
	}

	// A ledger written before pins were left out of the Note's hash: the
	// file as it was is no change; the first change is one, and from then
	// on pins are not.
	f.article("pinned.en.md", "Pinned", -time.Minute, "pinned: true")
	f.reload()
	lib := f.Lib.Load()
	post, _ := lib.GetKey("pinned/en")
	e := f.ledger()["pinned/en"]
	e.Hash = legacyNoteHash(lib, post, f.Clock.Now())
	if _, err := f.Store.Publish(e, storage.Activity{ID: f.Docs.NewActivityID(), Type: "Update"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Store.SetMeta(profileStateKey, ""); err != nil { // the profile is not what this step checks
		t.Fatal(err)
	}
	f.reconcile()
	if acts := queued(); !slices.Equal(summary(acts), []string{"Update " + actorID}) {
		t.Errorf("an old ledger over an unchanged pinned file queued %v, want the profile's Update only", summary(acts))
	}
	f.article("pinned.en.md", "Pinned", -time.Minute)
	f.reconcile()
	want = []string{"Update https://crieur.example/posts/pinned/en", "Update " + actorID}
	if acts := queued(); !slices.Equal(summary(acts), want) {
		t.Errorf("first unpin over an old ledger queued %v, want %v", summary(acts), want)
	}
	f.article("pinned.en.md", "Pinned", -time.Minute, "pinned: true")
	f.reconcile()
	if acts := queued(); !slices.Equal(summary(acts), []string{"Update " + actorID}) {
		t.Errorf("pinning again queued %v, want the profile's Update only", summary(acts))
	}
	f.article("pinned.en.md", "Pinned", -time.Minute)
	f.reconcile()
	queued()

	// A database from before profiles were recorded: its followers get
	// one Update, since they may show an older profile.
	if err := f.Store.SetMeta(profileStateKey, ""); err != nil {
		t.Fatal(err)
	}
	f.reconcile()
	if acts := queued(); !slices.Equal(summary(acts), []string{"Update " + actorID}) {
		t.Errorf("after an upgrade: %v", summary(acts))
	}
	f.reconcile()
	if acts := queued(); len(acts) != 0 {
		t.Errorf("after an upgrade, twice: %v", summary(acts))
	}

	// Without followers the change is recorded, and not sent later.
	for _, u := range []string{"a", "b"} {
		if _, err := f.Store.DeleteFollower(in.URL("/users/" + u)); err != nil {
			t.Fatal(err)
		}
	}
	f.article("pinned.en.md", "Pinned", -time.Minute, "pinned: true")
	f.reconcile()
	f.follow(in, "c", "/inbox")
	f.reconcile()
	if acts := queued(); len(acts) != 0 {
		t.Errorf("a change made with no follower was sent later: %v", summary(acts))
	}
}
