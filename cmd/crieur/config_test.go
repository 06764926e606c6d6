package main

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/documents"
	"github.com/crieur/crieur/federation/signature"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigDefaultsWorkForALocalRun(t *testing.T) {
	c, rest, err := parseConfig("serve", nil, envOf(nil), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL != "http://localhost:8080" || c.PostsDir != "./posts" || c.DataDir != "./data" || c.Handle != "reports" || c.Listen != ":8080" {
		t.Errorf("defaults: %+v", c)
	}
	if c.RetryFor != 48*time.Hour || c.KeepFailed != 30*24*time.Hour || c.AllowPrivate || c.RSA != signature.RSAAuto {
		t.Errorf("retry-for %s keep-failed %s allow-private %v rsa %q", c.RetryFor, c.KeepFailed, c.AllowPrivate, c.RSA)
	}
	if len(rest) != 0 {
		t.Errorf("rest: %v", rest)
	}
}

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	env := envOf(map[string]string{"CRIEUR_HANDLE": "fromenv", "CRIEUR_BASE_URL": "https://env.example/", "CRIEUR_FIELDS": "Web=https://a.example;Lang=fr"})
	c, rest, err := parseConfig("followers", []string{"-handle", "fromflag", "remove", "x"}, env, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Handle != "fromflag" {
		t.Errorf("handle %q, want the flag's", c.Handle)
	}
	if c.BaseURL != "https://env.example" {
		t.Errorf("base URL %q: env value, trailing slash trimmed", c.BaseURL)
	}
	if len(c.Fields) != 2 || c.Fields[1] != "Lang=fr" {
		t.Errorf("fields %v", c.Fields)
	}
	sw, _, err := parseConfig("serve", []string{"-allow-private", "-manual-approval=false"}, envOf(map[string]string{"CRIEUR_MANUAL_APPROVAL": "true"}), io.Discard, nil)
	if err != nil || !sw.AllowPrivate || sw.ManualApprove {
		t.Errorf("switches: allow-private %v manual-approval %v err %v", sw.AllowPrivate, sw.ManualApprove, err)
	}
	if r, _, err := parseConfig("serve", nil, envOf(map[string]string{"CRIEUR_RSA": "go"}), io.Discard, nil); err != nil || r.RSA != signature.RSAGo {
		t.Errorf("CRIEUR_RSA=go: rsa %q, err %v", r.RSA, err)
	}
	if strings.Join(rest, " ") != "remove x" {
		t.Errorf("rest %v", rest)
	}
}

func TestConfigRejectsBadValuesWithClearMessages(t *testing.T) {
	cases := map[string][]string{
		"base URL with a path": {"-base-url", "https://example.org/blog"},
		"base URL scheme":      {"-base-url", "ftp://example.org"},
		"handle":               {"-handle", "Not Valid"},
		"retry":                {"-retry-for", "forever"},
		"keep failed":          {"-keep-failed", "0s"},
		"bool":                 {"-manual-approval=maybe"},
		"lang":                 {"-lang", "english"},
		"field":                {"-field", "novalue"},
		"log level":            {"-log-level", "loud"},
		"rsa engine":           {"-rsa", "boringssl"},
		"quotes":               {"-quotes", "everyone"},
		"metrics no port":      {"-metrics", "127.0.0.1"},
		"metrics bad port":     {"-metrics", "127.0.0.1:http9"},
		"metrics port range":   {"-metrics", "127.0.0.1:70000"},
		"metrics is listen":    {"-metrics", ":8080"},
	}
	for name, args := range cases {
		_, _, err := parseConfig("serve", args, envOf(nil), io.Discard, nil)
		if err == nil {
			t.Errorf("%s: %v accepted", name, args)
			continue
		}
		name, _, _ := strings.Cut(args[0], "=")
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the flag", name, err)
		}
	}
}

// The README's configuration table is what users read: every setting must
// be in it with its variable.
func TestReadmeListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settingsDoc {
		if !strings.Contains(string(b), "`-"+s.flag+"` | `"+s.env+"`") {
			t.Errorf("README.md has no row for -%s / %s", s.flag, s.env)
		}
	}
}

// Wrong command lines are refused with a usage error (exit 2) before
// anything is opened or served.
func TestRunRefusesBadCommandLines(t *testing.T) {
	dir := t.TempDir()
	env := envOf(map[string]string{"CRIEUR_DATA": dir + "/data", "CRIEUR_POSTS": dir})
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"serve", "extra"},
		{"serve", "-no-such-flag"},
		{"followers", "bogus"},
		{"followers", "remove"},
		{"publish"},
		{"publish", "-dry-run", "-again", "a/en"},
		{"bench", "-rsa", "boringssl"},
	} {
		var out strings.Builder
		err := run(context.Background(), args, env, &out, &out)
		if exitCode(err) != 2 {
			t.Errorf("%q: exit %d (%v), want 2\n%s", args, exitCode(err), err, out.String())
		}
	}
	if _, err := os.Stat(dir + "/data"); !os.IsNotExist(err) {
		t.Errorf("a refused command line created the data folder")
	}
}

// Flags after a command's words are read like the ones before; "--" ends
// them.
func TestFlagsAfterWords(t *testing.T) {
	env := func(string) string { return "" }
	c, rest, err := parseConfig("followers", []string{"remove", "https://h.example/u/a", "-data", "/srv/crieur", "--", "-x"}, env, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/srv/crieur" || !slices.Equal(rest, []string{"remove", "https://h.example/u/a", "-x"}) {
		t.Errorf("data %q, words %q", c.DataDir, rest)
	}
}

// -quotes and CRIEUR_QUOTES reach documents.Config; auto by default.
func TestConfigQuotes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want documents.QuotePolicy
	}{
		{nil, nil, documents.QuotesAuto},
		{[]string{"-quotes", "followers"}, nil, documents.QuotesFollowers},
		{nil, map[string]string{"CRIEUR_QUOTES": "nobody"}, documents.QuotesNobody},
		{[]string{"-quotes", "auto"}, map[string]string{"CRIEUR_QUOTES": "nobody"}, documents.QuotesAuto},
	} {
		c, _, err := parseConfig("serve", tc.args, envOf(tc.env), io.Discard, nil)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if c.Quotes != tc.want {
			t.Errorf("%v %v: quotes %q, want %q", tc.args, tc.env, c.Quotes, tc.want)
		}
	}
}

func TestConfigMetrics(t *testing.T) {
	c, _, err := parseConfig("serve", nil, envOf(nil), io.Discard, nil)
	if err != nil || c.Metrics != "" {
		t.Fatalf("default: %q %v, want off", c.Metrics, err)
	}
	for _, addr := range []string{"127.0.0.1:9464", "[::1]:9464", "localhost:9464", "10.0.0.2:0"} {
		c, _, err := parseConfig("serve", nil, envOf(map[string]string{"CRIEUR_METRICS": addr}), io.Discard, nil)
		if err != nil || c.Metrics != addr {
			t.Errorf("CRIEUR_METRICS=%s: %q %v", addr, c.Metrics, err)
		}
	}
	_, _, err = parseConfig("serve", []string{"-metrics", "9464"}, envOf(nil), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), `-metrics: "9464" is not host:port`) {
		t.Errorf("a bare port: %v", err)
	}
	for host, private := range map[string]bool{"127.0.0.1": true, "::1": true, "10.1.2.3": true, "localhost": true,
		"metrics.internal": true, "": false, "0.0.0.0": false, "::": false, "203.0.113.9": false} {
		if privateHost(host) != private {
			t.Errorf("privateHost(%q) = %v", host, !private)
		}
	}
}
