package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-fed/httpsig"
)

// TestFanoutEndToEnd builds crieur, then runs the whole harness at small
// size, all healthy and with 30% of the servers failing. It checks
// correctness only (every healthy server got exactly one verified Create),
// never speed.
func TestFanoutEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs crieur")
	}
	bin := filepath.Join(t.TempDir(), "crieur")
	build := exec.Command("go", "build", "-o", bin, "github.com/crieur/crieur/cmd/crieur")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build crieur: %v\n%s", err, out)
	}
	_, noOpenSSL := exec.LookPath("openssl")
	for _, tc := range []struct {
		fail                  string
		healthy, err500, hang int
		openssl               string // the -openssl flag
		follow                bool   // -follow: real Follows instead of seeding
		keyPerServer          bool   // -key-per-server
		https                 bool   // -https: the servers speak TLS
	}{
		{"0", 40, 0, 0, "openssl", false, false, false},
		{"0.3", 28, 6, 6, "", false, true, false},
		{"0.3", 28, 6, 6, "", true, false, false},
		{"0.3", 28, 6, 6, "", false, false, true},
	} {
		t.Run(fmt.Sprintf("fail=%s/follow=%v/https=%v", tc.fail, tc.follow, tc.https), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := []string{
				"-crieur", bin, "-followers", "200", "-servers", "40", "-fail", tc.fail,
				"-sign-for", "200ms", "-linger", "500ms", "-dir", t.TempDir(), "-timeout", "90s",
				"-openssl", tc.openssl,
			}
			if tc.follow {
				args = append(args, "-follow", "-follow-workers", "16")
			}
			if tc.keyPerServer {
				args = append(args, "-key-per-server")
			}
			if tc.https {
				args = append(args, "-https")
			}
			err := run(ctx, args, &stdout, &stderr)
			if err != nil {
				t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			r := lastReport(t, stdout.Bytes())
			if !r.OK || len(r.Problems) > 0 {
				t.Errorf("report not ok: %q", r.Problems)
			}
			if r.Healthy != tc.healthy || r.Failing500 != tc.err500 || r.Hanging != tc.hang {
				t.Errorf("servers: %d healthy, %d 500, %d hanging; want %d, %d, %d",
					r.Healthy, r.Failing500, r.Hanging, tc.healthy, tc.err500, tc.hang)
			}
			if r.HealthyReached != tc.healthy {
				t.Errorf("healthy servers reached: %d, want %d", r.HealthyReached, tc.healthy)
			}
			if r.Duplicates != 0 || r.VerifyFailures != 0 || r.Unexpected != 0 {
				t.Errorf("duplicates %d, verification failures %d (%q), unexpected %d; want none",
					r.Duplicates, r.VerifyFailures, r.Failures, r.Unexpected)
			}
			if r.DistinctCreates != 1 {
				t.Errorf("%d Create ids for the one article, want 1", r.DistinctCreates)
			}
			if r.KeyFetches < 1 || r.Posts < tc.healthy {
				t.Errorf("key fetches %d, POSTs %d: the receivers did not verify", r.KeyFetches, r.Posts)
			}
			if r.SignBefore <= 0 || r.SignAfter <= 0 || r.PeakRSSMiB <= 0 || r.RSSAnonMiB <= 0 || r.RSSAnonMiB > r.PeakRSSMiB {
				t.Errorf("sign rates %v/%v, peak RSS %v: a measurement is missing", r.SignBefore, r.SignAfter, r.PeakRSSMiB)
			}
			switch {
			case tc.openssl == "" && (r.OpenSSLRate != 0 || r.RatioOpenSSL != 0):
				t.Errorf("-openssl \"\" still measured %v/s", r.OpenSSLRate)
			case tc.openssl != "" && noOpenSSL == nil && (r.OpenSSLBefore <= 0 || r.OpenSSLAfter <= 0 || r.RatioOpenSSL <= 0):
				t.Errorf("openssl speed rates %v/%v, ratio %v: the second reference is missing", r.OpenSSLBefore, r.OpenSSLAfter, r.RatioOpenSSL)
			}
			// Every server that verified a delivery fetched the key
			// itself, or one fetch served them all.
			switch {
			case tc.keyPerServer && r.KeyFetches < tc.healthy:
				t.Errorf("%d key fetches with -key-per-server, want one per server (%d healthy)", r.KeyFetches, tc.healthy)
			case !tc.keyPerServer && r.KeyFetches != 1:
				t.Errorf("%d key fetches with a shared cache, want 1", r.KeyFetches)
			}
			if r.CrieurSigns != "openssl" && r.CrieurSigns != "go" {
				t.Errorf("crieur_signs %q: crieur version was not understood", r.CrieurSigns)
			}
			switch {
			case !tc.follow && r.Follow:
				t.Errorf("report says -follow without it")
			case tc.follow && (!r.Follow || r.FollowsAccepted != 200 || r.FollowsAnswered != 200 || r.FollowRefused != 0 || r.DuplicateAccepts != 0):
				t.Errorf("follow phase: %d of 200 Follows accepted, %d refused, %d duplicate Accepts (follow=%v)",
					r.FollowsAccepted, r.FollowRefused, r.DuplicateAccepts, r.Follow)
			case tc.follow && r.ActorFetches < 200:
				// One keyId per follower: crieur must fetch each to verify.
				t.Errorf("crieur fetched %d follower actors, want at least 200", r.ActorFetches)
			case tc.follow && r.Posts < tc.healthy+tc.err500:
				// The Accepts before the drop are not counted as the fan-out's,
				// and the failing servers fail from the drop on.
				t.Errorf("%d POSTs counted in the fan-out", r.Posts)
			}
			if !strings.Contains(stdout.String(), "result:         correct") {
				t.Errorf("human report does not say correct:\n%s", stdout.String())
			}
			switch {
			case tc.https && (!r.HTTPS || r.Conns == 0 || r.TLSConns != r.Conns):
				t.Errorf("-https: %d of %d connections with TLS (https %v), want all", r.TLSConns, r.Conns, r.HTTPS)
			case !tc.https && (r.HTTPS || r.TLSConns != 0):
				t.Errorf("plain run reports %d TLS connections (https %v)", r.TLSConns, r.HTTPS)
			}
		})
	}
}

// lastReport decodes the JSON line of the report.
func lastReport(t *testing.T, out []byte) report {
	t.Helper()
	var r report
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Bytes(); len(line) > 0 && line[0] == '{' && !bytes.HasPrefix(line, []byte(`{"summary"`)) {
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("report line: %v\n%s", err, line)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("no JSON report in:\n%s", out)
	}
	return r
}

// lastSummary decodes the summary line of a run with -runs or -versus.
func lastSummary(t *testing.T, out []byte) []binarySummary {
	t.Helper()
	for _, line := range bytes.Split(out, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{"summary"`)) {
			var s struct{ Summary []binarySummary }
			if err := json.Unmarshal(line, &s); err != nil {
				t.Fatalf("summary line: %v\n%s", err, line)
			}
			return s.Summary
		}
	}
	t.Fatalf("no summary line in:\n%s", out)
	return nil
}

// TestSummarize: medians of odd and even counts, figures a run did not
// report (0) left out, a metric nobody reported not printed.
func TestSummarize(t *testing.T) {
	mk := func(ok bool, ratio, one float64) *report {
		return &report{OK: ok, RatioDropToLast: ratio, RatioOpenSSLOne: one, DropToFirstMs: 10 * ratio}
	}
	a := summarize("a", []*report{mk(true, 1.2, 0.8), mk(true, 1.0, 0), mk(false, 1.1, 0.9)})
	if a.Runs != 3 || a.Correct != 2 {
		t.Errorf("runs %d correct %d, want 3 and 2", a.Runs, a.Correct)
	}
	if a.Median["ratio_drop_to_last"] != 1.1 || a.Min["ratio_drop_to_last"] != 1.0 || a.Max["ratio_drop_to_last"] != 1.2 {
		t.Errorf("ratio: median %v min %v max %v, want 1.1, 1.0, 1.2", a.Median["ratio_drop_to_last"], a.Min["ratio_drop_to_last"], a.Max["ratio_drop_to_last"])
	}
	// Two runs reported the one-process ratio: their mean is the median.
	if got := a.Median["ratio_openssl_one"]; got < 0.8499 || got > 0.8501 {
		t.Errorf("median of 0.8 and 0.9 = %v", got)
	}
	if _, ok := a.Median["healthy_slowdown"]; ok {
		t.Errorf("a figure no run reported has a median")
	}
	b := summarize("b", []*report{mk(true, 2, 0)})
	var out bytes.Buffer
	writeSummary(&out, []binarySummary{a, b})
	text := out.String()
	for _, want := range []string{"110% (100–120)", "200% (200–200)", "85.0% (80.0–90.0)", "correct runs", "2 of 3", "1 of 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "baseline") {
		t.Errorf("summary prints a metric no run reported:\n%s", text)
	}
	if sum := lastSummary(t, out.Bytes()); len(sum) != 2 || sum[1].Binary != "b" || sum[1].Median["ratio_drop_to_last"] != 2 {
		t.Errorf("summary JSON %+v", sum)
	}
}

// TestRunRefusesBadFlags checks the usage errors, before anything starts.
func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-crieur", "x", "-fail", "1"},
		{"-crieur", "x", "-servers", "10", "-followers", "5"},
		{"-crieur", "x", "-env", "PATH=/"},
		{"-crieur", "x", "extra"},
		{"-crieur", "x", "-follow", "-follow-workers", "0"},
		{"-crieur", "x", "-runs", "0"},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil {
			t.Errorf("run %q: no error", args)
		}
		if out.Len() > 0 {
			t.Errorf("run %q printed a report:\n%s", args, out.String())
		}
	}
}

// fakeCrieur serves an actor document with a public key, as crieur does.
type fakeCrieur struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	gets  int
	keyID string
}

func newFakeCrieur(t *testing.T) *fakeCrieur {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	fc := &fakeCrieur{key: key}
	fc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc.gets++
		if r.URL.Path != "/@reports" || r.Header.Get("Signature") != "" {
			http.NotFound(w, r)
			return
		}
		id := fc.srv.URL + "/@reports"
		w.Header().Set("Content-Type", "application/activity+json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": id, "type": "Service",
			"publicKey": map[string]string{"id": id + "#main-key", "owner": id, "publicKeyPem": pemKey},
		})
	}))
	t.Cleanup(fc.srv.Close)
	fc.keyID = fc.srv.URL + "/@reports#main-key"
	return fc
}

// signed builds a POST to an inbox signed like a Mastodon-compatible
// sender; headers are the signed headers.
func (fc *fakeCrieur) signed(t *testing.T, body []byte, date time.Time, headers []string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9/inbox", bytes.NewReader(body))
	r.Header.Set("Date", date.UTC().Format(http.TimeFormat))
	r.Header.Set("Host", r.Host)
	signer, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256, headers, httpsig.Signature, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.SignRequest(fc.key, fc.keyID, r, body); err != nil {
		t.Fatal(err)
	}
	r.Header.Del("Host") // as net/http's server hands it over: in r.Host
	return r
}

func TestVerifyDelivery(t *testing.T) {
	fc := newFakeCrieur(t)
	body := []byte(`{"id":"x","type":"Create"}`)
	now := time.Now()
	all := []string{httpsig.RequestTarget, "host", "date", "digest"}
	tests := []struct {
		name   string
		req    func() *http.Request
		wantOK bool
		body   []byte // what arrives, when not what was signed
	}{
		{"good", func() *http.Request { return fc.signed(t, body, now, all) }, true, nil},
		{"body changed after signing", func() *http.Request { return fc.signed(t, body, now, all) }, false,
			[]byte(`{"id":"y","type":"Create"}`)},
		{"digest not signed", func() *http.Request {
			return fc.signed(t, body, now, []string{httpsig.RequestTarget, "host", "date"})
		}, false, nil},
		{"host not signed", func() *http.Request {
			return fc.signed(t, body, now, []string{httpsig.RequestTarget, "date", "digest"})
		}, false, nil},
		{"date too old", func() *http.Request { return fc.signed(t, body, now.Add(-sigMaxAge-time.Minute), all) }, false, nil},
		{"date in the future", func() *http.Request { return fc.signed(t, body, now.Add(sigMaxFuture+time.Minute), all) }, false, nil},
		{"signature altered", func() *http.Request {
			r := fc.signed(t, body, now, all)
			sig := r.Header.Get("Signature")
			i := strings.Index(sig, `signature="`) + len(`signature="`)
			b := []byte(sig)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			r.Header.Set("Signature", string(b))
			return r
		}, false, nil},
		{"date changed after signing", func() *http.Request {
			r := fc.signed(t, body, now, all)
			r.Header.Set("Date", now.Add(time.Second).UTC().Format(http.TimeFormat))
			return r
		}, false, nil},
		{"no signature", func() *http.Request {
			r := fc.signed(t, body, now, all)
			r.Header.Del("Signature")
			return r
		}, false, nil},
	}
	keys := newKeyCache(fc.srv.URL)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if tc.body != nil {
				b = tc.body
			}
			owner, _, err := verifyDelivery(context.Background(), tc.req(), b, keys, now)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if owner != fc.srv.URL+"/@reports" {
					t.Errorf("owner %q", owner)
				}
				return
			}
			if err == nil {
				t.Fatal("verified, want a failure")
			}
			if !errors.Is(err, errVerify) {
				t.Errorf("error %v is not errVerify", err)
			}
		})
	}
	if got := keys.fetches.Load(); got != 1 {
		t.Errorf("key fetched %d times, want once (cached)", got)
	}
}

func TestKeyCacheRefusesForeignKeys(t *testing.T) {
	fc := newFakeCrieur(t)
	keys := newKeyCache("http://127.0.0.1:1")
	r := fc.signed(t, []byte(`{}`), time.Now(), []string{httpsig.RequestTarget, "host", "date", "digest"})
	if _, _, err := verifyDelivery(context.Background(), r, []byte(`{}`), keys, time.Now()); err == nil {
		t.Fatal("a key outside crieur's base was accepted")
	}
	if fc.gets != 0 {
		t.Errorf("fetched a key outside crieur's base %d times", fc.gets)
	}
}

func TestCheckDigest(t *testing.T) {
	body := []byte("hello")
	sum := sha256.Sum256(body)
	good := "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
	for _, tc := range []struct {
		values []string
		ok     bool
	}{
		{[]string{good}, true},
		{[]string{"sha-256=" + strings.TrimPrefix(good, "SHA-256=")}, true},
		{[]string{"SHA-512=abc, " + good}, true},
		{[]string{"SHA-512=abc", good}, true},
		{[]string{"SHA-256=AAAA"}, false},
		{[]string{"SHA-512=abc"}, false},
		{nil, false},
	} {
		if err := checkDigest(tc.values, body); (err == nil) != tc.ok {
			t.Errorf("checkDigest(%q) = %v, want ok=%v", tc.values, err, tc.ok)
		}
	}
}

func TestParseSignatureParams(t *testing.T) {
	p, err := parseSignatureParams(`keyId="https://a.example/@r#main-key",algorithm="rsa-sha256",headers="(request-target) host date digest",signature="c2ln"`)
	if err != nil {
		t.Fatal(err)
	}
	if p["keyid"] != "https://a.example/@r#main-key" || p["headers"] != "(request-target) host date digest" || p["signature"] != "c2ln" {
		t.Errorf("parsed %q", p)
	}
	for _, bad := range []string{
		``,
		`keyId="a"`,
		`keyId="a",signature="b",keyId="c"`,
		`keyId=a,signature="b"`,
		`keyId="a",signature="b`,
		`keyId="a"x,signature="b"`,
		`="a",keyId="a",signature="b"`,
		strings.Repeat("x", maxSignatureHeader+1),
	} {
		if _, err := parseSignatureParams(bad); err == nil {
			t.Errorf("parseSignatureParams(%q): no error", bad)
		}
	}
}

// FuzzParseSignatureParams: the parser never panics, and what it accepts
// has the two parameters verification needs.
func FuzzParseSignatureParams(f *testing.F) {
	seeds, err := os.ReadFile("testdata/signature_headers.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(seeds), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, h string) {
		p, err := parseSignatureParams(h)
		if err != nil {
			return
		}
		if p["keyid"] == "" || p["signature"] == "" {
			t.Fatalf("accepted %q without keyId or signature: %q", h, p)
		}
	})
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		n          int
		fail       float64
		e500, hang int
	}{
		{2000, 0.3, 300, 300},
		{40, 0.3, 6, 6},
		{10, 0, 0, 0},
		{7, 0.5, 2, 1},
	} {
		ms := modes(tc.n, tc.fail)
		var e500, hang int
		for _, m := range ms {
			switch m {
			case mode500:
				e500++
			case modeHang:
				hang++
			}
		}
		if len(ms) != tc.n || e500 != tc.e500 || hang != tc.hang {
			t.Errorf("modes(%d, %v): %d servers, %d 500, %d hang; want %d, %d, %d", tc.n, tc.fail, len(ms), e500, hang, tc.n, tc.e500, tc.hang)
		}
	}
	// Spread, not bunched: every tenth of the fleet has its share.
	ms := modes(2000, 0.3)
	for i := 0; i < 2000; i += 200 {
		failing := 0
		for _, m := range ms[i : i+200] {
			if m != modeHealthy {
				failing++
			}
		}
		if failing != 60 {
			t.Errorf("servers %d-%d: %d failing, want 60", i, i+199, failing)
		}
	}
}

func TestFollowerNames(t *testing.T) {
	names := followerNames(10, 4)
	sizes := []int{len(names[0]), len(names[1]), len(names[2]), len(names[3])}
	if sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 2 || sizes[3] != 2 {
		t.Errorf("sizes %v, want [3 3 2 2]", sizes)
	}
	seen := map[string]bool{}
	for _, s := range names {
		for _, n := range s {
			if seen[n] {
				t.Errorf("name %s twice", n)
			}
			seen[n] = true
		}
	}
	if len(seen) != 10 {
		t.Errorf("%d names, want 10", len(seen))
	}
}

func TestTimeline(t *testing.T) {
	drop := time.Unix(1000, 0)
	at := func(ms int) time.Time { return drop.Add(time.Duration(ms) * time.Millisecond) }
	counts, bucket := timeline([]time.Time{at(50), at(150), at(160), at(390)}, drop)
	if bucket != 100 {
		t.Errorf("bucket %v ms, want 100", bucket)
	}
	want := []int{1, 2, 0, 1}
	if len(counts) != len(want) {
		t.Fatalf("timeline %v, want %v", counts, want)
	}
	for i := range want {
		if counts[i] != want[i] {
			t.Fatalf("timeline %v, want %v", counts, want)
		}
	}
	samples := []cpuSample{
		{at: at(0)},
		{at: at(100), crieur: 100 * time.Millisecond, harness: 50 * time.Millisecond, machine: 200 * time.Millisecond},
		{at: at(200), crieur: 300 * time.Millisecond, harness: 50 * time.Millisecond, machine: 350 * time.Millisecond},
	}
	c, h, o := cpuTimeline(samples, drop, 100*time.Millisecond, 3, cores{crieur: 2, receivers: 2, machine: 2})
	if c[0] != 50 || h[0] != 25 || o[0] != 25 || c[1] != 100 || h[1] != 0 || o[1] != 0 {
		t.Errorf("cpu timeline crieur %v harness %v others %v", c, h, o)
	}
}

func TestProcReaders(t *testing.T) {
	pid := os.Getpid()
	if _, err := procCPU(pid); err != nil {
		t.Errorf("procCPU: %v", err)
	}
	if kib, err := procStatus(pid, "VmHWM"); err != nil || kib <= 0 {
		t.Errorf("VmHWM: %d, %v", kib, err)
	}
	if _, err := procStatus(pid, "NoSuchField"); err == nil {
		t.Error("procStatus found a field that does not exist")
	}
	if _, err := machineCPU(); err != nil {
		t.Errorf("machineCPU: %v", err)
	}
}

func TestParseActorKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}))
	doc := func(id, keyID, owner, pemKey string) []byte {
		b, _ := json.Marshal(map[string]any{"id": id, "publicKey": map[string]string{"id": keyID, "owner": owner, "publicKeyPem": pemKey}})
		return b
	}
	a := "http://c.example/@reports"
	if _, err := parseActorKey(doc(a, a+"#main-key", a, pkcs1), a+"#main-key"); err != nil {
		t.Errorf("PKCS#1 key: %v", err)
	}
	for name, b := range map[string][]byte{
		"other key id": doc(a, a+"#other", a, pkcs1),
		"other owner":  doc(a, a+"#main-key", "http://evil.example/@x", pkcs1),
		"not PEM":      doc(a, a+"#main-key", a, "nope"),
		"not JSON":     []byte("<html>"),
	} {
		if _, err := parseActorKey(b, a+"#main-key"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRunFailsWhenCrieurDies: a binary that exits at once is reported, not
// waited for until -timeout.
func TestRunFailsWhenCrieurDies(t *testing.T) {
	bin, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false(1) here")
	}
	var out, errb bytes.Buffer
	start := time.Now()
	err = run(context.Background(), []string{"-crieur", bin, "-followers", "4", "-servers", "2",
		"-sign-for", "50ms", "-dir", t.TempDir(), "-timeout", "1m"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "crieur exited") {
		t.Fatalf("run with a crieur that exits: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("took %s: the harness waited for the timeout instead of noticing", time.Since(start))
	}
}

// TestPinning: a child started pinned runs on the CPUs it was given, and
// the harness can move itself and come back.
func TestPinning(t *testing.T) {
	plan, err := planCPUs(1)
	if err != nil {
		t.Skipf("one CPU only: %v", err)
	}
	if plan.crieur.count() != 1 || plan.receivers.count() != plan.all.count()-1 {
		t.Fatalf("plan %s / %s of %s", plan.crieur, plan.receivers, plan.all)
	}
	cmd := exec.Command("grep", "Cpus_allowed_list", "/proc/self/status")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := startPinned(cmd, plan.crieur); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out.String()), "Cpus_allowed_list:")); got != plan.crieur.String() {
		t.Errorf("child ran on CPUs %q, want %q", got, plan.crieur)
	}
	if self, _ := getAffinity(0); self != plan.all {
		t.Errorf("the forking thread kept CPUs %s, want %s back", self, plan.all)
	}
	if err := pinProcess(plan.receivers); err != nil {
		t.Fatal(err)
	}
	if self, _ := getAffinity(0); self != plan.receivers {
		t.Errorf("after pinProcess: CPUs %s, want %s", self, plan.receivers)
	}
	if err := pinProcess(plan.all); err != nil {
		t.Fatal(err)
	}
	if _, err := planCPUs(plan.all.count()); err == nil {
		t.Error("planCPUs gave crieur every CPU and the servers none")
	}
}

// TestParseOpenSSLSpeed reads the RSA-2048 signing rate from real outputs
// of openssl speed 3.0, one process and two (-multi 2 prints a summary).
func TestParseOpenSSLSpeed(t *testing.T) {
	for file, want := range map[string]float64{
		"testdata/openssl_speed_1.txt":      2558.0,
		"testdata/openssl_speed_multi2.txt": 5318.0,
	} {
		out, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseOpenSSLSpeed(out)
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", file, got, err, want)
		}
	}
	for _, bad := range []string{"", "rsa 4096 bits 0.002s 0.0001s 500.0 10000.0\n", "rsa 2048 bits 0.000391s 0.000019s   0.0  51737.0\n"} {
		if v, err := parseOpenSSLSpeed([]byte(bad)); err == nil {
			t.Errorf("%q read as %v", bad, v)
		}
	}
}

// FuzzParseOpenSSLSpeed: any output gives a positive rate or an error,
// never a panic or a rate of zero.
func FuzzParseOpenSSLSpeed(f *testing.F) {
	for _, file := range []string{"testdata/openssl_speed_1.txt", "testdata/openssl_speed_multi2.txt"} {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("rsa 2048 bits 0.1s 0.1s 1e309 1\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		v, err := parseOpenSSLSpeed(out)
		if err == nil && !(v > 0 && v < math.Inf(1)) {
			t.Fatalf("rate %v from %q", v, out)
		}
	})
}

// TestAcceptTally: each Follow counts once; a repeated Accept is a
// duplicate, an Accept of a Follow never sent is foreign, and wait returns
// only once every Follow has its Accept.
func TestAcceptTally(t *testing.T) {
	fl := &fleet{servers: []*inboxServer{
		{base: "http://127.0.0.1:1", followers: []string{"a", "b"}},
		{base: "http://127.0.0.1:2", followers: []string{"c"}},
	}}
	a := newAcceptTally(fl)
	if a.missing() != 3 {
		t.Fatalf("missing %d, want 3", a.missing())
	}
	now := time.Now()
	a.add(followID(fl.servers[0].actorID("a")), now)
	a.add(followID(fl.servers[0].actorID("a")), now)
	a.add("http://127.0.0.1:3/users/x/follows/1", now)
	a.add(followID(fl.servers[1].actorID("c")), now)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.wait(ctx, nil); err == nil || !strings.Contains(err.Error(), "1 Follows without an Accept") {
		t.Errorf("wait with one Follow unanswered: %v", err)
	}
	a.add(followID(fl.servers[0].actorID("b")), now)
	if err := a.wait(context.Background(), nil); err != nil {
		t.Errorf("wait with every Follow answered: %v", err)
	}
	if a.dup != 1 || a.foreign != 1 || a.missing() != 0 {
		t.Errorf("dup %d, foreign %d, missing %d; want 1, 1, 0", a.dup, a.foreign, a.missing())
	}
}

// TestParseEngine reads crieur version's engine line, whichever engine.
func TestParseEngine(t *testing.T) {
	for out, want := range map[string]string{
		"crieur 0.1.0-dev\nRSA signatures: OpenSSL 3.0.19 27 Jan 2026 (libcrypto.so.3)\n":                           "openssl",
		"crieur 0.1.0-dev\nRSA signatures: Go crypto/rsa (CRIEUR_RSA=go)\n":                                         "go",
		"crieur 0.1.0-dev\nRSA signatures: Go crypto/rsa (no OpenSSL: libcrypto.so.3: cannot open shared object)\n": "go",
		"botkit-fanout: BotKit 0.4.1\nRSA signatures: OpenSSL 3.5.8 (built into Node v22.23.3)\n":                   "openssl",
		"crieur 0.1.0-dev\n": "",
		"crieur 0.1.0-dev\nRSA signatures: none: CRIEUR_RSA=openssl, and OpenSSL cannot load (libcrypto.so.3: cannot open shared object file); crieur serve will not start\n": "",
		"crieur 0.1.0-dev\nRSA signatures: CRIEUR_RSA: unknown RSA engine \"x\"\n":                                                                                            "",
	} {
		if got := parseEngine(out); got != want {
			t.Errorf("parseEngine(%q) = %q, want %q", out, got, want)
		}
	}
}

// TestIdealSender runs the harness on idealsender, the stand-in that does
// only what every delivery needs: every healthy server gets one verified
// Create, so its rate is a valid ceiling to compare crieur's with.
func TestIdealSender(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs idealsender")
	}
	bin := filepath.Join(t.TempDir(), "idealsender")
	build := exec.Command("go", "build", "-o", bin, "github.com/crieur/crieur/tools/fanout/idealsender")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build idealsender: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	// Twice, as -runs does to take a median on a noisy machine.
	err := run(ctx, []string{
		"-crieur", bin, "-followers", "200", "-servers", "40", "-fail", "0.3", "-key-per-server",
		"-sign-for", "200ms", "-linger", "500ms", "-dir", t.TempDir(), "-timeout", "90s", "-openssl", "",
		"-runs", "2",
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if n := strings.Count(stdout.String(), "result:         correct"); n != 2 {
		t.Errorf("%d correct runs reported, want 2", n)
	}
	sum := lastSummary(t, stdout.Bytes())
	if len(sum) != 1 || sum[0].Binary != bin || sum[0].Runs != 2 || sum[0].Correct != 2 || sum[0].Median["ratio_drop_to_last"] <= 0 {
		t.Errorf("summary %+v, want 2 correct runs of %s with a median rate", sum, bin)
	}
	r := lastReport(t, stdout.Bytes())
	if !r.OK || r.HealthyReached != 28 || r.Duplicates != 0 || r.VerifyFailures != 0 || r.KeyFetches < 28 {
		t.Errorf("idealsender: ok %v, %d of 28 healthy reached, %d duplicates, %d verification failures, %d key fetches; problems %q",
			r.OK, r.HealthyReached, r.Duplicates, r.VerifyFailures, r.KeyFetches, r.Problems)
	}
	if r.CrieurSigns == "" {
		t.Errorf("idealsender version was not understood")
	}

	// Over TLS, as real instances are reached.
	stdout.Reset()
	stderr.Reset()
	err = run(ctx, []string{
		"-crieur", bin, "-followers", "100", "-servers", "20", "-https",
		"-sign-for", "200ms", "-linger", "500ms", "-dir", t.TempDir(), "-timeout", "90s", "-openssl", "",
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run -https: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if r := lastReport(t, stdout.Bytes()); !r.OK || r.HealthyReached != 20 || r.TLSConns != r.Conns || r.Conns == 0 {
		t.Errorf("idealsender -https: ok %v, %d of 20 reached, %d of %d connections with TLS; problems %q",
			r.OK, r.HealthyReached, r.TLSConns, r.Conns, r.Problems)
	}
}

// TestFleetLearnsNote: with no Note id known (a sender that names its
// Notes itself), the first Create after the drop is the article, and a
// Create of another Note is unexpected.
func TestFleetLearnsNote(t *testing.T) {
	fl := &fleet{
		servers:    []*inboxServer{{idx: 0, base: "http://127.0.0.1:1"}, {idx: 1, base: "http://127.0.0.1:2"}},
		stats:      make([]serverStats, 2),
		allHealthy: make(chan struct{}),
	}
	fl.healthyTotal = 2
	fl.discovered("http://127.0.0.1:9/ap/actor/bot", "")
	now := time.Now()
	fl.arm()
	fl.record(fl.servers[0], now, 0, activity{ID: "c1", Type: "Create", Object: "http://127.0.0.1:9/ap/note/1"})
	fl.record(fl.servers[1], now, 0, activity{ID: "c2", Type: "Create", Object: "http://127.0.0.1:9/ap/note/2"})
	fl.record(fl.servers[1], now, 0, activity{ID: "c1", Type: "Create", Object: "http://127.0.0.1:9/ap/note/1"})
	tl := fl.tally()
	if tl.HealthyReached != 2 || tl.Unexpected != 1 || tl.Duplicates != 0 || fl.noteID != "http://127.0.0.1:9/ap/note/1" {
		t.Errorf("reached %d, unexpected %d, duplicates %d, note %q; want 2, 1, 0, note/1", tl.HealthyReached, tl.Unexpected, tl.Duplicates, fl.noteID)
	}
}

// TestDiscover finds a bot framework's actor and inbox by WebFinger, and
// keeps crieur's layout for a sender without WebFinger.
func TestDiscover(t *testing.T) {
	var srvURL string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/webfinger", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("resource") != "acct:"+handle+"@"+strings.TrimPrefix(srvURL, "http://") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"links":[{"rel":"self","type":"application/activity+json","href":%q}]}`, srvURL+"/ap/actor/bot")
	})
	mux.HandleFunc("GET /ap/actor/bot", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"id":%q,"inbox":%q}`, srvURL+"/ap/actor/bot", srvURL+"/ap/actor/bot/inbox")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	srvURL = srv.URL
	c := &crieurRun{base: srv.URL, listen: strings.TrimPrefix(srv.URL, "http://")}
	isCrieur, err := c.discover(context.Background())
	if err != nil || isCrieur || c.actorID() != srv.URL+"/ap/actor/bot" || c.inbox() != srv.URL+"/ap/actor/bot/inbox" {
		t.Errorf("bot: crieur %v, actor %q, inbox %q, err %v", isCrieur, c.actorID(), c.inbox(), err)
	}
	none := httptest.NewServer(http.NotFoundHandler())
	defer none.Close()
	c = &crieurRun{base: none.URL, listen: strings.TrimPrefix(none.URL, "http://")}
	isCrieur, err = c.discover(context.Background())
	if err != nil || !isCrieur || c.actorID() != none.URL+"/@"+handle || c.inbox() != none.URL+"/@"+handle+"/inbox" {
		t.Errorf("no WebFinger: crieur %v, actor %q, inbox %q, err %v", isCrieur, c.actorID(), c.inbox(), err)
	}
}
