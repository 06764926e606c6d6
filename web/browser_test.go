package web

// Real-browser tests: headless Chromium (Debian's chromium package),
// driven with chromedp, opens crieur's pages on loopback and follows the
// visit form to a loopback stand-in of the visitor's server. They skip
// when no browser is installed, unless CRIEUR_REQUIRE_BROWSER=1 (CI).
// One browser serves the whole package run; each test opens its tabs.

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crieur/crieur/storage"
)

// browserDeadline bounds one browser test: a hung browser fails the test
// with a screenshot instead of hanging the run. Nothing waits for it.
const browserDeadline = 2 * time.Minute

// browserRig is the package run's browser and the TLS stand-in it reaches
// as https://visitor.test (host-resolver-rules map that name, and only
// it, to the stand-in on 127.0.0.1; every other name fails to resolve).
type browserRig struct {
	once    sync.Once
	err     error
	ctx     context.Context // the browser; tabs are made from it
	cancel  func()
	standIn *httptest.Server
	dataDir string
}

// rig is shared by the browser tests of one run and closed by TestMain.
var rig = &browserRig{}

func (r *browserRig) start(path string) {
	r.standIn = httptest.NewTLSServer(standInHandler())
	port := r.standIn.Listener.Addr().(*net.TCPAddr).Port
	dir, err := os.MkdirTemp("", "crieur-chromium-")
	if err != nil {
		r.err = fmt.Errorf("browser: profile folder: %w", err)
		return
	}
	r.dataDir = dir
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("host-resolver-rules",
			fmt.Sprintf("MAP %s 127.0.0.1:%d, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", standInHost, port)),
		// The stand-in's certificate is httptest's own.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1024, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	r.ctx = bctx
	r.cancel = func() { cancelBrowser(); cancelAlloc() }
	if err := chromedp.Do(bctx); err != nil {
		r.err = fmt.Errorf("browser: start %s: %w", path, err)
	}
}

func (r *browserRig) close() {
	if r.cancel != nil {
		r.cancel()
	}
	if r.standIn != nil {
		r.standIn.Close()
	}
	if r.dataDir != "" {
		_ = os.RemoveAll(r.dataDir)
	}
}

// chromiumPath finds the browser: $CRIEUR_CHROMIUM, else chromium on PATH.
func chromiumPath() string {
	if p := os.Getenv("CRIEUR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newTab opens a tab in the shared browser, skipping (or failing, with
// CRIEUR_REQUIRE_BROWSER=1) without one. A failed test leaves a
// screenshot of the tab in $CRIEUR_ARTIFACTS, else in a temporary
// folder; the failure message names the file.
func newTab(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CRIEUR_REQUIRE_BROWSER") == "1" {
			t.Fatal("CRIEUR_REQUIRE_BROWSER=1 but no chromium binary found (apt-get install chromium, or set CRIEUR_CHROMIUM)")
		}
		t.Skip("no chromium binary: browser tests skipped (apt-get install chromium; CRIEUR_REQUIRE_BROWSER=1 makes this a failure)")
	}
	rig.once.Do(func() { rig.start(path) })
	if rig.err != nil {
		t.Fatal(rig.err)
	}
	tab, cancelTab := chromedp.NewContext(rig.ctx)
	// The tab opens before the deadline is set: a deadline on the first
	// call would bound the tab's whole life.
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		t.Fatalf("browser: open a tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tab, browserDeadline)
	t.Cleanup(func() { cancel(); cancelTab() })
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, tab)
		}
	})
	return ctx
}

// screenshot saves the tab as a PNG test artifact.
func screenshot(t *testing.T, tab context.Context) {
	dir := os.Getenv("CRIEUR_ARTIFACTS")
	if dir == "" {
		d, err := os.MkdirTemp("", "crieur-browser-artifacts-")
		if err != nil {
			t.Logf("screenshot: %v", err)
			return
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot of the failed page: %s", file)
}

// text is the visible text of the first element matching a CSS selector.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return v
}

// eval runs a read-only expression in the page (DevTools, not the page's
// own scripts: the CSP allows none).
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}

// submitAndLand types handle into the input, presses the button and waits
// for the browser to land on the stand-in; it returns where it landed and
// the stand-in page's heading.
func submitAndLand(t *testing.T, ctx context.Context, input, handle, button string) (string, string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(input)),
		chromedp.SendKeys(chromedp.CSS(input), handle),
		chromedp.Click(chromedp.CSS(button)),
	)
	if err != nil {
		t.Fatalf("submit %q with %s: %v", handle, button, err)
	}
	// The page changes under the check (crieur's, then the stand-in's),
	// which aborts a check in flight: ask again until the stand-in's page
	// is loaded, or the test's deadline.
	for {
		landed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`location.host === "`+standInHost+`" && document.readyState === "complete"`))
		if err == nil && landed {
			break
		}
		if ctx.Err() != nil {
			at, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Location())
			t.Fatalf("submit %q with %s: never reached %s (browser at %s, last error %v)", handle, button, standInHost, at, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc, text(t, ctx, "h1")
}

func TestBrowserFollowFromProfile(t *testing.T) {
	ctx := newTab(t)
	e := newVisitEnv(t)
	navigate(t, ctx, e.url+"/")
	name := text(t, ctx, "#profile-name")
	formLabel := text(t, ctx, `label[for="visit-follow-handle"]`)
	if name != "Framasoft reports" || formLabel != message("en", "visit_label") {
		t.Errorf("profile shows %q, form label %q", name, formLabel)
	}
	loc, h1 := submitAndLand(t, ctx, "#visit-follow-handle", "@alice@visitor.test", `button[value="follow"]`)
	want := "https://visitor.test/intents/follow?object=" + url.QueryEscape(testBase+"/@"+testHandle)
	if loc != want || h1 != "Stand-in page /intents/follow" {
		t.Errorf("landed at %s (%q), want %s", loc, h1, want)
	}
}

func TestBrowserArticleConversationAndInteraction(t *testing.T) {
	ctx := newTab(t)
	e := newVisitEnv(t)
	note := testBase + "/posts/hello/en"
	at := testNow.Add(-2 * time.Hour)
	reply := func(id, who, parent, text string, minutes int) storage.Interaction {
		return storage.Interaction{
			ID: "https://social.example/notes/" + id, Kind: storage.KindReply, NoteID: note, InReplyTo: parent,
			Actor: remoteActor(who, ""), URL: "https://social.example/@" + strings.ToLower(who) + "/" + id,
			Content: "<p>" + text + "</p>", Published: at.Add(time.Duration(minutes) * time.Minute), ReceivedAt: at,
		}
	}
	put(t, e, reply("1", "Alice", note, "Thank you for the report!", 0))
	put(t, e, reply("2", "Bob", "https://social.example/notes/1", "Agreed with Alice.", 5))
	put(t, e, reply("3", "Carol", note, "A second thread here.", 10))
	put(t, e, reply("5", "Dave", "https://social.example/notes/2", "Bob is right.", 12))
	put(t, e, reply("4", "Mallory", note, "Buy cheap pills now", 15))
	if _, err := e.store.SetModeration("https://social.example/notes/4", storage.ModerationHidden); err != nil {
		t.Fatal(err)
	}
	for i, kind := range []storage.InteractionKind{storage.KindLike, storage.KindLike, storage.KindLike, storage.KindAnnounce} {
		put(t, e, storage.Interaction{
			ID: fmt.Sprintf("https://social.example/activities/%d", i), Kind: kind, NoteID: note,
			Actor: remoteActor(fmt.Sprintf("Fan%d", i), ""), Published: at, ReceivedAt: at,
		})
	}
	navigate(t, ctx, e.url+"/posts/hello/en")
	comments := text(t, ctx, "#comments ol.comments")
	counts := text(t, ctx, "#comments ul.counts")
	authors := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#comments .comment .author")).map(a => a.innerText)`)
	translations := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("nav.translations a")).map(a => a.innerText + " " + a.getAttribute("href"))`)
	for _, want := range []string{"Thank you for the report!", "Agreed with Alice.", "A second thread here.", "Bob is right.", "in reply to Bob"} {
		if !strings.Contains(comments, want) {
			t.Errorf("the comments do not show %q:\n%s", want, comments)
		}
	}
	if strings.Contains(comments, "pills") || strings.Contains(comments, "Mallory") {
		t.Errorf("the hidden reply is shown:\n%s", comments)
	}
	wantAuthors := []string{"Alice @alice@social.example", "Bob @bob@social.example", "Dave @dave@social.example", "Carol @carol@social.example"}
	if strings.Join(authors, "|") != strings.Join(wantAuthors, "|") {
		t.Errorf("authors %q, want %q", authors, wantAuthors)
	}
	for _, want := range []string{"Replies: 4", "Likes: 3", "Boosts: 1", "Quotes: 0"} {
		if !strings.Contains(counts, want) {
			t.Errorf("counts %q lack %q", counts, want)
		}
	}
	wantTr := []string{"français " + testBase + "/posts/hello/fr", "italiano " + testBase + "/posts/ciao/it"}
	if strings.Join(translations, "|") != strings.Join(wantTr, "|") {
		t.Errorf("translation links %q, want %q", translations, wantTr)
	}
	loc, h1 := submitAndLand(t, ctx, "#visit-note-handle", "alice@visitor.test", `button[value="like"]`)
	if want := "https://visitor.test/intents/like?object=" + url.QueryEscape(note); loc != want || h1 != "Stand-in page /intents/like" {
		t.Errorf("like: landed at %s (%q), want %s", loc, h1, want)
	}
	// Back on the article, a Mastodon account replies through the
	// subscribe template.
	navigate(t, ctx, e.url+"/posts/hello/en")
	loc, _ = submitAndLand(t, ctx, "#visit-note-handle", "@bob@visitor.test", `button[value="reply"]`)
	if want := "https://visitor.test/authorize_interaction?uri=" + url.QueryEscape(note); loc != want {
		t.Errorf("reply: landed at %s, want %s", loc, want)
	}
}

func TestBrowserRefusalShowsTheAddressToCopy(t *testing.T) {
	ctx := newTab(t)
	e := newVisitEnv(t)
	navigate(t, ctx, e.url+"/posts/hello/en")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#visit-note-handle"), "alice@dead.test"),
		chromedp.Click(chromedp.CSS(`button[value="reply"]`)),
		chromedp.WaitVisible(chromedp.CSS(".visit-message")),
	); err != nil {
		t.Fatalf("submit a dead server: %v", err)
	}
	msg := text(t, ctx, ".visit-message")
	copyValue, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#visit-copy")))
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if msg != message("en", "visit_err_dead") || copyValue != testBase+"/posts/hello/en" || loc != e.url+visitPath {
		t.Errorf("refusal page: message %q, copy %q, at %s", msg, copyValue, loc)
	}
}
