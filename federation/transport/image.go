package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Limits of image fetches (remote avatars crieur shows beside replies).
const (
	// ImageMaxBody is the largest image crieur keeps: Mastodon resizes
	// avatars to 400×400, a few tens of KiB; 1 MiB leaves room for the
	// others and bounds what one reply costs the data file.
	ImageMaxBody = 1 << 20
	// imageTimeout is the whole fetch, redirects included: an avatar is
	// fetched in the background, and a slow server only delays its own.
	imageTimeout = 15 * time.Second
)

// ErrNotImage is returned by FetchImage when the answer is not a PNG,
// JPEG, GIF or WebP image, by its Content-Type or by its first bytes.
var ErrNotImage = errors.New("transport: not an image")

// Image is a fetched image and its media type.
type Image struct {
	Body        []byte
	ContentType string // image/png, image/jpeg, image/gif or image/webp
}

// ImageType returns the media type of ct when it is one of the raster
// types crieur serves again (png, jpeg, gif, webp), else "". SVG is not
// one: it is a document that may carry scripts.
func ImageType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	switch mt = strings.ToLower(mt); mt {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return mt
	case "image/jpg": // seen in the wild
		return "image/jpeg"
	}
	return ""
}

// FetchImage GETs an image, unsigned, through the guard (every address
// dialled, redirects included, is checked: no loopback or private range
// unless allowed), within imageTimeout and at most ImageMaxBody bytes
// (a larger declared length is refused before the body is read). The
// answer must say it is a PNG, JPEG, GIF or WebP image and its first bytes
// must agree (ErrNotImage otherwise): the bytes are served again under
// crieur's name, with that type. Redirects to another origin are followed
// (avatars live on media hosts and object stores): an image proves
// nothing about who serves it, so the origin rule of documents does not
// apply; the guard does.
func (c *Client) FetchImage(ctx context.Context, rawURL string) (*Image, error) {
	u, err := c.checkURL(rawURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, imageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("transport: GET image %s: %w", rawURL, err)
	}
	req.Header.Set("Accept", "image/webp, image/png, image/jpeg, image/gif")
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
		return nil, fmt.Errorf("transport: GET image %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		c.drain(resp.Body)
		return nil, &StatusError{URL: rawURL, Status: resp.StatusCode}
	}
	ct := ImageType(resp.Header.Get("Content-Type"))
	if ct == "" {
		return nil, fmt.Errorf("%w: GET %s: Content-Type %q", ErrNotImage, rawURL, resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength > ImageMaxBody {
		return nil, fmt.Errorf("%w: GET image %s: %d bytes declared, at most %d", ErrResponseTooLarge, rawURL, resp.ContentLength, ImageMaxBody)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, ImageMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("transport: GET image %s: read body: %w", rawURL, err)
	}
	if len(data) > ImageMaxBody {
		return nil, fmt.Errorf("%w: GET image %s: more than %d bytes", ErrResponseTooLarge, rawURL, ImageMaxBody)
	}
	// The first bytes decide, not the header alone: a server that labels
	// HTML as image/png gets nothing stored.
	if sniffed := http.DetectContentType(data); sniffed != ct {
		return nil, fmt.Errorf("%w: GET %s: says %s, looks like %s", ErrNotImage, rawURL, ct, sniffed)
	}
	return &Image{Body: data, ContentType: ct}, nil
}
