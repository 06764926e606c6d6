package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// termSafe makes text that crieur did not write itself (what remote servers
// send: handles, actor and inbox URLs, their error answers; file names;
// errors quoting any of those) safe to print on the admin's terminal. Every
// character a terminal may act on instead of showing it is written as a Go
// escape, visibly: C0 controls (ESC, which starts colour and cursor
// sequences, newline, carriage return, tab), DEL, C1 controls (CSI 0x9b is
// an escape sequence of its own on some terminals), invalid UTF-8, and the
// invisible format characters, bidi overrides among them, which reorder
// what follows. So a remote string can neither repaint the screen, move the
// cursor nor forge a row of a table. Every line of admin output that quotes
// such text goes through here.
func termSafe(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r) && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune tells the characters termSafe escapes.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == '\u200d':
		// The zero-width joiner builds emoji sequences; alone it
		// moves nothing.
		return false
	}
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}
