package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// Child process limits.
const (
	// readyPoll is how often the harness asks crieur whether it is up.
	readyPoll = 20 * time.Millisecond
	// stopGrace is how long crieur gets to stop after SIGTERM before it
	// is killed; crieur's own shutdown grace is 15 s.
	stopGrace = 20 * time.Second
	// probeTimeout bounds one readiness request.
	probeTimeout = 2 * time.Second
	// storeTimeout is how long the seeding waits for the database lock.
	storeTimeout = 2 * time.Second
	// logTail is how many lines of crieur's log a failure quotes.
	logTail = 20
	// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; Linux
	// exposes 100 on every architecture Go supports.
	clockTicks = 100
)

// The handle and the articles the harness writes.
const (
	handle  = "reports"
	oldSlug = "fanout-old"
	newSlug = "fanout-new"
	lang    = "en"
)

// crieurRun is one crieur child process with its own folders.
type crieurRun struct {
	bin     string
	root    string // temp folder holding posts/, data/ and crieur.log
	posts   string
	data    string
	logPath string
	base    string
	listen  string
	env     []string
	hold    net.Listener // crieur's port, until start
	// actor and inboxURL are what discover found by WebFinger; empty, the
	// harness uses crieur's layout (/@handle, /@handle/inbox).
	actor    string
	inboxURL string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

// newCrieurRun makes the folders and picks a loopback port.
func newCrieurRun(bin, parent string, extraEnv []string) (*crieurRun, error) {
	root, err := os.MkdirTemp(parent, "fanout-")
	if err != nil {
		return nil, fmt.Errorf("fanout: temp folder: %w", err)
	}
	c := &crieurRun{bin: bin, root: root, posts: filepath.Join(root, "posts"), data: filepath.Join(root, "data"),
		logPath: filepath.Join(root, "crieur.log"), env: extraEnv}
	for _, d := range []string{c.posts, c.data} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			c.remove()
			return nil, fmt.Errorf("fanout: %w", err)
		}
	}
	// The port is held until just before crieur starts, so that the
	// inbox servers' own :0 listeners cannot be given it meanwhile.
	// Another process could still take it in that instant; crieur then
	// fails to start and says so.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.remove()
		return nil, fmt.Errorf("fanout: free port: %w", err)
	}
	c.hold = ln
	c.listen = ln.Addr().String()
	c.base = "http://" + c.listen
	return c, nil
}

func (c *crieurRun) crieurActor() string { return c.base + "/@" + handle }
func (c *crieurRun) noteID() string      { return c.base + "/posts/" + newSlug + "/" + lang }

func (c *crieurRun) actorID() string {
	if c.actor != "" {
		return c.actor
	}
	return c.crieurActor()
}

func (c *crieurRun) inbox() string {
	if c.inboxURL != "" {
		return c.inboxURL
	}
	return c.actorID() + "/inbox"
}

// discover asks WebFinger for acct:handle@host and the actor document for
// its inbox, so that a stand-in with another URL layout than crieur's (a
// bot framework) can be measured. A sender without WebFinger (idealsender)
// keeps crieur's layout. It reports whether the actor is crieur's.
func (c *crieurRun) discover(ctx context.Context) (bool, error) {
	client := &http.Client{Timeout: probeTimeout}
	get := func(u, accept string, v any) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Accept", accept)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
		}
		return resp.StatusCode, json.NewDecoder(io.LimitReader(resp.Body, maxActorBody)).Decode(v)
	}
	var jrd struct {
		Links []struct{ Rel, Type, Href string }
	}
	wf := c.base + "/.well-known/webfinger?resource=" + url.QueryEscape("acct:"+handle+"@"+c.listen)
	if code, err := get(wf, "application/jrd+json", &jrd); code == http.StatusNotFound {
		return true, nil
	} else if err != nil {
		return false, fmt.Errorf("fanout: webfinger: %w", err)
	}
	actor := ""
	for _, l := range jrd.Links {
		if l.Rel == "self" && (strings.HasPrefix(l.Type, "application/activity+json") || strings.HasPrefix(l.Type, "application/ld+json")) {
			actor = l.Href
			break
		}
	}
	if !strings.HasPrefix(actor, c.base+"/") {
		return false, fmt.Errorf("fanout: webfinger names no actor under %s: %q", c.base, actor)
	}
	var doc struct{ ID, Inbox string }
	if _, err := get(actor, "application/activity+json", &doc); err != nil {
		return false, fmt.Errorf("fanout: actor: %w", err)
	}
	if doc.ID != actor || !strings.HasPrefix(doc.Inbox, c.base+"/") {
		return false, fmt.Errorf("fanout: actor %s has id %q and inbox %q", actor, doc.ID, doc.Inbox)
	}
	c.actor, c.inboxURL = doc.ID, doc.Inbox
	return doc.ID == c.crieurActor(), nil
}

// seed writes the followers straight into crieur's database before its
// first start. This stands in for 10,000 Follow → Accept round trips:
// those would measure crieur's inbox and the Accept deliveries, not the
// fan-out of one article.
func (c *crieurRun) seed(fl *fleet) (int, error) {
	// A database with followers belongs to an actor key: crieur refuses
	// to start on one without it.
	if _, err := signature.LoadOrCreateKey(filepath.Join(c.data, "actor.pem")); err != nil {
		return 0, fmt.Errorf("fanout: seed: %w", err)
	}
	st, err := storage.Open(filepath.Join(c.data, "crieur.db"), storage.Options{Timeout: storeTimeout})
	if err != nil {
		return 0, fmt.Errorf("fanout: seed: %w", err)
	}
	n := 0
	for _, s := range fl.servers {
		for _, name := range s.followers {
			f := storage.Follower{
				ActorID:     s.actorID(name),
				Inbox:       s.actorID(name) + "/inbox",
				SharedInbox: s.sharedInbox(),
				FollowID:    s.actorID(name) + "/follows/1",
				Handle:      name + "@" + hostOf(s.base),
				Host:        hostOf(s.base),
				Status:      storage.FollowerAccepted,
			}
			if err := st.PutFollower(f); err != nil {
				st.Close()
				return n, fmt.Errorf("fanout: seed: %w", err)
			}
			n++
		}
	}
	if err := st.Close(); err != nil {
		return n, fmt.Errorf("fanout: seed: %w", err)
	}
	return n, nil
}

// article is a Markdown file crieur accepts, with a body long enough that
// the Create weighs about 2 KiB, like the payload of the signing rate.
func article(slug, title string, date time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "---\ntitle: %q\ndate: %s\nslug: %s\ntags: [benchmark]\n---\n\n", title, date.UTC().Format(time.RFC3339), slug)
	for i := range 6 {
		fmt.Fprintf(&b, "Paragraph %d of the fan-out benchmark article. It is plain text of a realistic "+
			"length so that every delivery carries a Note of about the size a short association report has, "+
			"and the signing cost is measured on the same amount of data.\n\n", i+1)
	}
	return b.Bytes()
}

// writeOld puts the back catalogue in place before the first start: one
// article, which crieur takes into its outbox without delivering it.
func (c *crieurRun) writeOld(now time.Time) error {
	p := filepath.Join(c.posts, oldSlug+"."+lang+".md")
	if err := os.WriteFile(p, article(oldSlug, "An older article", now.Add(-30*24*time.Hour)), 0o644); err != nil {
		return fmt.Errorf("fanout: write old article: %w", err)
	}
	return nil
}

// dropNew writes the new article beside its final name (with a suffix the
// watcher ignores) and renames it, as editors' tools do, and returns the
// moment the rename returned.
func (c *crieurRun) dropNew(now time.Time) (time.Time, error) {
	final := filepath.Join(c.posts, newSlug+"."+lang+".md")
	tmp := filepath.Join(c.posts, "."+newSlug+".tmp")
	// Dated a minute ago so no clock skew makes it a future post.
	if err := os.WriteFile(tmp, article(newSlug, "The article that fans out", now.Add(-time.Minute)), 0o644); err != nil {
		return time.Time{}, fmt.Errorf("fanout: write new article: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return time.Time{}, fmt.Errorf("fanout: drop new article: %w", err)
	}
	return time.Now(), nil
}

// start runs `crieur serve` as a child process, logging to crieur.log.
func (c *crieurRun) start(plan cpuPlan) error {
	c.release()
	lf, err := os.Create(c.logPath)
	if err != nil {
		return fmt.Errorf("fanout: crieur log: %w", err)
	}
	c.log = lf
	cmd := exec.Command(c.bin, "serve")
	cmd.Env = c.environ()
	cmd.Stdout, cmd.Stderr = lf, lf
	// If the harness dies, so does crieur: nothing is left listening.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := cmd.Start
	if plan.pinned {
		start = func() error { return startPinned(cmd, plan.crieur) }
	}
	if err := start(); err != nil {
		lf.Close()
		return fmt.Errorf("fanout: start crieur: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return nil
}

// environ is crieur's environment: the harness's without its CRIEUR_
// settings, then the run's, then -env.
func (c *crieurRun) environ() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRIEUR_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"CRIEUR_BASE_URL="+c.base,
		"CRIEUR_LISTEN="+c.listen,
		"CRIEUR_POSTS="+c.posts,
		"CRIEUR_DATA="+c.data,
		"CRIEUR_HANDLE="+handle,
		"CRIEUR_ALLOW_PRIVATE=true",
		"CRIEUR_LOG_LEVEL=warn",
	)
	return append(env, c.env...)
}

// engine asks `crieur version`, in crieur's environment, what it signs
// with: "openssl", "go", or "" when the answer is not understood.
func (c *crieurRun) engine() string {
	cmd := exec.Command(c.bin, "version")
	cmd.Env = c.environ()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return parseEngine(string(out))
}

// parseEngine reads the "RSA signatures:" line of crieur version.
func parseEngine(out string) string {
	for line := range strings.Lines(out) {
		v, ok := strings.CutPrefix(line, "RSA signatures: ")
		switch {
		case !ok:
		case strings.HasPrefix(v, "OpenSSL "):
			// libcrypto.so.3 for crieur; a stand-in may have its own
			// OpenSSL (Node's is built into its binary).
			return "openssl"
		case strings.HasPrefix(v, "Go crypto/rsa"):
			return "go"
		}
	}
	return ""
}

func (c *crieurRun) pid() int { return c.cmd.Process.Pid }

// running reports an error if crieur has stopped.
func (c *crieurRun) running() error {
	select {
	case <-c.exited:
		return fmt.Errorf("fanout: crieur exited (%v); its log ends with:\n%s", c.err, c.tail())
	default:
		return nil
	}
}

// waitReady polls / until it answers 200.
func (c *crieurRun) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: probeTimeout}
	for {
		if err := c.running(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/", nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fanout: crieur did not answer on %s: %w; its log ends with:\n%s", c.base, ctx.Err(), c.tail())
		case <-time.After(readyPoll):
		}
	}
}

// waitOutbox polls the outbox until it lists want activities: the back
// catalogue has been taken in.
func (c *crieurRun) waitOutbox(ctx context.Context, want int) error {
	client := &http.Client{Timeout: probeTimeout}
	for {
		if err := c.running(); err != nil {
			return err
		}
		n, err := c.outboxTotal(ctx, client)
		if err == nil && n >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fanout: crieur's outbox never reached %d items (last: %d, %v): %w", want, n, err, ctx.Err())
		case <-time.After(readyPoll):
		}
	}
}

func (c *crieurRun) outboxTotal(ctx context.Context, client *http.Client) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.actorID()+"/outbox", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/activity+json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("outbox: status %d", resp.StatusCode)
	}
	var doc struct {
		TotalItems int `json:"totalItems"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxActorBody)).Decode(&doc); err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	return doc.TotalItems, nil
}

// procStatus reads one "Name:   value kB" line of /proc/<pid>/status, in KiB.
func procStatus(pid int, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("fanout: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("fanout: no %s in /proc/%d/status", name, pid)
}

// procCPU is the user+system CPU time a process has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("fanout: %w", err)
	}
	// The command name is in parentheses and may hold spaces: count
	// fields after the last ')'. utime and stime are fields 14 and 15,
	// that is the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("fanout: /proc stat without ')'")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, errors.New("fanout: short /proc stat")
	}
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	s, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("fanout: /proc stat: %w", err)
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stop sends SIGTERM to the crieur this harness started (and nothing
// else), waits up to stopGrace, then kills it.
func (c *crieurRun) stop() error {
	if c.cmd == nil {
		return nil
	}
	defer c.log.Close()
	select {
	case <-c.exited:
		return fmt.Errorf("fanout: crieur had already exited: %v", c.err)
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("fanout: SIGTERM crieur: %w", err)
	}
	select {
	case <-c.exited:
		if c.err != nil {
			return fmt.Errorf("fanout: crieur stopped with %v; its log ends with:\n%s", c.err, c.tail())
		}
		return nil
	case <-time.After(stopGrace):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("fanout: crieur did not stop within %s of SIGTERM and was killed", stopGrace)
	}
}

// tail is the end of crieur's log.
func (c *crieurRun) tail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTail {
		lines = lines[len(lines)-logTail:]
	}
	return strings.Join(lines, "\n")
}

// logLines counts the lines crieur logged (at warn and above).
func (c *crieurRun) logLines() int {
	b, err := os.ReadFile(c.logPath)
	if err != nil || len(b) == 0 {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

func (c *crieurRun) remove() {
	c.release()
	_ = os.RemoveAll(c.root)
}

// release frees crieur's port for it to bind.
func (c *crieurRun) release() {
	if c.hold != nil {
		_ = c.hold.Close()
		c.hold = nil
	}
}
