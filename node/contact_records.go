package node

import (
	"encoding/json"
	"fmt"

	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Decoders of the contact records of the member database (namespace
// 'd', listed in contacts.go). The database is encrypted at rest, but a
// record may still be damaged: each decoder checks what the code relies
// on and returns ErrCorrupt for anything else, never a half-usable
// record.

func decodeNameRec(b []byte) (*nameRec, error) {
	rec := &nameRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: name record: %v", ErrCorrupt, err)
	}
	switch rec.Kind {
	case keymgmt.NameAlias:
		if a, err := keymgmt.ParseAlias(rec.Name); err != nil || a.Canonical != rec.Name {
			return nil, fmt.Errorf("%w: name record: alias %q is not canonical", ErrCorrupt, rec.Name)
		}
	case keymgmt.NameUserID:
		if fp, err := keymgmt.ParseFingerprint(rec.Name); err != nil || fp != rec.Name {
			return nil, fmt.Errorf("%w: name record: user ID %q is not canonical", ErrCorrupt, rec.Name)
		}
	default:
		return nil, fmt.Errorf("%w: name record of kind %d", ErrCorrupt, rec.Kind)
	}
	if rec.ProofBits > keymgmt.MaxProofBits {
		return nil, fmt.Errorf("%w: name record asks for a %d-bit proof of work", ErrCorrupt, rec.ProofBits)
	}
	for _, mb := range rec.Mailboxes {
		if len(mb.Seed) != keymgmt.MailboxSeedSize {
			return nil, fmt.Errorf("%w: name record: mailbox seed of %d bytes", ErrCorrupt, len(mb.Seed))
		}
	}
	if _, err := parseHosts(rec.Hosts); err != nil {
		return nil, fmt.Errorf("%w: name record: %v", ErrCorrupt, err)
	}
	return rec, nil
}

func decodeSecretRec(b []byte) (*secretRec, *keymgmt.ConnSecret, error) {
	rec := &secretRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, nil, fmt.Errorf("%w: package secret: %v", ErrCorrupt, err)
	}
	sec, err := keymgmt.ParseConnSecret(rec.Secret)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: package secret: %v", ErrCorrupt, err)
	}
	if rec.ProofBits > keymgmt.MaxProofBits {
		return nil, nil, fmt.Errorf("%w: package secret asks for a %d-bit proof of work", ErrCorrupt, rec.ProofBits)
	}
	return rec, sec, nil
}

func decodeRequestRec(b []byte) (*requestRec, error) {
	rec := &requestRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: contact request: %v", ErrCorrupt, err)
	}
	if rec.ID == "" {
		return nil, fmt.Errorf("%w: contact request without an ID", ErrCorrupt)
	}
	return rec, nil
}

func decodeContactRec(b []byte) (*contactRec, error) {
	rec := &contactRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: contact: %v", ErrCorrupt, err)
	}
	if _, err := groupstate.ParseGroupID(rec.Group); err != nil {
		return nil, fmt.Errorf("%w: contact: %v", ErrCorrupt, err)
	}
	return rec, nil
}

func decodeOfferRec(b []byte) (*offerRec, error) {
	rec := &offerRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: key package offer: %v", ErrCorrupt, err)
	}
	if len(rec.Replaced) > maxReplacedOffers {
		return nil, fmt.Errorf("%w: key package offer lists %d replaced offers", ErrCorrupt, len(rec.Replaced))
	}
	return rec, nil
}

func decodePendingAdd(b []byte) (*pendingAddRec, error) {
	rec := &pendingAddRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: queued contact add: %v", ErrCorrupt, err)
	}
	if _, err := groupstate.ParseGroupID(rec.Group); err != nil {
		return nil, fmt.Errorf("%w: queued contact add: %v", ErrCorrupt, err)
	}
	if _, err := groupstate.ParseGroupID(rec.Contact); err != nil {
		return nil, fmt.Errorf("%w: queued contact add: %v", ErrCorrupt, err)
	}
	if _, err := groupstate.ParseRole(rec.Role); err != nil {
		return nil, fmt.Errorf("%w: queued contact add: %v", ErrCorrupt, err)
	}
	if len(rec.ID) != 2*pendingAddIDSize {
		return nil, fmt.Errorf("%w: queued contact add ID %q", ErrCorrupt, rec.ID)
	}
	return rec, nil
}
