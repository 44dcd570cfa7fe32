package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Paths of the alias and contact endpoints. {name} and {id} are
// path-escaped.
const (
	PathAliases        = "/" + Version + "/aliases"
	PathAlias          = PathAliases + "/{name}"
	PathContacts       = "/" + Version + "/contacts"
	PathContactRequest = PathContacts + "/requests"
	PathContactAccept  = PathContactRequest + "/{id}/accept"
	PathContactReject  = PathContactRequest + "/{id}/reject"
	// PathContact removes a contact (DELETE; ?block=true also drops the
	// contact's later requests unread).
	PathContact = PathContacts + "/{contact}"
	// PathAliasProof sets an alias's proof of work (PUT).
	PathAliasProof = PathAlias + "/pow"
	// PathGroupAddContact adds a contact to a managed group, the welcome
	// travelling over the connection group.
	PathGroupAddContact = "/" + Version + "/groups/{group}/add-contact"
	// PathContactAdds lists the adds queued until the contact's node
	// offers a key package (GET); PathContactAdd cancels one (DELETE).
	PathContactAdds = PathContacts + "/adds"
	PathContactAdd  = PathContactAdds + "/{id}"
)

// Error codes of the contact endpoints.
const (
	CodeUnknownName     = "unknown_name"        // 404: nobody is reachable under that alias or user ID
	CodeBadPackage      = "bad_package"         // 502: the package found under the name is forged or invalid
	CodeExpiredPackage  = "expired_package"     // 502: the package found under the name has expired
	CodeUnknownRequest  = "unknown_request"     // 404: no pending request has that ID
	CodeUnknownAlias    = "unknown_alias"       // 404: alias remove of an alias never added
	CodeAliasExists     = "alias_exists"        // 409: alias add of an alias already added
	CodeNoDirectory     = "no_directory"        // 409: no directory host configured
	CodeDirectoryRefuse = "directory_refused"   // 502: no directory host accepted the alias
	CodeUnknownContact  = "unknown_contact"     // 404: no connected contact matches
	CodeNoKeyPackage    = "no_key_package"      // 409: the contact has offered no unused key package yet; retry later
	CodeWelcomeTooLarge = "welcome_too_large"   // 409: the welcome does not fit a connection group; add by key package
	CodeUnknownAdd      = "unknown_contact_add" // 404: no queued contact add has that ID
	CodeAddQueueFull    = "add_queue_full"      // 409: too many queued contact adds; cancel some
)

func pathWith(pattern, key, value string) string {
	return strings.Replace(pattern, "{"+key+"}", url.PathEscape(value), 1)
}

// Alias is a published alias.
type Alias struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Hosts     []string  `json:"hosts"`
	Published int       `json:"published"`
	Created   time.Time `json:"created"`
	// ProofBits is the proof of work requests through the alias must
	// carry (0: none); DroppedNoProof counts requests dropped since the
	// daemon started for want of a valid one.
	ProofBits      int    `json:"proof_bits"`
	DroppedNoProof uint64 `json:"dropped_no_proof"`
}

// AddAliasRequest is the body of POST /v1/aliases.
type AddAliasRequest struct {
	Name string `json:"name"`
	// Hosts are directory hosts (multiaddrs with /p2p/); empty means the
	// node's configured ones.
	Hosts []string `json:"hosts,omitempty"`
	// ProofBits is the proof of work (leading zero bits, 0 for none)
	// requests through the alias must carry; absent means the node's
	// default (16 bits, about 22 ms of one core per request).
	ProofBits *int `json:"proof_bits,omitempty"`
}

// ContactRequest is a request in quarantine: only its nick, fingerprint
// and the name it came through are shown.
type ContactRequest struct {
	ID          string    `json:"id"`
	Nick        string    `json:"nick"`
	Fingerprint string    `json:"fingerprint"`
	Via         string    `json:"via"`
	Sent        time.Time `json:"sent"`
	Received    time.Time `json:"received"`
}

// Contact is a connection, requested or established.
type Contact struct {
	Group       string    `json:"group"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Nick        string    `json:"nick,omitempty"`
	Via         string    `json:"via"`
	State       string    `json:"state"`
	Initiated   bool      `json:"initiated"`
	Since       time.Time `json:"since"`
}

// AddContactToGroupRequest is the body of POST
// /v1/groups/{group}/add-contact.
type AddContactToGroupRequest struct {
	// Contact is a contact's connection group ID, fingerprint, nick or
	// the name they were reached by.
	Contact string `json:"contact"`
	// Role is read, write or manage.
	Role string `json:"role"`
}

// AliasProofRequest is the body of PUT /v1/aliases/{name}/pow.
type AliasProofRequest struct {
	// ProofBits is the proof of work (leading zero bits, 0 for none, at
	// most 32) requests through the alias must carry from now on.
	ProofBits int `json:"proof_bits"`
}

// PendingContactAdd is a contact add queued until the contact's node
// offers a key package over the connection group; the daemon completes it
// when one arrives. State is "waiting", or "failed" when it can never
// complete (LastError says why; cancel it).
type PendingContactAdd struct {
	ID          string    `json:"id"`
	Group       string    `json:"group"`
	GroupName   string    `json:"group_name,omitempty"`
	Contact     string    `json:"contact"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Nick        string    `json:"nick,omitempty"`
	Role        string    `json:"role"`
	State       string    `json:"state"`
	Queued      time.Time `json:"queued"`
	LastError   string    `json:"last_error,omitempty"`
}

// ContactAddResult is the answer of POST /v1/groups/{group}/add-contact:
// the manager operation's result when the contact was added at once, or
// Queued (and only Group of the operation) when the add waits for the
// contact's key package.
type ContactAddResult struct {
	ManageResult
	Queued *PendingContactAdd `json:"queued,omitempty"`
}

// RequestContactRequest is the body of POST /v1/contacts/requests.
type RequestContactRequest struct {
	// Name is an alias or a user ID (fingerprint).
	Name string `json:"name"`
	// Hosts are the directory hosts to look the name up at (multiaddrs
	// with /p2p/); none: the daemon's directory_hosts, else its bootstrap
	// peers.
	Hosts []string `json:"hosts,omitempty"`
}

// AddAlias calls POST /v1/aliases with the node's default proof of work.
func (c *Client) AddAlias(ctx context.Context, name string, hosts []string) (*Alias, error) {
	return c.AddAliasWith(ctx, &AddAliasRequest{Name: name, Hosts: hosts})
}

// AddAliasWith calls POST /v1/aliases.
func (c *Client) AddAliasWith(ctx context.Context, req *AddAliasRequest) (*Alias, error) {
	var out Alias
	if err := c.Do(ctx, http.MethodPost, PathAliases, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Aliases calls GET /v1/aliases.
func (c *Client) Aliases(ctx context.Context) ([]Alias, error) {
	var out []Alias
	if err := c.Do(ctx, http.MethodGet, PathAliases, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RemoveAlias calls DELETE /v1/aliases/{name}.
func (c *Client) RemoveAlias(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, pathWith(PathAlias, "name", name), nil, nil)
}

// RequestContact calls POST /v1/contacts/requests: ask the person under
// name to connect, looking the name up at the given directory hosts (none:
// the daemon's).
func (c *Client) RequestContact(ctx context.Context, name string, hosts ...string) (*Contact, error) {
	var out Contact
	if err := c.Do(ctx, http.MethodPost, PathContactRequest, &RequestContactRequest{Name: name, Hosts: hosts}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ContactRequests calls GET /v1/contacts/requests: the daemon first
// fetches its request mailboxes, then lists the quarantine.
func (c *Client) ContactRequests(ctx context.Context) ([]ContactRequest, error) {
	var out []ContactRequest
	if err := c.Do(ctx, http.MethodGet, PathContactRequest, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// AcceptContact calls POST /v1/contacts/requests/{id}/accept.
func (c *Client) AcceptContact(ctx context.Context, id string) (*Contact, error) {
	var out Contact
	if err := c.Do(ctx, http.MethodPost, pathWith(PathContactAccept, "id", id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddContactToGroup calls POST /v1/groups/{group}/add-contact: add a
// connected contact to a managed group with the key package their node
// offered; the welcome also travels over the connection group. Without an
// offer yet, the add is queued (the result's Queued).
func (c *Client) AddContactToGroup(ctx context.Context, group string, req *AddContactToGroupRequest) (*ContactAddResult, error) {
	var out ContactAddResult
	if err := c.Do(ctx, http.MethodPost, GroupPath(PathGroupAddContact, group), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PendingContactAdds calls GET /v1/contacts/adds.
func (c *Client) PendingContactAdds(ctx context.Context) ([]PendingContactAdd, error) {
	var out []PendingContactAdd
	if err := c.Do(ctx, http.MethodGet, PathContactAdds, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CancelContactAdd calls DELETE /v1/contacts/adds/{id}.
func (c *Client) CancelContactAdd(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, pathWith(PathContactAdd, "id", id), nil, nil)
}

// SetAliasProofBits calls PUT /v1/aliases/{name}/pow.
func (c *Client) SetAliasProofBits(ctx context.Context, name string, bits int) (*Alias, error) {
	var out Alias
	if err := c.Do(ctx, http.MethodPut, pathWith(PathAliasProof, "name", name), &AliasProofRequest{ProofBits: bits}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RejectContact calls POST /v1/contacts/requests/{id}/reject.
func (c *Client) RejectContact(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodPost, pathWith(PathContactReject, "id", id), nil, nil)
}

// RemoveContact calls DELETE /v1/contacts/{contact}: the node leaves the
// connection group and forgets the contact (by group ID, fingerprint or
// nick); with block, the contact's later requests are dropped unread. It
// returns the contact as it was.
func (c *Client) RemoveContact(ctx context.Context, contact string, block bool) (*Contact, error) {
	path := pathWith(PathContact, "contact", contact)
	if block {
		path += "?block=true"
	}
	var out Contact
	if err := c.Do(ctx, http.MethodDelete, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Contacts calls GET /v1/contacts.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var out []Contact
	if err := c.Do(ctx, http.MethodGet, PathContacts, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
