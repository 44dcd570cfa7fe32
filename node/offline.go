package node

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Reading without the daemon (issue 18, item 7). OpenReader opens a
// member's database by itself — no store, no network, no processing — so
// that its groups, messages and search can be read while the node is not
// running. The caller must hold the home's lock: Badger allows one
// process per database, and OpenReader's node is that database's only
// writer meanwhile (search may complete its word index). What it shows is
// what the node had stored when it stopped.
func OpenReader(memberDir string, key []byte, id *keymgmt.Identity) (*Node, error) {
	if id == nil {
		return nil, ErrNoIdentity
	}
	db, err := openMemberDB(memberDir, key, false, DefaultParams(RoleMember).MemberMemTableSize)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &member{
		id: id, db: db, log: log,
		groups:    map[groupstate.GroupID]*groupEntry{},
		mailboxes: map[envelope.MailboxID]mailboxRef{},
		followers: map[int]chan<- Message{},
	}
	if err := m.loadGroups(); err != nil {
		db.Close()
		return nil, fmt.Errorf("node: reading the member database: %w", err)
	}
	return &Node{member: m, params: DefaultParams(RoleMember), log: log}, nil
}

// CloseReader closes a node opened by OpenReader.
func (n *Node) CloseReader() error { return n.member.db.Close() }
