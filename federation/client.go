package federation

import (
	"net/http"
)

// Client is the one guarded outgoing HTTP client.
type Client struct {
	cfg  ClientConfig
	http *http.Client
}

// NewClient builds the client.
func NewClient(cfg ClientConfig) *Client {
	return &Client{cfg: cfg, http: &http.Client{}}
}
