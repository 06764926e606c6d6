package signature

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
)

// Verifier prepares remote RSA public keys for verifying incoming
// signatures, with OpenSSL or Go's crypto/rsa (the same RSAEngine setting
// as signing). It is safe for concurrent use; the zero Verifier uses Go.
//
// Why OpenSSL: every POST to the inbox is one RSA-2048 verification. Go's
// crypto/rsa recomputes the modulus' Montgomery constants on every call
// (it has no way to keep them), about a third of its ~40 µs; OpenSSL keeps
// them with the key, which a PublicKey holds for as long as it lives.
type Verifier struct {
	ossl    bool
	version string // OpenSSL's, when ossl
	// fallback is why OpenSSL is not used under RSAAuto; empty otherwise.
	fallback string
	// counts are the verifications made with the keys it prepared.
	counts verifyCounts
}

// verifyCounts count verifications by result (Verifications).
type verifyCounts struct {
	valid, invalid atomic.Uint64
}

// Verifications is how many signatures the keys prepared by v verified,
// and how many they found not valid (for the metrics).
func (v *Verifier) Verifications() (valid, invalid uint64) {
	return v.counts.valid.Load(), v.counts.invalid.Load()
}

// NewVerifier returns a Verifier for engine. RSAAuto verifies with OpenSSL
// when libcrypto.so.3 loads and passes the probe (see probeVerify), with Go
// otherwise; RSAOpenSSL fails when OpenSSL cannot be used; RSAGo always
// uses Go.
func NewVerifier(engine RSAEngine) (*Verifier, error) {
	switch engine {
	case RSAGo:
		return &Verifier{}, nil
	case RSAOpenSSL, RSAAuto, "":
		version, err := openssl()
		if err == nil {
			if perr := probeVerify(verifyWithOpenSSL); perr != nil {
				err = fmt.Errorf("%s fails crieur's verification check: %w", version, perr)
			}
		}
		if err == nil {
			return &Verifier{ossl: true, version: version}, nil
		}
		if engine == RSAOpenSSL {
			return nil, fmt.Errorf("signature: new verifier: rsa engine openssl: %w", err)
		}
		return &Verifier{fallback: err.Error()}, nil
	}
	return nil, fmt.Errorf("signature: new verifier: unknown RSA engine %q", engine)
}

// Engine names what verifies ("OpenSSL 3.0.19 27 Jan 2026", "Go
// crypto/rsa"), and when OpenSSL was wanted but not used, why.
func (v *Verifier) Engine() (engine, fallback string) {
	if v.ossl {
		return v.version, ""
	}
	return "Go crypto/rsa", v.fallback
}

// PublicKey is an RSA public key ready for repeated verification: with
// OpenSSL, imported into it once. It is safe for concurrent use and
// never changes.
type PublicKey struct {
	pub    *rsa.PublicKey
	ossl   *opensslPublicKey // nil: Go verifies
	counts *verifyCounts     // its Verifier's
}

// Key prepares pub. It refuses the keys Go's crypto/rsa refuses to verify
// with (under 1024 bits, even modulus, exponent even, below 3 or above
// 2³¹-1), so both engines accept the same keys. pub is copied.
func (v *Verifier) Key(pub *rsa.PublicKey) (*PublicKey, error) {
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("signature: public key: %w", err)
	}
	k := &PublicKey{pub: &rsa.PublicKey{N: new(big.Int).Set(pub.N), E: pub.E}, counts: &v.counts}
	if v.ossl {
		o, err := newOpenSSLPublicKey(k.pub)
		if err != nil {
			return nil, fmt.Errorf("signature: public key: %w", err)
		}
		k.ossl = o
	}
	return k, nil
}

// goPublicKey is pub verified by Go, for callers without a Verifier.
func goPublicKey(pub *rsa.PublicKey) (*PublicKey, error) { return (&Verifier{}).Key(pub) }

// Public returns the key. The caller must not modify it.
func (k *PublicKey) Public() *rsa.PublicKey { return k.pub }

// VerifySHA256 checks an RSASSA-PKCS1-v1_5 signature of a SHA-256 digest.
// A signature that does not verify gives an error wrapping
// rsa.ErrVerification, with either engine.
func (k *PublicKey) VerifySHA256(digest, sig []byte) error {
	if k == nil || k.pub == nil {
		return errors.New("signature: verify: no key")
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("signature: verify: digest of %d bytes, want %d", len(digest), sha256.Size)
	}
	var err error
	switch {
	case len(sig) != k.pub.Size():
		// Go refuses any other length; OpenSSL would left-pad a short one.
		err = rsa.ErrVerification
	case k.ossl != nil:
		err = k.ossl.verifySHA256(digest, sig)
	default:
		err = rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, digest, sig)
	}
	if k.counts != nil {
		if err == nil {
			k.counts.valid.Add(1)
		} else {
			k.counts.invalid.Add(1)
		}
	}
	return err
}

// checkPublicKey applies the checks crypto/rsa makes before verifying
// (crypto/rsa.checkPublicKeySize and crypto/internal/fips140/rsa's
// checkPublicKey, Go 1.26), which OpenSSL does not all make.
func checkPublicKey(pub *rsa.PublicKey) error {
	switch {
	case pub == nil || pub.N == nil || pub.N.Sign() <= 0:
		return errors.New("missing public modulus")
	case pub.N.BitLen() < 1024:
		return fmt.Errorf("%d-bit keys are insecure", pub.N.BitLen())
	case pub.N.Bit(0) == 0:
		return errors.New("public modulus is even")
	case pub.E < 2:
		return errors.New("public exponent too small or negative")
	case pub.E&1 == 0:
		return errors.New("public exponent is even")
	case pub.E > 1<<31-1:
		return errors.New("public exponent too large")
	}
	return nil
}

// The probe's test vector: an RSA-2048 key (its private half was thrown
// away), a message, its RSASSA-PKCS1-v1_5 SHA-256 signature, and a
// signature by the same key over the same digest with a malformed
// DigestInfo (the SHA-256 AlgorithmIdentifier without its NULL
// parameters), which a strict verifier refuses and a lax one may take.
// The message was chosen so that its signature begins with a zero byte:
// without it the signature is the same number, which a verifier that
// left-pads short signatures takes.
const (
	probeKeyPEM = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvcd8BnoEeOHqoEk7iHOt
tKwmL/Z496VWy8F4xTKsozdViTJo3ocqCZTHlNskAtRGckSut3rSEcJg4VI2yuj8
uno7oiWuSkRIHYmtnq2Fq2qiIfGryh8LR0DXU0YTbzpo9f0LclSi56HAIp0dxndp
16OwLTJJPnYp4kVufTXpZbAvVbB/OC2lo+T6+ckg+Qy7N8XmdlsfZ21WrwYGur4d
mD6ak+Hg5XMBdxeInfBk36SxZyN/HAl6c9fQyj7tjYmnt89pJeKg9I0gmK+10GtV
7ydsjVzvh8pVEOfndx50rBYmRPfs4Pbhj19BoM1YkgICJ4+Afj5YeBwUWJigydCL
QwIDAQAB
-----END PUBLIC KEY-----
`
	probeMessage      = "crieur checks that OpenSSL verifies before trusting it (118)"
	probeSignature    = "AODbigqwR4z2XaouZTSiKHnhlrNmoieohpzhwX8e5sfedSooZlnXA6TG45fre8dwzQnes2M4ySRwF9Gsww4TtsWgQcHKC0BZEgtaJRwjp9+Ib+bw4X7Q6JEWb6BMwbXU1f8TDyhwcn0ge/yYCQDXN7Pcf0HXBNhNXe9am0I2zQvoq2WRMf/Qb/8Ch80sNPq1VCmZfmVepfL8BCJJDbIIvXvkrc8fHHVcPpP5AKnUn8HOSX6aSr6W0CWD+n6jHCVSS1xMEYERGNBc95SfEEY1bpA7uDURdH4rjhc+5Yry7NOL4/5Eit1fYeF6xOX2ZB2dawUqCe6ITZuIHzW+pR8diA=="
	probeLaxSignature = "SmW++AVZzXXD2OmnqFJF6XQsVDWqfOb908EKh4sBLN7C7yKy+eiL/+RW+iDlrsvucX51eEGE9M3m3wvF2n6zzvq8HoJ4X76lT7FVxMlwPURi/TTljxRHCdaC3sg20TiXrHGO/1fyQkf4NPTVX5jHTM16oPIp3u3UX/O4y9amcOAxxQw/nWFfg7nBkT6cAjhg6fxgBH/m2GbNiI9Gm+JGQFTVWamos411lS0fZc3aVTJMdG/MT9xx2V64TH5+ZuOJmFjCgsHDPHnRayr4okiR1O6Xft09LHuOesRY9PM7urWaMhwyqZp9jBkplUJw+Qa1e1/7wvYUg1UGm6OM4nwnTQ=="
)

// verifyFunc verifies a PKCS#1 v1.5 SHA-256 signature with one engine.
type verifyFunc func(pub *rsa.PublicKey, digest, sig []byte) error

// verifyWithOpenSSL is the whole OpenSSL path: the key imported, then
// PublicKey.VerifySHA256.
func verifyWithOpenSSL(pub *rsa.PublicKey, digest, sig []byte) error {
	k, err := (&Verifier{ossl: true}).Key(pub)
	if err != nil {
		return err
	}
	return k.VerifySHA256(digest, sig)
}

// probeVerify is the check a verifier passes before crieur trusts it with
// the inbox: a verifier that accepts what it should refuse would let
// anyone forge requests. It must accept the test vector's signature and
// refuse it with any of several bits flipped, over another digest, with
// the malformed DigestInfo, truncated, and with a byte appended.
func probeVerify(verify verifyFunc) error {
	pub, err := ParsePublicKeyPEM(probeKeyPEM)
	if err != nil {
		return fmt.Errorf("probe key: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(probeSignature)
	if err != nil {
		return fmt.Errorf("probe signature: %w", err)
	}
	lax, err := base64.StdEncoding.DecodeString(probeLaxSignature)
	if err != nil {
		return fmt.Errorf("probe signature: %w", err)
	}
	digest := sha256.Sum256([]byte(probeMessage))
	if err := verify(pub, digest[:], sig); err != nil {
		return fmt.Errorf("refuses a valid signature: %w", err)
	}
	refuse := func(what string, digest, sig []byte) error {
		if verify(pub, digest, sig) == nil {
			return fmt.Errorf("accepts %s", what)
		}
		return nil
	}
	for _, bit := range []int{0, 7, 8*len(sig)/2 + 3, 8*len(sig) - 9, 8*len(sig) - 1} {
		bad := append([]byte(nil), sig...)
		bad[bit/8] ^= 0x80 >> (bit % 8)
		if err := refuse(fmt.Sprintf("the signature with bit %d flipped", bit), digest[:], bad); err != nil {
			return err
		}
	}
	other := digest
	other[len(other)-1] ^= 1
	other2 := sha256.Sum256([]byte(probeMessage + "."))
	for _, c := range []struct {
		what        string
		digest, sig []byte
	}{
		{"the signature over a digest with its last bit flipped", other[:], sig},
		{"the signature over another message", other2[:], sig},
		{"a malformed DigestInfo", digest[:], lax},
		{"the signature without its leading zero byte", digest[:], sig[1:]},
		{"a signature with a byte appended", digest[:], append(append([]byte(nil), sig...), 0)},
	} {
		if err := refuse(c.what, c.digest, c.sig); err != nil {
			return err
		}
	}
	return nil
}
