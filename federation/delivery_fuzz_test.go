package federation

import (
	"bufio"
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
