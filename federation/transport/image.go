package transport

import (
	"context"
	"errors"
	"fmt"
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
	ctx, cancel := context.WithTimeout(ctx, imageTimeout)
	defer cancel()
	// Not an image by its header: refused before its body is read.
	isImage := func(resp *http.Response) error {
		if ImageType(resp.Header.Get("Content-Type")) == "" {
			return fmt.Errorf("%w: GET %s: Content-Type %q", ErrNotImage, rawURL, resp.Header.Get("Content-Type"))
		}
		return nil
	}
	resp, data, err := c.getPublic(ctx, rawURL, "image/webp, image/png, image/jpeg, image/gif", ImageMaxBody, isImage)
	if err != nil {
		return nil, err
	}
	ct := ImageType(resp.Header.Get("Content-Type"))
	// The first bytes decide, not the header alone: a server that labels
	// HTML as image/png gets nothing stored.
	if sniffed := http.DetectContentType(data); sniffed != ct {
		return nil, fmt.Errorf("%w: GET %s: says %s, looks like %s", ErrNotImage, rawURL, ct, sniffed)
	}
	return &Image{Body: data, ContentType: ct}, nil
}
