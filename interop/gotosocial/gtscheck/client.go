package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// gts talks to GoToSocial's Mastodon client API as one user.
type gts struct {
	base  string // https://gts.crieur.test
	token string
	http  *http.Client
}

// apiError is a non-2xx answer.
type apiError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, strings.TrimSpace(e.Body))
}

func isStatus(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == code
}

func (g *gts) do(method, path string, form url.Values, out any) error {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, g.base+path, body)
	if err != nil {
		return err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	if g.token != "" {
		req.Header.Set("Authorization", "Bearer "+g.token)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		return &apiError{method, path, resp.StatusCode, string(b)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %v in %.200q", method, path, err, b)
	}
	return nil
}

// login makes an application and gets a user token through the OAuth
// authorization-code flow, as a browser would: GoToSocial has no password
// grant. The session cookie carries the flow from the sign-in form to the
// authorize POST; redirects are read, not followed, and the code is taken
// from the Location of the last one. No HTML template is rendered on this
// path, so the stage's minimal templates suffice.
func login(base, email, password string) (*gts, error) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{
		Timeout: 30 * time.Second,
		Jar:     jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	g := &gts{base: base, http: hc}
	const redirect = "https://crieur.crieur.test/oauth-callback" // never visited
	const scope = "read write"
	var app struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := g.do("POST", "/api/v1/apps", url.Values{
		"client_name":   {"crieur interop"},
		"redirect_uris": {redirect},
		"scopes":        {scope},
	}, &app); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}

	step := func(method, path string, form url.Values) (string, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, base+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Accept", "text/html")
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode/100 != 3 {
			return "", fmt.Errorf("%s %s: %d, not a redirect: %.300s", method, path, resp.StatusCode, b)
		}
		return resp.Header.Get("Location"), nil
	}
	q := url.Values{
		"client_id":     {app.ClientID},
		"redirect_uri":  {redirect},
		"response_type": {"code"},
		"scope":         {scope},
	}
	if _, err := step("GET", "/oauth/authorize?"+q.Encode(), nil); err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	if _, err := step("POST", "/auth/sign_in", url.Values{"username": {email}, "password": {password}}); err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	loc, err := step("POST", "/oauth/authorize", url.Values{})
	if err != nil {
		return nil, fmt.Errorf("authorize (approve): %w", err)
	}
	lu, err := url.Parse(loc)
	if err != nil || lu.Query().Get("code") == "" {
		return nil, fmt.Errorf("authorize: no code in redirect %q", loc)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := g.do("POST", "/oauth/token", url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {app.ClientID},
		"client_secret": {app.ClientSecret},
		"redirect_uri":  {redirect},
		"code":          {lu.Query().Get("code")},
	}, &tok); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if tok.AccessToken == "" {
		return nil, errors.New("token: empty access_token")
	}
	g.token = tok.AccessToken
	return g, nil
}

// The parts of Mastodon's entities the checks read.
type account struct {
	ID             string  `json:"id"`
	Acct           string  `json:"acct"`
	Username       string  `json:"username"`
	DisplayName    string  `json:"display_name"`
	Note           string  `json:"note"`
	URL            string  `json:"url"`
	Avatar         string  `json:"avatar"`
	Bot            bool    `json:"bot"`
	FollowersCount int     `json:"followers_count"`
	Fields         []field `json:"fields"`
}

type field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type status struct {
	ID         string  `json:"id"`
	URI        string  `json:"uri"`
	URL        string  `json:"url"`
	Visibility string  `json:"visibility"`
	Language   *string `json:"language"`
	Content    string  `json:"content"`
	EditedAt   *string `json:"edited_at"`
	Account    account `json:"account"`
	Tags       []struct {
		Name string `json:"name"`
	} `json:"tags"`
}

func (s status) lang() string {
	if s.Language == nil {
		return ""
	}
	return *s.Language
}

type relationship struct {
	ID        string `json:"id"`
	Following bool   `json:"following"`
	Requested bool   `json:"requested"`
}

// get fetches a JSON document with a plain https GET (crieur's public pages
// and collections), asking for ActivityPub JSON.
func getJSON(hc *http.Client, u string, out any) error {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/activity+json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return &apiError{"GET", u, resp.StatusCode, string(bytes.TrimSpace(b))}
	}
	return json.Unmarshal(b, out)
}
