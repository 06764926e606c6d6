package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/crieur/crieur/storage"
)

// Admin commands and the running server share one bbolt file, which only one
// process may open. So a running `crieur serve` listens on a Unix socket in
// the data folder (0600: whoever can read the data can administer it), and
// the admin commands send their request there; when no server runs they open
// the data folder themselves. Either way the same adminOp runs.

// adminOp does one admin action against a wired app and writes its report.
type adminOp func(ctx context.Context, a *app, args []string, w io.Writer) error

var adminOps = map[string]adminOp{
	"queue":             opQueue,
	"queue-retry":       opQueueRetry,
	"followers":         opFollowersList,
	"followers-pending": opFollowersPending,
	"followers-remove":  opFollowersRemove,
	"followers-approve": opFollowersApprove,
	"followers-reject":  opFollowersReject,
	"publish-dry-run":   opPublishDryRun,
	"publish-again":     opPublishAgain,
	"status":            opStatus,
	"inbox":             opInbox,
	"key-show":          opKeyShow,
	"blocks-list":       opBlocksList,
	"blocks-add":        opBlocksAdd,
	"blocks-remove":     opBlocksRemove,
	"blocks-import":     opBlocksImport,
	"blocks-export":     opBlocksExport,
	"replies-waiting":   opRepliesWaiting,
	"replies-hide":      opRepliesHide,
	"replies-show":      opRepliesShow,
	"replies-approve":   opRepliesApprove,
	"reports":           opReports,
}

type adminRequest struct {
	Op   string   `json:"op"`
	Args []string `json:"args"`
}

// adminTimeout bounds one admin request on the socket.
const adminTimeout = 60 * time.Second

func listenAdmin(path string) (net.Listener, error) {
	// A socket left by a killed server is stale if nobody answers on it.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another crieur is serving this data folder (%s answers)", path)
	}
	os.Remove(path)
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, nil
}

// newAdminHandler serves the admin operations (POST /admin, buffered) and
// the backup stream (GET /backup); stop ends with the server.
func newAdminHandler(stop context.Context, a *app) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) { serveBackup(stop, a, w, r) })
	mux.HandleFunc("POST /admin", func(w http.ResponseWriter, r *http.Request) {
		var req adminRequest
		// A blocklist to import travels in the request: 8 MiB holds the
		// largest shared lists many times over.
		if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&req); err != nil {
			http.Error(w, "bad admin request", http.StatusBadRequest)
			return
		}
		op, ok := adminOps[req.Op]
		if !ok {
			http.Error(w, "unknown admin operation "+req.Op, http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
		defer cancel()
		var buf bytes.Buffer
		if err := op(ctx, a, req.Args, &buf); err != nil {
			a.log.Warn("admin operation failed", "op", req.Op, "err", err)
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(buf.Bytes())
	})
	return mux
}

// runAdmin runs op on the live server when one answers on the socket, else
// on the data folder directly.
func runAdmin(ctx context.Context, cfg config, op string, args []string, stdout, stderr io.Writer) error {
	client := &http.Client{
		Timeout: adminTimeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", cfg.sockPath())
		}},
	}
	body, _ := json.Marshal(adminRequest{Op: op, Args: args})
	resp, err := client.Post("http://crieur/admin", "application/json", bytes.NewReader(body))
	if err == nil {
		defer resp.Body.Close()
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
		if resp.StatusCode != http.StatusOK {
			return errors.New(strings.TrimSpace(string(out)))
		}
		_, err = stdout.Write(out)
		return err
	}
	// Without a server, the command reads the data folder itself. It must
	// not make the folder: a mistyped one would get a new actor key and an
	// empty database, and the command would report "0 in all". An empty
	// folder made on purpose is fine (a dry run before the first start).
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no data folder %s, and no server answers there: give -data or CRIEUR_DATA as crieur serve has them", cfg.DataDir)
	}
	a, err := openApp(cfg, newLogger(cfg, stderr), appOptions{})
	if err != nil {
		return err
	}
	defer a.close()
	return adminOps[op](ctx, a, args, stdout)
}

func runQueue(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("queue", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0:
		return runAdmin(ctx, cfg, "queue", nil, stdout, stderr)
	case rest[0] == "retry" && len(rest) <= 2:
		return runAdmin(ctx, cfg, "queue-retry", rest[1:], stdout, stderr)
	default:
		fmt.Fprintln(stderr, "crieur queue: give nothing (show the queue) or retry [HOST]")
		return errUsage
	}
}

func runFollowers(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("followers", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	sub := "list"
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	op := map[string]string{"list": "followers", "pending": "followers-pending", "remove": "followers-remove",
		"approve": "followers-approve", "reject": "followers-reject"}[sub]
	if op == "" {
		fmt.Fprintf(stderr, "crieur followers: unknown action %q (list, pending, remove, approve, reject)\n", sub)
		return errUsage
	}
	if sub != "list" && sub != "pending" && len(rest) != 1 {
		fmt.Fprintf(stderr, "crieur followers %s: give one actor id\n", sub)
		return errUsage
	}
	return runAdmin(ctx, cfg, op, rest, stdout, stderr)
}

func runPublish(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var dry bool
	var again string
	cfg, _, err := parseConfig("publish", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dry, "dry-run", false, "show what would be sent, and to how many inboxes, without sending")
		fs.StringVar(&again, "again", "", "announce SLUG/LANG again to every follower (an Update)")
	})
	if err != nil {
		return err
	}
	switch {
	case dry && again == "":
		return runAdmin(ctx, cfg, "publish-dry-run", nil, stdout, stderr)
	case again != "" && !dry:
		return runAdmin(ctx, cfg, "publish-again", []string{again}, stdout, stderr)
	default:
		fmt.Fprintln(stderr, "crieur publish: give either -dry-run or -again SLUG/LANG (publishing itself happens in crieur serve)")
		return errUsage
	}
}

func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("status", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	return runAdmin(ctx, cfg, "status", rest, stdout, stderr)
}

func opQueue(_ context.Context, a *app, _ []string, w io.Writer) error {
	st, err := a.store.QueueStats()
	if err != nil {
		return err
	}
	return writeQueueStats(w, st, a.cfg.RetryFor)
}

// writeQueueStats prints the queue per host: what waits, when the next
// attempt is due, and when the oldest job being retried will be given up
// (its creation plus retryFor). Times are UTC.
func writeQueueStats(w io.Writer, st storage.QueueStats, retryFor time.Duration) error {
	fmt.Fprintf(w, "pending %d, retrying %d, failed %d\n", st.Pending, st.Retrying, st.Failed)
	if len(st.PerHost) == 0 {
		return nil
	}
	hosts := make([]string, 0, len(st.PerHost))
	for h := range st.PerHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPENDING\tRETRYING\tFAILED\tNEXT ATTEMPT (UTC)\tGIVEN UP AT (UTC)\tLAST ERROR")
	for _, h := range hosts {
		s := st.PerHost[h]
		giveUp := time.Time{}
		if !s.RetryingSince.IsZero() {
			giveUp = s.RetryingSince.Add(retryFor)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", termSafe(h), s.Pending, s.Retrying, s.Failed, when(s.NextAttempt), when(giveUp), termSafe(s.LastError))
	}
	return tw.Flush()
}

func opQueueRetry(ctx context.Context, a *app, args []string, w io.Writer) error {
	host := ""
	if len(args) > 0 {
		host = args[0]
	}
	rep, err := a.pub.RetryFailed(ctx, host)
	if err != nil {
		return err
	}
	a.del.Wake()
	fmt.Fprintf(w, "%d deliveries queued again", rep.Requeued)
	if rep.Superseded > 0 {
		fmt.Fprintf(w, "; %d failed ones dropped, carried by those or no longer owed", rep.Superseded)
	}
	if rep.Kept > 0 {
		fmt.Fprintf(w, "; %d left failed: their article is not visible now", rep.Kept)
	}
	fmt.Fprintln(w)
	return nil
}

func printFollowers(w io.Writer, fs []storage.Follower) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTOR\tHANDLE\tINBOX\tSINCE")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", termSafe(f.ActorID), termSafe(f.Handle), termSafe(f.DeliveryInbox()), f.CreatedAt.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "%d in all\n", len(fs))
	return tw.Flush()
}

func opFollowersList(_ context.Context, a *app, _ []string, w io.Writer) error {
	fs, err := a.store.Followers(storage.FollowerAccepted)
	if err != nil {
		return err
	}
	return printFollowers(w, fs)
}

func opFollowersPending(_ context.Context, a *app, _ []string, w io.Writer) error {
	fs, err := a.store.Followers(storage.FollowerPending)
	if err != nil {
		return err
	}
	return printFollowers(w, fs)
}

func opFollowersRemove(_ context.Context, a *app, args []string, w io.Writer) error {
	ok, err := a.store.DeleteFollower(args[0])
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no follower %s", args[0])
	}
	fmt.Fprintf(w, "removed %s\n", termSafe(args[0]))
	return nil
}

func opFollowersApprove(ctx context.Context, a *app, args []string, w io.Writer) error {
	if err := a.inbox.ApproveFollower(ctx, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(w, "approved %s: the Accept is queued\n", termSafe(args[0]))
	return nil
}

func opFollowersReject(ctx context.Context, a *app, args []string, w io.Writer) error {
	if err := a.inbox.RejectFollower(ctx, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(w, "rejected %s: the Reject is queued\n", termSafe(args[0]))
	return nil
}

func opPublishDryRun(_ context.Context, a *app, _ []string, w io.Writer) error {
	plan, err := a.pub.DryRun()
	if err != nil {
		return err
	}
	if len(plan) == 0 {
		fmt.Fprintln(w, "nothing to publish: every article is announced as it is")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTIVITY\tARTICLE\tINBOXES")
	for _, p := range plan {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", p.Type, termSafe(p.Key), p.Inboxes)
	}
	return tw.Flush()
}

func opPublishAgain(ctx context.Context, a *app, args []string, w io.Writer) error {
	n, err := a.pub.Republish(ctx, args[0])
	if err != nil {
		return err
	}
	a.del.Wake()
	fmt.Fprintf(w, "announced %s again: %d deliveries queued\n", termSafe(args[0]), n)
	return nil
}
