package signature

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// keyBits is the size of the actor key: what Mastodon and every peer expect.
const keyBits = 2048

// keyFileMode: the private key is readable by its owner only.
const keyFileMode = 0o600

// LoadOrCreateKey returns the actor's private key stored at path, creating
// it on first start (RSA-2048, PKCS#8 PEM, mode 0600, written and synced to
// a temporary file, then hard-linked into place, which unlike rename never
// replaces a file that appeared meanwhile; rename is the fallback where
// links are unsupported), so a crash never leaves half a key. An existing file is
// never overwritten: a new key would make Mastodon drop every follower. A
// file readable by group or others, or one that does not hold an RSA key,
// is an error naming the path, never a reason to regenerate.
func LoadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	info, err := os.Stat(path)
	switch {
	case err == nil:
		return loadKeyFile(path, info)
	case errors.Is(err, fs.ErrNotExist):
		return createKeyFile(path)
	default:
		return nil, fmt.Errorf("signature: load key %s: %w", path, err)
	}
}

func loadKeyFile(path string, info fs.FileInfo) (*rsa.PrivateKey, error) {
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("signature: load key %s: not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("signature: load key %s: mode %#o lets group or others read it; chmod 600 it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signature: load key %s: %w", path, err)
	}
	key, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("signature: load key %s: %w", path, err)
	}
	return key, nil
}

// ParsePrivateKeyPEM reads an actor key as LoadOrCreateKey reads its file:
// RSA of at least 2048 bits, in PKCS#8 or PKCS#1 PEM, nothing after it.
// A backup checks the key it carries with it.
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	key, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("signature: parse key: %w", err)
	}
	return key, nil
}

// parsePrivateKeyPEM accepts PKCS#8 ("PRIVATE KEY") and, for keys made by
// other tools, PKCS#1 ("RSA PRIVATE KEY").
func parsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the PEM block")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#8: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want RSA", k)
		}
		key = rk
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#1: %w", err)
		}
		key = k
	default:
		return nil, fmt.Errorf("PEM block %q, want PRIVATE KEY", block.Type)
	}
	if key.N.BitLen() < keyBits {
		return nil, fmt.Errorf("RSA key has %d bits, want at least %d", key.N.BitLen(), keyBits)
	}
	return key, nil
}

func createKeyFile(path string) (*rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("signature: create key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("signature: create key %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".actor-key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("signature: create key %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after the rename
	if err := tmp.Chmod(keyFileMode); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("signature: create key %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("signature: create key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("signature: create key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("signature: create key %s: %w", path, err)
	}
	// os.Link fails when path exists, unlike rename: a key written by a
	// concurrent first start is never replaced.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			info, serr := os.Stat(path)
			if serr != nil {
				return nil, fmt.Errorf("signature: load key %s: %w", path, serr)
			}
			return loadKeyFile(path, info)
		}
		// Filesystems without hard links: fall back to rename, after
		// checking again that nothing appeared meanwhile.
		if _, serr := os.Stat(path); serr == nil {
			return nil, fmt.Errorf("signature: create key %s: file appeared while creating it", path)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("signature: create key %s: %w", path, err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new directory entry durable
		d.Close()
	}
	return key, nil
}

// PublicKeyPEM returns the public half in PKIX PEM ("PUBLIC KEY"), the form
// the actor's publicKeyPem carries.
func PublicKeyPEM(key *rsa.PublicKey) (string, error) {
	if key == nil {
		return "", errors.New("signature: public key PEM: nil key")
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("signature: public key PEM: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// ParsePublicKeyPEM reads an RSA public key in PKIX ("PUBLIC KEY") or
// PKCS#1 ("RSA PUBLIC KEY") PEM.
func ParsePublicKeyPEM(text string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want RSA", k)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q", block.Type)
	}
}
