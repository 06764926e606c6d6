package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/crieur/crieur/articles"
	"github.com/crieur/crieur/storage"
)

// RetryReport says what RetryFailed did with the failed deliveries it
// looked at.
type RetryReport struct {
	Requeued   int // deliveries queued again
	Superseded int // failed deliveries dropped: a requeued one carries what they did, or nothing is owed any more
	Kept       int // failed deliveries left as they are: their article is not visible at the moment
}

// retryChain is one inbox and one subject (a Note, a follow…): the failed
// deliveries that must reach that inbox in order.
type retryChain struct{ inbox, topic string }

// RetryFailed gives failed deliveries (all, or those to host) one more run
// of retries, once an admin knows the remote server is back. Resending each
// failed activity as it was would be wrong: a server that missed a Create
// and then received the article's Update has nothing to apply it to
// (Mastodon drops an Update of a Note it does not know, unless the Note is
// less than a day old), and an old Create resent after newer versions were
// published would show stale text. So, per inbox and subject:
//
//   - an article that is still visible gets one delivery of its current
//     version: a Create when a Create was among the failures (the server
//     never had the Note), else an Update;
//   - a deleted article gets its failed Delete again, and nothing if the
//     Delete was not among the failures (the server has the Tombstone, or
//     never had the Note);
//   - the profile gets an Update of the actor as it is now: an older one,
//     resent after a newer went through, would bring back an old bio;
//   - anything else (Accept, Reject) gets the last failed activity again.
//
// The current version is the article's last announcement (Create or
// Update), resent as it is, unless a server that never had the Note needs
// a Create after the article was edited: that Create is made fresh, with a
// new activity id, and stays out of the outbox (it carries the same Note
// again). A failed delivery whose article is not visible now (moved out of
// the folder, not yet reconciled) is left failed.
func (p *Publisher) RetryFailed(ctx context.Context, host string) (RetryReport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rep RetryReport
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	failed, err := p.store.FailedJobs()
	if err != nil {
		return rep, fmt.Errorf("publish: retry failed deliveries: %w", err)
	}
	chains := map[retryChain][]storage.Job{}
	var order []retryChain
	for _, j := range failed { // by id: the order they were queued in
		if host != "" && !strings.EqualFold(j.Host, host) {
			continue
		}
		k := retryChain{j.Inbox, j.Topic}
		if _, seen := chains[k]; !seen {
			order = append(order, k)
		}
		chains[k] = append(chains[k], j)
	}
	if len(order) == 0 {
		return rep, nil
	}
	entries, err := p.store.Ledger()
	if err != nil {
		return rep, fmt.Errorf("publish: retry failed deliveries: %w", err)
	}
	byNote := make(map[string]storage.LedgerEntry, len(entries))
	for _, e := range entries {
		byNote[e.NoteID] = e
	}
	types := map[string]string{} // activity id → type
	typeOf := func(id string) (string, error) {
		if t, ok := types[id]; ok {
			return t, nil
		}
		act, err := p.store.Activity(id)
		if err != nil {
			return "", err
		}
		types[id] = act.Type
		return act.Type, nil
	}

	// One requeue per activity sent: fresh activities are built once per
	// Note and shared by every inbox that needs them.
	type requeue struct {
		act  storage.Activity // ID empty: an activity already stored
		id   string
		ids  []uint64
		jobs []storage.Job
	}
	var batches []*requeue
	byActivity := map[string]*requeue{}
	add := func(act storage.Activity, actID string, k retryChain, js []storage.Job) {
		b := byActivity[actID]
		if b == nil {
			b = &requeue{act: act, id: actID}
			byActivity[actID] = b
			batches = append(batches, b)
		}
		for _, j := range js {
			b.ids = append(b.ids, j.ID)
		}
		if actID != "" {
			b.jobs = append(b.jobs, storage.Job{ActivityID: actID, Inbox: k.inbox, Host: js[0].Host, Topic: k.topic})
		}
	}
	fresh := map[string]string{} // Note id and type → fresh activity id
	lib := p.docs.Posts()
	now := p.now()
	for _, k := range order {
		js := chains[k]
		last := js[len(js)-1]
		e, isNote := byNote[k.topic]
		switch {
		case k.topic == p.docs.Config().ActorID():
			const key = "profile"
			if id, ok := fresh[key]; ok {
				add(byActivity[id].act, id, k, js)
				continue
			}
			act, err := p.profileUpdate()
			if err != nil {
				return rep, fmt.Errorf("publish: retry failed deliveries to %s: %w", k.inbox, err)
			}
			fresh[key] = act.ID
			add(act, act.ID, k, js)
		case !isNote:
			add(storage.Activity{}, last.ActivityID, k, js)
		case !e.Deleted.IsZero():
			var del string
			for _, j := range js {
				t, err := typeOf(j.ActivityID)
				if err != nil {
					return rep, fmt.Errorf("publish: retry failed deliveries: %w", err)
				}
				if t == ActionDelete {
					del = j.ActivityID
				}
			}
			add(storage.Activity{}, del, k, js) // del empty: only dropped
		default:
			var post *articles.Post
			if lib != nil {
				if pp, found := lib.GetKey(e.Key); found && !pp.Date.After(now) {
					post = pp
				}
			}
			if post == nil {
				rep.Kept += len(js)
				continue
			}
			typ := ActionUpdate
			for _, j := range js {
				t, err := typeOf(j.ActivityID)
				if err != nil {
					return rep, fmt.Errorf("publish: retry failed deliveries: %w", err)
				}
				if t == ActionCreate {
					typ = ActionCreate
				}
			}
			// The last activity announced carries the current version:
			// resent as it is, its delivery counts stay whole (crieur
			// status reports them). Only a server that needs a Create
			// while the last announcement was an Update gets a fresh one.
			if e.ActivityID != "" {
				last, err := typeOf(e.ActivityID)
				if err != nil {
					return rep, fmt.Errorf("publish: retry failed deliveries: %w", err)
				}
				if last == ActionCreate || (last == ActionUpdate && typ == ActionUpdate) {
					add(storage.Activity{}, e.ActivityID, k, js)
					continue
				}
			}
			key := e.NoteID + " " + typ
			if id, ok := fresh[key]; ok {
				add(byActivity[id].act, id, k, js)
				continue
			}
			var act storage.Activity
			if typ == ActionCreate {
				act, err = p.createActivity(lib, post, e)
			} else {
				act, err = p.updateActivity(lib, post, e)
			}
			if err != nil {
				return rep, fmt.Errorf("publish: retry failed deliveries to %s: %w", k.inbox, err)
			}
			act.InOutbox = false // the article is in the outbox already
			fresh[key] = act.ID
			add(act, act.ID, k, js)
		}
	}
	for _, b := range batches {
		if err := p.store.RequeueFailed(b.ids, b.act, b.jobs); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue // another retry took them meanwhile
			}
			return rep, fmt.Errorf("publish: retry failed deliveries: %w", err)
		}
		rep.Requeued += len(b.jobs)
		rep.Superseded += len(b.ids) - len(b.jobs)
	}
	if rep.Requeued > 0 && p.d != nil {
		p.d.Wake()
	}
	p.log.Info("publisher: failed deliveries retried", "host", host,
		"requeued", rep.Requeued, "superseded", rep.Superseded, "kept", rep.Kept)
	return rep, nil
}
