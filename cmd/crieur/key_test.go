package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

func (in *instance) keyPath() string { return filepath.Join(in.data, "actor.pem") }
func (in *instance) dbPath() string  { return filepath.Join(in.data, "crieur.db") }

// followedInstance is a started instance with one follower, alice, whose
// server has fetched and cached the actor key.
func followedInstance(t *testing.T) (*instance, *remote) {
	t.Helper()
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.start()
	r := newRemote(t)
	if resp := r.send(in.actorID()+"/inbox", "alice", follow(r, in, "alice"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow: %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept", ofType("Accept"))
	return in, r
}

// serveOnce runs crieur serve expecting it to refuse to start.
func (in *instance) serveOnce() error {
	in.t.Helper()
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve"}, in.env(), &out, &out)
	if err == nil {
		in.t.Fatalf("crieur serve started:\n%s", out.String())
	}
	return err
}

func loadKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	k, err := signature.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// With actor.pem lost, or replaced by another key, crieur used to make a
// key and announce it, and every follower's server refused the bot from
// then on. It now refuses to start, says which file and what to do, and
// changes nothing; the key put back, it starts with its followers.
func TestStartRefusesALostOrForeignKey(t *testing.T) {
	in, _ := followedInstance(t)
	in.stop()
	keyPath := in.keyPath()
	orig, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(keyPath, keyPath+".away"); err != nil {
		t.Fatal(err)
	}
	oneLine := func(what string, err error, words ...string) {
		t.Helper()
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: the error is more than one line: %q", what, msg)
		}
		for _, w := range words {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: the error does not say %q: %s", what, w, msg)
			}
		}
	}
	err = in.serveOnce()
	oneLine("missing key", err, keyPath, "missing", "backup", "crieur key rotate")
	if _, serr := os.Stat(keyPath); !errors.Is(serr, fs.ErrNotExist) {
		t.Fatalf("crieur made a new %s: %v", keyPath, serr)
	}
	if _, err := in.admin("followers"); err == nil {
		t.Errorf("crieur followers ran without the key")
	}

	foreign := loadKey(t, keyPath) // made here: another key
	err = in.serveOnce()
	oneLine("foreign key", err, keyPath, in.dbPath(), "backup", "crieur key rotate")
	if k := loadKey(t, keyPath); !k.Equal(foreign) {
		t.Fatalf("crieur replaced the foreign key file")
	}

	if err := os.WriteFile(keyPath, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(keyPath + ".away")
	in.start()
	if n := in.followerCount(); n != 1 {
		t.Errorf("followers with the key put back: %d, want 1", n)
	}
}

// crieur key rotate makes a new key, keeps the old one beside it and
// records the new one; the next start sends followers an Update of the
// actor signed with the new key, which a server holding the old key
// accepts after fetching the key again (as Mastodon does). The actor's
// creation date does not move.
func TestKeyRotateAnnouncesTheNewKey(t *testing.T) {
	in, r := followedInstance(t)
	_, before := in.getJSON(in.actorID())
	oldKey := loadKey(t, in.keyPath())
	oldFile, err := os.ReadFile(in.keyPath())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := in.admin("key", "rotate"); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("key rotate while serving: %v\n%s", err, out)
	}
	in.stop()
	out, err := in.admin("key", "rotate")
	if err != nil {
		t.Fatalf("key rotate: %v\n%s", err, out)
	}
	kept, _ := filepath.Glob(in.keyPath() + ".old-*")
	if len(kept) != 1 {
		t.Fatalf("old keys kept: %v\n%s", kept, out)
	}
	if b, err := os.ReadFile(kept[0]); err != nil || !bytes.Equal(b, oldFile) {
		t.Errorf("%s does not hold the old key: %v", kept[0], err)
	}
	if info, err := os.Stat(kept[0]); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v", kept[0], err, info.Mode())
	}
	newKey := loadKey(t, in.keyPath())
	if newKey.Equal(oldKey) {
		t.Fatalf("key rotate kept the same key")
	}
	// key show: the file's fingerprint, then the recorded one, the same.
	keyShows := func(when string) {
		t.Helper()
		out, err := in.admin("key", "show")
		if err != nil {
			t.Errorf("key show %s: %v\n%s", when, err, out)
		} else if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
			!strings.Contains(lines[0], "SHA256:") || lastField(lines[0]) != lastField(lines[1]) {
			t.Errorf("key show %s:\n%s", when, out)
		}
	}
	keyShows("after the rotation")

	in.start()
	keyShows("through the running server")
	isProfile := func(d received) bool {
		obj, _ := d.Activity["object"].(map[string]any)
		return d.Activity["type"] == "Update" && obj["type"] == "Service"
	}
	// The remote records a delivery only once its signature verified.
	upd := r.waitFor(15*time.Second, "Update of the actor", isProfile)
	r.mu.Lock()
	cached, refetched := r.keys[upd.KeyID], r.refetched
	r.mu.Unlock()
	if refetched != 1 || cached == nil || !cached.Equal(&newKey.PublicKey) {
		t.Errorf("the remote fetched the key again %d times, and holds the new key: %v", refetched, cached != nil && cached.Equal(&newKey.PublicKey))
	}
	obj := upd.Activity["object"].(map[string]any)
	pk, _ := obj["publicKey"].(map[string]any)
	newPEM, _ := signature.PublicKeyPEM(&newKey.PublicKey)
	if pk["publicKeyPem"] != newPEM {
		t.Errorf("the Update carries the key %v, want the new one", pk["publicKeyPem"])
	}
	if obj["published"] != before["published"] {
		t.Errorf("the actor's published moved from %v to %v", before["published"], obj["published"])
	}
	// Deliveries after the Update are signed with the new key too.
	in.writePost("b.en.md", post("b", "en", "B", "2024-02-02", "B."))
	r.waitFor(10*time.Second, "Create", ofType("Create"))
}

// A rotation cut after actor.pem was replaced, before the database
// recorded the new key, is finished by the next start, not refused; a key
// that is neither the recorded one nor the one being rotated to still is.
func TestKeyRotationCutShortIsFinished(t *testing.T) {
	in := newInstance(t, nil)
	in.seedData(func(st *storage.Store) {
		if err := st.PutFollower(storage.Follower{ActorID: "https://a.example/users/x", Inbox: "https://a.example/inbox",
			Status: storage.FollowerAccepted}); err != nil {
			t.Fatal(err)
		}
	})
	if out, err := in.admin("followers"); err != nil { // records the key
		t.Fatalf("%v\n%s", err, out)
	}
	meta := func(key, value string) string {
		t.Helper()
		st, err := storage.Open(in.dbPath(), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if value != "" {
			if err := st.SetMeta(key, value); err != nil {
				t.Fatal(err)
			}
		}
		v, _, err := st.Meta(key)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	nextPath := filepath.Join(t.TempDir(), "next.pem")
	fp, _ := keyFingerprint(&loadKey(t, nextPath).PublicKey)
	meta(metaKeyRotating, fp)
	data, err := os.ReadFile(nextPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.keyPath(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := in.admin("followers"); err != nil {
		t.Fatalf("start after a rotation cut short: %v\n%s", err, out)
	}
	if got, rot := meta(metaKey, ""), meta(metaKeyRotating, ""); got != fp || rot != "" {
		t.Errorf("after the start: recorded %s, rotating %q; want %s and none", got, rot, fp)
	}
	os.Remove(in.keyPath())
	loadKey(t, in.keyPath()) // another key
	if _, err := in.admin("followers"); err == nil {
		t.Errorf("a third key was taken")
	}
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}
