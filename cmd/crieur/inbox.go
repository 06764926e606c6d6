package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/crieur/crieur/storage"
)

const (
	// inboxDefaultLatest is how many interactions crieur inbox lists
	// without -n: a screenful or two.
	inboxDefaultLatest = 50
	// inboxMaxLatest bounds -n: the listing is read in one transaction.
	inboxMaxLatest = 10_000
	// inboxExcerpt is how much of a reply's text a line quotes, in
	// characters.
	inboxExcerpt = 100
)

// runInbox is crieur inbox [-n N] [SLUG/LANG]: what the fediverse sent
// about the articles, newest first, grouped per article.
func runInbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var n int
	cfg, rest, err := parseConfig("inbox", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&n, "n", inboxDefaultLatest, "how many of the latest interactions to list")
	})
	if err != nil {
		return err
	}
	if len(rest) > 1 || n < 1 || n > inboxMaxLatest {
		fmt.Fprintf(stderr, "crieur inbox: give at most one SLUG/LANG, and -n from 1 to %d\n", inboxMaxLatest)
		return errUsage
	}
	return runAdmin(ctx, cfg, "inbox", append([]string{strconv.Itoa(n)}, rest...), stdout, stderr)
}

// opInbox lists the latest interactions: args[0] is how many, args[1] an
// optional SLUG/LANG.
func opInbox(_ context.Context, a *app, args []string, w io.Writer) error {
	n := inboxDefaultLatest
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 || v > inboxMaxLatest {
			return fmt.Errorf("inbox: bad count %q", args[0])
		}
		n = v
	}
	ledger, err := a.store.Ledger()
	if err != nil {
		return err
	}
	keys := make(map[string]string, len(ledger)) // NoteID → SLUG/LANG
	for _, e := range ledger {
		keys[e.NoteID] = e.Key
	}
	var items []storage.Interaction
	if len(args) > 1 {
		note := ""
		for id, k := range keys {
			if k == args[1] {
				note = id
			}
		}
		if note == "" {
			return fmt.Errorf("%s was never announced (see crieur status)", args[1])
		}
		for _, kind := range storage.Kinds {
			got, _, err := a.store.NoteInteractions(note, kind, 0, n, true)
			if err != nil {
				return err
			}
			items = append(items, got...)
		}
		sortNewestReceived(items)
		items = items[:min(n, len(items))]
	} else if items, err = a.store.RecentInteractions(n); err != nil {
		return err
	}
	return writeInbox(w, items, keys)
}

// sortNewestReceived orders interactions by arrival, newest first.
func sortNewestReceived(items []storage.Interaction) {
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].ReceivedAt.After(items[j-1].ReceivedAt); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
}

// writeInbox prints interactions grouped per article (the article with
// the latest arrival first), each newest first: when, what, who, where to
// read it, and for replies, mentions and quotes the start of their text.
// Every remote string goes through termSafe. keys names our Notes by
// SLUG/LANG; a Note not in it (a direct message to the bot) shows as is.
func writeInbox(w io.Writer, items []storage.Interaction, keys map[string]string) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "nothing received yet")
		return err
	}
	var order []string
	groups := map[string][]storage.Interaction{}
	for _, i := range items {
		if _, ok := groups[i.NoteID]; !ok {
			order = append(order, i.NoteID)
		}
		groups[i.NoteID] = append(groups[i.NoteID], i)
	}
	for gi, note := range order {
		if gi > 0 {
			fmt.Fprintln(w)
		}
		name := keys[note]
		if name == "" {
			name = note
		}
		counts := map[storage.InteractionKind]int{}
		for _, i := range groups[note] {
			counts[i.Kind]++
		}
		var summary []string
		for _, k := range storage.Kinds {
			if counts[k] > 0 {
				summary = append(summary, fmt.Sprintf("%d %s", counts[k], kindLabel(k, counts[k])))
			}
		}
		fmt.Fprintf(w, "%s  (%s)\n", termSafe(name), strings.Join(summary, ", "))
		for _, i := range groups[note] {
			who := strings.TrimSpace(i.Actor.Name)
			if h := i.Actor.Handle; h != "" {
				who = strings.TrimSpace(who + " @" + strings.TrimPrefix(h, "@"))
			}
			if who == "" {
				who = i.Actor.ID
			}
			what := kindLabel(i.Kind, 1)
			if i.Emoji != "" {
				what += " " + i.Emoji
			}
			// Where the admin reads it: the post for replies and
			// quotes, the person for likes and boosts (an activity's
			// id shows nothing in a browser).
			link := i.URL
			if link == "" && (i.Kind == storage.KindLike || i.Kind == storage.KindAnnounce) {
				link = i.Actor.URL
				if link == "" {
					link = i.Actor.ID
				}
			}
			if link == "" {
				link = i.ID
			}
			edited := ""
			if i.Updated.After(i.Published) {
				edited = " (edited)"
			}
			fmt.Fprintf(w, "  %s  %-8s  %s  %s%s\n", i.ReceivedAt.UTC().Format("2006-01-02 15:04"),
				termSafe(what), termSafe(who), termSafe(link), edited)
			if text := excerpt(i.Summary, i.Content); text != "" {
				fmt.Fprintf(w, "      %s\n", termSafe(text))
			}
		}
	}
	return nil
}

// kindLabel names a kind in the admin's summary line.
func kindLabel(k storage.InteractionKind, n int) string {
	label := map[storage.InteractionKind]string{
		storage.KindReply: "repl", storage.KindMention: "mention", storage.KindLike: "like",
		storage.KindAnnounce: "boost", storage.KindQuote: "quote",
	}[k]
	switch {
	case k == storage.KindReply && n == 1:
		return "reply"
	case k == storage.KindReply:
		return "replies"
	case n == 1:
		return label
	}
	return label + "s"
}

// excerpt is the start of a reply as one line of plain text: its content
// warning when it has one (the admin chose to see that first), else its
// HTML's text.
func excerpt(summary, content string) string {
	text := summary
	if text == "" {
		text = plainText(content)
	} else {
		text = "CW: " + text
	}
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) > inboxExcerpt {
		r := []rune(text)
		text = string(r[:inboxExcerpt]) + "…"
	}
	return text
}

// plainText is the text of an HTML fragment: blocks and line breaks become
// spaces, scripts and styles are dropped (the inbox sanitised them away;
// this does not rely on it).
func plainText(fragment string) string {
	var b strings.Builder
	skip := 0
	z := html.NewTokenizer(strings.NewReader(fragment))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return b.String()
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style":
				if t := z.Token(); t.Type == html.StartTagToken {
					skip++
				} else if t.Type == html.EndTagToken && skip > 0 {
					skip--
				}
			case "p", "br", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6":
				b.WriteByte(' ')
			}
		}
	}
}
