// Package metrics owns what crieur tells a monitoring system: a Prometheus
// registry of its own (no global default registry), the Go runtime and
// process collectors, the counts read from storage at scrape time, and the
// counters and histograms the rooms' hooks feed as things happen (web
// requests and inbox outcomes, deliveries). Every label set is small and
// fixed: no remote host, actor or URL is ever a label value, and every
// counter fed on a hot path is resolved once here, so counting is an
// atomic add. It also serves /metrics and /healthz on the listener
// cmd/crieur opens for them. It imports storage, web and
// federation/delivery (their hook types); only cmd/crieur imports it.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crieur/crieur/federation/delivery"
	"github.com/crieur/crieur/storage"
	"github.com/crieur/crieur/web"
)

// statusClasses are the label values of a status: "1xx" to "5xx".
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// deliveryOutcomes are the outcomes a delivery is counted under.
var deliveryOutcomes = [...]delivery.Outcome{
	delivery.OutcomeDelivered, delivery.OutcomeRetry, delivery.OutcomeFailed,
	delivery.OutcomeGone, delivery.OutcomeDeferred,
}

// Metrics is the registry and every metric crieur feeds. Build it with New;
// its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	// Resolved at New for every label value: counting is an atomic add.
	requests      [web.NumRouteGroups][len(statusClasses)]prometheus.Counter
	requestTime   [web.NumRouteGroups]prometheus.Observer
	inbox         [web.NumInboxOutcomes]prometheus.Counter
	deliveries    [len(deliveryOutcomes)]prometheus.Counter
	deliveryTime  [len(deliveryOutcomes)]prometheus.Observer
	unknownResult prometheus.Counter // an outcome delivery added later
}

// New builds the registry: runtime and process collectors and the
// counters. ReadStore adds storage's counts once the store is open. log
// gets the errors of a scrape.
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log}
	// Histogram buckets, in seconds. A page or an inbox POST takes
	// milliseconds, a key fetch up to seconds; a delivery is bounded by its
	// 30 s timeout.
	httpBuckets := []float64{0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10}
	deliveryBuckets := []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crieur_http_requests_total",
		Help: "HTTP requests answered by crieur's web server, by route group and status class.",
	}, []string{"route", "code"})
	requestTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crieur_http_request_duration_seconds",
		Help:    "Time crieur's handlers took to answer a request, by route group.",
		Buckets: httpBuckets,
	}, []string{"route"})
	inbox := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crieur_inbox_activities_total",
		Help: "POSTs to the inboxes by outcome: accepted, or the class of the refusal (unauthorized, forbidden, rate_limited, busy, bad_request, ...).",
	}, []string{"outcome"})
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crieur_deliveries_total",
		Help: "Delivery attempts by outcome: delivered, retry (rescheduled), failed (given up or refused for good), gone (410), deferred (host's circuit open, not tried).",
	}, []string{"outcome"})
	deliveryTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crieur_delivery_duration_seconds",
		Help:    "Time one delivery attempt took, signing and the request included, by outcome.",
		Buckets: deliveryBuckets,
	}, []string{"outcome"})
	m.reg.MustRegister(requests, requestTime, inbox, deliveries, deliveryTime)

	for g := range web.NumRouteGroups {
		for i, class := range statusClasses {
			m.requests[g][i] = requests.WithLabelValues(g.String(), class)
		}
		m.requestTime[g] = requestTime.WithLabelValues(g.String())
	}
	for o := range web.NumInboxOutcomes {
		m.inbox[o] = inbox.WithLabelValues(o.String())
	}
	for i, o := range deliveryOutcomes {
		m.deliveries[i] = deliveries.WithLabelValues(string(o))
		if o != delivery.OutcomeDeferred {
			m.deliveryTime[i] = deliveryTime.WithLabelValues(string(o))
		}
	}
	m.unknownResult = deliveries.WithLabelValues("other")
	return m
}

// ReadStore adds the gauges read from store at every scrape (followers,
// delivery jobs, interactions, articles). Call it once.
func (m *Metrics) ReadStore(store *storage.Store) {
	m.reg.MustRegister(newStoreCollector(store))
}

// CountSignatures adds the RSA operations' counters, read from the Signer
// and the Verifier at scrape time (they count with one atomic add each).
func (m *Metrics) CountSignatures(signed func() uint64, verified func() (valid, invalid uint64)) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "crieur_signatures_total",
		Help: "HTTP signatures crieur made (deliveries and signed fetches, every attempt).",
	}, func() float64 { return float64(signed()) }))
	for _, result := range []string{"valid", "invalid"} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "crieur_signature_verifications_total",
			Help:        "RSA verifications of incoming signatures, by result (valid, invalid).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 {
			valid, invalid := verified()
			if result == "valid" {
				return float64(valid)
			}
			return float64(invalid)
		}))
	}
}

// Registry is the registry the metrics live in (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WebHooks are the web room's hooks, feeding the request and inbox
// counters.
func (m *Metrics) WebHooks() web.Hooks {
	return web.Hooks{Request: m.request, Inbox: m.inboxOutcome}
}

func (m *Metrics) request(g web.RouteGroup, status int, elapsed time.Duration) {
	if g >= web.NumRouteGroups {
		g = web.RouteOther
	}
	class := min(max(status/100, 1), len(statusClasses)) - 1
	m.requests[g][class].Inc()
	m.requestTime[g].Observe(elapsed.Seconds())
}

func (m *Metrics) inboxOutcome(o web.InboxOutcome) {
	if o >= web.NumInboxOutcomes {
		o = web.InboxError
	}
	m.inbox[o].Inc()
}

// Delivered counts one delivery's outcome: it is the Deliverer's OnDone
// (delivery.Options), or is called by it.
func (m *Metrics) Delivered(r delivery.Result) {
	for i, o := range deliveryOutcomes {
		if o == r.Outcome {
			m.deliveries[i].Inc()
			if m.deliveryTime[i] != nil {
				m.deliveryTime[i].Observe(r.Elapsed.Seconds())
			}
			return
		}
	}
	m.unknownResult.Inc()
}

// healthTimeout bounds the health check's read of the store.
const healthTimeout = 2 * time.Second

// Handler serves GET /metrics (Prometheus's exposition format) and GET
// /healthz: 200 "ok" when healthy answers nil, else 503 with its error on
// one line. healthy is given the request's context, bounded by
// healthTimeout.
func (m *Metrics) Handler(healthy func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A storage error leaves its metrics out of the scrape, not the
		// runtime's: the error is logged, and /healthz says it too.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		// Scrapes wait for each other rather than read storage at once.
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := healthy(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(oneLine(err) + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// oneLine is err's text with line breaks folded, for a one-line answer.
func oneLine(err error) string {
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
