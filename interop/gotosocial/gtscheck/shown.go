package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// What a reader and a remote server see of the conversation: the article's
// page and its Note's replies, likes and shares collections, read over
// https from crieur as anyone would.

// noteURL is the English article's Note id (and page).
func (c *checker) noteURL() string { return c.crieur + "/posts/" + c.articleKey() }

// collectionTotal reads totalItems of one of the Note's collections.
func (c *checker) collectionTotal(name string) (int, error) {
	var coll struct {
		TotalItems *int `json:"totalItems"`
	}
	if err := getJSON(c.web, c.noteURL()+"/"+name, &coll); err != nil {
		return 0, err
	}
	if coll.TotalItems == nil {
		return 0, fmt.Errorf("%s collection without totalItems", name)
	}
	return *coll.TotalItems, nil
}

// page reads the article's web page, as a browser asks for it.
func (c *checker) page() (string, error) {
	req, err := http.NewRequest("GET", c.noteURL(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.web.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d", c.noteURL(), resp.StatusCode)
	}
	return string(b), nil
}

// waitShown polls until the collections count replies, likes and shares,
// and the page shows the reply's text exactly when replies is 1.
func (c *checker) waitShown(replies, likes, shares int) error {
	marker := "reply-" + c.run
	return c.poll(func() (bool, string, error) {
		got := map[string]int{}
		for _, name := range []string{"replies", "likes", "shares"} {
			n, err := c.collectionTotal(name)
			if err != nil {
				return false, err.Error(), nil
			}
			got[name] = n
		}
		if got["replies"] != replies || got["likes"] != likes || got["shares"] != shares {
			return false, fmt.Sprintf("collections say replies %d, likes %d, shares %d; want %d, %d, %d",
				got["replies"], got["likes"], got["shares"], replies, likes, shares), nil
		}
		html, err := c.page()
		if err != nil {
			return false, err.Error(), nil
		}
		if shown := strings.Contains(html, marker); shown != (replies == 1) {
			return false, fmt.Sprintf("the page shows the reply: %v, want %v", shown, replies == 1), nil
		}
		info("Note collections: replies %d, likes %d, shares %d; the page shows the reply: %v", replies, likes, shares, replies == 1)
		return true, "", nil
	})
}

// crieurAdmin runs one of crieur's admin commands against the running
// server (through its admin socket).
func (c *checker) crieurAdmin(args ...string) (string, error) {
	if c.crieurBin == "" || c.dataDir == "" {
		return "", fmt.Errorf("no -crieur-bin and -data given")
	}
	out, err := exec.Command(c.crieurBin, append(args, "-data", c.dataDir, "-posts", c.posts)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("crieur %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// blockGoToSocial: GoToSocial follows again; the admin blocks its domain
// on the running crieur; its follower is gone at once, and a new reply
// from it is refused and never appears. Absence can only be seen by
// waiting: a reply that arrived anyway would show in the counts, so the
// wait can only let a failure through late, never fail a correct crieur.
func (c *checker) blockGoToSocial() error {
	if err := c.follow(); err != nil {
		return fmt.Errorf("follow again: %w", err)
	}
	// A new article, which GoToSocial shows its user: the one to reply to.
	text := strings.NewReplacer("gts-check-", "gts-block-", "en-lede-", "block-lede-").Replace(c.articleText("en", "blocked"))
	path := filepath.Join(c.posts, "gts-block-"+c.run+".en.md")
	tmp := filepath.Join(c.scratch, filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	target, err := c.findInHome("block-lede-" + c.run)
	if err != nil {
		return fmt.Errorf("the new article: %w", err)
	}
	gtsHost := strings.TrimPrefix(strings.TrimPrefix(c.g.base, "https://"), "http://")
	out, err := c.crieurAdmin("blocks", "add", gtsHost)
	if err != nil {
		return err
	}
	info("crieur blocks add %s: %s", gtsHost, strings.TrimSpace(out))
	if n, err := c.followerCount(); err != nil || n != 0 {
		return fmt.Errorf("followers after the block: %d, %v; want 0 at once", n, err)
	}
	var s status
	form := url.Values{
		"status":         {fmt.Sprintf("@%s a reply after the block blocked-%s", c.acct(), c.run)},
		"in_reply_to_id": {target.ID},
		"visibility":     {"public"},
	}
	if err := c.g.do("POST", "/api/v1/statuses", form, &s); err != nil {
		return fmt.Errorf("reply after the block: %w", err)
	}
	time.Sleep(5 * time.Second)
	out, err = c.crieurAdmin("inbox")
	if err != nil {
		return err
	}
	if strings.Contains(out, "blocked-"+c.run) {
		return fmt.Errorf("a reply from the blocked domain was kept:\n%s", out)
	}
	info("the reply sent after the block is not in crieur inbox")
	return nil
}
