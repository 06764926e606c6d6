package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// With -https the inbox servers speak TLS, as every real instance does:
// each delivery then also pays a TLS handshake on both sides, which the
// plain-HTTP runs leave out. The servers share one certificate for
// 127.0.0.1, issued by a certificate authority made for the run; crieur
// trusts it through SSL_CERT_FILE, which Go's crypto/x509 reads for the
// system roots on Linux. Keys are ECDSA P-256, what Let's Encrypt issues
// by default, so a handshake costs the servers what it costs most real
// instances.

// testTLS is the run's certificate authority (a root and an intermediate)
// and the servers' certificate.
type testTLS struct {
	caFile string // PEM of the authority, for SSL_CERT_FILE
	server tls.Certificate
}

// newTestTLS makes the authority and the servers' certificate, and writes
// the authority's certificate into dir.
func newTestTLS(dir string) (*testTLS, error) {
	now := time.Now()
	authority := func(serial int64, name string) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		}
	}
	rootDER, root, rootKey, err := issue(authority(1, "fanout test authority"), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: authority: %w", err)
	}
	// An intermediate, as real chains have: the client checks two
	// signatures, as it does with Let's Encrypt's.
	midDER, mid, midKey, err := issue(authority(2, "fanout test intermediate"), root, rootKey)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: intermediate: %w", err)
	}
	leafDER, _, key, err := issue(&x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, mid, midKey)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: server certificate: %w", err)
	}
	caFile := filepath.Join(dir, "fanout-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o600); err != nil {
		return nil, fmt.Errorf("fanout: tls: %w", err)
	}
	return &testTLS{
		caFile: caFile,
		// The chain a real server sends: its certificate and the
		// intermediate's, not the root.
		server: tls.Certificate{Certificate: [][]byte{leafDER, midDER}, PrivateKey: key},
	}, nil
}

// issue makes a new P-256 key and its certificate from template, signed by
// parent's key (self-signed when parent is nil).
func issue(template, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	if parent == nil {
		parent, parentKey = template, key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return der, cert, key, nil
}

// serverConfig is the inbox servers' TLS configuration: Go's defaults,
// HTTP/1.1 only, as the deliveries use.
func (t *testTLS) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{t.server}, NextProtos: []string{"http/1.1"}}
}
