// Command idealsender stands in for crieur in tools/fanout to measure the
// ceiling of a fan-out on this machine: the least work any sender must do
// per inbox, with nothing else. For each shared inbox it signs the Create
// with crieur's own signer (OpenSSL when it loads, through go-fed/httpsig
// and the signing pool), opens one TCP connection, writes the request,
// reads the status line and closes. No queue, no database writes, no
// retries, no HTTP client: what is left between its rate and `openssl
// speed`'s is the cost of the network on this machine, which crieur pays
// too. crieur's ratio divided by this one is how close crieur is to the
// best a sender can do here.
//
// It speaks just enough of crieur's interface for the harness: `version`,
// `serve` with the CRIEUR_* environment, GET / and the actor (with its
// key) and the outbox, the followers the harness seeded into
// data/crieur.db, and the drop of posts/fanout-new.en.md, which starts the
// fan-out.
//
//	go build -o /tmp/idealsender ./tools/fanout/idealsender
//	go run ./tools/fanout -crieur /tmp/idealsender -crieur-cpus 1
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

const (
	// dropPoll is how often the posts folder is checked for the new
	// article: the harness times from the drop, so the wait counts.
	dropPoll = time.Millisecond
	// ioTimeout bounds one delivery; the harness's failing servers hang.
	ioTimeout = 10 * time.Second
	// inFlight is how many deliveries may wait on the network per CPU
	// while others sign.
	inFlight = 32
	// The article the harness drops, and its Note's path (as crieur names
	// it).
	newFile = "fanout-new.en.md"
	newPath = "/posts/fanout-new/en"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idealsender:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 1 && args[0] == "version" {
		// The harness reads this line to know which reference applies.
		fmt.Fprintln(stdout, "idealsender")
		if v, err := signature.OpenSSL(); err == nil {
			fmt.Fprintf(stdout, "RSA signatures: %s (libcrypto.so.3)\n", v)
		} else {
			fmt.Fprintf(stdout, "RSA signatures: Go crypto/rsa (no OpenSSL: %v)\n", err)
		}
		return nil
	}
	if len(args) != 1 || args[0] != "serve" {
		return errors.New("usage: idealsender version | serve (configured by CRIEUR_BASE_URL, CRIEUR_LISTEN, CRIEUR_POSTS, CRIEUR_DATA, CRIEUR_HANDLE)")
	}
	base, listen := getenv("CRIEUR_BASE_URL"), getenv("CRIEUR_LISTEN")
	postsDir, dataDir, handle := getenv("CRIEUR_POSTS"), getenv("CRIEUR_DATA"), getenv("CRIEUR_HANDLE")
	if base == "" || listen == "" || postsDir == "" || dataDir == "" || handle == "" {
		return errors.New("CRIEUR_BASE_URL, CRIEUR_LISTEN, CRIEUR_POSTS, CRIEUR_DATA and CRIEUR_HANDLE are required")
	}
	actor := base + "/@" + handle
	inboxes, err := followerInboxes(filepath.Join(dataDir, "crieur.db"))
	if err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	signer, err := signature.NewSigner(actor+"#main-key", key, nil)
	if err != nil {
		return err
	}
	actorDoc, err := actorJSON(actor, key)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(actor, actorDoc), ReadHeaderTimeout: ioTimeout}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	if err := waitForDrop(ctx, filepath.Join(postsDir, newFile)); err != nil {
		return err
	}
	body, err := createJSON(actor, base, base+newPath, filepath.Join(postsDir, newFile))
	if err != nil {
		return err
	}
	failed := fanOut(ctx, signer, inboxes, body)
	fmt.Fprintf(os.Stderr, "idealsender: %d inboxes, %d failed (failing servers do)\n", len(inboxes), failed)
	<-ctx.Done() // keep serving the actor until the harness is done
	return nil
}

// followerInboxes reads the distinct delivery inboxes of the followers the
// harness seeded.
func followerInboxes(path string) ([]string, error) {
	st, err := storage.Open(path, storage.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.DeliveryInboxes()
}

func actorJSON(actor string, key *rsa.PrivateKey) ([]byte, error) {
	pemText, err := signature.PublicKeyPEM(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"@context":  []string{"https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"},
		"id":        actor,
		"type":      "Service",
		"inbox":     actor + "/inbox",
		"publicKey": map[string]string{"id": actor + "#main-key", "owner": actor, "publicKeyPem": pemText},
	})
}

// handler answers what the harness and the receivers ask: / (ready), the
// actor (key fetches) and the outbox (one article, as crieur's back
// catalogue).
func handler(actor string, actorDoc []byte) http.Handler {
	mux := http.NewServeMux()
	path := mustPath(actor)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "idealsender\n") })
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/activity+json")
		w.Write(actorDoc)
	})
	mux.HandleFunc("GET "+path+"/outbox", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/activity+json")
		io.WriteString(w, `{"type":"OrderedCollection","totalItems":1}`)
	})
	return mux
}

func mustPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return u.Path
}

func waitForDrop(ctx context.Context, path string) error {
	t := time.NewTicker(dropPoll)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// createJSON is a Create of a Note shaped like the one crieur sends for
// the article the harness dropped: the same @context, the article's
// paragraphs as content and again as contentMap (crieur sends both, for
// Mastodon's language), its hashtag, the same fields. The receivers share
// the machine with the sender, and their work grows with the body: a
// smaller body than crieur's would make this ceiling too high.
func createJSON(actor, base, note, articlePath string) ([]byte, error) {
	text, err := os.ReadFile(articlePath)
	if err != nil {
		return nil, err
	}
	var content strings.Builder
	content.WriteString("<p><strong>The article that fans out</strong></p>")
	// The paragraphs follow the front matter's closing "---".
	_, rest, _ := strings.Cut(strings.TrimPrefix(string(text), "---\n"), "\n---\n")
	for _, para := range strings.Split(strings.TrimSpace(rest), "\n\n") {
		content.WriteString("<p>" + html.EscapeString(para) + "</p>")
	}
	tag := base + "/tags/benchmark"
	content.WriteString(`<p><a href="` + tag + `" class="mention hashtag" rel="tag">#<span>benchmark</span></a></p>`)
	public := "https://www.w3.org/ns/activitystreams#Public"
	followers := actor + "/followers"
	now := time.Now().UTC().Format(time.RFC3339)
	create := map[string]any{
		"@context":  json.RawMessage(ldContext),
		"id":        base + "/activities/0123456789abcdef0123456789abcdef",
		"type":      "Create",
		"actor":     actor,
		"to":        []string{public},
		"cc":        []string{followers},
		"published": now,
		"object": map[string]any{
			"id": note, "type": "Note", "attributedTo": actor, "url": note,
			"content": content.String(), "contentMap": map[string]string{"en": content.String()},
			"to": []string{public}, "cc": []string{followers}, "published": now,
			"tag":        []map[string]string{{"type": "Hashtag", "href": tag, "name": "#benchmark"}},
			"attachment": []any{}, "sensitive": false,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as crieur: "<p>", not "\u003cp\u003e"
	if err := enc.Encode(create); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ldContext is the @context crieur gives its activities.
const ldContext = `["https://www.w3.org/ns/activitystreams","https://w3id.org/security/v1",` +
	`{"manuallyApprovesFollowers":"as:manuallyApprovesFollowers","toot":"http://joinmastodon.org/ns#",` +
	`"discoverable":"toot:discoverable","indexable":"toot:indexable","featured":{"@id":"toot:featured","@type":"@id"},` +
	`"schema":"http://schema.org#","PropertyValue":"schema:PropertyValue","value":"schema:value",` +
	`"Hashtag":"as:Hashtag","sensitive":"as:sensitive"}]`

// fanOut delivers body to every inbox once and returns how many failed.
// Goroutines take inboxes in turn; the signer's pool makes one signature
// per CPU at a time, as in crieur, and a signed request is sent at once.
func fanOut(ctx context.Context, signer *signature.Signer, inboxes []string, body []byte) int {
	digest := signature.BodyDigest(body)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range inFlight * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(inboxes) || ctx.Err() != nil {
					return
				}
				if err := deliver(ctx, signer, inboxes[i], body, digest); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// deliver signs, connects (with TLS for an https inbox), writes the
// request and reads the status line.
func deliver(ctx context.Context, signer *signature.Signer, inbox string, body []byte, digest string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, inbox, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/activity+json")
	if err := signer.SignRequestDigest(req, digest); err != nil {
		return err
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", req.URL.RequestURI(), req.Host, len(body))
	for _, k := range []string{"Content-Type", "Date", "Digest", "Signature"} {
		fmt.Fprintf(&head, "%s: %s\r\n", k, req.Header.Get(k))
	}
	head.WriteString("\r\n")
	head.Write(body)
	d := net.Dialer{Timeout: ioTimeout}
	var conn net.Conn
	if req.URL.Scheme == "https" {
		// The system's roots, which SSL_CERT_FILE sets (fanout -https).
		td := tls.Dialer{NetDialer: &d, Config: &tls.Config{NextProtos: []string{"http/1.1"}}}
		conn, err = td.DialContext(ctx, "tcp", req.URL.Host)
	} else {
		conn, err = d.DialContext(ctx, "tcp", req.URL.Host)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := conn.Write(head.Bytes()); err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(conn, 512).ReadString('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || line[9] != '2' {
		return fmt.Errorf("%s: %q", inbox, line)
	}
	return nil
}
