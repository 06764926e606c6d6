package web

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// counted records what the hooks were told.
type counted struct {
	mu       sync.Mutex
	requests map[string]int // "group status"
	inbox    map[InboxOutcome]int
}

func (c *counted) hooks() Hooks {
	return Hooks{
		Request: func(g RouteGroup, status int, elapsed time.Duration) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.requests[g.String()+" "+http.StatusText(status)]++
		},
		Inbox: func(o InboxOutcome) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.inbox[o]++
		},
	}
}

func TestHooksCountRoutesAndInboxOutcomes(t *testing.T) {
	c := &counted{requests: map[string]int{}, inbox: map[InboxOutcome]int{}}
	e := newTestEnvDeps(t, "testdata/posts", func(d *Deps) { d.Hooks = c.hooks() })
	e.get(t, "/")
	e.get(t, "/feed.atom")
	e.get(t, "/.well-known/nodeinfo")
	e.get(t, "/@"+testHandle, "Accept", "application/activity+json")
	e.get(t, "/no/such/page")
	e.do(t, http.MethodPost, "/inbox", strings.NewReader(`{}`), "Content-Type", "application/activity+json")
	e.trustAlice(t)
	if status, _ := send(t, e.signedInboxRequest(t, "/inbox", aliceFollow(1), 0)); status != http.StatusAccepted {
		t.Fatalf("Follow: %d\n%s", status, e.logs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, want := range []string{"page OK", "feed OK", "discovery OK", "activitypub OK", "other Not Found", "inbox Unauthorized", "inbox Accepted"} {
		if c.requests[want] != 1 {
			t.Errorf("%q counted %d times, want 1: %v", want, c.requests[want], c.requests)
		}
	}
	if c.inbox[InboxUnauthorized] != 1 || c.inbox[InboxAccepted] != 1 || len(c.inbox) != 2 {
		t.Errorf("inbox outcomes %v", c.inbox)
	}
}

func TestInboxOutcomeNames(t *testing.T) {
	seen := map[string]bool{}
	for o := range NumInboxOutcomes {
		if seen[o.String()] {
			t.Errorf("outcome %d: %q twice", o, o)
		}
		seen[o.String()] = true
	}
	for status, want := range map[int]InboxOutcome{202: InboxAccepted, 401: InboxUnauthorized, 403: InboxForbidden, 429: InboxRateLimited, 503: InboxBusy, 500: InboxError} {
		if got := inboxOutcome(status); got != want {
			t.Errorf("inboxOutcome(%d) = %s, want %s", status, got, want)
		}
	}
	groups := map[string]bool{}
	for g := range NumRouteGroups {
		groups[g.String()] = true
	}
	if len(groups) != int(NumRouteGroups) {
		t.Errorf("route groups share names: %v", groups)
	}
}
