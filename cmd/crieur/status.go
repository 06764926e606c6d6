package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/crieur/crieur/storage"
)

// opStatus reports, per announced article, how many replies, likes, boosts,
// quotes and mentions it has (what the inbox kept), and where the
// deliveries of its latest activity stand. With a slug/lang argument, only
// that article.
func opStatus(_ context.Context, a *app, args []string, w io.Writer) error {
	ledger, err := a.store.Ledger()
	if err != nil {
		return err
	}
	if len(args) == 1 {
		var one []storage.LedgerEntry
		for _, e := range ledger {
			if e.Key == args[0] {
				one = append(one, e)
			}
		}
		if len(one) == 0 {
			return fmt.Errorf("%s was never announced (see crieur publish -dry-run)", args[0])
		}
		ledger = one
	}
	// The ledger names each article's last activity. Entries written
	// before it did fall back to the outbox, newest first, where the
	// first activity seen for a Note is its Create (only Creates are
	// listed there).
	var fromOutbox map[string]storage.Activity
	latest := func(e storage.LedgerEntry) (storage.Activity, bool, error) {
		if e.ActivityID != "" {
			act, err := a.store.Activity(e.ActivityID)
			if err != nil {
				return storage.Activity{}, false, err
			}
			return act, true, nil
		}
		if fromOutbox == nil {
			fromOutbox = map[string]storage.Activity{}
			const page = 500
			for off := 0; ; off += page {
				acts, total, err := a.store.Outbox(off, page)
				if err != nil {
					return storage.Activity{}, false, err
				}
				for _, act := range acts {
					if _, ok := fromOutbox[act.ObjectID]; !ok {
						fromOutbox[act.ObjectID] = act
					}
				}
				if off+page >= total || len(acts) == 0 {
					break
				}
			}
		}
		act, ok := fromOutbox[e.NoteID]
		return act, ok, nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The fediverse's answers sit between the article's state and its
	// deliveries: DELIVERED PENDING FAILED stay the last three columns.
	fmt.Fprintln(tw, "ARTICLE\tSTATE\tLAST\tREPLIES\tLIKES\tBOOSTS\tQUOTES\tMENTIONS\tDELIVERED\tPENDING\tFAILED")
	for _, e := range ledger {
		state := "published"
		switch {
		case !e.Deleted.IsZero():
			state = "deleted"
		case !e.Pushed:
			state = "back catalogue"
		case !e.Updated.IsZero():
			state = "edited"
		}
		act, ok, err := latest(e)
		if err != nil {
			return err
		}
		ic, err := a.store.InteractionCounts(e.NoteID)
		if err != nil {
			return err
		}
		answers := fmt.Sprintf("%d\t%d\t%d\t%d\t%d", ic[storage.KindReply], ic[storage.KindLike],
			ic[storage.KindAnnounce], ic[storage.KindQuote], ic[storage.KindMention])
		if !ok {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\t-\t-\n", termSafe(e.Key), state, answers)
			continue
		}
		c, err := a.store.DeliveryCounts(act.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%d\t%d\t%d\n", termSafe(e.Key), state, strings.ToLower(act.Type),
			act.Published.Format("2006-01-02 15:04"), answers, c.Delivered, c.Pending, c.Failed)
	}
	return tw.Flush()
}
