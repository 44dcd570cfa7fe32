package hostsync

import (
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/store"
)

// storeSet is the reconcile.Set of one session: a store.SyncView, the
// read snapshot of a mailbox's sync set (live envelopes and tombstones)
// with the node sums the store keeps as envelopes arrive and expire. A
// session therefore reads only the nodes it compares and the IDs of the
// nodes it lists, never the whole mailbox, and holds none of it in
// memory.
type storeSet struct{ v *store.SyncView }

var _ reconcile.Set = storeSet{}

func accOf(s store.NodeSum) reconcile.Accumulator { return reconcile.AccumulatorOf(s.Limbs, s.Count) }

func (s storeSet) Acc(n reconcile.Node) (reconcile.Accumulator, error) {
	sum, err := s.v.Sum(n.Level, n.Prefix)
	return accOf(sum), err
}

func (s storeSet) Children(n reconcile.Node, depth int, out []reconcile.Accumulator) error {
	sums := make([]store.NodeSum, len(out))
	if err := s.v.Sums(n.Level, n.Prefix, depth, sums); err != nil {
		return err
	}
	for i := range sums {
		out[i] = accOf(sums[i])
	}
	return nil
}

func (s storeSet) Scan(n reconcile.Node, fn func(envelope.ID) bool) error {
	return s.v.Scan(n.Level, n.Prefix, fn)
}
