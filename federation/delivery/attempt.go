// One attempt of a job: the signed POST, the classification of the answer
// (delivered, retry with backoff, failed, follower gone) and its record.

package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/federation/transport"
	"github.com/crieur/crieur/storage"
)

// deliver makes one attempt and stores its outcome.
func (d *Deliverer) deliver(t deliveryTask) {
	defer d.wg.Done()
	reqCtx, hq, job := t.ctx, t.hq, t.job
	var admitted atomic.Bool
	admit := func() {
		if admitted.CompareAndSwap(false, true) {
			d.mu.Lock()
			d.waiting--
			d.scheduleLocked(d.now())
			d.mu.Unlock()
		}
	}
	start := d.now()
	res, health, pauseUntil := d.attempt(reqCtx, job, t.last, admit)
	now := d.now()
	res.Elapsed = now.Sub(start)

	d.mu.Lock()
	if admitted.CompareAndSwap(false, true) {
		d.waiting-- // the attempt ended before its request was sent
	}
	switch {
	case health > 0:
		d.br.success(hq.name)
	case health < 0:
		if d.br.failure(hq.name, now, res.Err) {
			d.log.Debug("delivery: host unavailable, deferring its jobs", "host", hq.name, "err", res.Err)
		}
	}
	if !pauseUntil.IsZero() {
		d.br.pause(hq.name, pauseUntil)
	}
	hq.active--
	d.running--
	if len(hq.queue) > 0 {
		d.markReadyLocked(hq)
	} else {
		d.dropIfIdleLocked(hq)
	}
	// Start the next requests before writing this outcome: the write
	// waits for a shared bbolt batch and should not hold a slot.
	d.scheduleLocked(now)
	d.mu.Unlock()

	if reqCtx.Err() != nil {
		// Shutdown cut the request short: nothing is known, the job
		// stays queued as it was.
		d.finish(job.ID)
		return
	}
	d.record(res)
	d.finish(job.ID)
	d.report(res)
}

// attempt posts the job and classifies the answer. health is +1 when the
// host answered like a live server, -1 for failures that count toward its
// circuit breaker, 0 when the answer says nothing about the host.
func (d *Deliverer) attempt(reqCtx context.Context, job storage.Job, last bool, admitted func()) (res Result, health int, pauseUntil time.Time) {
	res.Job = job
	body, digest, err := d.bodies.get(job.ActivityID, d.store)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			res.Outcome, res.Err = OutcomeFailed, "activity no longer stored"
			return res, 0, time.Time{}
		}
		// A storage hiccup: try again later without blaming the host.
		return d.retry(job, 0, err.Error(), d.now()), 0, time.Time{}
	}
	resp, err := d.client.PostDigest(reqCtx, job.Inbox, body, digest, d.signer, transport.PostOptions{Timeout: d.opts.Timeout, Last: last, Admitted: admitted})
	now := d.now()
	if err != nil {
		if transport.IsRefused(err) {
			// The SSRF guard or a malformed inbox URL: no retry helps.
			res.Outcome, res.Err = OutcomeFailed, err.Error()
			return res, 0, time.Time{}
		}
		// Timeouts, refused connections, resets, DNS and TLS failures are
		// retried (Mastodon does the same): they are how servers look
		// while they restart, and our own resolver or network having a bad
		// minute must not drop deliveries for good.
		return d.retry(job, 0, err.Error(), now), -1, time.Time{}
	}
	res.Status = resp.Status
	if s := resp.Status; s >= 200 && s <= 299 {
		res.Outcome = OutcomeDelivered
		return res, +1, time.Time{}
	}
	msg := fmt.Sprintf("HTTP %d %s", resp.Status, http.StatusText(resp.Status))
	switch s := resp.Status; {
	case s == http.StatusGone:
		res.Outcome, res.Err = OutcomeGone, msg
		return res, +1, time.Time{}
	case s == http.StatusTooManyRequests:
		// The host is alive and asks everybody to slow down: this job and
		// the host's other jobs wait for Retry-After (clamped), else the
		// backoff schedule.
		var next time.Time
		if resp.RetryAfter > 0 {
			next = now.Add(clampRetryAfter(resp.RetryAfter))
		}
		r := d.retryAt(job, s, msg, now, next)
		if r.Outcome == OutcomeRetry {
			pauseUntil = r.NextAttempt
		}
		return r, 0, pauseUntil
	case s == http.StatusUnauthorized || s == http.StatusRequestTimeout:
		// 401 is retried like Mastodon does: it usually means the remote
		// could not fetch our key just then (we were restarting, a proxy
		// hiccup), not that it never will. 408 is a timeout said politely.
		return d.retry(job, s, msg, now), +1, time.Time{}
	case s == http.StatusNotImplemented || (s >= 400 && s <= 499):
		// Permanent: the inbox refuses this request and always will
		// (Mastodon's "unsalvageable" class).
		res.Outcome, res.Err = OutcomeFailed, msg
		return res, +1, time.Time{}
	case s >= 500:
		return d.retry(job, s, msg, now), -1, time.Time{}
	default:
		// 1xx and 3xx (the client does not follow redirects for POST: a
		// signature covers the target). Retried, as Mastodon does.
		return d.retry(job, s, msg, now), +1, time.Time{}
	}
}

// retry schedules the next attempt on the backoff schedule.
func (d *Deliverer) retry(job storage.Job, status int, msg string, now time.Time) Result {
	return d.retryAt(job, status, msg, now, time.Time{})
}

// retryAt schedules the next attempt at next (zero: backoff schedule), or
// gives the job up when it has been retried for MaxAge already.
func (d *Deliverer) retryAt(job storage.Job, status int, msg string, now, next time.Time) Result {
	res := Result{Job: job, Status: status, Err: msg}
	if now.Sub(job.CreatedAt) >= d.opts.MaxAge {
		res.Outcome = OutcomeFailed
		res.Err = fmt.Sprintf("gave up after %s: %s", d.opts.MaxAge, msg)
		return res
	}
	if next.IsZero() {
		next = now.Add(d.backoff.Delay(job.Attempts + 1))
	}
	res.Outcome, res.NextAttempt = OutcomeRetry, next
	return res
}

// record stores an outcome. Storage errors are logged: the job then stays
// pending as it was and is tried again, which at-least-once allows.
func (d *Deliverer) record(res Result) {
	j := res.Job
	var err error
	switch res.Outcome {
	case OutcomeDelivered:
		err = d.store.CompleteJob(j.ID)
		if err == nil {
			d.log.Debug("delivery: delivered", "inbox", j.Inbox, "activity", j.ActivityID, "status", res.Status, "attempt", j.Attempts+1)
		}
	case OutcomeGone:
		if err = d.store.CompleteJob(j.ID); err == nil {
			var n int
			n, err = d.removeFollowersOf(j.Inbox)
			if err == nil && n > 0 {
				d.log.Info("delivery: inbox gone, followers removed", "inbox", j.Inbox, "removed", n)
			}
		}
	case OutcomeFailed:
		err = d.store.FailJob(j.ID, res.Status, res.Err)
		if err == nil {
			d.log.Info("delivery: gave up", "inbox", j.Inbox, "activity", j.ActivityID, "status", res.Status, "err", res.Err)
		}
	case OutcomeRetry:
		err = d.store.RetryJob(j.ID, res.NextAttempt, res.Status, res.Err, true)
		if err == nil {
			d.log.Debug("delivery: will retry", "inbox", j.Inbox, "at", res.NextAttempt, "status", res.Status, "err", res.Err)
		}
	case OutcomeDeferred:
		err = d.store.RetryJob(j.ID, res.NextAttempt, res.Status, res.Err, false)
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		d.log.Error("delivery: storing the outcome", "job", j.ID, "outcome", string(res.Outcome), "err", err)
	}
}

// removeFollowersOf removes the follower whose personal inbox answered
// 410 Gone: that is its account saying it no longer exists. A shared inbox
// answering 410 names no account, so nobody is removed for it: a proxy in
// a bad state or a server being moved must not cost every follower on it
// (Mastodon removes nobody for a 410 either); the job is done, and each
// later post costs that server one cheap refused request. A follower is
// removed only here and for Undo, Delete and Block, never for errors.
func (d *Deliverer) removeFollowersOf(inbox string) (int, error) {
	return d.store.DeleteFollowersByInbox(inbox)
}

// finish forgets a job whose outcome is stored (or abandoned at shutdown).
func (d *Deliverer) finish(id uint64) {
	d.mu.Lock()
	delete(d.inflight, id)
	if d.finishedDuringScan != nil {
		d.finishedDuringScan[id] = struct{}{}
	}
	for _, o := range d.offers {
		o.finished[id] = struct{}{}
	}
	d.doneSinceScan++
	// Scan again when half of what the last scan saw in flight is done
	// (room for new jobs, and chain successors now at the head): every
	// scan reads the jobs still in flight again, so scanning after each
	// completion would cost a fan-out quadratic work.
	if len(d.inflight) == 0 || d.doneSinceScan >= max(1, d.inflightAtScan/2) {
		d.signalRefill()
	}
	d.mu.Unlock()
}

func (d *Deliverer) report(res Result) {
	if d.onDone != nil {
		d.onDone(res)
	}
}

// shutdown stops starting requests, drops what waits in memory (it is
// still pending in storage), and waits for requests in flight for up to
// Grace before cancelling them.
func (d *Deliverer) shutdown(cancelReqs context.CancelFunc) {
	d.mu.Lock()
	d.stopping = true
	if d.ramp != nil {
		d.ramp.Stop()
		d.ramp = nil
	}
	for _, hq := range d.hosts {
		for _, j := range hq.queue {
			delete(d.inflight, j.ID)
		}
		hq.queue = nil
	}
	d.ready = nil
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d.opts.Grace):
		cancelReqs()
		<-done
	}
	close(d.quit)
	d.workers.Wait()
}

// bodyCache keeps activity documents by id: every job of a fan-out posts
// the same bytes, read from storage once.
type bodyCache struct {
	mu sync.Mutex
	m  map[string]*cachedBody
}

type cachedBody struct {
	once   sync.Once
	body   []byte
	digest string // signature.BodyDigest(body), hashed once for the whole fan-out
	err    error
}

func (c *bodyCache) get(id string, store *storage.Store) (body []byte, digest string, err error) {
	c.mu.Lock()
	e := c.m[id]
	if e == nil {
		if len(c.m) >= maxCachedBodies {
			clear(c.m) // old fan-outs are done or retrying slowly
		}
		e = &cachedBody{}
		c.m[id] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		act, err := store.Activity(id)
		e.body, e.err = act.JSON, err
		if err == nil {
			e.digest = signature.BodyDigest(e.body)
		}
	})
	if e.err != nil {
		c.mu.Lock()
		if c.m[id] == e {
			delete(c.m, id)
		}
		c.mu.Unlock()
	}
	return e.body, e.digest, e.err
}

// Workers is how many requests may run at once (Options.Workers after
// defaults).
func (d *Deliverer) Workers() int { return d.opts.Workers }
