package daemon

import (
	"errors"
	"slices"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

// Offline reads a home's member database while no daemon runs (issue 18,
// item 7): `meshnode messages`, `group list` and `search` use it when the
// daemon is stopped. It holds the home's lock, so no daemon starts on the
// home meanwhile and the database never has two writers; it opens the
// keystore with the passphrase to get the database's key. It answers in
// the API's types, as the daemon would, from what the node had stored
// when it stopped: nothing is fetched or processed.
type Offline struct {
	lock *homeLock
	n    *node.Node
}

// OpenOffline opens h's member database without a daemon. A running
// daemon gives ErrAlreadyRunning.
func OpenOffline(h *Home, pass PassphraseFunc) (o *Offline, err error) {
	lock, err := lockHome(h)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = lock.release()
		}
	}()
	ks, err := loadKeystore(h, pass)
	if err != nil {
		return nil, err
	}
	n, err := node.OpenReader(h.Path(DirMember), ks.DataKey[:], ks.Identity)
	if err != nil {
		return nil, err
	}
	return &Offline{lock: lock, n: n}, nil
}

// Close closes the database and releases the home.
func (o *Offline) Close() error {
	return errors.Join(o.n.CloseReader(), o.lock.release())
}

// Groups lists the groups as GET /v1/groups does.
func (o *Offline) Groups() ([]api.GroupInfo, error) {
	gs, err := o.n.Groups()
	if err != nil {
		return nil, apiError(err)
	}
	out := make([]api.GroupInfo, 0, len(gs))
	for i := range gs {
		out = append(out, groupInfo(&gs[i]))
	}
	return out, nil
}

// Messages lists a group's messages as GET .../messages does.
func (o *Offline) Messages(group string, q api.MessageQuery) ([]api.Message, error) {
	msgs, err := o.n.Messages(group, 0)
	if err != nil {
		return nil, apiError(err)
	}
	if !q.All {
		msgs = slices.DeleteFunc(msgs, func(m node.Message) bool { return o.n.IsProtocolMessage(&m) })
	}
	if q.Limit > 0 && len(msgs) > q.Limit {
		msgs = msgs[len(msgs)-q.Limit:]
	}
	out := make([]api.Message, 0, len(msgs))
	for i := range msgs {
		out = append(out, apiMessage(&msgs[i]))
	}
	return out, nil
}

// Search searches as GET /v1/search does.
func (o *Offline) Search(query, group string, limit int) (*api.SearchAnswer, error) {
	res, err := o.n.Search(node.SearchQuery{Text: query, Group: group, Limit: limit, Hide: o.n.IsProtocolMessage})
	if err != nil {
		return nil, apiError(err)
	}
	out := &api.SearchAnswer{Messages: make([]api.PagedMessage, 0, len(res.Messages)), More: res.More}
	for i := range res.Messages {
		out.Messages = append(out.Messages, pagedMessage(&res.Messages[i]))
	}
	return out, nil
}
