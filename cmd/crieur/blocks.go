package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/crieur/crieur/federation/moderation"
)

const blocksUsage = `crieur blocks [list]                 the blocked domains and actors
crieur blocks add DOMAIN|ACTOR_URL   block a domain (and its subdomains) or one actor, at once
crieur blocks remove DOMAIN|ACTOR_URL
crieur blocks import FILE.csv        take a domain blocklist in Mastodon's CSV format
crieur blocks export                 write the domain blocks in Mastodon's CSV format
`

// runBlocks is `crieur blocks`. With a server running, the change reaches
// it through the admin socket and applies at once; the CSV is read here and
// sent, so the server never opens a file an admin names.
func runBlocks(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("blocks", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	sub := "list"
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	switch sub {
	case "list", "export":
		if len(rest) != 0 {
			break
		}
		return runAdmin(ctx, cfg, "blocks-"+sub, nil, stdout, stderr)
	case "add", "remove":
		if len(rest) != 1 {
			break
		}
		return runAdmin(ctx, cfg, "blocks-"+sub, rest, stdout, stderr)
	case "import":
		if len(rest) != 1 {
			break
		}
		data, err := os.ReadFile(rest[0])
		if err != nil {
			return fmt.Errorf("blocks import: %w", err)
		}
		return runAdmin(ctx, cfg, "blocks-import", []string{string(data)}, stdout, stderr)
	}
	fmt.Fprint(stderr, blocksUsage)
	return errUsage
}

func opBlocksList(_ context.Context, a *app, _ []string, w io.Writer) error {
	blocks, err := a.blocks.List()
	if err != nil {
		return err
	}
	if len(blocks) == 0 {
		fmt.Fprintln(w, "no blocks")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tBLOCKED\tSINCE\tSEVERITY\tCOMMENT")
	for _, b := range blocks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Kind, termSafe(b.Value), b.CreatedAt.UTC().Format("2006-01-02"),
			termSafe(b.Severity), termSafe(b.Comment))
	}
	return tw.Flush()
}

func opBlocksAdd(_ context.Context, a *app, args []string, w io.Writer) error {
	b, p, err := a.blocks.Add(args[0], "", "")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "blocked %s %s: removed %d follower(s), %d reply/like/boost/quote(s), %d cached key(s)\n",
		b.Kind, termSafe(b.Value), p.Followers, p.Interactions, p.Keys)
	return nil
}

func opBlocksRemove(_ context.Context, a *app, args []string, w io.Writer) error {
	b, found, err := a.blocks.Remove(args[0])
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no block of %s %s", b.Kind, termSafe(b.Value))
	}
	fmt.Fprintf(w, "unblocked %s %s (what the block removed does not come back)\n", b.Kind, termSafe(b.Value))
	return nil
}

// opBlocksImport takes every usable line and reports the others with their
// line numbers: a shared list with a few bad lines is still worth taking.
func opBlocksImport(_ context.Context, a *app, args []string, w io.Writer) error {
	entries, bad, err := moderation.ParseCSV(strings.NewReader(args[0]), a.docs.Config().Host())
	if err != nil {
		return err
	}
	var purged [3]int
	for _, e := range entries {
		_, p, err := a.blocks.Add(e.Domain, e.Severity, e.Comment)
		if err != nil {
			return err
		}
		purged[0] += p.Followers
		purged[1] += p.Interactions
		purged[2] += p.Keys
	}
	for _, e := range bad {
		fmt.Fprintf(w, "skipped line %d: %s\n", e.Line, termSafe(e.Err.Error()))
	}
	fmt.Fprintf(w, "blocked %d domain(s), skipped %d line(s): removed %d follower(s), %d reply/like/boost/quote(s), %d cached key(s)\n",
		len(entries), len(bad), purged[0], purged[1], purged[2])
	return nil
}

func opBlocksExport(_ context.Context, a *app, _ []string, w io.Writer) error {
	blocks, err := a.blocks.List()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := moderation.WriteCSV(&buf, blocks); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}
