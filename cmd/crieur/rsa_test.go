package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/signature"
)

// TestServeSignsWithTheChosenEngine: -rsa picks what signs and verifies;
// the log says which, and a follower's server verifies the Accept either
// way (and crieur the Follow). Where
// OpenSSL cannot load, -rsa openssl refuses to start and says why, and
// auto falls back to Go and says why.
func TestServeSignsWithTheChosenEngine(t *testing.T) {
	version, loadErr := signature.OpenSSL()
	type engineCase struct{ rsa, want, verify string }
	cases := []engineCase{{"go", `engine="Go crypto/rsa"`, `msg=verifying engine="Go crypto/rsa"`}}
	if loadErr == nil {
		cases = append(cases, engineCase{"openssl", `engine="` + version + `"`, `msg=verifying engine="` + version + `"`},
			engineCase{"auto", `engine="` + version + `"`, `msg=verifying engine="` + version + `"`})
	} else {
		cases = append(cases, engineCase{"auto", "OpenSSL is not available", `msg="verifying with Go's RSA: OpenSSL is not available"`})
	}
	for _, tc := range cases {
		t.Run(tc.rsa, func(t *testing.T) {
			in := newInstance(t, map[string]string{"hello.en.md": post("hello", "en", "Hello", "2023-01-02", "First.")})
			in.extraEnv["CRIEUR_RSA"] = tc.rsa
			in.extraEnv["CRIEUR_LOG_LEVEL"] = "info"
			in.start()
			r := newRemote(t)
			if resp := r.send(in.actorID()+"/inbox", "alice", follow(r, in, "alice"), nil); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("Follow answered %d, want 202", resp.StatusCode)
			}
			// The remote's inbox verifies the signature before it
			// records anything.
			r.waitFor(10*time.Second, "Accept", ofType("Accept"))
			// Written right after the server starts: long before the
			// Accept left.
			for _, want := range []string{tc.want, tc.verify} {
				if !strings.Contains(in.out.String(), want) {
					t.Errorf("log does not say %s:\n%s", want, in.out.String())
				}
			}
		})
	}
	if loadErr != nil {
		t.Run("openssl missing", func(t *testing.T) {
			in := newInstance(t, nil)
			in.extraEnv["CRIEUR_RSA"] = "openssl"
			var out syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, []string{"serve"}, in.env(), &out, &out)
			if err == nil || !strings.Contains(err.Error(), "rsa engine openssl") || !strings.Contains(err.Error(), loadErr.Error()) {
				t.Errorf("serve -rsa openssl without OpenSSL: %v, want a refusal naming %q", err, loadErr)
			}
		})
	}
}

// TestVersionNamesTheEngine: crieur version says what serve would sign
// with under the same CRIEUR_RSA, so a harness (tools/fanout) or an admin
// can tell which reference rate applies.
func TestVersionNamesTheEngine(t *testing.T) {
	openSSL, loadErr := signature.OpenSSL()
	auto := "RSA signatures: " + openSSL + " (libcrypto.so.3)"
	forced := auto
	if loadErr != nil {
		auto = "RSA signatures: Go crypto/rsa (no OpenSSL: " + loadErr.Error() + ")"
		forced = "crieur serve will not start"
	}
	for _, tc := range []struct{ setting, want string }{
		{"", auto},
		{"auto", auto},
		{"go", "RSA signatures: Go crypto/rsa (CRIEUR_RSA=go)"},
		{"openssl", forced},
		{"rsa", `unknown RSA engine "rsa"`},
	} {
		var out bytes.Buffer
		getenv := func(k string) string {
			if k == "CRIEUR_RSA" {
				return tc.setting
			}
			return ""
		}
		if err := run(context.Background(), []string{"version"}, getenv, &out, &out); err != nil {
			t.Fatalf("version: %v", err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("CRIEUR_RSA=%q: version says %q, want %q in it", tc.setting, out.String(), tc.want)
		}
	}
}
