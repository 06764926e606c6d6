package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"https://mastodon.example/users/alice": "https://mastodon.example/users/alice",
		"Zoë 🇫🇷 👩‍💻 ✓":                         "Zoë 🇫🇷 👩‍💻 ✓",
		"\x1b[2J\x1b[31mroot":                  `\x1b[2J\x1b[31mroot`,
		"a\nb\r\tc":                            `a\nb\r\tc`,
		"del\x7f c1\u009b31m nul\x00":          `del\x7f c1\x9b31m nul\x00`,
		"invoice\u202egpj.exe \u2066x\u2069":   `invoice\u202egpj.exe \u2066x\u2069`,
		"line\u2028sep \ufeffbom \u200bzw":     `line\u2028sep \ufeffbom \u200bzw`,
		"bad \xff\xfe utf8":                    `bad \xff\xfe utf8`,
		"tag \U000e0041":                       `tag \U000e0041`,
	} {
		got := termSafe(in)
		if got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) || needsEscape(got) {
			t.Errorf("termSafe(%q) = %q still holds a character a terminal acts on", in, got)
		}
	}
}

// The whole output of an admin command: every byte a terminal could act
// on, apart from the newlines ending rows.
func terminalActive(out string) []string {
	var bad []string
	for _, line := range strings.Split(out, "\n") {
		if needsEscape(line) {
			bad = append(bad, line)
		}
	}
	return bad
}
