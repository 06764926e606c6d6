package signature

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/crieur/crieur/federation/internal/testkit"
)

// testVerifier is the Verifier the tests verify with: OpenSSL when it
// loads, as crieur serve would (RSAAuto), Go otherwise.
var testVerifier = sync.OnceValue(func() *Verifier {
	v, err := NewVerifier(RSAAuto)
	if err != nil {
		panic(err)
	}
	return v
})

// testKey prepares pub with testVerifier.
func testKey(t testing.TB, pub *rsa.PublicKey) *PublicKey {
	t.Helper()
	k, err := testVerifier().Key(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// engines are the Verifiers to compare: Go always, OpenSSL when it loads.
func verifierEngines(t *testing.T) map[string]*Verifier {
	t.Helper()
	out := map[string]*Verifier{"go": {}}
	if _, err := openssl(); err == nil {
		v, err := NewVerifier(RSAOpenSSL)
		if err != nil {
			t.Fatal(err)
		}
		out["openssl"] = v
	} else if os.Getenv("CRIEUR_REQUIRE_OPENSSL") != "" {
		t.Fatalf("OpenSSL required (CRIEUR_REQUIRE_OPENSSL) but not available: %v", err)
	}
	return out
}

// rawSign applies the private key to em (RSA without padding), to craft
// signatures whose encoding is wrong.
func rawSign(key *rsa.PrivateKey, em []byte) []byte {
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), key.D, key.N)
	return s.FillBytes(make([]byte, key.Size()))
}

// pkcs1EM is 00 01 FF… 00 t, k bytes long.
func pkcs1EM(k int, t []byte) []byte {
	em := make([]byte, k)
	em[1] = 1
	for i := 2; i < k-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(t):], t)
	return em
}

var sha256Prefix = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// smallExponentKey makes an RSA key with e = 3, which rsa.GenerateKey
// never does.
func smallExponentKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	e := big.NewInt(3)
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		q, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		n := new(big.Int).Mul(p, q)
		if p.Cmp(q) == 0 || n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 3}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		return k
	}
}

// sigCase is one (digest, signature) pair to verify.
type sigCase struct {
	name        string
	digest, sig []byte
}

// corruptions lists what a verifier must refuse (and one it must accept,
// "valid") for key and digest.
func corruptions(r *mrand.Rand, key *rsa.PrivateKey, digest []byte) []sigCase {
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest)
	if err != nil {
		panic(err)
	}
	k := key.Size()
	cp := func() []byte { return append([]byte(nil), sig...) }
	cases := []sigCase{{"valid", digest, sig}}
	for range 8 {
		b := cp()
		bit := r.IntN(8 * k)
		b[bit/8] ^= 0x80 >> (bit % 8)
		cases = append(cases, sigCase{fmt.Sprintf("bit %d flipped", bit), digest, b})
	}
	other := append([]byte(nil), digest...)
	other[r.IntN(len(other))] ^= 1 << r.IntN(8)
	n := key.N.FillBytes(make([]byte, k))
	nPlus := new(big.Int).Add(key.N, big.NewInt(1)).FillBytes(make([]byte, k))
	sum := sha256.Sum256(digest) // a digest of the digest: another message
	cases = append(cases,
		sigCase{"other digest", other, sig},
		sigCase{"other message", sum[:], sig},
		sigCase{"truncated first byte", digest, sig[1:]},
		sigCase{"truncated last byte", digest, sig[:k-1]},
		sigCase{"zero byte prepended", digest, append([]byte{0}, sig...)},
		sigCase{"zero byte appended", digest, append(cp(), 0)},
		sigCase{"twice as long", digest, append(cp(), sig...)},
		sigCase{"empty", digest, []byte{}},
		sigCase{"nil", digest, nil},
		sigCase{"one byte", digest, []byte{1}},
		sigCase{"zero", digest, make([]byte, k)},
		sigCase{"one", digest, append(make([]byte, k-1), 1)},
		sigCase{"modulus", digest, n},
		sigCase{"modulus plus one", digest, nPlus},
		sigCase{"all ones", digest, bytes.Repeat([]byte{0xff}, k)},
		sigCase{"modulus minus one", digest, new(big.Int).Sub(key.N, big.NewInt(1)).FillBytes(make([]byte, k))},
		sigCase{"signature plus modulus", digest, new(big.Int).Add(new(big.Int).SetBytes(sig), key.N).FillBytes(make([]byte, k+1))[1:]},
	)
	// Well-formed RSA over badly formed encodings.
	noNull := append([]byte{0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20}, digest...)
	sha512OID := append(append([]byte(nil), sha256Prefix...), digest...)
	sha512OID[14] = 0x03 // SHA-512's OID arc, SHA-256's length
	good := append(append([]byte(nil), sha256Prefix...), digest...)
	bt2 := pkcs1EM(k, good)
	bt2[1] = 2
	psFE := pkcs1EM(k, good)
	psFE[5] = 0xfe
	noSep := pkcs1EM(k, good)
	noSep[k-len(good)-1] = 0xff
	shortPS := make([]byte, k) // 00 01 FF×7 00 garbage… DigestInfo
	shortPS[1] = 1
	for i := 2; i < 9; i++ {
		shortPS[i] = 0xff
	}
	copy(shortPS[k-len(good):], good)
	cases = append(cases,
		sigCase{"DigestInfo without NULL", digest, rawSign(key, pkcs1EM(k, noNull))},
		sigCase{"bare digest", digest, rawSign(key, pkcs1EM(k, digest))},
		sigCase{"SHA-512 OID", digest, rawSign(key, pkcs1EM(k, sha512OID))},
		sigCase{"block type 2", digest, rawSign(key, bt2)},
		sigCase{"padding byte FE", digest, rawSign(key, psFE)},
		sigCase{"no separator", digest, rawSign(key, noSep)},
		sigCase{"garbage after short padding", digest, rawSign(key, shortPS)},
		sigCase{"trailing byte", digest, rawSign(key, pkcs1EM(k, append(append([]byte(nil), good[:len(good)-1]...), good...)))},
		sigCase{"correct encoding raw", digest, rawSign(key, pkcs1EM(k, good))},
	)
	return cases
}

// TestVerifyAgreesWithGo: with either engine, VerifySHA256 accepts exactly
// what crypto/rsa.VerifyPKCS1v15 accepts, over random keys and messages
// and every corruption of their signatures.
func TestVerifyAgreesWithGo(t *testing.T) {
	engines := verifierEngines(t)
	keys := []*rsa.PrivateKey{testkit.Key(t, 0), testkit.Key(t, 1), testkit.Key(t, 2)}
	for _, bits := range []int{1024, 2048, 3072} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	keys = append(keys, smallExponentKey(t, 2048))
	r := mrand.New(mrand.NewPCG(1, 2))
	accepted := 0
	for ki, key := range keys {
		prepared := map[string]*PublicKey{}
		for name, v := range engines {
			pk, err := v.Key(&key.PublicKey)
			if err != nil {
				t.Fatalf("key %d (%d bits, e=%d) on %s: %v", ki, key.N.BitLen(), key.E, name, err)
			}
			prepared[name] = pk
		}
		for m := range 6 {
			msg := make([]byte, r.IntN(200))
			for i := range msg {
				msg[i] = byte(r.Uint32())
			}
			digest := sha256.Sum256(msg)
			for _, c := range corruptions(r, key, digest[:]) {
				want := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, c.digest, c.sig)
				if want == nil {
					accepted++
				}
				if c.name == "valid" && want != nil {
					t.Fatalf("key %d: Go refuses a valid signature: %v", ki, want)
				}
				for name, pk := range prepared {
					got := pk.VerifySHA256(c.digest, c.sig)
					if (got == nil) != (want == nil) {
						t.Errorf("key %d (%d bits, e=%d) message %d, %s, %s: got %v, Go says %v",
							ki, key.N.BitLen(), key.E, m, c.name, name, got, want)
					}
					if got != nil && !errors.Is(got, rsa.ErrVerification) {
						t.Errorf("key %d, %s, %s: error %v does not wrap rsa.ErrVerification", ki, c.name, name, got)
					}
				}
			}
		}
	}
	if accepted == 0 {
		t.Fatal("nothing verified")
	}
}

// TestKeyRefusesWhatGoRefuses: Key refuses the keys crypto/rsa refuses to
// verify with (so OpenSSL, which takes some of them, never sees them), and
// takes a 1024-bit key, the smallest Go verifies with.
func TestKeyRefusesWhatGoRefuses(t *testing.T) {
	base := &testkit.Key(t, 0).PublicKey
	with := func(n *big.Int, e int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: e} }
	odd := func(n *big.Int) *big.Int { return n.SetBit(n, 0, 1) }
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]*rsa.PublicKey{
		"nil":                 nil,
		"nil modulus":         with(nil, 65537),
		"zero modulus":        with(big.NewInt(0), 65537),
		"negative modulus":    with(new(big.Int).Neg(base.N), 65537),
		"512 bits":            with(odd(new(big.Int).Rsh(base.N, 1536)), 65537),
		"1023 bits":           with(odd(new(big.Int).Rsh(base.N, 1025)), 65537),
		"even modulus":        with(new(big.Int).Add(base.N, big.NewInt(1)), 65537),
		"exponent 1":          with(base.N, 1),
		"exponent 2":          with(base.N, 2),
		"exponent 0":          with(base.N, 0),
		"negative exponent":   with(base.N, -65537),
		"even exponent":       with(base.N, 65536),
		"exponent above 2^31": with(base.N, 1<<31+1),
	}
	digest := make([]byte, 32)
	engines := verifierEngines(t)
	for name, pub := range bad {
		// Go refuses the key itself, not only the signature. (A negative
		// modulus it would read as its absolute value; x509 never makes
		// one, and Key refuses it.)
		if pub != nil && pub.N != nil && pub.N.Sign() > 0 {
			err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, make([]byte, (pub.N.BitLen()+7)/8))
			if err == nil || errors.Is(err, rsa.ErrVerification) {
				t.Errorf("%s: Go does not refuse the key: %v", name, err)
			}
		}
		for ename, v := range engines {
			if _, err := v.Key(pub); err == nil {
				t.Errorf("%s: %s took the key", name, ename)
			}
		}
	}
	for ename, v := range engines {
		if _, err := v.Key(&small.PublicKey); err != nil {
			t.Errorf("1024 bits: %s: %v", ename, err)
		}
	}
}

// TestKeyIsCopied: changing the *rsa.PublicKey after Key changes nothing.
func TestKeyIsCopied(t *testing.T) {
	key := testkit.Key(t, 0)
	pub := &rsa.PublicKey{N: new(big.Int).Set(key.N), E: key.E}
	digest := sha256.Sum256([]byte("m"))
	sig, _ := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	for name, v := range verifierEngines(t) {
		k, err := v.Key(pub)
		if err != nil {
			t.Fatal(err)
		}
		pub.N.Add(pub.N, big.NewInt(2))
		if err := k.VerifySHA256(digest[:], sig); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !k.Public().Equal(&key.PublicKey) {
			t.Errorf("%s: Public() changed", name)
		}
		pub.N.Set(key.N)
	}
}

// TestVerifySHA256Refuses: no key, or a digest that is not SHA-256's size.
func TestVerifySHA256Refuses(t *testing.T) {
	key := testkit.Key(t, 0)
	sig := make([]byte, key.Size())
	for name, v := range verifierEngines(t) {
		k, err := v.Key(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range [][]byte{nil, {}, make([]byte, 20), make([]byte, 33), make([]byte, 64)} {
			if err := k.VerifySHA256(d, sig); err == nil {
				t.Errorf("%s: digest of %d bytes accepted", name, len(d))
			}
		}
	}
	var nilKey *PublicKey
	if err := nilKey.VerifySHA256(make([]byte, 32), sig); err == nil {
		t.Error("nil key verified")
	}
}

// TestProbe: the probe passes Go and OpenSSL, and refuses verifiers that
// would let forged requests in.
func TestProbe(t *testing.T) {
	goVerify := func(pub *rsa.PublicKey, digest, sig []byte) error {
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	}
	if err := probeVerify(goVerify); err != nil {
		t.Fatalf("Go fails the probe: %v", err)
	}
	if _, err := openssl(); err == nil {
		if err := probeVerify(verifyWithOpenSSL); err != nil {
			t.Fatalf("OpenSSL fails the probe: %v", err)
		}
	}
	// A lax verifier: the RSA is right, but it only compares the digest at
	// the end of the encoded message.
	lax := func(pub *rsa.PublicKey, digest, sig []byte) error {
		m := new(big.Int).Exp(new(big.Int).SetBytes(sig), big.NewInt(int64(pub.E)), pub.N)
		em := m.FillBytes(make([]byte, pub.Size()))
		if !bytes.HasSuffix(em, digest) {
			return rsa.ErrVerification
		}
		return nil
	}
	fakes := map[string]verifyFunc{
		"always true":  func(*rsa.PublicKey, []byte, []byte) error { return nil },
		"always false": func(*rsa.PublicKey, []byte, []byte) error { return rsa.ErrVerification },
		"length only": func(pub *rsa.PublicKey, _, sig []byte) error {
			if len(sig) != pub.Size() {
				return rsa.ErrVerification
			}
			return nil
		},
		"ignores the digest": func(pub *rsa.PublicKey, _, sig []byte) error {
			probe := sha256.Sum256([]byte(probeMessage))
			return goVerify(pub, probe[:], sig)
		},
		"ignores the last byte": func(pub *rsa.PublicKey, digest, sig []byte) error {
			if err := goVerify(pub, digest, sig); err == nil {
				return nil
			}
			for b := range 256 {
				s := append([]byte(nil), sig...)
				s[len(s)-1] = byte(b)
				if goVerify(pub, digest, s) == nil {
					return nil
				}
			}
			return rsa.ErrVerification
		},
		"left-pads short signatures": func(pub *rsa.PublicKey, digest, sig []byte) error {
			if len(sig) < pub.Size() {
				sig = append(make([]byte, pub.Size()-len(sig)), sig...)
			}
			return goVerify(pub, digest, sig[len(sig)-pub.Size():])
		},
		"lax DigestInfo": lax,
	}
	for name, f := range fakes {
		if err := probeVerify(f); err == nil {
			t.Errorf("the probe takes a verifier that is %s", name)
		}
	}
}

// TestProbeVector: the embedded vector is what its comment says.
func TestProbeVector(t *testing.T) {
	pub, err := ParsePublicKeyPEM(probeKeyPEM)
	if err != nil || pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Fatalf("probe key: %v", err)
	}
	digest := sha256.Sum256([]byte(probeMessage))
	sig, _ := base64.StdEncoding.DecodeString(probeSignature)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatal(err)
	}
	if sig[0] != 0 {
		t.Fatal("the probe signature does not begin with a zero byte")
	}
	lax, _ := base64.StdEncoding.DecodeString(probeLaxSignature)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], lax); err == nil {
		t.Fatal("Go takes the malformed DigestInfo")
	}
	em := new(big.Int).Exp(new(big.Int).SetBytes(lax), big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, pub.Size()))
	if !bytes.HasSuffix(em, digest[:]) || !bytes.HasPrefix(em, []byte{0, 1, 0xff}) {
		t.Fatalf("the lax signature does not hold the digest: %x", em)
	}
}

// TestVerifierEngineChoice: what each setting verifies with, and what
// happens where OpenSSL is missing: auto falls back and says why,
// openssl refuses.
func TestVerifierEngineChoice(t *testing.T) {
	g, err := NewVerifier(RSAGo)
	if e, why := g.Engine(); err != nil || e != "Go crypto/rsa" || why != "" {
		t.Fatalf("go: %v %q %q", err, e, why)
	}
	version, loadErr := openssl()
	auto, err := NewVerifier(RSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	o, oErr := NewVerifier(RSAOpenSSL)
	if loadErr == nil {
		if e, why := auto.Engine(); e != version || why != "" {
			t.Errorf("auto with OpenSSL available: engine %q, fallback %q", e, why)
		}
		if oErr != nil {
			t.Errorf("openssl: %v", oErr)
		} else if e, _ := o.Engine(); e != version {
			t.Errorf("openssl: engine %q", e)
		}
		k, err := auto.Key(&testkit.Key(t, 0).PublicKey)
		if err != nil || k.ossl == nil {
			t.Errorf("auto's key is not OpenSSL's: %v", err)
		}
	} else {
		if os.Getenv("CRIEUR_REQUIRE_OPENSSL") != "" {
			t.Fatalf("OpenSSL required (CRIEUR_REQUIRE_OPENSSL) but not available: %v", loadErr)
		}
		if e, why := auto.Engine(); e != "Go crypto/rsa" || why != loadErr.Error() {
			t.Errorf("auto without OpenSSL: engine %q, fallback %q, want Go and %q", e, why, loadErr)
		}
		if oErr == nil || !strings.Contains(oErr.Error(), loadErr.Error()) {
			t.Errorf("openssl without OpenSSL: %v, want an error saying %q", oErr, loadErr)
		}
	}
	if _, err := NewVerifier("boring"); err == nil {
		t.Error("unknown engine accepted")
	}
	if k, err := g.Key(&testkit.Key(t, 0).PublicKey); err != nil || k.ossl != nil {
		t.Errorf("go's key: %v", err)
	}
}

// TestPublicKeyConcurrent: one key verifying on many goroutines at once,
// as the inbox does; run with -race.
func TestPublicKeyConcurrent(t *testing.T) {
	key := testkit.Key(t, 1)
	for name, v := range verifierEngines(t) {
		k, err := v.Key(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8*20)
		for g := range 8 {
			wg.Go(func() {
				for i := range 20 {
					sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d", g, i))
					sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
					if err != nil {
						errs <- err
						continue
					}
					if i%2 == 1 {
						sig[i] ^= 1
						if k.VerifySHA256(sum[:], sig) == nil {
							errs <- fmt.Errorf("%s: corrupted signature %d/%d verified", name, g, i)
						}
						continue
					}
					errs <- k.VerifySHA256(sum[:], sig)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}
