package signature

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// RSAEngine chooses what makes the bot's RSA signatures.
type RSAEngine string

const (
	// RSAAuto signs with OpenSSL when libcrypto.so.3 loads and passes its
	// check, with Go otherwise. The default.
	RSAAuto RSAEngine = "auto"
	// RSAOpenSSL signs with OpenSSL, or fails to start.
	RSAOpenSSL RSAEngine = "openssl"
	// RSAGo signs with Go's crypto/rsa.
	RSAGo RSAEngine = "go"
)

// ParseRSAEngine reads a configuration value; "" is RSAAuto.
func ParseRSAEngine(s string) (RSAEngine, error) {
	switch e := RSAEngine(s); e {
	case "":
		return RSAAuto, nil
	case RSAAuto, RSAOpenSSL, RSAGo:
		return e, nil
	}
	return "", fmt.Errorf("unknown RSA engine %q (want auto, openssl or go)", s)
}

// OpenSSL reports the version of the OpenSSL library RSAAuto would sign
// with, or why there is none (a build without cgo, no libcrypto.so.3).
func OpenSSL() (version string, err error) { return openssl() }

// rsaKey makes RSASSA-PKCS1-v1_5 SHA-256 signatures with the bot's key.
//
// Why OpenSSL: a delivery is one signature, and nearly all of a fan-out's
// CPU goes into them. OpenSSL 3 makes an RSA-2048 signature in about 40%
// of the CPU time Go's crypto/rsa takes on the same machine (0.4 ms
// against 1.0 ms here), so the same machine delivers about twice as fast. The scheme is deterministic: both make
// the same bytes, which the tests check.
type rsaKey struct {
	key  *rsa.PrivateKey
	ossl *opensslKey // nil: Go signs
	// fallback is why OpenSSL is not used under RSAAuto; empty otherwise.
	fallback string
}

// newRSAKey prepares key for engine.
func newRSAKey(key *rsa.PrivateKey, engine RSAEngine) (*rsaKey, error) {
	k := &rsaKey{key: key}
	switch engine {
	case RSAGo:
		return k, nil
	case RSAOpenSSL, RSAAuto, "":
		o, err := newOpenSSLKey(key)
		if err == nil {
			k.ossl = o
			return k, nil
		}
		if engine == RSAOpenSSL {
			return nil, fmt.Errorf("rsa engine openssl: %w", err)
		}
		k.fallback = err.Error()
		return k, nil
	}
	return nil, fmt.Errorf("unknown RSA engine %q", engine)
}

// Engine names what signs: "OpenSSL 3.0.19 …" or "Go crypto/rsa".
func (k *rsaKey) Engine() string {
	if k.ossl != nil {
		return k.ossl.version
	}
	return "Go crypto/rsa"
}

// signSHA256 signs a SHA-256 digest.
func (k *rsaKey) signSHA256(digest []byte) ([]byte, error) {
	if k.ossl != nil {
		return k.ossl.signSHA256(digest)
	}
	return rsa.SignPKCS1v15(nil, k.key, crypto.SHA256, digest)
}

// httpsigSigner lets go-fed sign with an rsaKey. go-fed's own RSA path only
// takes a *rsa.PrivateKey, which it hands to crypto/rsa; its ssh.Signer path
// takes any signer. On that path go-fed passes the unhashed signing string
// to Sign, puts the returned blob into the header as it is, and writes
// algorithm="hs2019" as on its other path, so the header Mastodon reads is
// the same. The hash is chosen here: SHA-256, as rsa-sha256 requires.
type httpsigSigner struct {
	key *rsaKey
	pub ssh.PublicKey
}

func newHTTPSigSigner(key *rsaKey) (httpsigSigner, error) {
	pub, err := ssh.NewPublicKey(&key.key.PublicKey)
	if err != nil {
		return httpsigSigner{}, err
	}
	return httpsigSigner{key: key, pub: pub}, nil
}

// PublicKey is the ssh form of the key; go-fed reads its type ("ssh-rsa")
// to pick its RSA code path.
func (s httpsigSigner) PublicKey() ssh.PublicKey { return s.pub }

// Sign hashes the signing string with SHA-256 and signs the digest.
func (s httpsigSigner) Sign(_ io.Reader, data []byte) (*ssh.Signature, error) {
	sum := sha256.Sum256(data)
	sig, err := s.key.signSHA256(sum[:])
	if err != nil {
		return nil, err
	}
	return &ssh.Signature{Format: ssh.KeyAlgoRSASHA256, Blob: sig}, nil
}
