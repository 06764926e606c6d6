package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The interaction checks: from GoToSocial, a reply (mentioning the bot:
// GoToSocial delivers a reply only to the accounts it addresses), a
// favourite and a boost of the English article; then their undo and the
// reply's deletion. What crieur kept is read from `crieur status
// SLUG/LANG`, which asks the running server over its admin socket in the
// data folder, and from what anyone sees (shown.go): the Note's replies,
// likes and shares collections and the article's page.

// talkCounts are an article's interaction counts as crieur status shows
// them.
type talkCounts struct {
	Replies, Likes, Boosts, Quotes, Mentions int
}

func (t talkCounts) String() string {
	return fmt.Sprintf("replies %d, likes %d, boosts %d, quotes %d, mentions %d", t.Replies, t.Likes, t.Boosts, t.Quotes, t.Mentions)
}

// articleKey is the English article's SLUG/LANG.
func (c *checker) articleKey() string { return "gts-check-" + c.run + "/en" }

// crieurCounts runs crieur status for the English article and reads its
// line: ARTICLE STATE LAST(type, date, time) REPLIES LIKES BOOSTS QUOTES
// MENTIONS DELIVERED PENDING FAILED; the counts are the five before the
// last three.
func (c *checker) crieurCounts() (talkCounts, error) {
	if c.crieurBin == "" || c.dataDir == "" {
		return talkCounts{}, errors.New("no -crieur-bin and -data given: cannot ask crieur what it kept")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.crieurBin, "status", "-data", c.dataDir, "-posts", c.posts, c.articleKey()).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return talkCounts{}, fmt.Errorf("crieur status: %v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return talkCounts{}, fmt.Errorf("crieur status: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != c.articleKey() {
			continue
		}
		n := make([]int, 5)
		for i, s := range f[len(f)-8 : len(f)-3] {
			if n[i], err = strconv.Atoi(s); err != nil {
				return talkCounts{}, fmt.Errorf("crieur status line %q: %v", line, err)
			}
		}
		return talkCounts{n[0], n[1], n[2], n[3], n[4]}, nil
	}
	return talkCounts{}, fmt.Errorf("crieur status has no line for %s:\n%s", c.articleKey(), out)
}

// waitCounts polls crieur status until want holds.
func (c *checker) waitCounts(want talkCounts) error {
	return c.poll(func() (bool, string, error) {
		got, err := c.crieurCounts()
		if err != nil {
			return false, err.Error(), nil
		}
		if got != want {
			return false, fmt.Sprintf("crieur status says %s, want %s", got, want), nil
		}
		info("crieur status %s: %s", c.articleKey(), got)
		return true, "", nil
	})
}

// policyHint explains a 403 from GoToSocial on an interaction: it checks
// the Note's interactionPolicy, and v0.19 reads only the older vocabulary
// (always/approvalRequired).
func policyHint(err error) error {
	if isStatus(err, 403) {
		return fmt.Errorf("%w (GoToSocial refused its own user: crieur's Note carries an interactionPolicy v0.19.2 cannot read, see INTEROP.md \"GoToSocial interaction policies\")", err)
	}
	return err
}

// reply: a public reply to the article, mentioning the bot, is kept by
// crieur as a reply.
func (c *checker) reply() error {
	form := url.Values{
		"status":         {fmt.Sprintf("@%s a reply from GoToSocial reply-%s", c.acct(), c.run)},
		"in_reply_to_id": {c.en.ID},
		"visibility":     {"public"},
		"language":       {"en"},
	}
	if err := c.g.do("POST", "/api/v1/statuses", form, &c.replied); err != nil {
		return policyHint(err)
	}
	info("reply %s", c.replied.URI)
	if err := c.waitCounts(talkCounts{Replies: 1}); err != nil {
		return err
	}
	return c.waitShown(1, 0, 0)
}

// favourite and boost: kept as a like and a boost.
func (c *checker) favouriteAndBoost() error {
	var s status
	if err := c.g.do("POST", "/api/v1/statuses/"+c.en.ID+"/favourite", url.Values{}, &s); err != nil {
		return policyHint(fmt.Errorf("favourite: %w", err))
	}
	if err := c.g.do("POST", "/api/v1/statuses/"+c.en.ID+"/reblog", url.Values{}, &s); err != nil {
		return policyHint(fmt.Errorf("boost: %w", err))
	}
	if err := c.waitCounts(talkCounts{Replies: c.done01("reply"), Likes: 1, Boosts: 1}); err != nil {
		return err
	}
	return c.waitShown(c.done01("reply"), 1, 1)
}

// undoInteractions: unfavourite and unboost remove the like and the boost;
// deleting the reply removes it.
func (c *checker) undoInteractions() error {
	var s status
	if err := c.g.do("POST", "/api/v1/statuses/"+c.en.ID+"/unfavourite", url.Values{}, &s); err != nil {
		return fmt.Errorf("unfavourite: %w", err)
	}
	if err := c.g.do("POST", "/api/v1/statuses/"+c.en.ID+"/unreblog", url.Values{}, &s); err != nil {
		return fmt.Errorf("unboost: %w", err)
	}
	if err := c.waitCounts(talkCounts{Replies: c.done01("reply")}); err != nil {
		return err
	}
	if c.replied.ID == "" {
		return nil // the reply check failed and says so
	}
	if err := c.g.do("DELETE", "/api/v1/statuses/"+c.replied.ID, nil, nil); err != nil {
		return fmt.Errorf("delete the reply: %w", err)
	}
	if err := c.waitCounts(talkCounts{}); err != nil {
		return err
	}
	return c.waitShown(0, 0, 0)
}

// done01 is 1 when the named check passed: later checks expect what it
// left behind.
func (c *checker) done01(name string) int {
	if c.done[name] {
		return 1
	}
	return 0
}
