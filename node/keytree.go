package node

import "github.com/meshnode/meshnode/groupstate"

// Key trees of managed groups in the node (ARCHITECTURE §7; groupstate's
// package doc, "Key tree", has the design and the byte layouts).
//
// Every rotation a manager makes goes through groupstate.Chain.RotateTree,
// which picks the mode: direct HPKE seals below Params.KeyTreeMin members
// (groupstate.TreeMinMembers by default, TreeMinMembersPQ with an X-Wing
// member), a full tree rotation with a new
// seed when this manager holds no seed or a former manager lost its place,
// and otherwise a path update of about 2·log2 n symmetric wraps in one
// envelope. What a member holds of the tree — its path keys, and for a
// manager the tree seed — lives in its group record (groupstate.Group.Tree
// and TreeSeed), which the member database keeps encrypted at rest and
// saves in the same transaction as the epoch secrets and the chain, so a
// restart (a bot's too) loses nothing and a crash leaves either the old
// record or the new one.
//
// A group's creator draws the tree seed, so a group has its tree from the
// start. The manager operation that needs a rotation because of the tree
// is promoting a member to manager while this manager holds the seed (add
// manager, set-role to manage, transfer manager): the rotation that
// follows seals the seed to the new manager — the handover. A transfer is
// therefore add-manager, rotate, then the author's own step down (after
// it, the author could not sign the rotation).
//
// Crash safety is the manager operations' (manage.go): a key update in the
// node's own store but not recorded is processed like anybody's, and the
// manager is a recipient of its own rotation — of its path's wraps, and
// after a new seed of the seed itself — so the record is rebuilt from it.

// promotionRotates reports whether making target a manager needs a
// rotation: it lacks the write key, or this manager holds the key tree
// seed, which the rotation hands over.
func (op *managerOp) promotionRotates(target *groupstate.Member) bool {
	return !target.Role.CanWrite() || op.e.g.TreeSeed != nil
}

// treeParams are the rotation parameters of this node.
func (op *managerOp) treeParams() groupstate.RotationParams {
	return groupstate.RotationParams{TreeMin: op.n.params.KeyTreeMin}
}
