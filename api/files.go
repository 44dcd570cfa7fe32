package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Files (issue 18). A file is sent as the raw body of
//
//	POST PathGroupFiles?name=NAME&type=MEDIA_TYPE   (Content-Length required) -> SendResult
//
// and read in two steps: POST PathMessageDownload fetches the chunks the
// node lacks from the group's hosts and checks the whole file, streaming
// DownloadProgress lines (the last one Done, or an error line); then
// GET PathMessageFile answers the verified bytes (Content-Type
// application/octet-stream, header HeaderFileSHA256), which the client
// checks again.
const (
	PathGroupFiles      = PathGroup + "/files"
	PathMessageDownload = PathMessage + "/download"
	PathMessageFile     = PathMessage + "/file"

	// ContentTypeOctets is the content type of file bytes.
	ContentTypeOctets = "application/octet-stream"
	// HeaderFileSHA256 carries a file's SHA-256 (hex) with its bytes.
	HeaderFileSHA256 = "X-Meshnode-File-Sha256"

	// KindFile is the kind of a file message (Message.File).
	KindFile = "file"

	// CodeFileTooLarge: a file over the node's limit (413).
	CodeFileTooLarge = "file_too_large"
	// CodeFileIncomplete: an upload shorter or longer than announced, or
	// a download some of whose chunks no host supplied (409).
	CodeFileIncomplete = "file_incomplete"
	// CodeFileCorrupt: the chunks do not match the file's SHA-256 (409).
	CodeFileCorrupt = "file_corrupt"
)

var (
	// ErrFileTooLarge: the file is over the node's limit.
	ErrFileTooLarge = errors.New("api: file too large")
	// ErrFileIncomplete: not all of the file could be sent or fetched.
	ErrFileIncomplete = errors.New("api: file incomplete")
	// ErrFileCorrupt: the file does not match its SHA-256.
	ErrFileCorrupt = errors.New("api: file does not match its hash")
)

func init() {
	codeErrors[CodeFileTooLarge] = []error{ErrFileTooLarge, ErrTooLarge}
	codeErrors[CodeFileIncomplete] = []error{ErrFileIncomplete, ErrConflict}
	codeErrors[CodeFileCorrupt] = []error{ErrFileCorrupt, ErrConflict}
	codeStatus[CodeFileTooLarge] = http.StatusRequestEntityTooLarge
	codeStatus[CodeFileIncomplete] = http.StatusConflict
	codeStatus[CodeFileCorrupt] = http.StatusConflict
}

// FileInfo describes a file message (Message.File).
type FileInfo struct {
	Name      string `json:"name"`
	MediaType string `json:"media_type"`
	Size      uint64 `json:"size"`
	SHA256    string `json:"sha256"`
}

// DownloadProgress is one line of the PathMessageDownload stream: Held of
// Chunks chunk envelopes are in the node's store; the last line has Done,
// the file and what was fetched now.
type DownloadProgress struct {
	Held    int               `json:"held"`
	Chunks  int               `json:"chunks"`
	Done    bool              `json:"done,omitempty"`
	ID      string            `json:"id,omitempty"`
	File    *FileInfo         `json:"file,omitempty"`
	Fetched int               `json:"fetched,omitempty"`
	Failed  map[string]string `json:"failed,omitempty"`
}

// SendFile calls POST PathGroupFiles with size bytes of r.
func (c *Client) SendFile(ctx context.Context, group, name, mediaType string, r io.Reader, size int64) (*SendResult, error) {
	q := url.Values{"name": {name}}
	if mediaType != "" {
		q.Set("type", mediaType)
	}
	resp, err := c.sendRaw(ctx, http.MethodPost, GroupPath(PathGroupFiles, group)+"?"+q.Encode(), r, size, ContentTypeJSON)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out SendResult
	if err := decodeJSONBody(resp, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Download calls POST PathMessageDownload and returns its progress
// stream.
func (c *Client) Download(ctx context.Context, id string) (*Stream[DownloadProgress], error) {
	resp, err := c.send(ctx, http.MethodPost, MessagePath(PathMessageDownload, id), nil, ContentTypeNDJSON)
	if err != nil {
		return nil, err
	}
	if err := checkContentType(resp, ContentTypeNDJSON); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return newStream[DownloadProgress](resp.Body), nil
}

// OpenFile calls GET PathMessageFile: the file's bytes (close them), its
// size and SHA-256 (hex).
func (c *Client) OpenFile(ctx context.Context, id string) (io.ReadCloser, int64, string, error) {
	resp, err := c.send(ctx, http.MethodGet, MessagePath(PathMessageFile, id), nil, ContentTypeOctets)
	if err != nil {
		return nil, 0, "", err
	}
	if err := checkContentType(resp, ContentTypeOctets); err != nil {
		resp.Body.Close()
		return nil, 0, "", err
	}
	return resp.Body, resp.ContentLength, resp.Header.Get(HeaderFileSHA256), nil
}

// sendRaw is send with a raw body of size bytes.
func (c *Client) sendRaw(ctx context.Context, method, path string, body io.Reader, size int64, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", accept)
	req.Header.Set("Content-Type", ContentTypeOctets)
	req.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrDaemonNotRunning) {
			return nil, fmt.Errorf("%w: nothing answers at %s", ErrDaemonNotRunning, c.addr)
		}
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

func decodeJSONBody(resp *http.Response, out any) error {
	if err := checkContentType(resp, ContentTypeJSON); err != nil {
		return err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("%w: decoding answer: %v", ErrProtocol, err)
	}
	return nil
}
