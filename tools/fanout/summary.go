package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// On this kind of machine one run says little: its speed drifts by tens of
// percent within a minute. -runs repeats the measurement and -versus
// alternates it with a second binary (idealsender, or another build of
// crieur), so both meet the same hour; the summary gives each binary's
// median and range.

// metric is one figure of the summary, taken from each run's report.
type metric struct {
	name   string // JSON key, as in the report
	label  string
	unit   string  // printed after the number
	scale  float64 // the report's value times scale is printed
	digits int
	get    func(*report) float64
}

var summaryMetrics = []metric{
	{"ratio_drop_to_last", "against Go's RSA signing rate", "%", 100, 0, func(r *report) float64 { return r.RatioDropToLast }},
	{"ratio_openssl_one", "against one openssl speed process", "%", 100, 1, func(r *report) float64 { return r.RatioOpenSSLOne }},
	{"ratio_openssl", "against openssl speed on its CPUs", "%", 100, 1, func(r *report) float64 { return r.RatioOpenSSL }},
	{"rate_drop_to_last", "deliveries per second", "/s", 1, 0, func(r *report) float64 { return r.RateDropToLast }},
	{"crieur_cpu_per_post_ms", "CPU per delivery", " ms", 1, 3, func(r *report) float64 { return r.CrieurCPUPerPostMs }},
	{"drop_to_first_ms", "drop → first delivery", " ms", 1, 1, func(r *report) float64 { return r.DropToFirstMs }},
	{"drop_to_last_ms", "drop → last delivery", " ms", 1, 0, func(r *report) float64 { return r.DropToLastMs }},
	{"crieur_peak_rss_mib", "peak RSS", " MiB", 1, 1, func(r *report) float64 { return r.PeakRSSMiB }},
	{"healthy_slowdown", "healthy servers vs -baseline", "×", 1, 2, func(r *report) float64 { return r.HealthySlowdown }},
}

// binarySummary is one binary's runs, summarized.
type binarySummary struct {
	Binary  string             `json:"binary"`
	Runs    int                `json:"runs"`
	Correct int                `json:"correct"`
	Median  map[string]float64 `json:"median"`
	Min     map[string]float64 `json:"min"`
	Max     map[string]float64 `json:"max"`
}

// summarize gives, for each metric some run reported (non-zero), its
// median, minimum and maximum over the runs that reported it.
func summarize(binary string, runs []*report) binarySummary {
	s := binarySummary{Binary: binary, Runs: len(runs), Median: map[string]float64{}, Min: map[string]float64{}, Max: map[string]float64{}}
	for _, r := range runs {
		if r.OK {
			s.Correct++
		}
	}
	for _, m := range summaryMetrics {
		var vs []float64
		for _, r := range runs {
			if v := m.get(r); v != 0 {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			continue
		}
		slices.Sort(vs)
		med := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
		}
		s.Median[m.name], s.Min[m.name], s.Max[m.name] = med, vs[0], vs[len(vs)-1]
	}
	return s
}

// writeSummary prints one column per binary: median, then range, of each
// metric any of them reported; then the summaries as one JSON line
// ({"summary": [...]}, which no single run's report line looks like).
func writeSummary(w io.Writer, sums []binarySummary) {
	fmt.Fprintf(w, "summary: median (min–max) over the runs of each binary\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{""}
	for _, s := range sums {
		head = append(head, s.Binary)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, m := range summaryMetrics {
		row := []string{m.label}
		seen := false
		for _, s := range sums {
			med, ok := s.Median[m.name]
			if !ok {
				row = append(row, "-")
				continue
			}
			seen = true
			f := func(v float64) string { return fmt.Sprintf("%.*f", m.digits, v*m.scale) }
			row = append(row, fmt.Sprintf("%s%s (%s–%s)", f(med), m.unit, f(s.Min[m.name]), f(s.Max[m.name])))
		}
		if seen {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	row := []string{"correct runs"}
	for _, s := range sums {
		row = append(row, fmt.Sprintf("%d of %d", s.Correct, s.Runs))
	}
	fmt.Fprintln(tw, strings.Join(row, "\t"))
	_ = tw.Flush()
	b, err := json.Marshal(struct {
		Summary []binarySummary `json:"summary"`
	}{sums})
	if err != nil {
		panic(err) // maps of floats and strings always encode
	}
	fmt.Fprintln(w, string(b))
}
