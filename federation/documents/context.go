package documents

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Public is the ActivityStreams public collection, written in full: Fedify
// reads a bare "Public" or "as:Public" as a relative URL.
const Public = "https://www.w3.org/ns/activitystreams#Public"

// ldContext is the @context of every document crieur serves or sends: the
// two named contexts Mastodon sends, then the term definitions of Mastodon's
// extensions that crieur uses, with the exact names and ids of Mastodon's
// app/helpers/context_helper.rb (CONTEXT_EXTENSION_MAP). Mastodon does not
// expand JSON-LD for unsigned documents, so the compact names are what it
// reads; Fedify does expand, so every term must be a valid definition: "as"
// comes from the ActivityStreams context, "toot" and "schema" are defined
// here. The consent terms (interactionPolicy and its sub-policies, the
// interaction requests and authorizations) carry the ids of Mastodon's
// interaction_policies and quote_authorizations extensions and of
// GoToSocial's namespace (https://gotosocial.org/ns, written out here, not
// linked: a JSON-LD processor would have to fetch it); GoToSocial's
// resolver reads the unprefixed names whatever the context maps. It is a constant (a raw JSON text), not a package variable, so no
// caller can change it.
const ldContext = `["https://www.w3.org/ns/activitystreams","https://w3id.org/security/v1",` +
	`{"manuallyApprovesFollowers":"as:manuallyApprovesFollowers",` +
	`"toot":"http://joinmastodon.org/ns#",` +
	`"discoverable":"toot:discoverable",` +
	`"indexable":"toot:indexable",` +
	`"featured":{"@id":"toot:featured","@type":"@id"},` +
	`"schema":"http://schema.org#",` +
	`"PropertyValue":"schema:PropertyValue",` +
	`"value":"schema:value",` +
	`"Hashtag":"as:Hashtag",` +
	`"sensitive":"as:sensitive",` +
	`"gts":"https://gotosocial.org/ns#",` +
	`"interactionPolicy":{"@id":"gts:interactionPolicy","@type":"@id"},` +
	`"canLike":{"@id":"gts:canLike","@type":"@id"},` +
	`"canReply":{"@id":"gts:canReply","@type":"@id"},` +
	`"canAnnounce":{"@id":"gts:canAnnounce","@type":"@id"},` +
	`"canQuote":{"@id":"gts:canQuote","@type":"@id"},` +
	`"automaticApproval":{"@id":"gts:automaticApproval","@type":"@id"},` +
	`"manualApproval":{"@id":"gts:manualApproval","@type":"@id"},` +
	`"always":{"@id":"gts:always","@type":"@id"},` +
	`"approvalRequired":{"@id":"gts:approvalRequired","@type":"@id"},` +
	`"interactingObject":{"@id":"gts:interactingObject","@type":"@id"},` +
	`"interactionTarget":{"@id":"gts:interactionTarget","@type":"@id"},` +
	`"LikeRequest":"gts:LikeRequest",` +
	`"ReplyRequest":"gts:ReplyRequest",` +
	`"AnnounceRequest":"gts:AnnounceRequest",` +
	`"LikeAuthorization":"gts:LikeAuthorization",` +
	`"ReplyAuthorization":"gts:ReplyAuthorization",` +
	`"AnnounceAuthorization":"gts:AnnounceAuthorization",` +
	`"QuoteRequest":"https://w3id.org/fep/044f#QuoteRequest",` +
	`"QuoteAuthorization":"https://w3id.org/fep/044f#QuoteAuthorization"}]`

// document is a JSON object under construction. Go's encoder sorts map keys,
// so "@context" always comes first; the only key whose order matters to
// peers (contentMap's language, LG-1) has one entry.
type document map[string]any

// toDocument marshals v (usually a go-ap vocabulary value) and reads it back
// as a document, so that fields go-ap does not know can be added. Numbers
// stay json.Number so that counts are written back unchanged.
func toDocument(v any) (document, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("documents: marshal %T: %w", v, err)
	}
	return decodeDocument(b)
}

// decodeDocument reads one JSON object.
func decodeDocument(b []byte) (document, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var d document
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("documents: decode document: %w", err)
	}
	if d == nil {
		return nil, fmt.Errorf("documents: decode document: not a JSON object")
	}
	return d, nil
}

// encodeJSON writes v without HTML escaping: "\u003c" for every "<" would
// make HTML-heavy Notes six times larger per tag character, and Misskey
// refuses inbox bodies over 64 KiB.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("documents: encode json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// encodeDocument adds the @context to a top-level document and encodes it.
func encodeDocument(d document) ([]byte, error) {
	d["@context"] = json.RawMessage(ldContext)
	return encodeJSON(d)
}

// embedded returns a document fit to be embedded in another one: the
// @context belongs to the top-level document only.
func embedded(d document) document {
	delete(d, "@context")
	return d
}
