package transport

import (
	"bufio"
	"net/http"
	"os"
	"strings"
	"testing"
)

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
