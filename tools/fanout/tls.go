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
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: %w", err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fanout test authority"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: authority: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: authority: %w", err)
	}
	// An intermediate, as real chains have: the client checks two
	// signatures, as it does with Let's Encrypt's.
	midKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: %w", err)
	}
	mid := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "fanout test intermediate"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	midDER, err := x509.CreateCertificate(rand.Reader, mid, caCert, &midKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: intermediate: %w", err)
	}
	midCert, err := x509.ParseCertificate(midDER)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: intermediate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, midCert, &key.PublicKey, midKey)
	if err != nil {
		return nil, fmt.Errorf("fanout: tls: server certificate: %w", err)
	}
	caFile := filepath.Join(dir, "fanout-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return nil, fmt.Errorf("fanout: tls: %w", err)
	}
	return &testTLS{
		caFile: caFile,
		// The chain a real server sends: its certificate and the
		// intermediate's, not the root.
		server: tls.Certificate{Certificate: [][]byte{leafDER, midDER}, PrivateKey: key},
	}, nil
}

// serverConfig is the inbox servers' TLS configuration: Go's defaults,
// HTTP/1.1 only, as the deliveries use.
func (t *testTLS) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{t.server}, NextProtos: []string{"http/1.1"}}
}
