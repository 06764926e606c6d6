package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Limits of the small JSON documents crieur reads on a web visitor's
// behalf (their server's WebFinger and NodeInfo, to find its follow page).
const (
	// JSONMaxBody bounds such a document: a WebFinger answer is a few
	// hundred bytes, NodeInfo a few KiB.
	JSONMaxBody = 64 << 10
	// jsonTimeout is the whole fetch, redirects included: a visitor is
	// waiting for the page.
	jsonTimeout = 5 * time.Second
)

// FetchJSON GETs a small public JSON document (WebFinger, NodeInfo),
// unsigned, through the guard (every address dialled, redirects included,
// is checked), within jsonTimeout and JSONMaxBody bytes. It returns the
// body and the URL that answered after redirects. A non-2xx answer is a
// *StatusError; the caller decodes and checks the body.
func (c *Client) FetchJSON(ctx context.Context, rawURL string) (*Fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, jsonTimeout)
	defer cancel()
	resp, data, err := c.getPublic(ctx, rawURL, "application/jrd+json, application/json", JSONMaxBody, nil)
	if err != nil {
		return nil, err
	}
	return &Fetched{Body: data, URL: resp.Request.URL.String(), ContentType: resp.Header.Get("Content-Type")}, nil
}

// getPublic GETs rawURL unsigned through the guard (every address dialled,
// redirects included, is checked; any origin may answer) and reads a 2xx
// answer's body, at most max bytes (a larger declared length is refused
// before the body is read). A non-2xx answer is a *StatusError; check,
// when not nil, refuses an answer from its header before its body is
// read. The response's body is consumed; its header and final URL stay
// readable.
func (c *Client) getPublic(ctx context.Context, rawURL, accept string, max int64, check func(*http.Response) error) (*http.Response, []byte, error) {
	u, err := c.checkURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: GET %s: %w", rawURL, err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	hc := *c.http
	hc.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		if len(via) > c.cfg.MaxRedirects {
			return fmt.Errorf("%w (%d)", ErrTooManyRedirects, c.cfg.MaxRedirects)
		}
		_, err := c.checkURL(next.URL.String())
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: GET %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		c.drain(resp.Body)
		return nil, nil, &StatusError{URL: rawURL, Status: resp.StatusCode}
	}
	if check != nil {
		if err := check(resp); err != nil {
			return nil, nil, err
		}
	}
	if resp.ContentLength > max {
		return nil, nil, fmt.Errorf("%w: GET %s: %d bytes declared, at most %d", ErrResponseTooLarge, rawURL, resp.ContentLength, max)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, nil, fmt.Errorf("transport: GET %s: read body: %w", rawURL, err)
	}
	if int64(len(data)) > max {
		return nil, nil, fmt.Errorf("%w: GET %s: more than %d bytes", ErrResponseTooLarge, rawURL, max)
	}
	return resp, data, nil
}
