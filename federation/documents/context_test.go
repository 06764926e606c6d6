package documents

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// The -update flag rewrites golden files. It is registered in init, after
// package variables, so that another test file of this package may define
// the same flag without a double registration.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files in testdata")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// checkGolden compares got with testdata/name, or rewrites the file with
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if updateGolden() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update and review the diff)\n got: %s\nwant: %s", name, got, want)
	}
}

// checkGoldenJSON indents a JSON document and compares it with the golden
// file; it also checks the document is valid JSON.
func checkGoldenJSON(t *testing.T, name string, doc []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, doc, "", "  "); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", name, err, doc)
	}
	buf.WriteByte('\n')
	checkGolden(t, name, buf.Bytes())
}

// TestContextShape checks the @context against what Mastodon sends
// (app/helpers/context_helper.rb): the two named contexts first, then one
// map whose term definitions are valid JSON-LD (a compact IRI with a known
// prefix, or an object with @id and @type "@id") and carry Mastodon's ids.
func TestContextShape(t *testing.T) {
	var ctx []any
	if err := json.Unmarshal([]byte(ldContext), &ctx); err != nil {
		t.Fatalf("context is not a JSON array: %v", err)
	}
	if len(ctx) != 3 {
		t.Fatalf("context has %d entries, want 3", len(ctx))
	}
	if ctx[0] != "https://www.w3.org/ns/activitystreams" || ctx[1] != "https://w3id.org/security/v1" {
		t.Errorf("named contexts = %v, %v", ctx[0], ctx[1])
	}
	ext, ok := ctx[2].(map[string]any)
	if !ok {
		t.Fatalf("third entry is %T, want an object", ctx[2])
	}
	want := map[string]any{
		"manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
		"toot":                      "http://joinmastodon.org/ns#",
		"discoverable":              "toot:discoverable",
		"indexable":                 "toot:indexable",
		"featured":                  map[string]any{"@id": "toot:featured", "@type": "@id"},
		"schema":                    "http://schema.org#",
		"PropertyValue":             "schema:PropertyValue",
		"value":                     "schema:value",
		"Hashtag":                   "as:Hashtag",
		"sensitive":                 "as:sensitive",
		// Consent: Mastodon's interaction_policies, quote_requests and
		// quote_authorizations, GoToSocial's namespace.
		"gts":                   "https://gotosocial.org/ns#",
		"interactionPolicy":     map[string]any{"@id": "gts:interactionPolicy", "@type": "@id"},
		"canLike":               map[string]any{"@id": "gts:canLike", "@type": "@id"},
		"canReply":              map[string]any{"@id": "gts:canReply", "@type": "@id"},
		"canAnnounce":           map[string]any{"@id": "gts:canAnnounce", "@type": "@id"},
		"canQuote":              map[string]any{"@id": "gts:canQuote", "@type": "@id"},
		"automaticApproval":     map[string]any{"@id": "gts:automaticApproval", "@type": "@id"},
		"manualApproval":        map[string]any{"@id": "gts:manualApproval", "@type": "@id"},
		"always":                map[string]any{"@id": "gts:always", "@type": "@id"},
		"approvalRequired":      map[string]any{"@id": "gts:approvalRequired", "@type": "@id"},
		"interactingObject":     map[string]any{"@id": "gts:interactingObject", "@type": "@id"},
		"interactionTarget":     map[string]any{"@id": "gts:interactionTarget", "@type": "@id"},
		"LikeRequest":           "gts:LikeRequest",
		"ReplyRequest":          "gts:ReplyRequest",
		"AnnounceRequest":       "gts:AnnounceRequest",
		"LikeAuthorization":     "gts:LikeAuthorization",
		"ReplyAuthorization":    "gts:ReplyAuthorization",
		"AnnounceAuthorization": "gts:AnnounceAuthorization",
		"QuoteRequest":          "https://w3id.org/fep/044f#QuoteRequest",
		"QuoteAuthorization":    "https://w3id.org/fep/044f#QuoteAuthorization",
	}
	for k, v := range want {
		got, err1 := json.Marshal(ext[k])
		exp, err2 := json.Marshal(v)
		if err1 != nil || err2 != nil || !bytes.Equal(got, exp) {
			t.Errorf("term %s = %s, want %s", k, got, exp)
		}
	}
	if len(ext) != len(want) {
		t.Errorf("context defines %d terms, want %d: %v", len(ext), len(want), ext)
	}
	// Prefixes: "as" comes from the ActivityStreams context, the others
	// must be defined in the map itself as absolute IRIs.
	prefixes := map[string]bool{"as": true}
	for k, v := range ext {
		if s, ok := v.(string); ok && (len(s) > 7 && (s[:7] == "http://" || s[:8] == "https://")) {
			prefixes[k] = true
		}
	}
	for k, v := range ext {
		var id string
		switch d := v.(type) {
		case string:
			id = d
		case map[string]any:
			id, _ = d["@id"].(string)
			if typ, ok := d["@type"]; ok && typ != "@id" {
				t.Errorf("term %s: @type %v", k, typ)
			}
		}
		if prefixes[k] {
			continue
		}
		i := bytes.IndexByte([]byte(id), ':')
		if i <= 0 || !prefixes[id[:i]] {
			t.Errorf("term %s = %q: prefix not defined", k, id)
		}
	}
}

// TestEncodeNoHTMLEscaping: HTML stays as is in JSON strings (six bytes
// per "<" otherwise, and Misskey's 64 KiB limit comes sooner).
func TestEncodeNoHTMLEscaping(t *testing.T) {
	b, err := encodeDocument(document{"content": `<p>a & b</p>`})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"content":"<p>a & b</p>"`)) {
		t.Errorf("HTML escaped: %s", b)
	}
	if !bytes.HasPrefix(b, []byte(`{"@context":["https://www.w3.org/ns/activitystreams"`)) {
		t.Errorf("@context not first: %s", b)
	}
	if bytes.HasSuffix(b, []byte("\n")) {
		t.Errorf("trailing newline")
	}
}
