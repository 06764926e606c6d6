package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// checker runs the checks in order. Each check prints one line, PASS or
// FAIL with its name; a check whose prerequisite failed fails at once with
// the reason instead of waiting out its timeout.
type checker struct {
	g       *gts
	web     *http.Client // plain https client for crieur's own documents
	crieur  string       // https://crieur.crieur.test
	handle  string
	posts   string // crieur's posts folder
	scratch string // a folder on the same file system, for atomic writes
	timeout time.Duration
	run     string // unique per run, in slugs and text markers

	name, bio, fieldName, fieldValue string

	passed, failed int
	done           map[string]bool

	bot           account
	followersURL  string
	followersSeen int // crieur's follower count once the follow is accepted
	en, fr        status

	crieurBin, dataDir string // to ask the running crieur what it kept (crieur status)
	replied            status // the reply posted from GoToSocial
}

func runCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	c := &checker{done: map[string]bool{}}
	gtsBase := fs.String("gts", "https://gts.crieur.test", "GoToSocial's base URL")
	email := fs.String("email", "", "the GoToSocial user's email")
	password := fs.String("password", os.Getenv("GTSCHECK_PASSWORD"), "the GoToSocial user's password (default $GTSCHECK_PASSWORD, kept out of ps)")
	fs.StringVar(&c.crieur, "crieur", "https://crieur.crieur.test", "crieur's base URL")
	fs.StringVar(&c.handle, "handle", "reports", "crieur's handle")
	fs.StringVar(&c.posts, "posts", "", "crieur's posts folder")
	fs.StringVar(&c.scratch, "scratch", "", "folder on the posts folder's file system for atomic writes")
	fs.StringVar(&c.name, "name", "", "crieur's display name, as configured")
	fs.StringVar(&c.bio, "bio", "", "crieur's bio, as configured")
	fs.StringVar(&c.fieldName, "field-name", "", "name of a profile field, as configured")
	fs.StringVar(&c.fieldValue, "field-value", "", "value of that field")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "how long each check waits for its condition")
	fs.StringVar(&c.crieurBin, "crieur-bin", "", "the crieur binary, for crieur status (the interaction checks)")
	fs.StringVar(&c.dataDir, "data", "", "crieur's data folder, whose admin socket crieur status asks")
	fs.Parse(args)
	c.run = fmt.Sprintf("%d", time.Now().Unix())
	c.web = &http.Client{Timeout: 10 * time.Second}

	g, err := login(*gtsBase, *email, *password)
	if err != nil {
		fmt.Printf("FAIL gotosocial login: %v\n", err)
		fmt.Println("0 passed, 1 failed")
		return 1
	}
	c.g = g
	fmt.Println("# logged in to GoToSocial through its OAuth authorize flow")

	c.check("lookup", nil, c.lookup)
	c.check("profile", []string{"lookup"}, c.profile)
	c.check("follow accepted", []string{"lookup"}, c.follow)
	c.check("article in home timeline", []string{"follow accepted"}, c.article)
	c.check("edit", []string{"article in home timeline"}, c.edit)
	c.check("translation", []string{"article in home timeline"}, c.translation)

	// Interaction checks (interactions.go): a reply, a favourite and a
	// boost from GoToSocial, then their undo and the reply's deletion, as
	// crieur status reports what crieur kept. They must run before
	// "delete", which removes the article.
	c.check("reply", []string{"article in home timeline"}, c.reply)
	c.check("favourite and boost", []string{"article in home timeline"}, c.favouriteAndBoost)
	c.check("undo favourite and boost, delete reply", []string{"favourite and boost"}, c.undoInteractions)

	c.check("delete", []string{"article in home timeline"}, c.deletion)
	c.check("unfollow", []string{"follow accepted"}, c.unfollow)
	// Moderation (shown.go): a block of GoToSocial's domain on the running
	// crieur removes its follower at once and refuses its new replies.
	c.check("block GoToSocial's domain", []string{"follow accepted"}, c.blockGoToSocial)

	fmt.Printf("%d passed, %d failed\n", c.passed, c.failed)
	if c.failed > 0 {
		return 1
	}
	return 0
}

// info prints a line of information, not a check.
func info(format string, args ...any) {
	fmt.Printf("#   "+format+"\n", args...)
}

func (c *checker) check(name string, needs []string, fn func() error) {
	start := time.Now()
	var err error
	for _, n := range needs {
		if !c.done[n] {
			err = fmt.Errorf("not tried: needs %q, which failed", n)
			break
		}
	}
	if err == nil {
		err = fn()
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		c.failed++
		fmt.Printf("FAIL %s: %v (%s)\n", name, err, took)
		return
	}
	c.passed++
	c.done[name] = true
	fmt.Printf("PASS %s (%s)\n", name, took)
}

// poll calls cond every half second until it reports true, an error ends
// it, or c.timeout passes; the timeout's error holds cond's last reason.
func (c *checker) poll(cond func() (bool, string, error)) error {
	deadline := time.Now().Add(c.timeout)
	last := "never asked"
	for {
		ok, why, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		last = why
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %s", c.timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *checker) acct() string {
	u, _ := url.Parse(c.crieur)
	return c.handle + "@" + u.Host
}

// lookup: GoToSocial finds the bot by its handle (WebFinger, then the
// actor). Its accounts/lookup answers only from what it already knows, so
// the handle is first resolved through search, as a user would type it.
func (c *checker) lookup() error {
	return c.poll(func() (bool, string, error) {
		var found struct {
			Accounts []account `json:"accounts"`
		}
		q := url.Values{"q": {"@" + c.acct()}, "resolve": {"true"}, "type": {"accounts"}}
		if err := c.g.do("GET", "/api/v2/search?"+q.Encode(), nil, &found); err != nil {
			return false, "search: " + err.Error(), nil
		}
		if len(found.Accounts) == 0 {
			return false, "search resolved no account", nil
		}
		var a account
		err := c.g.do("GET", "/api/v1/accounts/lookup?acct="+url.QueryEscape(c.acct()), nil, &a)
		if err != nil {
			return false, err.Error(), nil
		}
		if a.Acct != c.acct() {
			return false, fmt.Sprintf("acct is %q", a.Acct), nil
		}
		c.bot = a
		info("%s is GoToSocial account %s", a.Acct, a.ID)
		return true, "", nil
	})
}

// profile: name, bio, fields, avatar (fetched and served by GoToSocial) and
// the bot flag, as GoToSocial shows them.
func (c *checker) profile() error {
	return c.poll(func() (bool, string, error) {
		var a account
		if err := c.g.do("GET", "/api/v1/accounts/"+c.bot.ID, nil, &a); err != nil {
			return false, err.Error(), nil
		}
		var problems []string
		if a.DisplayName != c.name {
			problems = append(problems, fmt.Sprintf("display_name %q, want %q", a.DisplayName, c.name))
		}
		if !strings.Contains(a.Note, c.bio) {
			problems = append(problems, fmt.Sprintf("note %q lacks the bio %q", a.Note, c.bio))
		}
		found := false
		for _, f := range a.Fields {
			if f.Name == c.fieldName && strings.Contains(f.Value, c.fieldValue) {
				found = true
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("fields %+v lack %s=%s", a.Fields, c.fieldName, c.fieldValue))
		}
		if !a.Bot {
			problems = append(problems, "bot is false")
		}
		if !strings.Contains(a.Avatar, "/fileserver/") {
			problems = append(problems, fmt.Sprintf("avatar %q is not a copy served by GoToSocial", a.Avatar))
		} else if err := c.isImage(a.Avatar); err != nil {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			return false, strings.Join(problems, "; "), nil
		}
		info("name %q, bot, %d field(s), avatar %s", a.DisplayName, len(a.Fields), a.Avatar)
		return true, "", nil
	})
}

func (c *checker) isImage(u string) error {
	resp, err := c.web.Get(u)
	if err != nil {
		return fmt.Errorf("avatar: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") {
		return fmt.Errorf("avatar %s: %s, %s", u, resp.Status, resp.Header.Get("Content-Type"))
	}
	return nil
}

// follow: the follow is accepted (GoToSocial's relationship says following,
// which it sets only on crieur's Accept), and crieur counts the follower.
func (c *checker) follow() error {
	var r relationship
	if err := c.g.do("POST", "/api/v1/accounts/"+c.bot.ID+"/follow", url.Values{}, &r); err != nil {
		return err
	}
	err := c.poll(func() (bool, string, error) {
		var rs []relationship
		if err := c.g.do("GET", "/api/v1/accounts/relationships?id[]="+c.bot.ID, nil, &rs); err != nil {
			return false, err.Error(), nil
		}
		if len(rs) != 1 {
			return false, fmt.Sprintf("%d relationships", len(rs)), nil
		}
		if !rs[0].Following {
			return false, fmt.Sprintf("following=%v requested=%v (no Accept taken in)", rs[0].Following, rs[0].Requested), nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	return c.poll(func() (bool, string, error) {
		n, err := c.followerCount()
		if err != nil {
			return false, err.Error(), nil
		}
		if n < 1 {
			return false, fmt.Sprintf("crieur's followers collection has totalItems %d", n), nil
		}
		c.followersSeen = n
		info("GoToSocial: following; crieur's followers collection: totalItems %d", n)
		return true, "", nil
	})
}

// followerCount reads totalItems of crieur's followers collection, found
// through WebFinger and the actor.
func (c *checker) followerCount() (int, error) {
	if c.followersURL == "" {
		var jrd struct {
			Links []struct {
				Rel, Type, Href string
			} `json:"links"`
		}
		if err := getJSON(c.web, c.crieur+"/.well-known/webfinger?resource=acct:"+c.acct(), &jrd); err != nil {
			return 0, err
		}
		var actorURL string
		for _, l := range jrd.Links {
			if l.Rel == "self" {
				actorURL = l.Href
			}
		}
		var actor struct {
			Followers string `json:"followers"`
		}
		if err := getJSON(c.web, actorURL, &actor); err != nil {
			return 0, err
		}
		if actor.Followers == "" {
			return 0, errors.New("the actor has no followers collection")
		}
		c.followersURL = actor.Followers
	}
	var coll struct {
		TotalItems *int `json:"totalItems"`
	}
	if err := getJSON(c.web, c.followersURL, &coll); err != nil {
		return 0, err
	}
	if coll.TotalItems == nil {
		return 0, errors.New("followers collection without totalItems")
	}
	return *coll.TotalItems, nil
}

// The article the checks publish, edit, translate and remove.
func (c *checker) articleText(lang, version string) string {
	now := time.Now().UTC().Format(time.RFC3339)
	if lang == "fr" {
		return fmt.Sprintf(`---
title: "Essai GoToSocial %[1]s"
date: %[2]s
draft: false
summary: "Un article de test de l'étape GoToSocial."
tags: [interop, gotosocial]
translationKey: gts-interop-%[1]s
slug: essai-gts-%[1]s
---

Début de l'article fr-lede-%[1]s.

## Une section

Un paragraphe au milieu de l'article.

Fin de l'article fr-end-%[1]s.
`, c.run, now)
	}
	return fmt.Sprintf(`---
title: "GoToSocial check %[1]s"
date: %[2]s
draft: false
summary: "A test article of the GoToSocial stage."
tags: [interop, gotosocial]
translationKey: gts-interop-%[1]s
slug: gts-check-%[1]s
---

Start of the article en-lede-%[1]s.

## A section

A paragraph in the middle of the article, %[3]s.

End of the article en-end-%[1]s.
`, c.run, now, version)
}

func (c *checker) postPath(lang string) string {
	if lang == "fr" {
		return filepath.Join(c.posts, "essai-gts-"+c.run+".fr.md")
	}
	return filepath.Join(c.posts, "gts-check-"+c.run+".en.md")
}

// writePost writes the file whole: written beside, then renamed in, so
// crieur's watcher never reads half a file.
func (c *checker) writePost(lang, version string) error {
	tmp := filepath.Join(c.scratch, filepath.Base(c.postPath(lang))+".tmp")
	if err := os.WriteFile(tmp, []byte(c.articleText(lang, version)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.postPath(lang))
}

// findInHome waits for the bot's status holding marker in the home timeline.
func (c *checker) findInHome(marker string) (status, error) {
	var found status
	err := c.poll(func() (bool, string, error) {
		var tl []status
		if err := c.g.do("GET", "/api/v1/timelines/home?limit=40", nil, &tl); err != nil {
			return false, err.Error(), nil
		}
		for _, s := range tl {
			if s.Account.ID == c.bot.ID && strings.Contains(s.Content, marker) {
				found = s
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d statuses in the home timeline, none of the bot's holds %q", len(tl), marker), nil
	})
	return found, err
}

func checkStatus(s status, lang string, wants ...string) error {
	var problems []string
	if s.Visibility != "public" {
		problems = append(problems, fmt.Sprintf("visibility %q", s.Visibility))
	}
	if s.lang() != lang {
		problems = append(problems, fmt.Sprintf("language %q, want %q", s.lang(), lang))
	}
	tags := map[string]bool{}
	for _, t := range s.Tags {
		tags[strings.ToLower(t.Name)] = true
	}
	for _, t := range []string{"interop", "gotosocial"} {
		if !tags[t] {
			problems = append(problems, fmt.Sprintf("tag %q missing from %+v", t, s.Tags))
		}
	}
	for _, w := range wants {
		if !strings.Contains(s.Content, w) {
			problems = append(problems, fmt.Sprintf("content lacks %q", w))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("status %s: %s; content: %.300q", s.ID, strings.Join(problems, "; "), s.Content)
	}
	return nil
}

// article: a file dropped in the posts folder reaches the follower's home
// timeline, public, in English, with its tags and its full text (the lede,
// the heading, the last paragraph).
func (c *checker) article() error {
	if err := c.writePost("en", "first version"); err != nil {
		return err
	}
	s, err := c.findInHome("en-lede-" + c.run)
	if err != nil {
		return err
	}
	c.en = s
	info("%s: %s, language %q, %d tag(s), %d bytes of HTML", s.URI, s.Visibility, s.lang(), len(s.Tags), len(s.Content))
	return checkStatus(s, "en", "en-lede-"+c.run, "A section", "first version", "en-end-"+c.run)
}

// edit: a changed file shows as edited, with the new text.
func (c *checker) edit() error {
	if err := c.writePost("en", "second version"); err != nil {
		return err
	}
	var last status
	err := c.poll(func() (bool, string, error) {
		if err := c.g.do("GET", "/api/v1/statuses/"+c.en.ID, nil, &last); err != nil {
			return false, err.Error(), nil
		}
		if last.EditedAt == nil {
			return false, "edited_at is null", nil
		}
		if !strings.Contains(last.Content, "second version") {
			return false, fmt.Sprintf("edited_at %s but content %.200q", *last.EditedAt, last.Content), nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	info("edited_at %s", *last.EditedAt)
	return checkStatus(last, "en", "en-end-"+c.run)
}

// translation: the same translationKey in another language arrives as its
// own status, in that language.
func (c *checker) translation() error {
	if err := c.writePost("fr", ""); err != nil {
		return err
	}
	s, err := c.findInHome("fr-lede-" + c.run)
	if err != nil {
		return err
	}
	c.fr = s
	info("%s: language %q", s.URI, s.lang())
	if s.ID == c.en.ID || s.URI == c.en.URI {
		return fmt.Errorf("the translation is the English status %s", s.URI)
	}
	return checkStatus(s, "fr", "fr-end-"+c.run)
}

// deletion: removing the files deletes the statuses.
func (c *checker) deletion() error {
	gone := func(s status) error {
		return c.poll(func() (bool, string, error) {
			var got status
			err := c.g.do("GET", "/api/v1/statuses/"+s.ID, nil, &got)
			if isStatus(err, http.StatusNotFound) {
				return true, "", nil
			}
			if err != nil {
				return false, err.Error(), nil
			}
			return false, fmt.Sprintf("status %s is still there", s.ID), nil
		})
	}
	if err := os.Remove(c.postPath("en")); err != nil {
		return err
	}
	if err := gone(c.en); err != nil {
		return fmt.Errorf("English: %w", err)
	}
	if c.fr.ID == "" {
		return nil // the translation check failed and says so
	}
	if err := os.Remove(c.postPath("fr")); err != nil {
		return err
	}
	if err := gone(c.fr); err != nil {
		return fmt.Errorf("French: %w", err)
	}
	return nil
}

// unfollow: GoToSocial's Undo of the Follow brings crieur's count down.
func (c *checker) unfollow() error {
	var r relationship
	if err := c.g.do("POST", "/api/v1/accounts/"+c.bot.ID+"/unfollow", url.Values{}, &r); err != nil {
		return err
	}
	if r.Following {
		return errors.New("GoToSocial still says following after unfollow")
	}
	want := c.followersSeen - 1
	return c.poll(func() (bool, string, error) {
		n, err := c.followerCount()
		if err != nil {
			return false, err.Error(), nil
		}
		if n != want {
			return false, fmt.Sprintf("crieur's followers collection has totalItems %d, want %d", n, want), nil
		}
		info("crieur's followers collection: totalItems %d", n)
		return true, "", nil
	})
}
