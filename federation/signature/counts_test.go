package signature

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"

	"github.com/crieur/crieur/federation/internal/testkit"
)

// The metrics read how many signatures were made and verified.
func TestSignerAndVerifierCount(t *testing.T) {
	key := testkit.Key(t, 1)
	s, err := NewSignerEngine("https://b.example/@reports#main-key", key, nil, RSAGo)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, "https://remote.example/inbox", strings.NewReader("{}"))
		if err := s.SignRequest(req, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Signed(); n != 2 {
		t.Errorf("Signed = %d, want 2", n)
	}
	for name, v := range verifierEngines(t) {
		pub, err := v.Key(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("hello"))
		sig, err := s.SignHash(sum[:])
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.VerifySHA256(sum[:], sig); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sig[0] ^= 1
		if err := pub.VerifySHA256(sum[:], sig); err == nil {
			t.Fatalf("%s: a corrupted signature verifies", name)
		}
		_ = pub.VerifySHA256(sum[:], sig[:10]) // wrong length: invalid too
		if valid, invalid := v.Verifications(); valid != 1 || invalid != 2 {
			t.Errorf("%s: Verifications = %d valid, %d invalid; want 1 and 2", name, valid, invalid)
		}
	}
}
