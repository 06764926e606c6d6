// Package publish owns the Publisher: it compares the articles with the
// ledger of what was announced and queues a Create, Update or Delete (and
// profile Updates) with one delivery job per follower inbox, in one
// storage transaction each, then hands the jobs to the Deliverer. It also
// requeues failed deliveries on the admin's request (RetryFailed). It
// imports documents, delivery, storage and articles.
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/storage"
)

// Publisher timing.
const (
	// reconcileRetry is when a failed reconcile (storage error) is tried
	// again when nothing else happens.
	reconcileRetry = 30 * time.Second
	// maxDueWait makes Run re-read the clock at least this often while a
	// future-dated post waits, so a suspended machine or a clock change
	// does not delay it by more than that.
	maxDueWait = time.Minute
	// minDueWait keeps a timer that fires a hair early from spinning.
	minDueWait = 10 * time.Millisecond
)

// publisherStateKey is the storage meta key of the publisher's first-start
// marker: absent before the first reconcile, stateImporting while the back
// catalogue is being taken in, stateReady after.
const (
	publisherStateKey = "publisher.state"
	stateImporting    = "importing"
	stateReady        = "ready"
)

// profileStateKey is the storage meta key of the profile last announced:
// a hash of the actor document and of the pinned posts, what followers'
// servers show of the bot.
const profileStateKey = "publisher.profile"

// ProfileKey stands for the bot's profile in a plan, where a post key
// would be: its Update is about the actor, not an article.
const ProfileKey = "(profile)"

// Action types of a plan.
const (
	ActionCreate = "Create"
	ActionUpdate = "Update"
	ActionDelete = "Delete"
	// ActionImport takes a back-catalogue post into the ledger and the
	// outbox on the first start, without delivering it.
	ActionImport = "Import"
)

// Options configure a Publisher. Zero values get the Builder's.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
}

// Publisher turns the posts folder into activities: it compares the library
// with the ledger (what was announced, with which content hash) and
// records a Create, Update or Delete for each difference, with one delivery
// job per follower inbox, in one storage transaction each. It never waits
// on the network: the Deliverer sends the jobs behind it.
type Publisher struct {
	docs  *documents.Builder
	store *storage.Store
	d     *delivery.Deliverer // may be nil: jobs wait for the next Deliverer
	log   *slog.Logger
	now   func() time.Time
	mu    sync.Mutex // one reconcile (or republish) at a time
}

// PlannedAction is one thing Reconcile would do.
type PlannedAction struct {
	Type    string // Create, Update, Delete or Import (back catalogue)
	Key     string // post key, "slug/lang"
	Inboxes int    // deliveries it would queue
	Reason  string // why, for people
}

// NewPublisher builds a Publisher. d may be nil (the jobs are then only
// queued).
func NewPublisher(docs *documents.Builder, d *delivery.Deliverer, opts Options) *Publisher {
	if opts.Logger == nil {
		opts.Logger = docs.Logger()
	}
	if opts.Now == nil {
		opts.Now = docs.Now
	}
	return &Publisher{docs: docs, store: docs.Store(), d: d, log: opts.Logger, now: opts.Now}
}

// plannedAction is a PlannedAction with what is needed to carry it out.
type plannedAction struct {
	PlannedAction
	post    *articles.Post      // nil for Delete
	entry   storage.LedgerEntry // the ledger entry to write
	inboxes []string            // delivery inboxes (none for Import)
	profile string              // for the profile's Update: the hash it announces
}

// snapshot is what one reconcile works from.
type snapshot struct {
	lib     *articles.Library
	now     time.Time
	ledger  map[string]storage.LedgerEntry
	inboxes []string
	// importing is true on the first start: new posts are the back
	// catalogue and go into the outbox without being delivered.
	importing bool
	// firstStart is true when the marker must be written.
	firstStart bool
	// profile is the hash of the profile now (profileHash), announced the
	// one last recorded ("" before the first).
	profile, announced string
}

func (p *Publisher) snapshot() (*snapshot, error) {
	lib := p.docs.Posts()
	if lib == nil {
		return nil, errors.New("publish: publisher: no posts library")
	}
	entries, err := p.store.Ledger()
	if err != nil {
		return nil, fmt.Errorf("publish: publisher: %w", err)
	}
	state, set, err := p.store.Meta(publisherStateKey)
	if err != nil {
		return nil, fmt.Errorf("publish: publisher: %w", err)
	}
	inboxes, err := p.followerInboxes()
	if err != nil {
		return nil, err
	}
	s := &snapshot{lib: lib, now: p.now(), ledger: make(map[string]storage.LedgerEntry, len(entries)), inboxes: inboxes}
	for _, e := range entries {
		s.ledger[e.Key] = e
	}
	if s.profile, err = p.profileHash(lib, s.now); err != nil {
		return nil, err
	}
	if s.announced, _, err = p.store.Meta(profileStateKey); err != nil {
		return nil, fmt.Errorf("publish: publisher: %w", err)
	}
	// The back catalogue: on the very first start over an existing folder
	// every visible post is taken into the ledger and the outbox, and
	// nothing is delivered. There are no followers yet, and a follower who
	// arrives later must not be flooded with years of old articles:
	// Mastodon puts a delivered post at the top of home timelines whatever
	// its date, so a back catalogue would bury everything else. A crash in the
	// middle leaves the marker at "importing" and the next start goes on
	// importing. A database from before the marker (a ledger but no
	// marker) is simply marked ready.
	switch {
	case state == stateImporting:
		s.importing = true
	case !set && len(entries) == 0:
		s.importing, s.firstStart = true, true
	case !set:
		s.firstStart = true
	}
	return s, nil
}

// followerInboxes is one inbox per accepted follower, shared inboxes
// counted once: a server with a thousand followers gets one delivery. They
// come sorted from storage's index, without decoding any follower record.
func (p *Publisher) followerInboxes() ([]string, error) {
	inboxes, err := p.store.DeliveryInboxes()
	if err != nil {
		return nil, fmt.Errorf("publish: publisher: delivery inboxes: %w", err)
	}
	return inboxes, nil
}

// noteHash is the ledger hash of a post: its file hash without the pinned
// flag (articles.Post.NoteHash: a pin changes the profile, not the Note) and
// the keys of the sibling translations visible at now, because the Note
// links to them ("Also in …"): a translation added to or removed from the
// group changes every sibling's Note, and each of them gets an Update.
func noteHash(lib *articles.Library, p *articles.Post, now time.Time) string {
	return siblingHash(lib, p, p.NoteHash, now)
}

// legacyNoteHash is noteHash as ledgers written before NoteHash have it,
// from the whole file's hash. Such an entry is unchanged while the file
// is; the first real change (a pin included) records noteHash.
func legacyNoteHash(lib *articles.Library, p *articles.Post, now time.Time) string {
	return siblingHash(lib, p, p.Hash, now)
}

func siblingHash(lib *articles.Library, p *articles.Post, fileHash string, now time.Time) string {
	sib := lib.TranslationsAt(p, now)
	keys := make([]string, 0, len(sib))
	for _, s := range sib {
		keys = append(keys, s.Key())
	}
	slices.Sort(keys)
	h := sha256.New()
	h.Write([]byte(fileHash))
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// profileHash sums up what servers show of the bot and learn only by
// fetching the actor again: the actor document (name, bio, avatar, header,
// fields, key…) and which articles are pinned, in order. Mastodon and
// GoToSocial fetch it again when they receive an Update of the actor;
// otherwise only after hours or days.
func (p *Publisher) profileHash(lib *articles.Library, now time.Time) (string, error) {
	actor, err := p.docs.ActorJSON()
	if err != nil {
		return "", fmt.Errorf("publish: publisher: %w", err)
	}
	h := sha256.New()
	h.Write(actor)
	for _, post := range lib.Pinned(now) {
		h.Write([]byte{0})
		h.Write([]byte(post.Key()))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// plan compares the library with the ledger.
func (p *Publisher) plan(s *snapshot) []plannedAction {
	var out []plannedAction
	visible := s.lib.Visible(s.now)
	seen := make(map[string]bool, len(visible))
	// Oldest first: Creates go out, and land in outboxes, in article order.
	for i := len(visible) - 1; i >= 0; i-- {
		post := visible[i]
		key := post.Key()
		seen[key] = true
		hash := noteHash(s.lib, post, s.now)
		e, known := s.ledger[key]
		a := plannedAction{post: post}
		a.Key = key
		switch {
		case !known && s.importing:
			a.Type, a.Reason = ActionImport, "back catalogue: taken into the outbox, not delivered"
			a.entry = storage.LedgerEntry{Key: key, NoteID: p.docs.Config().NoteID(post.Slug, post.Lang), Hash: hash,
				Published: post.Date, Pushed: false}
		case !known:
			a.Type, a.Reason = ActionCreate, "new"
			a.entry = storage.LedgerEntry{Key: key, NoteID: p.docs.Config().NoteID(post.Slug, post.Lang), Hash: hash,
				Published: post.Date, Pushed: true}
		case !e.Deleted.IsZero():
			// The article came back after its Delete was sent. Mastodon
			// refuses a deleted id forever, other servers take it again;
			// the site shows it again in any case, so the ledger follows
			// the folder. A new slug is the way to reach Mastodon.
			a.Type, a.Reason = ActionCreate, "back after its removal (Mastodon keeps refusing a deleted id: use a new slug to reach it)"
			a.entry = storage.LedgerEntry{Key: key, NoteID: e.NoteID, Hash: hash, Published: post.Date, Pushed: true}
		case e.Hash != hash && e.Hash != legacyNoteHash(s.lib, post, s.now):
			a.Type, a.Reason = ActionUpdate, "edited, or its translations changed"
			a.entry = e
			a.entry.Hash = hash
			a.entry.Updated = nextUpdated(e, s.now)
		default:
			continue
		}
		if a.Type != ActionImport {
			a.inboxes = s.inboxes
		}
		a.Inboxes = len(a.inboxes)
		out = append(out, a)
	}
	// Removed posts: in the ledger, not deleted, no longer visible. A post
	// that still exists but moved to the future is left alone: it is
	// hidden until its date and then announced as an Update.
	keys := make([]string, 0, len(s.ledger))
	for k := range s.ledger {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		e := s.ledger[key]
		if seen[key] || !e.Deleted.IsZero() {
			continue
		}
		if post, ok := s.lib.GetKey(key); ok && post.Date.After(s.now) {
			continue
		}
		a := plannedAction{inboxes: s.inboxes}
		a.Type, a.Key, a.Reason, a.Inboxes = ActionDelete, key, "removed or turned into a draft", len(s.inboxes)
		a.entry = e
		a.entry.Deleted = s.now.UTC().Truncate(time.Second)
		out = append(out, a)
	}
	// The profile goes last: a newly pinned article is announced before
	// the Update that makes servers fetch the pinned list again. A
	// database from before profiles were recorded has followers who may
	// show an older profile: they get one Update too.
	if s.profile != s.announced && !s.importing && len(s.inboxes) > 0 {
		a := plannedAction{inboxes: s.inboxes, profile: s.profile}
		a.Type, a.Key, a.Reason, a.Inboxes = ActionUpdate, ProfileKey, "profile or pinned articles changed", len(s.inboxes)
		out = append(out, a)
	}
	return out
}

// nextUpdated is the updated time of a new Update: now, but always after
// the previous one and after published, to the second (as serialised):
// Mastodon shows an edit only when updated moves forward.
func nextUpdated(e storage.LedgerEntry, now time.Time) time.Time {
	t := now.UTC().Truncate(time.Second)
	floor := e.Published
	if e.Updated.After(floor) {
		floor = e.Updated
	}
	if floor = floor.UTC().Truncate(time.Second); !t.After(floor) {
		t = floor.Add(time.Second)
	}
	return t
}

// DryRun tells what Reconcile would do now, without doing it
// (crieur publish --dry-run).
func (p *Publisher) DryRun() ([]PlannedAction, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.snapshot()
	if err != nil {
		return nil, err
	}
	plan := p.plan(s)
	out := make([]PlannedAction, len(plan))
	for i, a := range plan {
		out[i] = a.PlannedAction
	}
	return out, nil
}

// Reconcile announces every difference between the posts folder and the
// ledger: new visible posts (Create), changed ones (Update, same Note id,
// new updated), removed or unpublished ones (Delete with a Tombstone; the
// Note then answers 410). Future-dated posts are left alone: call it again
// when they are due (Run does). Each action is one storage transaction
// (ledger + activity + jobs), so a crash never announces half a change.
func (p *Publisher) Reconcile(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.snapshot()
	if err != nil {
		return err
	}
	if s.importing && s.firstStart {
		if err := p.store.SetMeta(publisherStateKey, stateImporting); err != nil {
			return fmt.Errorf("publish: publisher: %w", err)
		}
	}
	plan := p.plan(s)
	queued := 0
	var (
		errs  []error
		ready []storage.Job
	)
	// What was queued goes to the Deliverer even when a later action fails
	// or ctx ends.
	handOver := p.beginHandOver()
	defer func() { handOver(queued, ready) }()
	for _, a := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, r, err := p.carryOut(s, a)
		if err != nil {
			// One post failing (a storage error, a post the Note builder
			// refuses) must not hold back the others.
			p.log.Error("publisher: announce", "type", a.Type, "post", a.Key, "err", err)
			errs = append(errs, err)
			continue
		}
		queued += n
		ready = append(ready, r...)
		if a.Type != ActionImport {
			p.log.Info("publisher: announced", "type", a.Type, "post", a.Key, "inboxes", n, "reason", a.Reason)
		}
	}
	// A profile nobody needs to hear about (the first start, no followers
	// yet) is recorded as it is, so that only later changes are sent.
	if s.profile != s.announced && (s.importing || len(s.inboxes) == 0) {
		if err := p.store.SetMeta(profileStateKey, s.profile); err != nil {
			errs = append(errs, fmt.Errorf("publish: publisher: %w", err))
		}
	}
	if len(errs) == 0 && (s.importing || s.firstStart) {
		if s.importing {
			p.log.Info("publisher: back catalogue taken in without delivery", "posts", len(plan))
		}
		if err := p.store.SetMeta(publisherStateKey, stateReady); err != nil {
			errs = append(errs, fmt.Errorf("publish: publisher: %w", err))
		}
	}
	return errors.Join(errs...)
}

// beginHandOver prepares to give the Deliverer the jobs about to be queued
// (Deliverer.BeginOffer): the returned function hands over those that may
// start at once, and wakes the Deliverer to read the queue for the others
// (a profile update, a job waiting for an earlier one of its chain).
func (p *Publisher) beginHandOver() func(queued int, ready []storage.Job) {
	if p.d == nil {
		return func(int, []storage.Job) {}
	}
	offer := p.d.BeginOffer()
	return func(queued int, ready []storage.Job) {
		offer(ready)
		if len(ready) < queued {
			p.d.Wake()
		}
	}
}

// carryOut records one planned action and returns how many jobs it queued
// and which of them may start at once.
func (p *Publisher) carryOut(s *snapshot, a plannedAction) (int, []storage.Job, error) {
	if a.profile != "" {
		n, err := p.announceProfile(a)
		return n, nil, err
	}
	var (
		act storage.Activity
		err error
	)
	switch a.Type {
	case ActionCreate, ActionImport:
		act, err = p.createActivity(s.lib, a.post, a.entry)
	case ActionUpdate:
		act, err = p.updateActivity(s.lib, a.post, a.entry)
	case ActionDelete:
		act, err = p.docs.NewActivity(ActionDelete, p.docs.Tombstone(a.entry.NoteID, a.entry.Deleted))
	default:
		err = fmt.Errorf("unknown action %q", a.Type)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("publish: publish %s %s: %w", a.Type, a.Key, err)
	}
	jobs := p.jobs(act, a.entry.NoteID, a.inboxes)
	ready, err := p.store.Publish(a.entry, act, jobs)
	if err != nil {
		return 0, nil, fmt.Errorf("publish: publish %s %s: %w", a.Type, a.Key, err)
	}
	return len(jobs), ready, nil
}

// announceProfile queues an Update of the actor to every follower inbox and
// records the profile as announced, in one transaction. Its jobs are
// ordered by the actor id: successive profile changes reach each server in
// order.
func (p *Publisher) announceProfile(a plannedAction) (int, error) {
	act, err := p.profileUpdate()
	if err != nil {
		return 0, fmt.Errorf("publish: publish the profile: %w", err)
	}
	jobs := p.jobs(act, p.docs.Config().ActorID(), a.inboxes)
	if err := p.store.EnqueueWithMeta(profileStateKey, a.profile, act, jobs); err != nil {
		return 0, fmt.Errorf("publish: publish the profile: %w", err)
	}
	return len(jobs), nil
}

// profileUpdate is an Update of the actor as it is now.
func (p *Publisher) profileUpdate() (storage.Activity, error) {
	actor, err := p.docs.ActorJSON()
	if err != nil {
		return storage.Activity{}, err
	}
	return p.docs.NewActivity(ActionUpdate, json.RawMessage(actor))
}

// createActivity is a Create of the post's Note. It is listed in the outbox
// at the article's date, so the outbox reads in article order even for a
// back catalogue taken in at once.
func (p *Publisher) createActivity(lib *articles.Library, post *articles.Post, e storage.LedgerEntry) (storage.Activity, error) {
	// No updated in a Create: Mastodon would show the post as edited.
	note, err := p.docs.BuildNote(post, lib, e.Published, time.Time{})
	if err != nil {
		return storage.Activity{}, err
	}
	act, err := p.docs.NewActivity(ActionCreate, note)
	if err != nil {
		return storage.Activity{}, err
	}
	act.Published = e.Published
	return act, nil
}

// updateActivity is an Update of the post's Note, same id, updated as in e.
func (p *Publisher) updateActivity(lib *articles.Library, post *articles.Post, e storage.LedgerEntry) (storage.Activity, error) {
	note, err := p.docs.BuildNote(post, lib, e.Published, e.Updated)
	if err != nil {
		return storage.Activity{}, err
	}
	return p.docs.NewActivity(ActionUpdate, note)
}

// jobs is one delivery per inbox, ordered by the Note id: Create, Update
// and Delete of one Note reach each inbox in that order, retries included.
func (p *Publisher) jobs(act storage.Activity, noteID string, inboxes []string) []storage.Job {
	if len(inboxes) == 0 {
		return nil
	}
	jobs := make([]storage.Job, 0, len(inboxes))
	for _, in := range inboxes {
		host := ""
		if u, err := url.Parse(in); err == nil {
			host = strings.ToLower(u.Host)
		}
		jobs = append(jobs, storage.Job{ActivityID: act.ID, Inbox: in, Host: host, Topic: noteID})
	}
	return jobs
}

// Republish announces a post again on purpose, to every current follower:
// a post of the back catalogue (never delivered) gets its Create; a post
// already delivered gets an Update with a new updated time (servers that
// have it refresh it; Mastodon takes an Update of a Note it does not know
// as a Create only when the Note is less than a day old). It returns the
// number of deliveries queued; federation.ErrNotFound for a post that is not visible
// or not announced yet, federation.ErrGone for a deleted one.
func (p *Publisher) Republish(ctx context.Context, key string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	e, err := p.store.LedgerEntry(key)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("publish: republish %s: not announced yet: %w", key, federation.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("publish: republish %s: %w", key, err)
	}
	if !e.Deleted.IsZero() {
		return 0, fmt.Errorf("publish: republish %s: %w", key, federation.ErrGone)
	}
	lib := p.docs.Posts()
	now := p.now()
	if lib == nil {
		return 0, fmt.Errorf("publish: republish %s: %w", key, federation.ErrNotFound)
	}
	post, ok := lib.GetKey(key)
	if !ok || post.Date.After(now) {
		return 0, fmt.Errorf("publish: republish %s: not visible: %w", key, federation.ErrNotFound)
	}
	inboxes, err := p.followerInboxes()
	if err != nil {
		return 0, err
	}
	a := plannedAction{post: post, inboxes: inboxes}
	a.Key, a.Inboxes, a.entry = key, len(inboxes), e
	a.entry.Hash = noteHash(lib, post, now)
	if !e.Pushed {
		a.Type, a.Reason = ActionCreate, "republished (back catalogue)"
		a.entry.Pushed = true
	} else {
		a.Type, a.Reason = ActionUpdate, "republished"
		a.entry.Updated = nextUpdated(e, now)
	}
	handOver := p.beginHandOver()
	n, ready, err := p.carryOut(&snapshot{lib: lib, now: now}, a)
	handOver(n, ready)
	if err != nil {
		return 0, err
	}
	p.log.Info("publisher: republished", "type", a.Type, "post", key, "inboxes", n)
	return n, nil
}

// Run reconciles at start, after every burst of events from the posts
// watcher (events are hints: each reconcile compares the whole library with
// the ledger), and when the next future-dated post is due, so a scheduled
// series goes out by itself. A failed reconcile is logged and tried again.
// events may be nil. Run returns nil when ctx ends.
func (p *Publisher) Run(ctx context.Context, events <-chan articles.Event) error {
	timer := time.NewTimer(0) // the first reconcile, at start
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				events = nil // the watcher stopped: the schedule still runs
				continue
			}
			p.coalesce(events)
		case <-timer.C:
		}
		err := p.Reconcile(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			p.log.Error("publisher: reconcile", "err", err)
		}
		wait, ok := p.untilDue()
		if err != nil && (!ok || wait > reconcileRetry) {
			wait, ok = reconcileRetry, true
		}
		timer.Stop()
		if ok {
			timer.Reset(wait)
		}
	}
}

// coalesce takes the events already waiting, so that one reload's events
// (a git pull, an editor saving several files) make one reconcile. It does
// not wait for more: the watcher already waited until its files were whole,
// and it stores the new library before it sends the first event, so the
// reconcile sees every change of that reload. An event that comes later
// makes one more reconcile, which finds little or nothing to do.
func (p *Publisher) coalesce(events <-chan articles.Event) {
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// untilDue is how long until the next future-dated post is due.
func (p *Publisher) untilDue() (time.Duration, bool) {
	lib := p.docs.Posts()
	if lib == nil {
		return 0, false
	}
	now := p.now()
	next, ok := lib.NextDue(now)
	if !ok {
		return 0, false
	}
	return min(max(next.Sub(now), minDueWait), maxDueWait), true
}
