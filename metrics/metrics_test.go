package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/storage"
	"github.com/crieur/crieur/web"
)

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	s, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestHooksCountIntoResolvedSeries(t *testing.T) {
	m := New(nil)
	h := m.WebHooks()
	h.Request(web.RouteInbox, 202, 3*time.Millisecond)
	h.Request(web.RouteInbox, 401, time.Millisecond)
	h.Request(web.RoutePage, 200, time.Millisecond)
	h.Request(web.NumRouteGroups+3, 999, time.Millisecond) // out of range: other, 5xx
	h.Inbox(web.InboxAccepted)
	h.Inbox(web.InboxRateLimited)
	h.Inbox(web.InboxRateLimited)
	m.Delivered(delivery.Result{Outcome: delivery.OutcomeDelivered, Elapsed: 40 * time.Millisecond})
	m.Delivered(delivery.Result{Outcome: delivery.OutcomeDeferred})
	m.Delivered(delivery.Result{Outcome: "new"})

	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"crieur_http_requests_total", `code="2xx",route="inbox"`, 1},
		{"crieur_http_requests_total", `code="4xx",route="inbox"`, 1},
		{"crieur_http_requests_total", `code="2xx",route="page"`, 1},
		{"crieur_http_requests_total", `code="5xx",route="other"`, 1},
		{"crieur_inbox_activities_total", `outcome="accepted"`, 1},
		{"crieur_inbox_activities_total", `outcome="rate_limited"`, 2},
		{"crieur_inbox_activities_total", `outcome="unauthorized"`, 0},
		{"crieur_deliveries_total", `outcome="delivered"`, 1},
		{"crieur_deliveries_total", `outcome="deferred"`, 1},
		{"crieur_deliveries_total", `outcome="other"`, 1},
	} {
		got := seriesValue(t, m, c.name, c.labels)
		if got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.Registry(), "crieur_delivery_duration_seconds"); n != 4 {
		t.Errorf("delivery duration series: %d, want 4 (no deferred)", n)
	}
}

// seriesValue finds one series in the exposition text.
func seriesValue(t *testing.T, m *Metrics, name, labels string) float64 {
	t.Helper()
	_, body := get(t, m.Handler(func(context.Context) error { return nil }), "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+"{"+labels+"} "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func TestHealthz(t *testing.T) {
	m := New(nil)
	if code, body := get(t, m.Handler(func(context.Context) error { return nil }), "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthy: %d %q", code, body)
	}
	sick := m.Handler(func(context.Context) error { return errors.New("store: closed\nsecond line") })
	if code, body := get(t, sick, "/healthz"); code != 503 || body != "store: closed second line\n" {
		t.Errorf("unhealthy: %d %q", code, body)
	}
	if code, _ := get(t, sick, "/"); code != 404 {
		t.Errorf("/: %d", code)
	}
}

func TestStoreGaugesAndAStoreError(t *testing.T) {
	var logs bytes.Buffer
	m := New(slog.New(slog.NewTextHandler(&logs, nil)))
	s := openStore(t)
	m.ReadStore(s)
	if err := s.PutFollower(storage.Follower{ActorID: "https://a.example/u/1", Inbox: "https://a.example/u/1/inbox", Host: "a.example", Status: storage.FollowerPending}); err != nil {
		t.Fatal(err)
	}
	if v := seriesValue(t, m, "crieur_followers", `state="pending"`); v != 1 {
		t.Errorf("pending followers %v", v)
	}
	if v := seriesValue(t, m, "crieur_interactions", `kind="quote",moderation="hidden"`); v != 0 {
		t.Errorf("hidden quotes %v", v)
	}
	if n := testutil.CollectAndCount(m.Registry(), "crieur_interactions"); n != len(storage.Kinds)*3 {
		t.Errorf("interaction series %d", n)
	}
	// A closed store: the scrape still answers with the rest.
	s.Close()
	code, body := get(t, m.Handler(func(context.Context) error { return nil }), "/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") || strings.Contains(body, "crieur_followers{") {
		t.Errorf("scrape with the store closed: %d\n%s", code, body)
	}
	if !strings.Contains(logs.String(), "storage") {
		t.Errorf("the store's error is not logged: %s", logs.String())
	}
}

// BenchmarkInboxHooks is what one inbox POST costs the metrics: its
// request and its outcome counted (no allocation, a few atomic adds).
func BenchmarkInboxHooks(b *testing.B) {
	h := New(nil).WebHooks()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Request(web.RouteInbox, http.StatusAccepted, 2*time.Millisecond)
			h.Inbox(web.InboxAccepted)
		}
	})
}
