package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/crieur/crieur/storage"
)

// scrape reads /metrics from addr with Prometheus's own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the series of family name with exactly the given
// labels (name, value pairs); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// waitValue scrapes until the series reaches at least want.
func waitValue(t *testing.T, addr string, want float64, name string, labels ...string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrape(t, addr)
		got := value(fams, name, labels...)
		if got >= want {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want at least %v", name, labels, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	in := newInstance(t, map[string]string{"hello.en.md": post("hello", "en", "Hello", "2023-01-02", "First.")})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.extraEnv["CRIEUR_METRICS"] = addr
	in.start()

	if code, body := getBody(t, "http://"+addr+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz while serving: %d %q", code, body)
	}
	fams := scrape(t, addr)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "crieur_articles"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if f := fams["crieur_followers"]; f == nil || !strings.Contains(f.GetHelp(), "accepted") {
		t.Errorf("crieur_followers has no help text: %v", f)
	}
	if v := value(fams, "crieur_articles"); v != 1 {
		t.Errorf("crieur_articles = %v, want 1", v)
	}
	if v := value(fams, "crieur_followers", "state", "accepted"); v != 0 {
		t.Errorf("followers before: %v", v)
	}
	if v := value(fams, "crieur_interactions", "kind", "reply", "moderation", "shown"); v != 0 {
		t.Errorf("replies before: %v", v)
	}

	// A signed Follow: a follower, an accepted inbox POST, and an Accept
	// delivered to the remote's loopback inbox.
	r := newRemote(t)
	if resp := r.send(in.actorID()+"/inbox", "alice", follow(r, in, "alice"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow answered %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept", ofType("Accept"))
	fams = waitValue(t, addr, 1, "crieur_deliveries_total", "outcome", "delivered")
	if v := value(fams, "crieur_followers", "state", "accepted"); v != 1 {
		t.Errorf("followers after Follow: %v, want 1", v)
	}
	if v := value(fams, "crieur_inbox_activities_total", "outcome", "accepted"); v != 1 {
		t.Errorf("inbox accepted: %v, want 1", v)
	}
	if v := value(fams, "crieur_delivery_duration_seconds", "outcome", "delivered"); v < 1 {
		t.Errorf("delivery duration observed %v times", v)
	}
	if v := value(fams, "crieur_signatures_total"); v < 1 {
		t.Errorf("signatures made: %v, want at least the Accept's", v)
	}
	if v := value(fams, "crieur_signature_verifications_total", "result", "valid"); v != 1 {
		t.Errorf("valid verifications: %v, want the Follow's", v)
	}
	// The Accept's job is gone once its outcome is stored.
	for deadline := time.Now().Add(10 * time.Second); value(fams, "crieur_delivery_jobs", "state", "pending") != 0; fams = scrape(t, addr) {
		if time.Now().After(deadline) {
			out, _ := in.admin("queue")
			t.Fatalf("pending jobs after the Accept: %v; remote got %v\n%s\n%s", value(fams, "crieur_delivery_jobs", "state", "pending"),
				summarize(r.deliveries()), out, in.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Unsigned: refused, counted as unauthorized.
	req, _ := http.NewRequest(http.MethodPost, in.actorID()+"/inbox", strings.NewReader(`{"type":"Follow"}`))
	req.Header.Set("Content-Type", "application/activity+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned POST: %d", resp.StatusCode)
	}
	fams = scrape(t, addr)
	if v := value(fams, "crieur_inbox_activities_total", "outcome", "unauthorized"); v != 1 {
		t.Errorf("inbox unauthorized: %v, want 1", v)
	}

	// Requests: counted by route group and status class, nothing else.
	if v := value(fams, "crieur_http_requests_total", "route", "inbox", "code", "2xx"); v != 1 {
		t.Errorf("inbox 2xx requests: %v", v)
	}
	if v := value(fams, "crieur_http_requests_total", "route", "page", "code", "2xx"); v < 1 {
		t.Errorf("page 2xx requests: %v", v)
	}
	groups := map[string]bool{"other": true, "page": true, "feed": true, "media": true, "discovery": true, "activitypub": true, "inbox": true}
	classes := map[string]bool{"1xx": true, "2xx": true, "3xx": true, "4xx": true, "5xx": true}
	reqs := fams["crieur_http_requests_total"]
	if reqs == nil || len(reqs.GetMetric()) != len(groups)*len(classes) {
		t.Fatalf("crieur_http_requests_total: %v", reqs)
	}
	for _, m := range reqs.GetMetric() {
		for _, l := range m.GetLabel() {
			if (l.GetName() == "route" && !groups[l.GetValue()]) || (l.GetName() == "code" && !classes[l.GetValue()]) ||
				(l.GetName() != "route" && l.GetName() != "code") {
				t.Errorf("unexpected label %s=%q", l.GetName(), l.GetValue())
			}
		}
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "crieur_") {
			continue
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "127.0.0.1") || strings.Contains(l.GetValue(), "/") {
					t.Errorf("%s has a host or URL as a label: %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// The listener ends with the server.
	in.stop()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("the metrics listener is still open after the server stopped")
	}
}

func TestNoMetricsListenerByDefault(t *testing.T) {
	in := newInstance(t, nil)
	// A port that would be used if the setting were read from elsewhere.
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.start()
	_, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s without -metrics: %v, want connection refused", addr, err)
	}
	if strings.Contains(in.out.String(), "metrics") {
		t.Errorf("metrics mentioned without -metrics:\n%s", in.out.String())
	}
}

func TestMetricsAddressInUseStopsTheStart(t *testing.T) {
	in := newInstance(t, nil)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	in.extraEnv["CRIEUR_METRICS"] = busy.Addr().String()
	var out strings.Builder
	err = run(t.Context(), []string{"serve"}, in.env(), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "-metrics") {
		t.Fatalf("serve with the metrics address taken: %v\n%s", err, out.String())
	}
}

func TestHealthCheck(t *testing.T) {
	store, err := storage.Open(filepath.Join(t.TempDir(), "crieur.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var serving atomic.Bool
	check := health(store, &serving)
	if err := check(t.Context()); err == nil || !strings.Contains(err.Error(), "not serving") {
		t.Errorf("before serving: %v", err)
	}
	serving.Store(true)
	if err := check(t.Context()); err != nil {
		t.Errorf("serving: %v", err)
	}
	store.Close()
	if err := check(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "store: ") {
		t.Errorf("store closed: %v", err)
	}
}
