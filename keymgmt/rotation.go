package keymgmt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// Labels of rotation (ARCHITECTURE §7). A rotation wraps one epoch's
// secrets for many members; each wrapped copy is found by a slot and sealed
// under its own HPKE info label, so it never opens as a SealTo or
// SealEpochSecrets blob.
const (
	// LabelRotationSlot prefixes the hash that names a recipient's slot.
	LabelRotationSlot = "meshnode/v1/rotation/slot"
	// LabelWrapEpochSecrets is the HPKE info label of WrapEpochSecrets.
	LabelWrapEpochSecrets = "meshnode/v1/rotation/epoch-secrets"
)

// SlotSize is the length of a recipient slot. 64 bits keep a 10,000-member
// key update small while making an accidental collision negligible (about
// n²/2^65, 3·10^-12 for n = 10,000); a collision costs only a second HPKE
// open, because UnwrapEpochSecrets tries every entry with its slot.
const SlotSize = 8

// Slot names the recipient of one wrapped copy without naming the member:
// SHA-256(LabelRotationSlot ‖ uint16be(len(scope)) ‖ scope ‖ SignPub)[:8].
// The scope (a group ID and the new epoch) makes a member's slots in two
// epochs or two groups unlinkable to anyone who does not know its key.
type Slot [SlotSize]byte

// RecipientSlot returns the slot of the member whose signing key is
// signPub, in the given scope.
func RecipientSlot(scope []byte, signPub ed25519.PublicKey) Slot {
	h := sha256.New()
	h.Write([]byte(LabelRotationSlot))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(scope))))
	h.Write(scope)
	h.Write(signPub)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var s Slot
	copy(s[:], sum[:])
	return s
}

// WrappedSecrets is one recipient's copy of an epoch's secrets: the slot
// that names the recipient and the HPKE blob. A list of them is the
// interface between a rotation and its transport, so a key tree could
// later replace per-member sealing without changing what carries them.
type WrappedSecrets struct {
	Slot   Slot
	Sealed []byte
}

// RotationRecipient is a member who receives a rotation's secrets.
// ReadOnly members get R_n and WPub_n but never W_n.
type RotationRecipient struct {
	Identity *PublicIdentity
	ReadOnly bool
}

// WrappedSecretsSize is the length of a WrappedSecrets.Sealed for a
// recipient of the suite: the HPKE overhead plus the encoded secrets.
func WrappedSecretsSize(suite Suite, readOnly bool) int {
	if readOnly {
		return suite.SealOverhead() + epochSecretsReadSize
	}
	return suite.SealOverhead() + epochSecretsWriteSize
}

// wrapInfo is the HPKE info of one wrapped copy: the caller's info
// followed by the recipient's signing key, so a copy is bound to the member
// it was made for (and through the caller's info to group, epoch and state
// head).
func wrapInfo(info []byte, signPub ed25519.PublicKey) []byte {
	out := make([]byte, 0, len(info)+len(signPub))
	out = append(out, info...)
	return append(out, signPub...)
}

// wrapParallelMin is the fewest recipients per worker goroutine; below it
// the goroutine costs more than the HPKE seals it saves.
const wrapParallelMin = 64

// WrapEpochSecrets seals s to every recipient (HPKE base mode, a fresh
// ephemeral key per copy, info = info ‖ recipient SignPub under
// LabelWrapEpochSecrets) and names each copy by RecipientSlot(scope, …).
// The result is sorted by slot (then by bytes), so its order says nothing
// about the order of the roster. It uses up to GOMAXPROCS goroutines for
// large groups. A recipient listed twice, a nil or invalid identity, or a
// writer when s has no write secret is an error and nothing is returned.
func WrapEpochSecrets(s *EpochSecrets, recipients []RotationRecipient, scope, info []byte) ([]WrappedSecrets, error) {
	z, err := NewEpochSecretsSealer(s)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	seen := make(map[string]struct{}, len(recipients))
	for i, r := range recipients {
		if r.Identity == nil {
			return nil, fmt.Errorf("%w: recipient %d has no identity", ErrInvalidParams, i)
		}
		if err := r.Identity.Validate(); err != nil {
			return nil, fmt.Errorf("recipient %d: %w", i, err)
		}
		if !r.ReadOnly && z.writer == nil {
			return nil, fmt.Errorf("%w: recipient %s needs the write secret, which these secrets lack", ErrInvalidKey, r.Identity.Fingerprint())
		}
		k := string(r.Identity.SignPub)
		if _, dup := seen[k]; dup {
			return nil, fmt.Errorf("%w: recipient %s is listed twice", ErrInvalidParams, r.Identity.Fingerprint())
		}
		seen[k] = struct{}{}
	}
	out := make([]WrappedSecrets, len(recipients))
	workers := min(runtime.GOMAXPROCS(0), (len(recipients)+wrapParallelMin-1)/wrapParallelMin)
	workers = max(workers, 1)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	chunk := (len(recipients) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(recipients))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				r := recipients[i]
				sealed, err := z.sealToLabelled(r.Identity, LabelWrapEpochSecrets, wrapInfo(info, r.Identity.SignPub), r.ReadOnly)
				if err != nil {
					errs[w] = fmt.Errorf("recipient %s: %w", r.Identity.Fingerprint(), err)
					return
				}
				out[i] = WrappedSecrets{Slot: RecipientSlot(scope, r.Identity.SignPub), Sealed: sealed}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, CompareWrapped)
	return out, nil
}

// CompareWrapped orders wrapped copies by slot, then by sealed bytes: the
// canonical order of a rotation's list.
func CompareWrapped(a, b WrappedSecrets) int {
	if c := bytes.Compare(a.Slot[:], b.Slot[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.Sealed, b.Sealed)
}

// sealToLabelled is SealTo under another of the epoch secrets HPKE info
// labels.
func (z *EpochSecretsSealer) sealToLabelled(recipient *PublicIdentity, label string, info []byte, readOnly bool) ([]byte, error) {
	if z.reader == nil {
		return nil, fmt.Errorf("%w: epoch secrets sealer used after Close", ErrInvalidParams)
	}
	if label != LabelSealEpochSecrets && label != LabelWrapEpochSecrets {
		return nil, fmt.Errorf("%w: %q is not an epoch secrets label", ErrInvalidParams, label)
	}
	pt := z.reader
	if !readOnly {
		if z.writer == nil {
			return nil, fmt.Errorf("%w: cannot grant write access without the write secret", ErrInvalidKey)
		}
		pt = z.writer
	}
	return sealLabelled(recipient, label, info, pt)
}

// UnwrapEpochSecrets finds this identity's slot in wrapped (in the same
// scope the sealer used) and opens it with the same info. Every entry with
// the slot is tried, so a slot collision costs one more open. It returns
// ErrNotRecipient when no entry has the slot (the member was left out, for
// example because it was removed), ErrDecrypt when entries have the slot
// but none opens (another info: wrong group, epoch or state head, or
// tampering), and ErrMalformed when one opens to something that is not
// epoch secrets.
func (id *Identity) UnwrapEpochSecrets(wrapped []WrappedSecrets, scope, info []byte) (*EpochSecrets, error) {
	slot := RecipientSlot(scope, id.pub.SignPub)
	hpkeInfo := wrapInfo(info, id.pub.SignPub)
	found := 0
	var lastErr error
	for _, w := range wrapped {
		if w.Slot != slot {
			continue
		}
		found++
		pt, err := id.openLabelled(LabelWrapEpochSecrets, hpkeInfo, w.Sealed)
		if err != nil {
			lastErr = err
			continue
		}
		s, err := ParseEpochSecrets(pt)
		clear(pt)
		return s, err
	}
	if found == 0 {
		return nil, fmt.Errorf("%w: no slot for %s among %d wrapped copies", ErrNotRecipient, id.Fingerprint(), len(wrapped))
	}
	return nil, lastErr
}
