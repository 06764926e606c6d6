package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// A backup is one gzip'd tar archive of the data folder: actor.pem, then
// crieur.db as one read transaction saw it (storage.Store.Backup), then
// backup.json, the manifest, which carries the copy's size and SHA-256 and
// so comes last. A running crieur serve streams it over the admin socket
// (GET /backup) and goes on serving; without one, the command reads the
// data folder itself. Either way the command checks the whole archive as
// it arrives, writes it to a temporary file beside its name and renames it
// into place only then: never half an archive under that name. crieur
// restore checks an archive fully before it changes anything.

const (
	// backupFormat is the archive layout's version, in backup.json.
	backupFormat = 1
	// The archive's entries.
	archiveDB       = "crieur.db"
	archiveKey      = "actor.pem"
	archiveManifest = "backup.json"
	// Bounds on the small entries: an actor key is about 1.7 KiB.
	maxKeyEntry      = 64 << 10
	maxManifestEntry = 1 << 20
	// backupStall ends a backup whose reader takes longer than this to
	// accept one write: the stream's read transaction must not outlive
	// it (see storage.Store.Backup).
	backupStall = adminTimeout
	// stampLayout is the UTC time in the names of archives and of the
	// files a restore keeps aside.
	stampLayout = "20060102-150405"
	// The identity crieur serve last ran with, recorded at each start: a
	// backup names the instance its data belongs to, whatever
	// configuration the backup command itself was given.
	metaBaseURL = "instance.base_url"
	metaHandle  = "instance.handle"
)

// backupManifest is backup.json.
type backupManifest struct {
	Format        int       `json:"format"`
	CrieurVersion string    `json:"crieur_version,omitempty"`
	Created       time.Time `json:"created"`
	BaseURL       string    `json:"base_url"`
	Handle        string    `json:"handle"`
	// KeyFingerprint is actor.pem's, as crieur key show prints it.
	KeyFingerprint string `json:"key_fingerprint"`
	// Schema is crieur.db's storage layout version.
	Schema    int    `json:"schema"`
	Followers int    `json:"followers"`
	DBSize    int64  `json:"db_size"`
	DBSHA256  string `json:"db_sha256"`
}

// recordIdentity keeps the base URL and handle crieur serve runs with in
// the database, for the backups to name.
func recordIdentity(store *storage.Store, cfg config) error {
	for _, kv := range [][2]string{{metaBaseURL, cfg.BaseURL}, {metaHandle, cfg.Handle}} {
		cur, _, err := store.Meta(kv[0])
		if err != nil {
			return err
		}
		if cur != kv[1] {
			if err := store.SetMeta(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// readActorKey reads actor.pem and its fingerprint, without ever making a
// key.
func readActorKey(path string) ([]byte, string, error) {
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("%s is missing: there is no actor key to back up (crieur serve makes it on its first start)", path)
	case err != nil:
		return nil, "", err
	case !info.Mode().IsRegular():
		return nil, "", fmt.Errorf("%s is not a regular file", path)
	case info.Size() > maxKeyEntry:
		return nil, "", fmt.Errorf("%s is %d bytes: not an actor key", path, info.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	key, err := signature.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	fp, err := keyFingerprint(&key.PublicKey)
	if err != nil {
		return nil, "", err
	}
	return data, fp, nil
}

// writeArchive writes the backup archive of cfg's data folder, whose
// database is store, to w. start runs once the key and the database are
// known to belong together, before the first byte: an error returned
// before start ran means nothing was written.
func writeArchive(cfg config, store *storage.Store, now time.Time, w io.Writer, start func()) (backupManifest, error) {
	keyPEM, fp, err := readActorKey(cfg.keyPath())
	if err != nil {
		return backupManifest{}, err
	}
	now = now.UTC().Truncate(time.Second)
	m := backupManifest{Format: backupFormat, CrieurVersion: version, Created: now, KeyFingerprint: "SHA256:" + fp}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	sum := sha256.New()
	entry := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: now})
	}
	_, err = store.Backup(func(info storage.BackupInfo) (io.Writer, error) {
		recorded, _ := info.Meta(metaKey)
		switch {
		case recorded == "":
			return nil, fmt.Errorf("%s records no actor key yet: crieur serve has not run on %s", cfg.dbPath(), cfg.DataDir)
		case recorded != fp:
			return nil, fmt.Errorf("%s holds key %s, but %s belongs to key %s: this pair would not serve, so it is not backed up (see crieur key show)",
				cfg.keyPath(), shortPrint(fp), cfg.dbPath(), shortPrint(recorded))
		}
		identity := func(key, configured, flag string) string {
			if v, ok := info.Meta(key); ok && v != "" {
				return v
			}
			if cfg.isGiven(flag) {
				return configured
			}
			return ""
		}
		m.BaseURL = identity(metaBaseURL, cfg.BaseURL, "base-url")
		m.Handle = identity(metaHandle, cfg.Handle, "handle")
		m.Schema, m.Followers, m.DBSize = info.Schema, info.Followers, info.Size
		start()
		if err := entry(archiveKey, int64(len(keyPEM))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(keyPEM); err != nil {
			return nil, err
		}
		if err := entry(archiveDB, info.Size); err != nil {
			return nil, err
		}
		return io.MultiWriter(tw, sum), nil
	})
	if err != nil {
		return m, err
	}
	m.DBSHA256 = hex.EncodeToString(sum.Sum(nil))
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	manifest = append(manifest, '\n')
	if err := entry(archiveManifest, int64(len(manifest))); err != nil {
		return m, err
	}
	if _, err := tw.Write(manifest); err != nil {
		return m, err
	}
	if err := tw.Close(); err != nil {
		return m, err
	}
	return m, gz.Close()
}

// readArchive reads a backup archive from r to its very end, writing
// crieur.db's bytes to db, and checks all that the archive can prove by
// itself: the stream is whole (tar's end, gzip's length and checksum),
// backup.json is there and of a known format, crieur.db and actor.pem are
// there once each, crieur.db has the manifest's size and SHA-256, and
// actor.pem is a key with the manifest's fingerprint. It returns the
// manifest and actor.pem's bytes.
func readArchive(r io.Reader, db io.Writer) (backupManifest, []byte, error) {
	var m backupManifest
	// gzip reads through br byte by byte, so what follows its stream
	// stays in br, to be found below.
	br := bufio.NewReader(r)
	gz, err := gzip.NewReader(br)
	if err != nil {
		return m, nil, archiveError(err)
	}
	gz.Multistream(false)
	tr := tar.NewReader(gz)
	seen := map[string]bool{}
	var keyPEM, manifest []byte
	var dbSize int64
	sum := sha256.New()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, nil, archiveError(err)
		}
		if seen[hdr.Name] {
			return m, nil, fmt.Errorf("the archive holds %q twice: it is not a crieur backup", hdr.Name)
		}
		seen[hdr.Name] = true
		if hdr.Typeflag != tar.TypeReg {
			return m, nil, fmt.Errorf("the archive's %q is not a plain file: it is not a crieur backup", hdr.Name)
		}
		small := func(limit int64) ([]byte, error) {
			if hdr.Size > limit {
				return nil, fmt.Errorf("the archive's %s is %d bytes, more than a crieur backup's (%d at most)", hdr.Name, hdr.Size, limit)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, archiveError(err)
			}
			return b, nil
		}
		switch hdr.Name {
		case archiveKey:
			keyPEM, err = small(maxKeyEntry)
		case archiveManifest:
			manifest, err = small(maxManifestEntry)
		case archiveDB:
			dbSize, err = io.Copy(io.MultiWriter(db, sum), tr)
			if err != nil {
				err = archiveError(err)
			}
		default:
			err = fmt.Errorf("the archive holds %q, which a crieur backup does not: it is not one", hdr.Name)
		}
		if err != nil {
			return m, nil, err
		}
	}
	// The rest of the stream: gzip checks its length and checksum at
	// its end.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return m, nil, archiveError(err)
	}
	if rest, err := io.Copy(io.Discard, br); err != nil {
		return m, nil, archiveError(err)
	} else if rest > 0 {
		return m, nil, fmt.Errorf("%d bytes follow the end of the archive: it is damaged", rest)
	}
	if manifest == nil {
		return m, nil, errors.New("the archive has no backup.json: it is not a crieur backup")
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return m, nil, fmt.Errorf("the archive's backup.json is not readable: %v", err)
	}
	if m.Format != backupFormat {
		return m, nil, fmt.Errorf("the archive's backup.json has format version %d, and this crieur reads version %d: use the crieur that made it, or a newer one",
			m.Format, backupFormat)
	}
	for _, name := range []string{archiveDB, archiveKey} {
		if !seen[name] {
			return m, nil, fmt.Errorf("the archive has no %s", name)
		}
	}
	if got := hex.EncodeToString(sum.Sum(nil)); dbSize != m.DBSize || got != m.DBSHA256 {
		return m, nil, fmt.Errorf("the archive's crieur.db (%d bytes, SHA-256 %.16s…) is not the one backup.json describes (%d bytes, %.16s…): the archive is damaged",
			dbSize, got, m.DBSize, m.DBSHA256)
	}
	key, err := signature.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return m, nil, fmt.Errorf("the archive's actor.pem is not a usable key: %v", err)
	}
	fp, err := keyFingerprint(&key.PublicKey)
	if err != nil {
		return m, nil, err
	}
	if "SHA256:"+fp != m.KeyFingerprint {
		return m, nil, fmt.Errorf("the archive's actor.pem is key %s, but backup.json names key %s: the archive is damaged or was altered",
			shortPrint(fp), shortPrint(strings.TrimPrefix(m.KeyFingerprint, "SHA256:")))
	}
	return m, keyPEM, nil
}

// archiveError words what gzip and tar say of a broken archive.
func archiveError(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("the archive is cut short")
	case errors.Is(err, gzip.ErrHeader):
		return errors.New("it is not a gzip'd archive")
	case errors.Is(err, gzip.ErrChecksum):
		return errors.New("the archive is damaged (gzip checksum)")
	case errors.Is(err, tar.ErrHeader):
		return errors.New("the archive is damaged (not a tar archive inside the gzip)")
	}
	return fmt.Errorf("reading the archive: %w", err)
}

// trackWriter counts what it passes on and keeps w's first error.
type trackWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (t *trackWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.n += int64(n)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// receiveArchive copies an archive from r to dst as it reads and checks
// it. It returns the manifest and the bytes written.
func receiveArchive(r io.Reader, dst io.Writer) (backupManifest, int64, error) {
	tw := &trackWriter{w: dst}
	// readArchive reads r to its end: dst gets every byte it checked.
	m, _, err := readArchive(io.TeeReader(r, tw), io.Discard)
	switch {
	case tw.err != nil:
		return m, tw.n, tw.err
	case err != nil:
		return m, tw.n, fmt.Errorf("the archive received is not whole: %w", err)
	}
	return m, tw.n, nil
}

// errReceiverGone ends a local backup whose receiver stopped first.
var errReceiverGone = errors.New("backup: the archive's receiver stopped")

// takeBackup writes the backup archive of cfg's data folder to dst: the
// running server's, streamed over the admin socket, or when no server
// answers, made from the data folder.
func takeBackup(ctx context.Context, cfg config, dst io.Writer) (backupManifest, int64, error) {
	var dialed atomic.Bool
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", cfg.sockPath())
			if err != nil {
				return nil, err
			}
			dialed.Store(true)
			return &idleConn{Conn: c, idle: adminTimeout}, nil
		},
		// No limit on the whole exchange (a large database takes what
		// it takes), but on the wait for each part of it.
		ResponseHeaderTimeout: adminTimeout,
		DisableCompression:    true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://crieur/backup", nil)
	if err != nil {
		return backupManifest{}, 0, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return backupManifest{}, 0, fmt.Errorf("the crieur serve running on %s is older than this crieur and takes no backup: stop it, or upgrade it", cfg.DataDir)
		}
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return backupManifest{}, 0, errors.New(strings.TrimSpace(string(msg)))
		}
		return receiveArchive(resp.Body, dst)
	}
	if dialed.Load() {
		return backupManifest{}, 0, fmt.Errorf("the running crieur serve on %s did not send the backup: %w", cfg.DataDir, err)
	}
	return localBackup(cfg, dst)
}

// localBackup is takeBackup without a server: it opens the data folder
// itself, and, like the other admin commands, never makes it.
func localBackup(cfg config, dst io.Writer) (backupManifest, int64, error) {
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return backupManifest{}, 0, fmt.Errorf("no data folder %s, and no server answers there: give -data or CRIEUR_DATA as crieur serve has them", cfg.DataDir)
	}
	_, dbErr := os.Stat(cfg.dbPath())
	_, keyErr := os.Lstat(cfg.keyPath())
	if errors.Is(dbErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist) {
		return backupManifest{}, 0, fmt.Errorf("nothing to back up in %s: no crieur.db, no actor.pem (crieur serve makes them on its first start)", cfg.DataDir)
	}
	store, err := storage.Open(cfg.dbPath(), storage.Options{Timeout: storeOpenTimeout, MustExist: true})
	if err != nil {
		return backupManifest{}, 0, dataError(cfg, err)
	}
	defer store.Close()
	// The archive goes through the same checks as a server's.
	pr, pw := io.Pipe()
	produced := make(chan error, 1)
	go func() {
		_, err := writeArchive(cfg, store, time.Now(), pw, func() {})
		pw.CloseWithError(err)
		produced <- err
	}()
	m, n, err := receiveArchive(pr, dst)
	pr.CloseWithError(errReceiverGone)
	if perr := <-produced; perr != nil && !errors.Is(perr, errReceiverGone) {
		return m, n, perr
	}
	return m, n, err
}

// idleConn gives up a read that waits longer than idle.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// writeFileAtomic makes path with what fill writes, mode 0600: in a
// temporary file beside it, synced, then renamed into place, so path never
// holds half of it. On an error nothing is left.
func writeFileAtomic(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes the folder's new entries durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// humanSize writes n bytes for people.
func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var out string
	cfg, rest, err := parseConfig("backup", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "write the archive to `FILE` (default: crieur-backup-<UTC time>.tar.gz here; a folder: that name in it; -: standard output)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		fmt.Fprintln(stderr, "crieur backup: give no words, only flags: crieur backup [-o FILE|-]")
		return errUsage
	}
	if out == "-" {
		m, n, err := takeBackup(ctx, cfg, stdout)
		if err != nil {
			return fmt.Errorf("backup failed, what went to standard output is not a whole archive: %w", err)
		}
		fmt.Fprintln(stderr, backupLine("standard output", n, m))
		return nil
	}
	name := "crieur-backup-" + time.Now().UTC().Format(stampLayout) + ".tar.gz"
	if out == "" {
		out = name
	} else if info, err := os.Stat(out); err == nil && info.IsDir() {
		out = filepath.Join(out, name)
	}
	var m backupManifest
	var n int64
	err = writeFileAtomic(out, func(w io.Writer) error {
		var err error
		m, n, err = takeBackup(ctx, cfg, w)
		return err
	})
	if err != nil {
		return fmt.Errorf("backup failed, nothing was written to %s: %w", out, err)
	}
	fmt.Fprintln(stdout, backupLine(out, n, m))
	return nil
}

// backupLine is what crieur backup prints: where, how large, and what.
func backupLine(where string, n int64, m backupManifest) string {
	return fmt.Sprintf("backup written to %s: %s, %d followers, key %s", where, humanSize(n), m.Followers, m.KeyFingerprint)
}

// streamWriter writes a streamed admin response. It gives up when the
// reader takes longer than backupStall to accept a write, or at once when
// ctx ends (the server stopping), even in the middle of a write: a
// backup's read transaction must end with the stream.
type streamWriter struct {
	ctx  context.Context
	w    io.Writer
	rc   *http.ResponseController
	mu   sync.Mutex
	stop func() bool
}

func newStreamWriter(ctx context.Context, w http.ResponseWriter) *streamWriter {
	s := &streamWriter{ctx: ctx, w: w, rc: http.NewResponseController(w)}
	s.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = s.rc.SetWriteDeadline(time.Now())
	})
	return s
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return 0, context.Cause(s.ctx)
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(backupStall))
	s.mu.Unlock()
	return s.w.Write(p)
}

func (s *streamWriter) close() { s.stop() }

var errServerStopping = errors.New("crieur serve is stopping")

// serveBackup answers GET /backup on the admin socket with the archive. A
// refusal (no key, a mismatched pair) is an error status before any byte;
// a failure after the first byte cuts the connection, so the client never
// takes a cut stream for a whole archive. stop ends with the server.
func serveBackup(stop context.Context, a *app, w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	defer context.AfterFunc(stop, func() { cancel(errServerStopping) })()
	sw := newStreamWriter(ctx, w)
	defer sw.close()
	started := false
	m, err := writeArchive(a.cfg, a.store, time.Now(), sw, func() {
		w.Header().Set("Content-Type", "application/gzip")
		w.WriteHeader(http.StatusOK)
		started = true
	})
	if err == nil {
		a.log.Info("backup taken", "followers", m.Followers, "db_bytes", m.DBSize)
		return
	}
	a.log.Warn("backup failed", "err", err)
	if !started {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	panic(http.ErrAbortHandler)
}
