package contacts

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// The contact records of the member database. Contacts own one namespace
// of it (Namespace); the member layer's records are elsewhere and contacts
// never read them. Values are JSON.
//
//	'd' 'a' name          → NameRec: a published alias or user ID
//	'd' 'k' key ID(16)    → SecretRec: a package's HPKE secret
//	'd' 'q' request ID    → RequestRec: a request in quarantine
//	'd' 'n' nonce(16)     → Unix ms: establishment nonces seen (replays)
//	'd' 'p' digest(32)    → Unix ms: proof-of-work digests seen (replays)
//	'd' 'x' fingerprint   → rejected initiator (later requests dropped)
//	'd' 'c' group ID(16)  → ContactRec
//	'd' 'r' peer/mailbox  → request mailbox cursor on a directory host
//	'd' 'o' group ID(16)  → OfferRec: own key package offered to a contact
//	'd' 'u' SHA-256(kp)   → Unix ms: a contact's key package already used
//	'd' 'w' add ID(16 hex) → PendingAddRec: a queued add
//
// The database is encrypted at rest, but a record may still be damaged:
// each decoder checks what the code relies on and returns ErrCorrupt for
// anything else, never a half-usable record.
const (
	// Namespace is the first byte of every contact record's key.
	Namespace = 'd'

	KeyName      = 'a'
	KeySecret    = 'k'
	KeyRequest   = 'q'
	KeyNonce     = 'n'
	KeyRejected  = 'x'
	KeyContact   = 'c'
	KeyCursor    = 'r'
	KeyProof     = 'p'
	KeyOffer     = 'o'
	KeyUsedKP    = 'u'
	KeyQueuedAdd = 'w'
)

// Key is the database key of a contact record: Namespace, sub, rest.
func Key(sub byte, rest ...[]byte) []byte {
	k := []byte{Namespace, sub}
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

// NameRec is a published name: an alias or the user ID.
type NameRec struct {
	Kind  keymgmt.NameKind `json:"kind"`
	Name  string           `json:"name"`
	Hosts []string         `json:"hosts"`
	// Mailboxes are the request mailboxes, newest last.
	Mailboxes []MailboxRec `json:"mailboxes"`
	// Published is when each host last accepted a set of packages.
	Published map[string]time.Time `json:"published,omitempty"`
	Created   time.Time            `json:"created"`
	// ProofBits is the proof of work its packages ask for (0: none).
	ProofBits uint8 `json:"proof_bits,omitempty"`
}

// MailboxRec is a request mailbox of a name.
type MailboxRec struct {
	Seed    []byte    `json:"seed"`
	Created time.Time `json:"created"`
	// Until is when the last package naming it expires.
	Until time.Time `json:"until"`
}

// MailboxSeed is the mailbox's seed (DecodeNameRec checked its length).
func (r *MailboxRec) MailboxSeed() (s [keymgmt.MailboxSeedSize]byte) { copy(s[:], r.Seed); return s }

// KeyName is the name the record publishes.
func (r *NameRec) KeyName() keymgmt.Name { return keymgmt.Name{Kind: r.Kind, Canonical: r.Name} }

// SecretRec keeps a package's HPKE secret until MaxRequestAge after the
// package expired.
type SecretRec struct {
	Kind    keymgmt.NameKind `json:"kind"`
	Name    string           `json:"name"`
	Secret  []byte           `json:"secret"`
	Mailbox string           `json:"mailbox"`
	Created time.Time        `json:"created"`
	Expires time.Time        `json:"expires"`
	// ProofBits is the proof of work the package asks for.
	ProofBits uint8 `json:"proof_bits,omitempty"`
}

// RequestRec is a request in quarantine.
type RequestRec struct {
	ID          string           `json:"id"`
	Kind        keymgmt.NameKind `json:"kind"`
	Via         string           `json:"via"`
	Nick        string           `json:"nick"`
	Fingerprint string           `json:"fingerprint"`
	Invite      string           `json:"invite"`
	Sent        time.Time        `json:"sent"`
	Received    time.Time        `json:"received"`
}

// ContactRec is a contact: its connection group and how it was reached.
type ContactRec struct {
	Group       string    `json:"group"`
	Via         string    `json:"via"`
	Fingerprint string    `json:"fingerprint,omitempty"` // expected (user ID) or verified (responder)
	Nick        string    `json:"nick,omitempty"`
	Initiated   bool      `json:"initiated"`
	Since       time.Time `json:"since"`
}

// OfferRec is the own key package offered to a contact.
type OfferRec struct {
	Hash    string    `json:"hash"` // hex SHA-256 of the key package binary
	Expires time.Time `json:"expires"`
	Sent    time.Time `json:"sent"`
	// Replaced are the earlier offers this one replaced while they were
	// still pending: a manager may have used one before it saw the new
	// offer, so each is still watched for its welcome for
	// ReplacedOfferGrace, then forgotten.
	Replaced []ReplacedOffer `json:"replaced,omitempty"`
}

// ReplacedOffer is an earlier offer still watched for its welcome.
type ReplacedOffer struct {
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
}

const (
	// ReplacedOfferGrace is how long a replaced offer is still watched
	// for a welcome: a manager online when the new offer was sent sees it
	// within seconds and uses it; one that comes online later catches the
	// connection group up first.
	ReplacedOfferGrace = 24 * time.Hour
	// MaxReplacedOffers bounds the replaced offers kept per contact (one
	// offer is replaced every half validity, so there is rarely more than
	// one); past it the oldest is forgotten at once.
	MaxReplacedOffers = 4
)

// PendingAddRec is a queued add of a contact to a managed group.
type PendingAddRec struct {
	ID string `json:"id"`
	// Group is the managed group, Contact the connection group (IDs).
	Group     string    `json:"group"`
	Contact   string    `json:"contact"`
	Role      string    `json:"role"`
	Queued    time.Time `json:"queued"`
	Failed    bool      `json:"failed,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// PendingAddIDSize is the size of a queued add's random ID (hex in the
// record).
const PendingAddIDSize = 8

// DecodeNameRec decodes and checks a name record.
func DecodeNameRec(b []byte) (*NameRec, error) {
	rec := &NameRec{}
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
	for _, h := range rec.Hosts {
		if _, err := peer.AddrInfoFromString(h); err != nil {
			return nil, fmt.Errorf("%w: name record: host %q is not a multiaddr ending in /p2p/PEERID: %v", ErrCorrupt, h, err)
		}
	}
	return rec, nil
}

// DecodeSecretRec decodes a package secret record and parses its secret.
func DecodeSecretRec(b []byte) (*SecretRec, *keymgmt.ConnSecret, error) {
	rec := &SecretRec{}
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

// DecodeRequestRec decodes a quarantined request.
func DecodeRequestRec(b []byte) (*RequestRec, error) {
	rec := &RequestRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: contact request: %v", ErrCorrupt, err)
	}
	if rec.ID == "" {
		return nil, fmt.Errorf("%w: contact request without an ID", ErrCorrupt)
	}
	return rec, nil
}

// DecodeContactRec decodes a contact.
func DecodeContactRec(b []byte) (*ContactRec, error) {
	rec := &ContactRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: contact: %v", ErrCorrupt, err)
	}
	if _, err := groupstate.ParseGroupID(rec.Group); err != nil {
		return nil, fmt.Errorf("%w: contact: %v", ErrCorrupt, err)
	}
	return rec, nil
}

// DecodeOfferRec decodes the record of an own offered key package.
func DecodeOfferRec(b []byte) (*OfferRec, error) {
	rec := &OfferRec{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("%w: key package offer: %v", ErrCorrupt, err)
	}
	if len(rec.Replaced) > MaxReplacedOffers {
		return nil, fmt.Errorf("%w: key package offer lists %d replaced offers", ErrCorrupt, len(rec.Replaced))
	}
	return rec, nil
}

// DecodePendingAdd decodes a queued add.
func DecodePendingAdd(b []byte) (*PendingAddRec, error) {
	rec := &PendingAddRec{}
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
	if len(rec.ID) != 2*PendingAddIDSize {
		return nil, fmt.Errorf("%w: queued contact add ID %q", ErrCorrupt, rec.ID)
	}
	return rec, nil
}
