package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/storage"
)

// archiveFiles reads a backup archive with the standard library alone:
// its entries by name, in order.
func archiveFiles(t *testing.T, data []byte) (map[string][]byte, []string) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var order []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		if hdr.Mode&0o077 != 0 {
			t.Errorf("archive entry %s has mode %o", hdr.Name, hdr.Mode)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("archive %s: %v", hdr.Name, err)
		}
		files[hdr.Name] = b
		order = append(order, hdr.Name)
	}
	return files, order
}

// makeArchive writes files as a gzip'd tar, in the order of a backup.
func makeArchive(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	rank := map[string]int{archiveKey: 0, archiveDB: 1, archiveManifest: 2}
	sort.Slice(names, func(i, j int) bool { return rank[names[i]] < rank[names[j]] })
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(files[n])), Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func readManifest(t *testing.T, files map[string][]byte) backupManifest {
	t.Helper()
	var m backupManifest
	if err := json.Unmarshal(files[archiveManifest], &m); err != nil {
		t.Fatalf("backup.json: %v\n%s", err, files[archiveManifest])
	}
	return m
}

// setManifest changes backup.json's fields.
func setManifest(t *testing.T, files map[string][]byte, set map[string]any) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(files[archiveManifest], &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = v
	}
	files[archiveManifest], _ = json.Marshal(m)
}

// withDB puts db in the archive and describes it in backup.json, as a
// backup of that file would.
func withDB(t *testing.T, files map[string][]byte, db []byte) {
	t.Helper()
	sum := sha256.Sum256(db)
	files[archiveDB] = db
	setManifest(t, files, map[string]any{"db_size": len(db), "db_sha256": hex.EncodeToString(sum[:])})
}

func copyFiles(files map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range files {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// folderState is every file of a folder (the admin socket aside) with its
// bytes: a refused restore must leave it byte for byte.
func folderState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "admin.sock" {
			continue
		}
		if e.IsDir() {
			state[e.Name()] = "folder"
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		state[e.Name()] = string(b)
	}
	return state
}

func sameState(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for name, b := range before {
		if a, ok := after[name]; !ok {
			t.Errorf("%s: %s is gone", what, name)
		} else if a != b {
			t.Errorf("%s: %s changed", what, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s: %s appeared", what, name)
		}
	}
}

func checkPrivate(t *testing.T, path string) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %o, want 600", path, perm)
	}
}

// keyShown is the actor.pem fingerprint crieur key show prints.
func keyShown(t *testing.T, in *instance) string {
	t.Helper()
	out, err := in.admin("key", "show")
	if err != nil {
		t.Fatalf("key show: %v\n%s", err, out)
	}
	first, _, _ := strings.Cut(out, "\n")
	_, fp, ok := strings.Cut(first, ": ")
	if !ok || !strings.HasPrefix(fp, "SHA256:") {
		t.Fatalf("key show: %q", out)
	}
	return fp
}

// takeArchive backs up in's data folder through the command and returns
// the archive's bytes.
func takeArchive(t *testing.T, in *instance) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.tar.gz")
	if out, err := in.admin("backup", "-o", path); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// inAll reads the count crieur followers ends with.
func inAll(t *testing.T, out string) int {
	t.Helper()
	var n int
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if _, err := fmt.Sscanf(lines[len(lines)-1], "%d in all", &n); err != nil {
		t.Fatalf("followers: %v\n%s", err, out)
	}
	return n
}

// A backup of a running server, taken while Follows keep arriving, is one
// moment: it restores into a fresh data folder, crieur serve starts on it
// with the key followers know, and it has every follower and article the
// server had when the backup began, and exactly as many followers as its
// manifest says.
func TestBackupWhileServingRestoresElsewhere(t *testing.T) {
	posts := map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")}
	in := newInstance(t, posts)
	in.start()
	r := newRemote(t)
	var before []string
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("pre%d", i)
		if resp := r.send(in.actorID()+"/inbox", name, follow(r, in, name), nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("Follow: %d", resp.StatusCode)
		}
		before = append(before, r.actorID(name))
	}
	b := post("b", "en", "B", "2024-02-02", "B.")
	in.writePost("b.en.md", b)
	posts["b.en.md"] = b
	r.waitFor(10*time.Second, "Create", ofType("Create"))

	// Follows arrive before, during and after the backup.
	var live atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("live%d-%d", g, i)
				if resp, err := r.trySend(in.actorID()+"/inbox", name, follow(r, in, name), time.Now(), nil); err == nil && resp.StatusCode == http.StatusAccepted {
					live.Add(1)
				}
			}
		}()
	}
	for live.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	path := filepath.Join(t.TempDir(), "b.tar.gz")
	out, err := in.admin("backup", "-o", path)
	during := live.Load()
	for live.Load() < during+20 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	checkPrivate(t, path)
	data, _ := os.ReadFile(path)
	files, order := archiveFiles(t, data)
	if strings.Join(order, " ") != "actor.pem crieur.db backup.json" {
		t.Errorf("archive entries %v", order)
	}
	m := readManifest(t, files)
	fp := keyShown(t, in)
	if m.KeyFingerprint != fp {
		t.Errorf("manifest key %s, crieur key show %s", m.KeyFingerprint, fp)
	}
	if m.Format != backupFormat || m.BaseURL != in.base || m.Handle != "reports" || m.Schema < 3 ||
		m.DBSize != int64(len(files[archiveDB])) || m.CrieurVersion != version || time.Since(m.Created) > time.Minute {
		t.Errorf("manifest %+v", m)
	}
	want := fmt.Sprintf("backup written to %s: ", path)
	if !strings.HasPrefix(out, want) || !strings.Contains(out, fmt.Sprintf(" %d followers, key %s\n", m.Followers, fp)) || strings.Count(out, "\n") != 1 {
		t.Errorf("backup printed %q", out)
	}
	if m.Followers < len(before)+20 {
		t.Errorf("the backup has %d followers; %d had followed before it began", m.Followers, len(before)+20)
	}
	all, err := in.admin("followers")
	if err != nil {
		t.Fatal(err)
	}
	if n := inAll(t, all); n <= m.Followers {
		t.Errorf("the server has %d followers after the backup, the backup %d: no write went on", n, m.Followers)
	}

	// The archive's database passes storage's whole check on its own.
	dbCopy := filepath.Join(t.TempDir(), "crieur.db")
	os.WriteFile(dbCopy, files[archiveDB], 0o600)
	st, err := storage.Open(dbCopy, storage.Options{MustExist: true})
	if err != nil {
		t.Fatalf("the archive's database: %v", err)
	}
	if n, err := st.CountFollowers(); err != nil || n != m.Followers {
		t.Errorf("the archive's database has %d followers (%v), its manifest %d", n, err, m.Followers)
	}
	st.Close()

	// A new machine: same address, fresh data folder.
	in.stop()
	in2 := newInstance(t, posts)
	in2.base = in.base
	os.Remove(in2.data)
	out, err = in2.admin("restore", path)
	if err != nil {
		t.Fatalf("restore into a fresh data folder: %v\n%s", err, out)
	}
	if strings.Contains(out, "kept as") {
		t.Errorf("a restore into an empty folder kept something aside:\n%s", out)
	}
	checkPrivate(t, in2.dbPath())
	checkPrivate(t, in2.keyPath())
	in2.start()
	if n := in2.followerCount(); n != m.Followers {
		t.Errorf("restored instance has %d followers, the backup %d", n, m.Followers)
	}
	list, err := in2.admin("followers")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range before {
		if !strings.Contains(list, id) {
			t.Errorf("follower %s is missing after the restore", id)
		}
	}
	status, err := in2.admin("status")
	if err != nil || !strings.Contains(status, "a/en") || !strings.Contains(status, "b/en") {
		t.Errorf("the ledger after the restore: %v\n%s", err, status)
	}
	if fp2 := keyShown(t, in2); fp2 != fp {
		t.Errorf("restored key %s, backed up %s", fp2, fp)
	}
	// The restored instance speaks with the key followers know.
	f := follow(r, in2, "late")
	if resp := r.send(in2.actorID()+"/inbox", "late", f, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Follow after the restore: %d", resp.StatusCode)
	}
	r.waitFor(10*time.Second, "Accept after the restore", func(d received) bool {
		o, _ := d.Activity["object"].(map[string]any)
		return d.Activity["type"] == "Accept" && o["id"] == f["id"]
	})
}

// Without a server the command reads the data folder itself; -o - writes the
// archive to standard output and the report to standard error; the default
// name is in the current folder; a missing data folder is not made.
func TestBackupWithoutAServer(t *testing.T) {
	in, _ := followedInstance(t)
	fp := keyShown(t, in)
	in.stop()

	dir := t.TempDir()
	t.Chdir(dir)
	out, err := in.admin("backup")
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "crieur-backup-") || !strings.HasSuffix(entries[0].Name(), ".tar.gz") {
		t.Fatalf("the folder holds %v", entries)
	}
	name := entries[0].Name()
	stamp := strings.TrimSuffix(strings.TrimPrefix(name, "crieur-backup-"), ".tar.gz")
	if ts, err := time.Parse(stampLayout, stamp); err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
		t.Errorf("name %s does not carry the UTC time: %v", name, err)
	}
	checkPrivate(t, name)
	if !strings.HasPrefix(out, "backup written to "+name+": ") || !strings.Contains(out, "1 followers, key "+fp) {
		t.Errorf("backup printed %q", out)
	}
	data, _ := os.ReadFile(name)
	files, _ := archiveFiles(t, data)
	if m := readManifest(t, files); m.KeyFingerprint != fp || m.Followers != 1 || m.BaseURL != in.base {
		t.Errorf("manifest %+v", m)
	}

	// The manifest names the instance crieur serve ran as, even when the
	// backup command is not told.
	env := in.env()
	noBase := func(k string) string {
		if k == "CRIEUR_BASE_URL" {
			return ""
		}
		return env(k)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"backup", "-o", "-"}, noBase, &stdout, &stderr); err != nil {
		t.Fatalf("backup -o -: %v\n%s", err, stderr.String())
	}
	files, _ = archiveFiles(t, stdout.Bytes())
	if m := readManifest(t, files); m.KeyFingerprint != fp || m.Followers != 1 || m.BaseURL != in.base || m.Handle != "reports" {
		t.Errorf("-o - manifest %+v", m)
	}
	if !strings.HasPrefix(stderr.String(), "backup written to standard output: ") {
		t.Errorf("-o - printed %q on standard error", stderr.String())
	}

	// -o FOLDER names the archive in that folder.
	sub := t.TempDir()
	if out, err := in.admin("backup", "-o", sub); err != nil || !strings.Contains(out, filepath.Join(sub, "crieur-backup-")) {
		t.Fatalf("backup -o FOLDER: %v\n%s", err, out)
	}

	// A key that is not the database's is no backup: it would not serve.
	other := filepath.Join(t.TempDir(), "other.pem")
	loadKey(t, other)
	orig, _ := os.ReadFile(in.keyPath())
	pem, _ := os.ReadFile(other)
	os.WriteFile(in.keyPath(), pem, 0o600)
	out, err = in.admin("backup", "-o", filepath.Join(dir, "w.tar.gz"))
	if err == nil || !strings.Contains(err.Error(), "would not serve") {
		t.Errorf("backup of a mismatched pair: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "w.tar.gz")); err == nil {
		t.Errorf("an archive was written for a mismatched pair")
	}
	os.WriteFile(in.keyPath(), orig, 0o600)

	// A mistyped data folder is not made, and no archive either.
	missing := filepath.Join(t.TempDir(), "nope")
	in.data = missing
	out, err = in.admin("backup", "-o", filepath.Join(dir, "x.tar.gz"))
	if err == nil || !strings.Contains(err.Error(), "no data folder") {
		t.Errorf("backup of a missing folder: %v\n%s", err, out)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("backup made the missing data folder")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.tar.gz")); err == nil {
		t.Errorf("an archive was written for a missing data folder")
	}
	// An empty one has nothing to back up.
	in.data = t.TempDir()
	if out, err := in.admin("backup", "-o", filepath.Join(dir, "y.tar.gz")); err == nil || !strings.Contains(err.Error(), "nothing to back up") {
		t.Errorf("backup of an empty folder: %v\n%s", err, out)
	}
}

// A restore runs with crieur serve stopped only: it refuses while a server
// answers on the admin socket, or while the database's lock is held, and
// changes nothing.
func TestRestoreRefusedWhileInUse(t *testing.T) {
	in, _ := followedInstance(t)
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	os.WriteFile(archive, takeArchive(t, in), 0o600)
	key, _ := os.ReadFile(in.keyPath())

	out, err := in.admin("restore", archive)
	if err == nil || !strings.Contains(err.Error(), "crieur serve is running") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore while serving: %v\n%s", err, out)
	}
	if k, _ := os.ReadFile(in.keyPath()); !bytes.Equal(k, key) {
		t.Errorf("actor.pem changed")
	}
	if names := leftovers(t, in.data); len(names) > 0 {
		t.Errorf("the data folder holds %v", names)
	}
	in.stop()

	st, err := storage.Open(in.dbPath(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := folderState(t, in.data)
	out, err = in.admin("restore", archive)
	st.Close()
	if err == nil || !strings.Contains(err.Error(), "in use by a running crieur") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("restore with the database locked: %v\n%s", err, out)
	}
	sameState(t, "restore with the database locked", before, folderState(t, in.data))
}

// leftovers lists what a restore may leave in a data folder: files kept
// aside and temporary folders.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), "before-restore") || strings.HasPrefix(e.Name(), ".restore-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// A damaged, cut or altered archive is refused with one line that says what
// is wrong, and the data folder is left byte for byte.
func TestRestoreRefusesBrokenArchives(t *testing.T) {
	in, _ := followedInstance(t)
	in.stop()
	good := takeArchive(t, in)
	files, _ := archiveFiles(t, good)

	// Another instance's data, for the mismatched pair.
	other, _ := followedInstance(t)
	other.stop()
	otherFiles, _ := archiveFiles(t, takeArchive(t, other))
	otherKey := readManifest(t, otherFiles).KeyFingerprint

	// A database from a newer crieur.
	newerPath := filepath.Join(t.TempDir(), "crieur.db")
	os.WriteFile(newerPath, files[archiveDB], 0o600)
	st, err := storage.Open(newerPath, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMeta("schema", "99"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	newer, _ := os.ReadFile(newerPath)

	cases := []struct {
		name  string
		make  func() []byte
		words []string
	}{
		{"a byte flipped in the database", func() []byte {
			f := copyFiles(files)
			f[archiveDB][len(f[archiveDB])/2] ^= 0xff
			return makeArchive(t, f)
		}, []string{"crieur.db", "is not the one backup.json describes", "damaged"}},
		{"cut short", func() []byte { return good[:len(good)/2] }, []string{"cut short"}},
		{"the gzip end missing", func() []byte { return good[:len(good)-4] }, []string{"cut short"}},
		{"not an archive", func() []byte { return []byte("hello, this is not gzip") }, []string{"not a gzip'd archive"}},
		{"bytes after the end", func() []byte { return append(append([]byte(nil), good...), good[:100]...) }, []string{"100 bytes follow the end"}},
		{"no actor.pem", func() []byte {
			f := copyFiles(files)
			delete(f, archiveKey)
			return makeArchive(t, f)
		}, []string{"no actor.pem"}},
		{"no backup.json", func() []byte {
			f := copyFiles(files)
			delete(f, archiveManifest)
			return makeArchive(t, f)
		}, []string{"no backup.json"}},
		{"the manifest names another key", func() []byte {
			f := copyFiles(files)
			setManifest(t, f, map[string]any{"key_fingerprint": otherKey})
			return makeArchive(t, f)
		}, []string{"actor.pem is key", "backup.json names key"}},
		{"another actor.pem", func() []byte {
			f := copyFiles(files)
			f[archiveKey] = otherFiles[archiveKey]
			return makeArchive(t, f)
		}, []string{"actor.pem is key", "backup.json names key"}},
		{"the database of another key", func() []byte {
			f := copyFiles(files)
			withDB(t, f, otherFiles[archiveDB])
			return makeArchive(t, f)
		}, []string{"crieur.db belongs to key", "would refuse that pair"}},
		{"an unknown format version", func() []byte {
			f := copyFiles(files)
			setManifest(t, f, map[string]any{"format": 99})
			return makeArchive(t, f)
		}, []string{"format version 99"}},
		{"a damaged database the manifest describes", func() []byte {
			f := copyFiles(files)
			db := append([]byte(nil), f[archiveDB]...)
			for i := 2 * 4096; i < len(db); i++ {
				db[i] = byte(i*7 + 3)
			}
			withDB(t, f, db)
			return makeArchive(t, f)
		}, []string{"crieur.db does not open", "damaged"}},
		{"a database from a newer crieur", func() []byte {
			f := copyFiles(files)
			withDB(t, f, newer)
			return makeArchive(t, f)
		}, []string{"crieur.db does not open", storage.ErrNewerSchema.Error(), "layout version 99"}},
		{"an entry of something else", func() []byte {
			f := copyFiles(files)
			f["../etc/passwd"] = []byte("x")
			return makeArchive(t, f)
		}, []string{`"../etc/passwd"`, "not"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "bad.tar.gz")
			os.WriteFile(archive, c.make(), 0o600)
			before := folderState(t, in.data)
			out, err := in.admin("restore", archive)
			if err == nil {
				t.Fatalf("restored:\n%s", out)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("more than one line: %q", msg)
			}
			for _, w := range append(c.words, "cannot be restored", "nothing was changed") {
				if !strings.Contains(msg, w) {
					t.Errorf("the error %q does not say %q", msg, w)
				}
			}
			sameState(t, c.name, before, folderState(t, in.data))
		})
	}
	// Refused into a folder that was not there, it leaves none.
	fresh := newInstance(t, nil)
	fresh.base = in.base
	fresh.data = filepath.Join(t.TempDir(), "new")
	bad := filepath.Join(t.TempDir(), "cut.tar.gz")
	os.WriteFile(bad, good[:len(good)/2], 0o600)
	if out, err := fresh.admin("restore", bad); err == nil {
		t.Errorf("restored a cut archive:\n%s", out)
	}
	if _, err := os.Stat(fresh.data); err == nil {
		t.Errorf("a refused restore left the data folder it made")
	}

	// The good archive restores, and the instance starts on it.
	if out, err := in.admin("restore", filepath.Join(t.TempDir(), "none.tar.gz")); err == nil {
		t.Errorf("restore of a missing file:\n%s", out)
	}
	archive := filepath.Join(t.TempDir(), "good.tar.gz")
	os.WriteFile(archive, good, 0o600)
	if out, err := in.admin("restore", archive); err != nil {
		t.Fatalf("restore of the good archive: %v\n%s", err, out)
	}
	in.start()
	if n := in.followerCount(); n != 1 {
		t.Errorf("followers after the restore: %d", n)
	}
}

// An archive of another base URL is refused unless -force; a restore keeps
// the files it replaces aside, byte for byte, and standard input works.
func TestRestoreOtherInstanceAndFilesKeptAside(t *testing.T) {
	src, _ := followedInstance(t)
	src.stop()
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	data := takeArchive(t, src)
	os.WriteFile(archive, data, 0o600)
	files, _ := archiveFiles(t, data)

	dst, _ := followedInstance(t)
	dst.stop()
	if dst.base == src.base {
		t.Fatal("two instances on one base URL")
	}
	before := folderState(t, dst.data)
	out, err := dst.admin("restore", archive)
	if err == nil || !strings.Contains(err.Error(), "another instance") || !strings.Contains(err.Error(), src.base) ||
		!strings.Contains(err.Error(), "-force") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore of another base URL: %v\n%s", err, out)
	}
	sameState(t, "refused restore", before, folderState(t, dst.data))

	out, err = dst.admin("restore", "-force", archive)
	if err != nil {
		t.Fatalf("restore -force: %v\n%s", err, out)
	}
	if !strings.Contains(out, "kept as crieur.db.before-restore-") || !strings.Contains(out, "-base-url "+src.base) {
		t.Errorf("restore printed:\n%s", out)
	}
	after := folderState(t, dst.data)
	// The database was opened once to check it, as crieur serve opens it:
	// its records are the archive's, its bytes may differ.
	if after[archiveKey] != string(files[archiveKey]) || after[archiveDB] == before[archiveDB] {
		t.Errorf("the restored files are not the archive's")
	}
	if fp := keyShown(t, dst); fp != readManifest(t, files).KeyFingerprint {
		t.Errorf("the restored database records key %s", fp)
	}
	checkPrivate(t, dst.dbPath())
	checkPrivate(t, dst.keyPath())
	kept := 0
	for name, b := range after {
		switch {
		case strings.HasPrefix(name, "crieur.db.before-restore-"):
			kept++
			if b != before[archiveDB] {
				t.Errorf("%s is not the database it replaced", name)
			}
		case strings.HasPrefix(name, "actor.pem.before-restore-"):
			kept++
			if b != before[archiveKey] {
				t.Errorf("%s is not the key it replaced", name)
			}
			checkPrivate(t, filepath.Join(dst.data, name))
		case strings.HasPrefix(name, ".restore-"):
			t.Errorf("temporary folder %s left", name)
		}
	}
	if kept != 2 {
		t.Errorf("%d files kept aside, want 2: %v", kept, after)
	}

	// Without a base URL in the configuration there is nothing to compare;
	// a second restore in the same second keeps aside under a new name.
	env := dst.env()
	noBase := func(k string) string {
		if k == "CRIEUR_BASE_URL" || k == "CRIEUR_HANDLE" {
			return ""
		}
		return env(k)
	}
	cfg, _, err := parseConfig("restore", nil, noBase, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	now := time.Now()
	for i := 0; i < 2; i++ {
		if err := restoreArchive(context.Background(), cfg, "-", bytes.NewReader(data), false, now, &w); err != nil {
			t.Fatalf("restore from standard input: %v", err)
		}
	}
	if n := len(leftovers(t, dst.data)); n != 6 {
		t.Errorf("%d files kept aside after three restores, want 6: %v", n, leftovers(t, dst.data))
	}
	if !strings.Contains(w.String(), "restored standard input into "+dst.data) {
		t.Errorf("restore - printed:\n%s", w.String())
	}
}

// failAfter fails once n bytes went through.
type failAfter struct {
	w io.Writer
	n int
}

var errInjected = errors.New("injected write error")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n, _ := f.w.Write(p[:f.n])
		f.n = 0
		return n, errInjected
	}
	f.n -= len(p)
	return f.w.Write(p)
}

// stallWriter holds its first write until release is closed, then writes
// through.
type stallWriter struct {
	w       io.Writer
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stallWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.started) })
	<-s.release
	return s.w.Write(p)
}

// An archive is never left half written under its name: not when the
// writing fails (with or without a server), not when the server stops in
// the middle of the stream (which it does at once, without waiting for the
// stalled reader).
func TestBackupNeverLeavesHalfAnArchive(t *testing.T) {
	in := newInstance(t, map[string]string{"a.en.md": post("a", "en", "A", "2023-01-02", "A.")})
	in.start()
	in.stop()
	// 8 MiB that gzip cannot shrink: a stream longer than the socket's
	// buffers.
	st, err := storage.Open(in.dbPath(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 8<<20)
	rand.Read(img)
	if err := st.PutAvatar("big", storage.Avatar{URL: "https://h.example/a.png", ContentType: "image/png"}, img); err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg, _, err := parseConfig("backup", nil, in.env(), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	final := filepath.Join(dir, "b.tar.gz")
	nothingLeft := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: the backup succeeded", what)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: the folder holds %v", what, entries)
		}
	}
	fill := func(wrap func(io.Writer) io.Writer) error {
		return writeFileAtomic(final, func(w io.Writer) error {
			_, _, err := takeBackup(context.Background(), cfg, wrap(w))
			return err
		})
	}
	err = fill(func(w io.Writer) io.Writer { return &failAfter{w: w, n: 1 << 20} })
	nothingLeft("a write failing without a server", err)
	if !errors.Is(err, errInjected) {
		t.Errorf("error %v, want the writer's", err)
	}

	in.start()
	err = fill(func(w io.Writer) io.Writer { return &failAfter{w: w, n: 1 << 20} })
	nothingLeft("a write failing with a server", err)
	if !errors.Is(err, errInjected) {
		t.Errorf("error %v, want the writer's", err)
	}
	// The server goes on, and a backup through the same path works.
	if err := fill(func(w io.Writer) io.Writer { return w }); err != nil {
		t.Fatalf("backup after a failed one: %v", err)
	}
	checkPrivate(t, final)
	os.Remove(final)

	sw := &stallWriter{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- fill(func(w io.Writer) io.Writer {
			sw.w = w
			return sw
		})
	}()
	select {
	case <-sw.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the backup never started")
	}
	stopped := time.Now()
	in.stop()
	if d := time.Since(stopped); d > 10*time.Second {
		t.Errorf("crieur serve took %s to stop under a stalled backup", d)
	}
	close(sw.release)
	err = <-done
	t.Logf("the server stopping mid-backup: %v", err)
	nothingLeft("the server stopping mid-backup", err)
	if err != nil && !strings.Contains(err.Error(), "not whole") {
		t.Errorf("the server stopping mid-backup: %v", err)
	}
}
