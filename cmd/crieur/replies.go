package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/crieur/crieur/storage"
)

const repliesUsage = `crieur replies [waiting]   replies waiting for approval, and hidden ones
crieur replies hide ID     take a reply off the article's page and the public collection (it stays recorded)
crieur replies show ID     show a hidden reply again
crieur replies approve ID  show a reply that waits for approval (-replies followers or approval)
crieur reports             reports (Flag) other servers sent about crieur's posts
`

// runReplies is `crieur replies`: moderation of the replies under articles.
func runReplies(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("replies", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	sub := "waiting"
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	switch {
	case sub == "waiting" && len(rest) == 0:
		return runAdmin(ctx, cfg, "replies-waiting", nil, stdout, stderr)
	case (sub == "hide" || sub == "show" || sub == "approve") && len(rest) == 1:
		return runAdmin(ctx, cfg, "replies-"+sub, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, repliesUsage)
	return errUsage
}

// runReports is `crieur reports`.
func runReports(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("reports", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		fmt.Fprint(stderr, repliesUsage)
		return errUsage
	}
	return runAdmin(ctx, cfg, "reports", nil, stdout, stderr)
}

// repliesWaitingLimit bounds what `crieur replies` reads: the latest
// interactions, where waiting and hidden replies are.
const repliesWaitingLimit = 1000

func opRepliesWaiting(_ context.Context, a *app, _ []string, w io.Writer) error {
	recent, err := a.store.RecentInteractions(repliesWaitingLimit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	n := 0
	for _, i := range recent {
		if i.Moderation == "" || (i.Kind != storage.KindReply && i.Kind != storage.KindQuote) {
			continue
		}
		if n == 0 {
			fmt.Fprintln(tw, "STATE\tRECEIVED\tFROM\tON\tID\tTEXT")
		}
		n++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.Moderation, i.ReceivedAt.UTC().Format("2006-01-02 15:04"),
			termSafe(i.Actor.Handle), termSafe(i.NoteID), termSafe(i.ID), termSafe(excerpt(i.Summary, i.Content)))
	}
	if n == 0 {
		fmt.Fprintln(w, "no reply waits for approval or is hidden")
		return nil
	}
	return tw.Flush()
}

func opRepliesHide(_ context.Context, a *app, args []string, w io.Writer) error {
	return setModeration(a, args[0], storage.ModerationHidden, "hidden", w)
}

func opRepliesShow(_ context.Context, a *app, args []string, w io.Writer) error {
	return setModeration(a, args[0], "", "shown", w)
}

func opRepliesApprove(_ context.Context, a *app, args []string, w io.Writer) error {
	i, err := a.store.Interaction(args[0])
	if err != nil {
		return noReply(args[0], err)
	}
	if i.Moderation != storage.ModerationPending {
		return fmt.Errorf("%s does not wait for approval (use crieur replies show for a hidden one)", termSafe(args[0]))
	}
	return setModeration(a, args[0], "", "approved", w)
}

func setModeration(a *app, id, state, done string, w io.Writer) error {
	i, err := a.store.Interaction(id)
	if err != nil {
		return noReply(id, err)
	}
	if i.Kind != storage.KindReply && i.Kind != storage.KindQuote {
		return fmt.Errorf("%s is a %s, not a reply", termSafe(id), i.Kind)
	}
	if _, err := a.store.SetModeration(id, state); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %s by %s\n", done, termSafe(id), termSafe(i.Actor.Handle))
	return nil
}

func noReply(id string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no reply %s", termSafe(id))
	}
	return err
}

func opReports(_ context.Context, a *app, _ []string, w io.Writer) error {
	reports, err := a.store.Reports()
	if err != nil {
		return err
	}
	if len(reports) == 0 {
		fmt.Fprintln(w, "no reports")
		return nil
	}
	for _, r := range reports {
		fmt.Fprintf(w, "%s  from %s\n", r.ReceivedAt.UTC().Format("2006-01-02 15:04"), termSafe(r.ActorID))
		for _, o := range r.Objects {
			fmt.Fprintf(w, "  about %s\n", termSafe(o))
		}
		if r.Content != "" {
			fmt.Fprintf(w, "  %q\n", termSafe(r.Content))
		}
	}
	return nil
}
