package node

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
)

// Bounds of the rejection log (issue 13: nothing may let one member make
// the evidence against another disappear). A log capped as one list is
// flushed by anyone who can fill it: 2,048 envelopes of junk from one
// insider (undecryptable, malformed, replayed copies of someone's
// messages) would push an earlier equivocation or forged removal out of
// sight. So the log is kept in two classes with bounds of their own:
//
//   - noise: what anyone holding the write key can produce at will, or
//     pin on someone else (a replay is somebody's message sealed again): at
//     most maxNoiseRejections, the oldest go first;
//   - evidence: what blames a member for breaking a rule of the group
//     (equivocation, a forged or unauthorized state event, a message after
//     its author's removal, a foreign head, a bad key update, a message
//     its remover had not seen...): at most maxEvidencePerBucket per
//     author and reason (its own oldest go first: an author who offends
//     again and again evicts its own entries of that reason, never its
//     other offences nor anyone else's), and maxEvidenceRejections in
//     all. Past the total, an entry of the fullest bucket goes; among
//     buckets as full, the one whose entries are the latest, so earlier
//     evidence outlives a later flood from many identities (a flood of one
//     entry each evicts itself). In a managed group an author the chain
//     never made a member is anybody with a fresh key: all such authors
//     share the buckets of the zero author.
//
// Records ('J' gid class(1) bucket(32) at(8) envelope(32) kind(1); the
// value as in rejections.go): class 1 noise (bucket zero), class 2
// evidence (bucket SHA-256(rejectionBucketLabel ‖ author ‖ reason), the
// author zero for one the chain never knew). Records of the first layout
// ('J' gid at envelope kind) are moved at load.
const (
	maxNoiseRejections    = 2048
	maxEvidenceRejections = 2048
	maxEvidencePerBucket  = 128
)

// rejectionBucketLabel prefixes the hash naming an evidence bucket.
const rejectionBucketLabel = "meshnode/v1/rejection-bucket"

const (
	rejClassNoise    byte = 1
	rejClassEvidence byte = 2
)

// Key lengths of a record: the layout before classes, and the current one.
const (
	rejKeyV1Len = 1 + 16 + 8 + 32 + 1
	rejKeyLen   = 1 + 16 + 1 + 32 + 8 + 32 + 1
)

// evidenceReasons are the reasons that blame a member (the rest is noise).
var evidenceReasons = map[string]bool{
	ReasonEquivocation: true, ReasonConflict: true, ReasonAfterRemoval: true, ReasonNotWriter: true,
	ReasonForeignHead: true, ReasonHeadEpoch: true, ReasonUnauthorized: true, ReasonKeyUpdate: true,
	ReasonRequest: true, ReasonNotMember: true, flagUnseenByRemover: true, flagNotDelivered: true,
	ReasonNotAuthor: true, ReasonBadReference: true,
}

// rejectionLog is what the member keeps in memory of a group's log: the
// noise count and the evidence per bucket (author and reason).
type rejectionLog struct {
	noise    int
	evidence int
	buckets  map[[32]byte]*rejBucket
}

// rejBucket is one author's evidence of one reason: its count and its
// oldest record's key.
type rejBucket struct {
	n      int
	oldest []byte
}

// total is the number of entries of the log.
func (l *rejectionLog) total() int { return l.noise + l.evidence }

// classify returns the class and author bucket of an entry. Call with
// m.mu held.
func classifyRejection(e *groupEntry, r *groupRejection) (byte, [32]byte) {
	if !evidenceReasons[r.Reason] && r.Kind != rejEquivocation {
		return rejClassNoise, [32]byte{}
	}
	var author [32]byte
	if r.HasAuthor && (e.chain == nil || e.chain.EverMember(r.Author)) {
		author = r.Author
	}
	h := sha256.New()
	h.Write([]byte(rejectionBucketLabel))
	h.Write(author[:])
	h.Write([]byte(r.Reason))
	var bucket [32]byte
	h.Sum(bucket[:0])
	return rejClassEvidence, bucket
}

func rejectionKey(g groupstate.GroupID, class byte, bucket [32]byte, r *groupRejection) []byte {
	return gkey(pfxRejection, g, []byte{class}, bucket[:], u64(uint64(r.At.UnixMilli())), r.Envelope[:], []byte{byte(r.Kind)})
}

// keyAt returns the time bytes of a record key (they order its bucket).
func keyAt(k []byte) []byte { return k[1+16+1+32 : 1+16+1+32+8] }

// logPut writes an entry and keeps the log within its bounds. Call with
// m.mu held.
func (m *member) logPut(txn *badger.Txn, e *groupEntry, r *groupRejection) error {
	class, bucket := classifyRejection(e, r)
	k := rejectionKey(e.g.ID, class, bucket, r)
	_, err := txn.Get(k)
	fresh := errors.Is(err, badger.ErrKeyNotFound)
	if err != nil && !fresh {
		return err
	}
	if err := txn.Set(k, r.marshal()); err != nil {
		return err
	}
	if !fresh {
		return nil // the same entry again
	}
	l := e.rejlog
	if class == rejClassNoise {
		l.noise++
		if l.noise <= maxNoiseRejections {
			return nil
		}
		prefix := gkey(pfxRejection, e.g.ID, []byte{rejClassNoise})
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		var old [][]byte
		for it.Rewind(); it.Valid() && len(old) < l.noise-maxNoiseRejections; it.Next() {
			old = append(old, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range old {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		l.noise -= len(old)
		return nil
	}
	b := l.buckets[bucket]
	if b == nil {
		b = &rejBucket{}
		l.buckets[bucket] = b
	}
	b.n++
	l.evidence++
	if b.oldest == nil || bytes.Compare(k, b.oldest) < 0 {
		b.oldest = k
	}
	victim := bucket
	switch {
	case b.n > maxEvidencePerBucket:
	case l.evidence > maxEvidenceRejections:
		var vb *rejBucket
		for a, c := range l.buckets {
			if vb == nil || c.n > vb.n || c.n == vb.n && bytes.Compare(keyAt(c.oldest), keyAt(vb.oldest)) > 0 {
				victim, vb = a, c
			}
		}
	default:
		return nil
	}
	return m.evictOldest(txn, e, victim)
}

// evictOldest deletes the oldest evidence entry of a bucket. Call with
// m.mu held.
func (m *member) evictOldest(txn *badger.Txn, e *groupEntry, bucket [32]byte) error {
	l := e.rejlog
	b := l.buckets[bucket]
	if err := txn.Delete(b.oldest); err != nil {
		return err
	}
	b.n--
	l.evidence--
	if b.n == 0 {
		delete(l.buckets, bucket)
		return nil
	}
	prefix := gkey(pfxRejection, e.g.ID, []byte{rejClassEvidence}, bucket[:])
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return fmt.Errorf("%w: rejection log: bucket of %d entries has none", ErrCorrupt, b.n)
	}
	b.oldest = it.Item().KeyCopy(nil)
	return nil
}

// loadRejections reads a group's log at load: it counts the entries per
// class and bucket and moves records of the first layout to their class.
// Call with m.mu held (or before the entry is shared), after e.chain is
// loaded.
func (m *member) loadRejections(e *groupEntry) error {
	l := &rejectionLog{buckets: map[[32]byte]*rejBucket{}}
	type move struct {
		old []byte
		r   *groupRejection
	}
	var moves []move
	err := m.db.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxRejection, e.g.ID)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			switch len(k) {
			case rejKeyV1Len:
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				r, err := decodeRejection(v)
				if err != nil {
					m.log.Warn("dropping a rejection record that does not decode", "group", e.g.ID.Short(), "err", err)
					r = nil
				}
				moves = append(moves, move{old: k, r: r})
			case rejKeyLen:
				switch k[17] {
				case rejClassNoise:
					l.noise++
				case rejClassEvidence:
					bucket := [32]byte(k[18:50])
					b := l.buckets[bucket]
					if b == nil {
						b = &rejBucket{oldest: k} // keys ascend: the first is the oldest
						l.buckets[bucket] = b
					}
					b.n++
					l.evidence++
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.rejlog = l
	if len(moves) == 0 {
		return nil
	}
	return m.db.db.Update(func(txn *badger.Txn) error {
		for _, mv := range moves {
			if err := txn.Delete(mv.old); err != nil {
				return err
			}
			if mv.r != nil {
				if err := m.logPut(txn, e, mv.r); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// listRejections returns a group's log entries oldest first (by time,
// then envelope), the latest limit of them (0: all).
func (m *member) listRejections(gid groupstate.GroupID, limit int) ([]GroupRejection, error) {
	type rec struct {
		order []byte
		r     *groupRejection
	}
	var recs []rec
	err := m.db.scan(gkey(pfxRejection, gid), func(k, v []byte) error {
		if len(k) != rejKeyLen {
			return nil // a record of the first layout, moved at the next load
		}
		r, err := decodeRejection(v)
		if err != nil {
			return err
		}
		recs = append(recs, rec{order: k[1+16+1+32:], r: r})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b rec) int { return bytes.Compare(a.order, b.order) })
	if limit > 0 && len(recs) > limit {
		recs = recs[len(recs)-limit:]
	}
	out := make([]GroupRejection, 0, len(recs))
	for _, x := range recs {
		out = append(out, x.r.public())
	}
	return out, nil
}
