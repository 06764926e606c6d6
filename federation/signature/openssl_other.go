//go:build !linux || !cgo

package signature

import (
	"crypto/rsa"
	"errors"
)

// errNoOpenSSL: such a crieur signs with Go's crypto/rsa.
var errNoOpenSSL = errors.New("this crieur was built without cgo for Linux, so it cannot load OpenSSL")

func openssl() (string, error) { return "", errNoOpenSSL }

// opensslKey is never made in this build.
type opensslKey struct{ version string }

func newOpenSSLKey(*rsa.PrivateKey) (*opensslKey, error) { return nil, errNoOpenSSL }

func (*opensslKey) signSHA256([]byte) ([]byte, error) { return nil, errNoOpenSSL }

// opensslPublicKey is never made in this build.
type opensslPublicKey struct{}

func newOpenSSLPublicKey(*rsa.PublicKey) (*opensslPublicKey, error) { return nil, errNoOpenSSL }

func (*opensslPublicKey) verifySHA256([]byte, []byte) error { return errNoOpenSSL }
