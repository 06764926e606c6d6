package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crieur/crieur/storage"
)

// storeCollector reads storage's totals at scrape time (storage.Totals:
// indexes and counters, one read transaction), so the numbers are those
// `crieur status` and `crieur followers` show, whoever changed them.
type storeCollector struct {
	store        *storage.Store
	followers    *prometheus.Desc
	jobs         *prometheus.Desc
	interactions *prometheus.Desc
	articles     *prometheus.Desc
}

func newStoreCollector(store *storage.Store) *storeCollector {
	return &storeCollector{
		store: store,
		followers: prometheus.NewDesc("crieur_followers",
			"Followers by state: accepted, or pending (waiting for crieur followers approve).",
			[]string{"state"}, nil),
		jobs: prometheus.NewDesc("crieur_delivery_jobs",
			"Delivery jobs in the queue by state: pending (to send or retrying), failed (given up, kept for crieur queue retry).",
			[]string{"state"}, nil),
		interactions: prometheus.NewDesc("crieur_interactions",
			"Interactions with the articles stored, by kind (reply, like, announce, quote, mention) and moderation (shown, pending, hidden).",
			[]string{"kind", "moderation"}, nil),
		articles: prometheus.NewDesc("crieur_articles",
			"Articles in the outbox (published and not deleted).",
			nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.followers
	ch <- c.jobs
	ch <- c.interactions
	ch <- c.articles
}

// moderationStates are the moderation label values, by storage's state.
var moderationStates = [...]struct{ state, label string }{
	{"", "shown"},
	{storage.ModerationPending, "pending"},
	{storage.ModerationHidden, "hidden"},
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	t, err := c.store.Totals()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.followers, err)
		return
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	// Every label value is always there, at zero too: a series that
	// appears only once non-zero breaks rate() and alerts on absence.
	for _, st := range []storage.FollowerStatus{storage.FollowerAccepted, storage.FollowerPending} {
		gauge(c.followers, t.Followers[st], string(st))
	}
	gauge(c.jobs, t.PendingJobs, "pending")
	gauge(c.jobs, t.FailedJobs, "failed")
	for _, k := range storage.Kinds {
		for _, m := range moderationStates {
			gauge(c.interactions, t.Interactions[k][m.state], string(k), m.label)
		}
	}
	gauge(c.articles, t.Articles)
}
