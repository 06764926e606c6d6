package moderation

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/crieur/crieur/storage"
)

// Mastodon's domain blocklist CSV (Administration → Federation → Export):
// a header line `#domain,#severity,#reject_media,#reject_reports,
// #public_comment,#obfuscate`, then one domain a line. Older exports and
// shared lists have no header, `domain,severity,…`, or only domains.
var csvHeader = []string{"#domain", "#severity", "#reject_media", "#reject_reports", "#public_comment", "#obfuscate"}

// LineError is a line of an imported list that was not taken.
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Entry is one domain of an imported list.
type Entry struct {
	Domain   string
	Severity string
	Comment  string
}

// ParseCSV reads a domain blocklist in Mastodon's format. Lines that cannot
// be used (no domain, an IP, a path, crieur's own domain, a severity of
// "noop", which blocks nothing) are returned with their line numbers; the
// good lines are kept. Severities "suspend" and "silence" both become a
// block: crieur has no timelines to limit, and a silenced server's replies
// are what an association does not want under its name.
func ParseCSV(r io.Reader, own string) ([]Entry, []LineError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var entries []Entry
	var bad []LineError
	col := map[string]int{"domain": 0, "severity": 1, "public_comment": 4}
	seen := map[string]bool{}
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return entries, bad, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad = append(bad, LineError{Line: pe.Line, Err: pe.Err})
				continue
			}
			return entries, bad, fmt.Errorf("moderation: read blocklist: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first && len(rec) > 0 && strings.Contains(strings.ToLower(rec[0]), "domain") {
			for i, name := range rec {
				col[strings.TrimPrefix(strings.ToLower(strings.TrimSpace(name)), "#")] = i
			}
			continue
		}
		field := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		raw := field("domain")
		if raw == "" || strings.HasPrefix(raw, "#") {
			if raw != "" || len(rec) > 1 {
				bad = append(bad, LineError{Line: line, Err: errors.New("no domain")})
			}
			continue
		}
		sev := strings.ToLower(field("severity"))
		switch sev {
		case "", "suspend", "silence":
		case "noop":
			bad = append(bad, LineError{Line: line, Err: fmt.Errorf("%s: severity noop blocks nothing", raw)})
			continue
		default:
			bad = append(bad, LineError{Line: line, Err: fmt.Errorf("%s: unknown severity %q", raw, sev)})
			continue
		}
		d, err := NormalizeDomain(raw, own)
		if err != nil {
			bad = append(bad, LineError{Line: line, Err: err})
			continue
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		entries = append(entries, Entry{Domain: d, Severity: sev, Comment: field("public_comment")})
	}
}

// WriteCSV writes the domain blocks in Mastodon's export format, so another
// server (or another association) can import them as they are.
func WriteCSV(w io.Writer, blocks []storage.Block) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, b := range blocks {
		if b.Kind != storage.BlockDomain {
			continue
		}
		sev := b.Severity
		if sev == "" {
			sev = "suspend"
		}
		if err := cw.Write([]string{b.Value, sev, "false", "false", b.Comment, "false"}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
