package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crieur/crieur/storage"
)

// crieur restore puts a backup archive back in the data folder. It never
// runs beside a server, and it changes nothing until the whole archive has
// been read into a temporary folder inside the data folder and checked
// (readArchive, then the database opened and read through, and its key
// record against actor.pem). Then the current files are moved aside, never
// deleted, and the restored ones moved in: renames within one folder.

func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var force bool
	cfg, rest, err := parseConfig("restore", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "restore even when the archive's base URL or handle differs from this configuration's")
	})
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "crieur restore: give one archive, a file or - (standard input): crieur restore [-force] FILE")
		return errUsage
	}
	return restoreArchive(ctx, cfg, rest[0], os.Stdin, force, time.Now(), stdout)
}

// restoreArchive restores the archive src (- is stdin) into cfg's data
// folder and reports to w.
func restoreArchive(ctx context.Context, cfg config, src string, stdin io.Reader, force bool, now time.Time, w io.Writer) (err error) {
	unchanged := "nothing was changed"
	if c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", cfg.sockPath()); err == nil {
		c.Close()
		return fmt.Errorf("crieur serve is running on %s: stop it, then run crieur restore again (%s)", cfg.DataDir, unchanged)
	}
	name, in := "standard input", stdin
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("restore: %w (%s)", err, unchanged)
		}
		defer f.Close()
		name, in = src, f
	}
	// A new machine has no data folder yet: restoring makes one, and
	// takes it away again when it restores nothing.
	if _, serr := os.Stat(cfg.DataDir); errors.Is(serr, fs.ErrNotExist) {
		defer func() {
			if err != nil {
				os.Remove(cfg.DataDir)
			}
		}()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("restore: data folder: %w", err)
	}
	// Held until the end: no crieur opens the database meanwhile.
	release, err := storage.LockFile(cfg.dbPath())
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("%s is in use by a running crieur: stop it, then run crieur restore again (%s)", cfg.dbPath(), unchanged)
	}
	if err != nil {
		return fmt.Errorf("restore: %w (%s)", err, unchanged)
	}
	defer release()

	tmp, err := os.MkdirTemp(cfg.DataDir, ".restore-")
	if err != nil {
		return fmt.Errorf("restore: %w (%s)", err, unchanged)
	}
	defer os.RemoveAll(tmp)
	refuse := func(err error) error {
		return fmt.Errorf("%s cannot be restored: %w (%s)", name, err, unchanged)
	}
	m, err := unpackArchive(in, tmp)
	if err != nil {
		return refuse(err)
	}
	if err := checkRestoredDB(filepath.Join(tmp, archiveDB), m); err != nil {
		return refuse(err)
	}
	if err := checkIdentity(cfg, m, force); err != nil {
		return fmt.Errorf("%s: %w (%s)", name, err, unchanged)
	}

	kept, err := swapIn(cfg.DataDir, tmp, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "restored %s into %s: the backup of %s taken %s UTC, %d followers, key %s\n",
		name, cfg.DataDir, instanceName(m), m.Created.UTC().Format("2006-01-02 15:04:05"), m.Followers, m.KeyFingerprint)
	if len(kept) > 0 {
		fmt.Fprintf(w, "the files it replaced are kept as %s\n", strings.Join(kept, " and "))
	}
	if m.BaseURL != "" && (m.BaseURL != cfg.BaseURL || m.Handle != cfg.Handle) {
		fmt.Fprintf(w, "serve it as that instance: crieur serve -base-url %s -handle %s\n", m.BaseURL, m.Handle)
	}
	return nil
}

// instanceName is the archive's instance, as far as its manifest knows.
func instanceName(m backupManifest) string {
	switch {
	case m.BaseURL == "":
		return "an instance of unrecorded address"
	case m.Handle == "":
		return m.BaseURL
	}
	return fmt.Sprintf("%s (@%s)", m.BaseURL, m.Handle)
}

// unpackArchive reads the archive into dir as crieur.db and actor.pem,
// mode 0600 and synced, and checks it (readArchive).
func unpackArchive(in io.Reader, dir string) (backupManifest, error) {
	db, err := os.OpenFile(filepath.Join(dir, archiveDB), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return backupManifest{}, err
	}
	defer db.Close()
	tw := &trackWriter{w: db}
	m, keyPEM, err := readArchive(in, tw)
	if tw.err != nil {
		return m, fmt.Errorf("writing %s: %w", db.Name(), tw.err)
	}
	if err != nil {
		return m, err
	}
	if err := db.Sync(); err != nil {
		return m, err
	}
	key, err := os.OpenFile(filepath.Join(dir, archiveKey), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return m, err
	}
	defer key.Close()
	if _, err := key.Write(keyPEM); err != nil {
		return m, err
	}
	return m, key.Sync()
}

// checkRestoredDB opens the restored database as crieur serve would
// (storage.Open reads it whole; a newer layout is refused with storage's
// own words) and checks that it belongs to the archive's key.
func checkRestoredDB(path string, m backupManifest) error {
	st, err := storage.Open(path, storage.Options{Timeout: storeOpenTimeout, MustExist: true})
	if err != nil {
		// The temporary path means nothing to the reader: storage's own
		// words follow it.
		msg := strings.Replace(err.Error(), "storage: open "+path+": ", "", 1)
		return fmt.Errorf("the archive's crieur.db does not open: %s", msg)
	}
	defer st.Close()
	recorded, _, err := st.Meta(metaKey)
	if err != nil {
		return err
	}
	if "SHA256:"+recorded != m.KeyFingerprint {
		return fmt.Errorf("the archive's crieur.db belongs to key %s, its actor.pem is key %s: followers' servers would refuse that pair",
			shortPrint(recorded), shortPrint(strings.TrimPrefix(m.KeyFingerprint, "SHA256:")))
	}
	return nil
}

// checkIdentity refuses, without force, an archive of another base URL or
// handle than the ones this configuration sets.
func checkIdentity(cfg config, m backupManifest, force bool) error {
	var diffs []string
	if m.BaseURL != "" && cfg.isGiven("base-url") && !strings.EqualFold(strings.TrimRight(m.BaseURL, "/"), cfg.BaseURL) {
		diffs = append(diffs, fmt.Sprintf("its base URL is %s, this configuration's is %s", m.BaseURL, cfg.BaseURL))
	}
	if m.Handle != "" && cfg.isGiven("handle") && m.Handle != cfg.Handle {
		diffs = append(diffs, fmt.Sprintf("its handle is %s, this configuration's is %s", m.Handle, cfg.Handle))
	}
	if len(diffs) == 0 || force {
		return nil
	}
	return fmt.Errorf("the archive is the backup of another instance (%s): served under this configuration, its identity would break every follower's link to it; "+
		"check -base-url and -handle, or give -force to restore it anyway", strings.Join(diffs, "; "))
}

// swapIn moves dir's crieur.db and actor.pem aside (name.before-restore-
// <UTC time>) and the restored ones from tmp into their place, undoing
// what it did if a rename fails. It returns the names kept aside.
func swapIn(dir, tmp string, now time.Time) ([]string, error) {
	type move struct{ from, to string }
	var done []move
	undo := func(err error) ([]string, error) {
		for i := len(done) - 1; i >= 0; i-- {
			if uerr := os.Rename(done[i].to, done[i].from); uerr != nil {
				return nil, fmt.Errorf("restore: %w; putting %s back failed too (%v): move it back by hand", err, done[i].from, uerr)
			}
		}
		return nil, fmt.Errorf("restore: %w (the previous files are back in place)", err)
	}
	stamp := now.UTC().Format(stampLayout)
	var kept []string
	for _, n := range []string{archiveDB, archiveKey} {
		cur := filepath.Join(dir, n)
		if _, err := os.Lstat(cur); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return undo(err)
		}
		aside := freeName(cur + ".before-restore-" + stamp)
		if err := os.Rename(cur, aside); err != nil {
			return undo(err)
		}
		done = append(done, move{cur, aside})
		kept = append(kept, filepath.Base(aside))
	}
	for _, n := range []string{archiveKey, archiveDB} {
		from, to := filepath.Join(tmp, n), filepath.Join(dir, n)
		if err := os.Rename(from, to); err != nil {
			return undo(err)
		}
		done = append(done, move{from, to})
	}
	syncDir(dir)
	return kept, nil
}

// freeName is path, or path-2, path-3… the first that does not exist: a
// file kept aside is never replaced.
func freeName(path string) string {
	name := path
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-%d", path, i)
	}
}
