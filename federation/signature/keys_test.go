package signature

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crieur/crieur/federation/internal/testkit"
)

func TestLoadOrCreateKeyCreatesThenLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "actor.pem")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.N.BitLen() != 2048 {
		t.Errorf("key has %d bits, want 2048", k1.N.BitLen())
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %#o, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key file is not a PKCS#8 PEM block: %q", data[:min(40, len(data))])
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatalf("PKCS#8 parse: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after creation, want only the key (temp file left?)", len(entries))
	}

	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("second start produced a different key: the file was regenerated")
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(data) {
		t.Fatal("key file rewritten on load")
	}
}

func TestLoadOrCreateKeyRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pem")
	if _, err := LoadOrCreateKey(good); err != nil {
		t.Fatal(err)
	}
	goodData, _ := os.ReadFile(good)

	cases := []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"group-readable", goodData, 0o640, "mode"},
		{"world-readable", goodData, 0o644, "mode"},
		{"garbage", []byte("not a key\n"), 0o600, "PEM"},
		{"truncated", goodData[:len(goodData)/2], 0o600, ""},
		{"public key", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600, "PUBLIC KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".pem")
			if err := os.WriteFile(path, tc.data, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // umask may have cut it
				t.Fatal(err)
			}
			_, err := LoadOrCreateKey(path)
			if err == nil {
				t.Fatal("bad key file accepted")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(tc.data) {
				t.Error("bad key file was overwritten")
			}
		})
	}
}

func TestLoadOrCreateKeyMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "actor.pem")
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want an error naming %s", err, path)
	}
}

func TestPublicKeyPEM(t *testing.T) {
	key := testkit.Key(t, 0)
	text, err := PublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("not one PUBLIC KEY block: %q", text)
	}
	pub, err := ParsePublicKeyPEM(text)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Fatal("PEM holds another key")
	}
}
