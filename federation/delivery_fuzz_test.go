package federation

import (
	"bufio"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestSignedHeadersReadsTheList(t *testing.T) {
	got := signedHeaders(`keyId="k",algorithm="rsa-sha256",headers="(request-target) Host date Digest",signature="x"`)
	for _, h := range []string{"(request-target)", "host", "date", "digest"} {
		if !got[h] {
			t.Errorf("%s missing from %v", h, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("got %v", got)
	}
	if len(signedHeaders(`keyId="k",signature="x"`)) != 0 {
		t.Error("headers found where there are none")
	}
}

// FuzzDeliverySignedHeaders feeds Signature header values to the parser the
// verifying inboxes use. Seeds: testdata/delivery_signature_headers.txt.
func FuzzDeliverySignedHeaders(f *testing.F) {
	file, err := os.Open("testdata/delivery_signature_headers.txt")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f.Add(sc.Text())
	}
	if err := sc.Err(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig string) {
		for h := range signedHeaders(sig) {
			if h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, " \t") {
				t.Fatalf("bad header name %q from %q", h, sig)
			}
		}
	})
}

// FuzzPeekSuccess checks the status-line shortcut of closing deliveries
// against net/http: whatever it takes for a success, ReadResponse reads as
// the same success, and it consumes nothing. Seeds:
// testdata/status_lines.txt (\r and \n written as escapes).
func FuzzPeekSuccess(f *testing.F) {
	seeds, err := os.ReadFile("testdata/status_lines.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(seeds)), "\n") {
		f.Add(strings.NewReplacer(`\r`, "\r", `\n`, "\n").Replace(line))
	}
	f.Fuzz(func(t *testing.T, answer string) {
		br := bufio.NewReaderSize(strings.NewReader(answer), postReaderSize)
		code, ok := peekSuccess(br)
		if br.Buffered() != min(len(answer), postReaderSize) {
			t.Fatalf("%d bytes buffered of %q", br.Buffered(), answer)
		}
		if !ok {
			return
		}
		line, _, _ := strings.Cut(answer, "\n")
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(line+"\n\r\n")), nil)
		if err != nil || resp.StatusCode != code || code < 200 || code > 299 {
			t.Fatalf("%q taken for %d; net/http reads %v, %v", line, code, resp, err)
		}
	})
}
