package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// PathSearch searches the decrypted history (issue 18):
// GET ?q=WORDS&group=GROUP&limit=N&all=B -> SearchAnswer. A message
// matches when its current text has, for every word of q, a word that
// starts with it; results are newest first, at most limit (default 50,
// at most 500). The index lives in the member database, encrypted at
// rest like it.
const PathSearch = "/" + Version + "/search"

// SearchAnswer is a search's answer.
type SearchAnswer struct {
	Messages []PagedMessage `json:"messages"`
	// More: more messages may match than were returned or looked at.
	More bool `json:"more"`
}

// Search calls GET PathSearch.
func (c *Client) Search(ctx context.Context, query, group string, limit int) (*SearchAnswer, error) {
	v := url.Values{"q": {query}}
	if group != "" {
		v.Set("group", group)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out SearchAnswer
	if err := c.Do(ctx, http.MethodGet, PathSearch+"?"+v.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
