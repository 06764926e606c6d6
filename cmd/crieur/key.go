package main

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// The database records which actor key its data belongs to. Followers'
// servers know the bot by that key: a database served with another key
// (actor.pem lost and made again, or taken from another backup) has every
// delivery refused. So crieur refuses to start on a mismatch, and a new
// key comes only from `crieur key rotate`, which records it.
const (
	// metaKey is the SHA-256 (hex) of the public key, PKIX DER.
	metaKey = "actor.key"
	// metaKeyRotating is the new key's fingerprint while a rotation runs:
	// a rotation cut between replacing actor.pem and recording it is
	// finished by the next start instead of refused.
	metaKeyRotating = "actor.key.rotating"
	// metaActorCreated is the actor's creation time (RFC 3339). It was
	// read from actor.pem's mtime, which a rotation changes.
	metaActorCreated = "actor.created"
)

// keyFingerprint is the SHA-256 of the public key, hex.
func keyFingerprint(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// shortPrint is a fingerprint as printed in messages.
func shortPrint(fp string) string {
	if len(fp) > 16 {
		fp = fp[:16]
	}
	return "SHA256:" + fp
}

// openData opens the database and the actor key of cfg's data folder and
// checks that they belong together. The caller closes the store.
func openData(cfg config) (*storage.Store, *rsa.PrivateKey, time.Time, error) {
	keyPath := cfg.keyPath()
	_, err := os.Lstat(keyPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, time.Time{}, fmt.Errorf("actor key %s: %w", keyPath, err)
	}
	// A key is made on the first start, after the database: a key beside
	// a missing or empty database means the data is gone.
	keyExists := err == nil
	store, err := storage.Open(cfg.dbPath(), storage.Options{Timeout: storeOpenTimeout, MustExist: keyExists})
	if err != nil {
		return nil, nil, time.Time{}, dataError(cfg, err)
	}
	key, created, err := bindKey(cfg, store)
	if err != nil {
		store.Close()
		return nil, nil, time.Time{}, err
	}
	return store, key, created, nil
}

// dataError turns what storage.Open refuses into one line that says what
// happened to which file and what to do.
func dataError(cfg config, err error) error {
	db := cfg.dbPath()
	switch {
	case errors.Is(err, storage.ErrLocked):
		return fmt.Errorf("%s is in use by a running crieur: stop it first, or run this command against the running server's data folder", db)
	case errors.Is(err, storage.ErrMissing):
		what := "is gone"
		if _, serr := os.Stat(db); serr == nil {
			what = "is empty"
		}
		return fmt.Errorf("%s %s, but %s shows this instance has run before, and its followers and history were in that file: "+
			"put crieur.db back from your backup (to start over as a new instance on purpose, move actor.pem aside as well)",
			db, what, cfg.keyPath())
	case errors.Is(err, storage.ErrDamaged):
		// What bbolt found follows the sentinel's text.
		msg := err.Error()
		detail := ""
		if i := strings.Index(msg, storage.ErrDamaged.Error()); i >= 0 {
			detail = " " + strings.TrimSpace(msg[i+len(storage.ErrDamaged.Error()):])
		}
		return fmt.Errorf("%s is damaged%s and was left as it is: put crieur.db back from your backup (the one taken with this actor.pem), then start again",
			db, detail)
	}
	return err
}

// bindKey loads the actor key and checks it against the database's record,
// making the key on a first start and recording it where there is no
// record yet (a first start, or a database from before the record).
func bindKey(cfg config, store *storage.Store) (*rsa.PrivateKey, time.Time, error) {
	keyPath := cfg.keyPath()
	recorded, hasRecord, err := store.Meta(metaKey)
	if err != nil {
		return nil, time.Time{}, err
	}
	hasRecord = hasRecord && recorded != ""
	if _, err := os.Lstat(keyPath); errors.Is(err, fs.ErrNotExist) {
		past := hasRecord
		if !past {
			if past, err = store.HasPast(); err != nil {
				return nil, time.Time{}, err
			}
		}
		if past {
			what := "it has followers or history"
			if hasRecord {
				what = "its key is " + shortPrint(recorded)
			}
			return nil, time.Time{}, fmt.Errorf("%s is missing, but %s belongs to an actor that has run (%s), and its followers' servers refuse any other key: "+
				"put actor.pem back from your backup, or run `crieur key rotate` to make a new key and announce it",
				keyPath, cfg.dbPath(), what)
		}
	}
	key, err := signature.LoadOrCreateKey(keyPath)
	if err != nil {
		return nil, time.Time{}, err
	}
	fp, err := keyFingerprint(&key.PublicKey)
	if err != nil {
		return nil, time.Time{}, err
	}
	switch {
	case !hasRecord:
		if err := store.SetMeta(metaKey, fp); err != nil {
			return nil, time.Time{}, err
		}
	case recorded != fp:
		rotating, _, err := store.Meta(metaKeyRotating)
		if err != nil {
			return nil, time.Time{}, err
		}
		if rotating != fp {
			return nil, time.Time{}, fmt.Errorf("%s holds key %s, but %s belongs to key %s, the one followers' servers know: "+
				"put back the actor.pem of this database from your backup, or run `crieur key rotate` to make a new key and announce it",
				keyPath, shortPrint(fp), cfg.dbPath(), shortPrint(recorded))
		}
		// A rotation stopped after replacing actor.pem: finish it.
		if err := recordKey(store, fp); err != nil {
			return nil, time.Time{}, err
		}
	}
	created, err := actorCreated(store, keyPath)
	if err != nil {
		return nil, time.Time{}, err
	}
	return key, created, nil
}

// recordKey makes fp the database's key and ends a rotation.
func recordKey(store *storage.Store, fp string) error {
	if err := store.SetMeta(metaKey, fp); err != nil {
		return err
	}
	return store.SetMeta(metaKeyRotating, "")
}

// actorCreated is the actor's creation time: recorded, else the key file's
// age (the key is made on the first start), then recorded so that a
// rotation does not change it.
func actorCreated(store *storage.Store, keyPath string) (time.Time, error) {
	if v, ok, err := store.Meta(metaActorCreated); err != nil {
		return time.Time{}, err
	} else if ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, nil
		}
	}
	created := time.Now().UTC()
	if st, err := os.Stat(keyPath); err == nil {
		created = st.ModTime().UTC()
	}
	if err := store.SetMeta(metaActorCreated, created.Format(time.RFC3339Nano)); err != nil {
		return time.Time{}, err
	}
	return created, nil
}

const keyUsage = `crieur key show     print the actor key's fingerprint and the one the database records
crieur key rotate   make a new actor key (crieur serve must be stopped); the old one is kept
                    beside it, and the next crieur serve announces the new key to followers
`

func runKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("key", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (rest[0] != "rotate" && rest[0] != "show") {
		fmt.Fprint(stderr, keyUsage)
		return errUsage
	}
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no data folder %s: give -data or CRIEUR_DATA as crieur serve has them", cfg.DataDir)
	}
	// A running server keeps signing with the key it loaded: it must not
	// run while the key changes under it.
	if c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", cfg.sockPath()); err == nil {
		c.Close()
		if rest[0] == "show" {
			return runAdmin(ctx, cfg, "key-show", nil, stdout, stderr)
		}
		return fmt.Errorf("crieur serve is running on %s: stop it first, then run crieur key %s", cfg.DataDir, rest[0])
	}
	if rest[0] == "show" {
		// Not through openApp, which refuses the very mismatch this
		// command is there to show.
		store, err := storage.Open(cfg.dbPath(), storage.Options{Timeout: storeOpenTimeout, MustExist: true})
		if err != nil {
			return dataError(cfg, err)
		}
		defer store.Close()
		return keyShow(cfg, store, stdout)
	}
	return keyRotate(cfg, time.Now(), stdout)
}

// opKeyShow is crieur key show against a running server.
func opKeyShow(_ context.Context, a *app, _ []string, w io.Writer) error {
	return keyShow(a.cfg, a.store, w)
}

// keyShow prints the fingerprint of actor.pem and the one the database
// records.
func keyShow(cfg config, store *storage.Store, w io.Writer) error {
	recorded, _, err := store.Meta(metaKey)
	if err != nil {
		return err
	}
	file := "missing"
	if _, err := os.Lstat(cfg.keyPath()); err == nil {
		// The file exists: LoadOrCreateKey only loads it.
		key, err := signature.LoadOrCreateKey(cfg.keyPath())
		if err != nil {
			return err
		}
		fp, err := keyFingerprint(&key.PublicKey)
		if err != nil {
			return err
		}
		file = "SHA256:" + fp
	}
	if recorded == "" {
		recorded = "none yet"
	} else {
		recorded = "SHA256:" + recorded
	}
	fmt.Fprintf(w, "%s: %s\n%s records: %s\n", cfg.keyPath(), file, cfg.dbPath(), recorded)
	return nil
}

// keyRotate replaces actor.pem with a new key, keeps the old file beside
// it, and records the new fingerprint. The order makes any interruption
// safe: the new key is written beside and announced to the database as
// rotating before it replaces actor.pem (rename is atomic), and a start
// after a cut finishes the rotation (see bindKey).
func keyRotate(cfg config, now time.Time, w io.Writer) error {
	_, kerr := os.Lstat(cfg.keyPath())
	if info, err := os.Stat(cfg.dbPath()); errors.Is(kerr, fs.ErrNotExist) && (err != nil || info.Size() == 0) {
		return fmt.Errorf("nothing to rotate in %s: no database and no key yet; crieur serve makes the key on its first start", cfg.DataDir)
	}
	store, err := storage.Open(cfg.dbPath(), storage.Options{Timeout: storeOpenTimeout, MustExist: true})
	if err != nil {
		return dataError(cfg, err)
	}
	defer store.Close()
	keyPath := cfg.keyPath()
	newPath := keyPath + ".new"
	if err := os.Remove(newPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("key rotate: %w", err)
	}
	key, err := signature.LoadOrCreateKey(newPath)
	if err != nil {
		return fmt.Errorf("key rotate: %w", err)
	}
	fp, err := keyFingerprint(&key.PublicKey)
	if err != nil {
		return err
	}
	if _, err := actorCreated(store, keyPath); err != nil {
		return err
	}
	if err := store.SetMeta(metaKeyRotating, fp); err != nil {
		return err
	}
	kept := ""
	if _, err := os.Lstat(keyPath); err == nil {
		kept = fmt.Sprintf("%s.old-%s", keyPath, now.UTC().Format("20060102-150405"))
		// A link, not a copy: the old key stays whole and private.
		if err := os.Link(keyPath, kept); err != nil {
			return fmt.Errorf("key rotate: keep the old key: %w (actor.pem is unchanged; run crieur key rotate again)", err)
		}
	}
	if err := os.Rename(newPath, keyPath); err != nil {
		return fmt.Errorf("key rotate: %w (actor.pem is unchanged; run crieur key rotate again)", err)
	}
	if d, err := os.Open(filepath.Dir(keyPath)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if err := recordKey(store, fp); err != nil {
		return err
	}
	fmt.Fprintf(w, "new actor key %s in %s\n", shortPrint(fp), keyPath)
	if kept != "" {
		fmt.Fprintf(w, "the old key is kept in %s\n", kept)
	}
	fmt.Fprintln(w, "the next crieur serve sends followers' servers an Update of the actor signed with the new key;")
	fmt.Fprintln(w, "Mastodon fetches the new key when that signature fails with the old one, GoToSocial only after")
	fmt.Fprintln(w, "its admin expires the keys of this domain (see README, \"Rotating the actor key\")")
	return nil
}
