//go:build linux && cgo

package signature

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

// OpenSSL's types are opaque to crieur: it only passes their pointers back.
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct evp_md_st EVP_MD;

// The OpenSSL 3 functions crieur calls. They are looked up at run time
// (dlopen) rather than linked: a machine without libcrypto.so.3 still
// runs crieur, on Go's RSA, and building needs no OpenSSL headers.
static struct {
	unsigned long (*version_num)(void);
	const char *(*version)(int);
	EVP_PKEY *(*d2i_auto_private_key)(EVP_PKEY **, const unsigned char **, long);
	void (*pkey_free)(EVP_PKEY *);
	EVP_PKEY_CTX *(*ctx_new)(EVP_PKEY *, void *);
	void (*ctx_free)(EVP_PKEY_CTX *);
	int (*sign_init)(EVP_PKEY_CTX *);
	int (*set_rsa_padding)(EVP_PKEY_CTX *, int);
	int (*set_signature_md)(EVP_PKEY_CTX *, const EVP_MD *);
	const EVP_MD *(*sha256)(void);
	int (*sign)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);
	EVP_PKEY *(*d2i_pubkey)(EVP_PKEY **, const unsigned char **, long);
	int (*pkey_is_a)(const EVP_PKEY *, const char *);
	int (*pkey_get_size)(const EVP_PKEY *);
	int (*verify_init)(EVP_PKEY_CTX *);
	int (*verify)(EVP_PKEY_CTX *, const unsigned char *, size_t, const unsigned char *, size_t);
	unsigned long (*err_get_error)(void);
	void (*err_error_string_n)(unsigned long, char *, size_t);
	void (*err_clear_error)(void);
} crieur_ossl;

// RSA_PKCS1_PADDING in OpenSSL's rsa.h.
#define CRIEUR_RSA_PKCS1_PADDING 1
// OPENSSL_VERSION in OpenSSL's crypto.h: the version text.
#define CRIEUR_OPENSSL_VERSION 0

// crieur_ossl_open loads libcrypto.so.3 and every function above. It
// returns 0, or 1 with the reason written into err.
static int crieur_ossl_open(char *err, size_t errlen) {
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e != NULL ? e : "dlopen libcrypto.so.3 failed");
		return 1;
	}
#define CRIEUR_SYM(field, name) \
	if ((*(void **)(&crieur_ossl.field) = dlsym(h, name)) == NULL) { \
		snprintf(err, errlen, "libcrypto.so.3 has no %s", name); \
		return 1; \
	}
	CRIEUR_SYM(version_num, "OpenSSL_version_num")
	CRIEUR_SYM(version, "OpenSSL_version")
	CRIEUR_SYM(d2i_auto_private_key, "d2i_AutoPrivateKey")
	CRIEUR_SYM(pkey_free, "EVP_PKEY_free")
	CRIEUR_SYM(ctx_new, "EVP_PKEY_CTX_new")
	CRIEUR_SYM(ctx_free, "EVP_PKEY_CTX_free")
	CRIEUR_SYM(sign_init, "EVP_PKEY_sign_init")
	CRIEUR_SYM(set_rsa_padding, "EVP_PKEY_CTX_set_rsa_padding")
	CRIEUR_SYM(set_signature_md, "EVP_PKEY_CTX_set_signature_md")
	CRIEUR_SYM(sha256, "EVP_sha256")
	CRIEUR_SYM(sign, "EVP_PKEY_sign")
	CRIEUR_SYM(d2i_pubkey, "d2i_PUBKEY")
	CRIEUR_SYM(pkey_is_a, "EVP_PKEY_is_a")
	CRIEUR_SYM(pkey_get_size, "EVP_PKEY_get_size")
	CRIEUR_SYM(verify_init, "EVP_PKEY_verify_init")
	CRIEUR_SYM(verify, "EVP_PKEY_verify")
	CRIEUR_SYM(err_get_error, "ERR_get_error")
	CRIEUR_SYM(err_error_string_n, "ERR_error_string_n")
	CRIEUR_SYM(err_clear_error, "ERR_clear_error")
#undef CRIEUR_SYM
	// The padding and digest setters used above became functions in 3.0;
	// before they were macros, and the soname says 3 anyway.
	if (crieur_ossl.version_num() < 0x30000000UL) {
		snprintf(err, errlen, "libcrypto.so.3 reports version %#lx, want 3.0 or later", crieur_ossl.version_num());
		return 1;
	}
	return 0;
}

static const char *crieur_ossl_version(void) {
	return crieur_ossl.version(CRIEUR_OPENSSL_VERSION);
}

// crieur_ossl_error writes OpenSSL's first queued error (or what) into err
// and empties the queue, which belongs to the calling thread: it must be
// read in the same C call that failed, before Go moves the goroutine.
static void crieur_ossl_error(const char *what, char *err, size_t errlen) {
	unsigned long e = crieur_ossl.err_get_error();
	if (e == 0) {
		snprintf(err, errlen, "%s failed", what);
	} else {
		char buf[200];
		crieur_ossl.err_error_string_n(e, buf, sizeof buf);
		snprintf(err, errlen, "%s: %s", what, buf);
	}
	crieur_ossl.err_clear_error();
}

static EVP_PKEY *crieur_ossl_key(const unsigned char *der, long n, char *err, size_t errlen) {
	const unsigned char *p = der;
	EVP_PKEY *k = crieur_ossl.d2i_auto_private_key(NULL, &p, n);
	if (k == NULL) {
		crieur_ossl_error("import key", err, errlen);
	}
	return k;
}

static void crieur_ossl_key_free(EVP_PKEY *k) {
	crieur_ossl.pkey_free(k);
}

// crieur_ossl_sign makes the RSASSA-PKCS1-v1_5 signature of a SHA-256
// digest. A context per call: EVP_PKEY_CTX may not be shared between
// threads, the key may, and making one costs about 1% of the signature.
static int crieur_ossl_sign(EVP_PKEY *k, const unsigned char *digest, size_t dlen,
		unsigned char *sig, size_t *siglen, char *err, size_t errlen) {
	EVP_PKEY_CTX *c = crieur_ossl.ctx_new(k, NULL);
	if (c == NULL) {
		crieur_ossl_error("new context", err, errlen);
		return 1;
	}
	int rc = 0;
	if (crieur_ossl.sign_init(c) <= 0) {
		crieur_ossl_error("sign init", err, errlen);
		rc = 1;
	} else if (crieur_ossl.set_rsa_padding(c, CRIEUR_RSA_PKCS1_PADDING) <= 0) {
		crieur_ossl_error("set padding", err, errlen);
		rc = 1;
	} else if (crieur_ossl.set_signature_md(c, crieur_ossl.sha256()) <= 0) {
		crieur_ossl_error("set digest", err, errlen);
		rc = 1;
	} else if (crieur_ossl.sign(c, sig, siglen, digest, dlen) <= 0) {
		crieur_ossl_error("sign", err, errlen);
		rc = 1;
	}
	crieur_ossl.ctx_free(c);
	return rc;
}

// crieur_ossl_pubkey imports a SubjectPublicKeyInfo (DER) that must hold
// an RSA key whose signatures are size bytes long.
static EVP_PKEY *crieur_ossl_pubkey(const unsigned char *der, long n, int size, char *err, size_t errlen) {
	const unsigned char *p = der;
	EVP_PKEY *k = crieur_ossl.d2i_pubkey(NULL, &p, n);
	if (k == NULL) {
		crieur_ossl_error("import public key", err, errlen);
		return NULL;
	}
	if (p != der + n || !crieur_ossl.pkey_is_a(k, "RSA") || crieur_ossl.pkey_get_size(k) != size) {
		snprintf(err, errlen, "import public key: not the RSA key handed over");
		crieur_ossl.err_clear_error();
		crieur_ossl.pkey_free(k);
		return NULL;
	}
	return k;
}

// crieur_ossl_verify checks an RSASSA-PKCS1-v1_5 signature of a SHA-256
// digest: 0 when it verifies, 1 when it does not, -1 when OpenSSL could
// not tell. A context per call, as for signing.
static int crieur_ossl_verify(EVP_PKEY *k, const unsigned char *digest, size_t dlen,
		const unsigned char *sig, size_t siglen, char *err, size_t errlen) {
	EVP_PKEY_CTX *c = crieur_ossl.ctx_new(k, NULL);
	if (c == NULL) {
		crieur_ossl_error("new context", err, errlen);
		return -1;
	}
	int rc = -1;
	if (crieur_ossl.verify_init(c) <= 0) {
		crieur_ossl_error("verify init", err, errlen);
	} else if (crieur_ossl.set_rsa_padding(c, CRIEUR_RSA_PKCS1_PADDING) <= 0) {
		crieur_ossl_error("set padding", err, errlen);
	} else if (crieur_ossl.set_signature_md(c, crieur_ossl.sha256()) <= 0) {
		crieur_ossl_error("set digest", err, errlen);
	} else if (crieur_ossl.verify(c, sig, siglen, digest, dlen) == 1) {
		rc = 0;
	} else {
		// 0 or a negative value: either way the signature is not good.
		crieur_ossl_error("verify", err, errlen);
		rc = 1;
	}
	crieur_ossl.ctx_free(c);
	return rc;
}
*/
import "C"

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// errLen is the size of the buffers OpenSSL's error texts are written to.
const errLen = 256

// openssl loads libcrypto once per process: the library and its function
// table are process-wide by nature. Its result never changes.
var openssl = sync.OnceValues(func() (string, error) {
	buf := make([]byte, errLen)
	if C.crieur_ossl_open((*C.char)(unsafe.Pointer(&buf[0])), errLen) != 0 {
		return "", errors.New(cString(buf))
	}
	return C.GoString(C.crieur_ossl_version()), nil
})

// opensslKey is a private key held by OpenSSL. Signing with it is safe
// from several goroutines at once.
type opensslKey struct {
	pkey    *C.EVP_PKEY
	size    int // signature length in bytes
	version string
}

// newOpenSSLKey hands key to OpenSSL and checks one signature against
// key's public half, so a library that signs wrongly is never used.
func newOpenSSLKey(key *rsa.PrivateKey) (*opensslKey, error) {
	version, err := openssl()
	if err != nil {
		return nil, err
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	defer clear(der) // the private key leaves Go's memory only into OpenSSL's
	buf := make([]byte, errLen)
	pkey := C.crieur_ossl_key((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)),
		(*C.char)(unsafe.Pointer(&buf[0])), errLen)
	if pkey == nil {
		return nil, errors.New(cString(buf))
	}
	k := &opensslKey{pkey: pkey, size: key.Size(), version: version}
	runtime.AddCleanup(k, func(p *C.EVP_PKEY) { C.crieur_ossl_key_free(p) }, pkey)
	probe := sha256.Sum256([]byte("crieur checks that OpenSSL signs with its key"))
	sig, err := k.signSHA256(probe[:])
	if err != nil {
		return nil, err
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, probe[:], sig); err != nil {
		return nil, fmt.Errorf("%s made a signature that does not verify: %w", version, err)
	}
	return k, nil
}

// signSHA256 returns the RSASSA-PKCS1-v1_5 signature of a SHA-256 digest:
// the same bytes as rsa.SignPKCS1v15, since this scheme is deterministic.
func (k *opensslKey) signSHA256(digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("digest of %d bytes, want %d", len(digest), sha256.Size)
	}
	sig := make([]byte, k.size)
	n := C.size_t(len(sig))
	buf := make([]byte, errLen)
	rc := C.crieur_ossl_sign(k.pkey, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n, (*C.char)(unsafe.Pointer(&buf[0])), errLen)
	runtime.KeepAlive(k) // the cleanup must not free the key mid-call
	if rc != 0 {
		return nil, errors.New(cString(buf))
	}
	return sig[:n], nil
}

// cString is the NUL-terminated text C wrote into buf.
func cString(buf []byte) string {
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	return string(buf)
}

// opensslPublicKey is an RSA public key held by OpenSSL. Verifying with it
// is safe from several goroutines at once: each call makes its own
// context, and OpenSSL keeps the key's Montgomery constants with the key.
type opensslPublicKey struct {
	pkey *C.EVP_PKEY
	size int // signature length in bytes
}

// newOpenSSLPublicKey hands pub to OpenSSL. pub must have passed
// checkPublicKey.
func newOpenSSLPublicKey(pub *rsa.PublicKey) (*opensslPublicKey, error) {
	if _, err := openssl(); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, errLen)
	pkey := C.crieur_ossl_pubkey((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)), C.int(pub.Size()),
		(*C.char)(unsafe.Pointer(&buf[0])), errLen)
	if pkey == nil {
		return nil, errors.New(cString(buf))
	}
	k := &opensslPublicKey{pkey: pkey, size: pub.Size()}
	runtime.AddCleanup(k, func(p *C.EVP_PKEY) { C.crieur_ossl_key_free(p) }, pkey)
	return k, nil
}

// verifySHA256 checks sig over a SHA-256 digest. The lengths are checked
// here too, not only by the caller: OpenSSL would take a signature shorter
// than the modulus as if left-padded with zeros, which Go refuses.
func (k *opensslPublicKey) verifySHA256(digest, sig []byte) error {
	if len(digest) != sha256.Size {
		return fmt.Errorf("digest of %d bytes, want %d", len(digest), sha256.Size)
	}
	if len(sig) != k.size {
		return rsa.ErrVerification
	}
	buf := make([]byte, errLen)
	rc := C.crieur_ossl_verify(k.pkey, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), C.size_t(len(sig)), (*C.char)(unsafe.Pointer(&buf[0])), errLen)
	runtime.KeepAlive(k) // the cleanup must not free the key mid-call
	switch rc {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%w (%s)", rsa.ErrVerification, cString(buf))
	}
	return errors.New(cString(buf))
}
