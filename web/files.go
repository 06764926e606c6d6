package web

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// imageTypes are the files /media serves, by extension; anything else beside
// an article (Markdown, drafts, notes) stays private.
var imageTypes = map[string]string{
	".png":  "image/png",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".gif":  "image/gif",
	".webp": "image/webp",
	".avif": "image/avif",
	".svg":  "image/svg+xml",
}

// imageType is the media type of an image file name, "" when not an image.
func imageType(name string) string {
	return imageTypes[strings.ToLower(path.Ext(name))]
}

// mediaCSP keeps an SVG opened on its own from running scripts.
const mediaCSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

// media serves an image that lives beside an article in the posts folder.
// os.Root confines the lookup to the folder, symlinks included.
func (s *server) media(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("path"), "/")
	ctype := imageType(name)
	if s.postsDir == "" || ctype == "" || !cleanMediaPath(name) {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	root, err := os.OpenRoot(s.postsDir)
	if err != nil {
		s.htmlError(c, http.StatusNotFound, fmt.Errorf("web: open posts folder: %w", err))
		return
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		s.htmlError(c, http.StatusNotFound, openCause(name, err))
		return
	}
	defer f.Close()
	s.serveFile(c, f, name, ctype)
}

// openCause is the error worth logging for a failed open: a missing file
// is the client's problem, anything else is ours.
func openCause(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("web: open %s: %w", name, err)
}

// cleanMediaPath accepts slash paths without empty, dot or hidden segments.
func cleanMediaPath(name string) bool {
	if name == "" || strings.ContainsRune(name, '\\') || strings.ContainsRune(name, 0) {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return false
		}
	}
	return fs.ValidPath(name)
}

// serveFile sends a regular file with Range and If-Modified-Since support.
func (s *server) serveFile(c *gin.Context, f *os.File, name, ctype string) {
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", cacheStatic)
	h.Set("Content-Security-Policy", mediaCSP)
	http.ServeContent(c.Writer, c.Request, path.Base(name), info.ModTime(), f)
}

// avatar serves the configured avatar, or the embedded placeholder when
// none is configured or the file cannot be read (the cause is logged).
func (s *server) avatar(c *gin.Context) {
	if p := s.cfg.AvatarPath; p != "" {
		if ctype := imageType(p); ctype != "" {
			f, err := os.Open(p)
			if err == nil {
				defer f.Close()
				s.serveFile(c, f, p, ctype)
				return
			}
			_ = c.Error(fmt.Errorf("web: open avatar: %w", err))
		} else {
			_ = c.Error(fmt.Errorf("web: avatar %q is not a known image type", p))
		}
	}
	c.Header("Cache-Control", cacheStatic)
	c.Header("Content-Security-Policy", mediaCSP)
	writeBody(c, http.StatusOK, "image/svg+xml", avatarSVG)
}

// defaultAvatarPNG serves the placeholder avatar as a PNG, for other
// servers (Config.AvatarURL).
func (s *server) defaultAvatarPNG(c *gin.Context) {
	c.Header("Cache-Control", cacheStatic)
	writeBody(c, http.StatusOK, "image/png", avatarPNG)
}

// header serves the configured header image; 404 when there is none.
func (s *server) header(c *gin.Context) {
	p := s.cfg.HeaderPath
	ctype := imageType(p)
	if p == "" || ctype == "" {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		s.htmlError(c, http.StatusNotFound, openCause(p, err))
		return
	}
	defer f.Close()
	s.serveFile(c, f, p, ctype)
}

// staticTypes are the embedded asset types.
var staticTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

// static serves the embedded CSS and placeholder images.
func (s *server) static(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("path"), "/")
	ctype := staticTypes[path.Ext(name)]
	if ctype == "" || !fs.ValidPath(name) {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	body, err := fs.ReadFile(staticFS, "static/"+name)
	if err != nil {
		s.htmlError(c, http.StatusNotFound, nil)
		return
	}
	// embed keeps no modification time: the ETag does revalidation.
	c.Header("Cache-Control", cacheStatic)
	writeBody(c, http.StatusOK, ctype, body)
}
