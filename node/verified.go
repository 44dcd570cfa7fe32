package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/keymgmt"
)

// Verified fingerprints: the person's own record that they compared
// someone's fingerprint out of band (in person, by phone) and it matched.
// The flag belongs to the identity key the fingerprint digests, so it
// holds in every group that person is in, and a new key (another
// fingerprint) starts unverified. It is local: nothing is sent.
//
//	'F' fingerprint (canonical text) → verifiedRec JSON

// VerifiedIdentity is a fingerprint the person marked as verified.
type VerifiedIdentity struct {
	Fingerprint string
	Since       time.Time
}

type verifiedRec struct {
	Since time.Time `json:"since"`
}

func verifiedKey(fp string) []byte { return append([]byte{pfxVerified}, fp...) }

// SetVerified marks a fingerprint as verified (or clears the mark). Any
// well-formed fingerprint may be marked, also before its owner joins a
// group with this member.
func (n *Node) SetVerified(fingerprint string, verified bool) (*VerifiedIdentity, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	fp, err := keymgmt.ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	out := &VerifiedIdentity{Fingerprint: fp}
	err = m.db.db.Update(func(txn *badger.Txn) error {
		if !verified {
			return txn.Delete(verifiedKey(fp))
		}
		item, err := txn.Get(verifiedKey(fp))
		if err == nil {
			// Already verified: keep the first date.
			return item.Value(func(v []byte) error {
				var rec verifiedRec
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("%w: verified mark: %v", ErrCorrupt, err)
				}
				out.Since = rec.Since
				return nil
			})
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		out.Since = time.Now().UTC()
		b, err := json.Marshal(&verifiedRec{Since: out.Since})
		if err != nil {
			return err
		}
		return txn.Set(verifiedKey(fp), b)
	})
	if err != nil {
		return nil, err
	}
	if !verified {
		return nil, nil
	}
	return out, nil
}

// Verified lists the fingerprints marked as verified, in fingerprint order.
func (n *Node) Verified() ([]VerifiedIdentity, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	var out []VerifiedIdentity
	err = m.db.scan([]byte{pfxVerified}, func(k, v []byte) error {
		var rec verifiedRec
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("%w: verified mark: %v", ErrCorrupt, err)
		}
		out = append(out, VerifiedIdentity{Fingerprint: string(k[1:]), Since: rec.Since})
		return nil
	})
	return out, err
}
