package groupstate

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

// PayloadVersion is the only payload version this code produces and
// accepts.
const PayloadVersion = 1

// PayloadSigContext is the keymgmt signature context of the bytes an author signs, so a payload
// signature can never be confused with a signature the same identity key
// makes for any other purpose (state events, connection packages...).
const PayloadSigContext = "meshnode/v1/payload-signature"

// MaxParents is the most causal parents a payload names.
const MaxParents = 8

// Kind says what a payload's body is.
type Kind uint8

const (
	// KindText: body is UTF-8 text for the whole group.
	KindText Kind = 1
	// KindDirect: body is a private message to one member, sealed to that
	// member's HPKE key (opaque here).
	KindDirect Kind = 2
	// KindProfile: body is a Profile (the author's HPKE public key, so
	// others can send directs); Nick must be set.
	KindProfile Kind = 3
	// KindKeyUpdate: body is one part of a rotation's key update
	// (MarshalKeyUpdate), posted in the old epoch's mailbox.
	KindKeyUpdate Kind = 4
	// KindStateEvent: body is a signed group state event (MarshalEvent).
	KindStateEvent Kind = 5
	// KindRequest: body is a signed manager request to an always-on
	// manager (MarshalRequest).
	KindRequest Kind = 6
)

func (k Kind) valid() bool { return k >= KindText && k <= KindFile }

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindDirect:
		return "direct"
	case KindProfile:
		return "profile"
	case KindKeyUpdate:
		return "key_update"
	case KindStateEvent:
		return "state_event"
	case KindRequest:
		return "request"
	case KindReply:
		return "reply"
	case KindReaction:
		return "reaction"
	case KindEdit:
		return "edit"
	case KindDelete:
		return "delete"
	case KindFile:
		return "file"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Payload is the plaintext inside an envelope's ciphertext.
type Payload struct {
	GroupID GroupID
	Epoch   uint64
	// StateHead is, in a managed group, the hash of the group state chain
	// head the author saw; in an open group (no chain), the author's
	// membership (OpenSeqSpace; zero in payloads of nodes that predate
	// memberships).
	StateHead [32]byte
	// Author is the author's Ed25519 identity public key.
	Author [32]byte
	// Seq is the author's sequence number in this group, from 1.
	Seq uint64
	// Parents are IDs of the latest envelopes the author saw (0..8,
	// distinct).
	Parents []envelope.ID
	// Sent is the author's clock at sending, in Unix milliseconds.
	Sent int64
	Kind Kind
	// Nick is the author's display name (0..64 bytes, same rules as group
	// names).
	Nick string
	Body []byte
	// Signature is the author's Ed25519 signature, in keymgmt's layout
	// (len(PayloadSigContext) ‖ PayloadSigContext ‖ fields), over
	// every preceding encoded field. SignPayload fills it.
	Signature [ed25519.SignatureSize]byte
}

// SentTime returns Sent as a time.Time.
func (p *Payload) SentTime() time.Time { return time.UnixMilli(p.Sent) }

// AuthorKey returns the author's public key.
func (p *Payload) AuthorKey() ed25519.PublicKey { return ed25519.PublicKey(p.Author[:]) }

// Payload encoding, version 1 (integers big-endian):
//
//	0    1   version (0x01)
//	1    16  group ID
//	17   8   epoch
//	25   32  state head
//	57   32  author Ed25519 public key
//	89   8   author sequence number (>= 1)
//	97   1   parent count P (0..8)
//	98   32P parent envelope IDs (distinct)
//	     8   sent, Unix milliseconds (int64)
//	     1   kind (1..11; refs.go for 7..10, file.go for 11)
//	     1   nick length N (0..64), then N bytes of UTF-8
//	     4   body length B, then B bytes
//	     64  Ed25519 signature (keymgmt layout, context PayloadSigContext) over all preceding bytes
//
// The whole encoding is at most MaxPayloadSize bytes, so it always fits the
// largest padding bucket.
const (
	payloadFixed = 1 + 16 + 8 + 32 + 32 + 8 + 1 + 8 + 1 + 1 + 4 + ed25519.SignatureSize
)

// MaxBodyLen is the longest body that fits a payload with a nick of
// nickLen bytes and the given number of parents, e.g. the longest text a
// user may type.
func MaxBodyLen(nickLen, parents int) int {
	return MaxPayloadSize - payloadFixed - nickLen - parents*len(envelope.ID{})
}

// encodedLen is the size of p's encoding.
func (p *Payload) encodedLen() int {
	return payloadFixed + len(p.Parents)*len(envelope.ID{}) + len(p.Nick) + len(p.Body)
}

// validate checks every rule of the encoding except the signature.
func (p *Payload) validate() error {
	if p.Seq == 0 {
		return fmt.Errorf("%w: sequence number 0 (sequences start at 1)", ErrPayloadMalformed)
	}
	if len(p.Parents) > MaxParents {
		return fmt.Errorf("%w: %d parents; at most %d", ErrPayloadMalformed, len(p.Parents), MaxParents)
	}
	for i := range p.Parents {
		for j := range i {
			if p.Parents[i] == p.Parents[j] {
				return fmt.Errorf("%w: parent %s listed twice", ErrPayloadMalformed, p.Parents[i].Short())
			}
		}
	}
	if !p.Kind.valid() {
		return fmt.Errorf("%w: %d", ErrUnknownKind, uint8(p.Kind))
	}
	if err := checkText("nickname", p.Nick, true, MaxNameLen); err != nil {
		return fmt.Errorf("%w: %w", ErrPayloadMalformed, err)
	}
	if n := p.encodedLen(); n > MaxPayloadSize {
		return fmt.Errorf("%w: the message is %d bytes and at most %d fit; shorten the %s to at most %d bytes",
			ErrTooLong, n, MaxPayloadSize, p.Kind, MaxBodyLen(len(p.Nick), len(p.Parents)))
	}
	switch p.Kind {
	case KindText:
		if !utf8.Valid(p.Body) {
			return fmt.Errorf("%w: text body is not valid UTF-8", ErrPayloadMalformed)
		}
	case KindProfile:
		if p.Nick == "" {
			return fmt.Errorf("%w: a profile needs a nickname", ErrProfileMalformed)
		}
		if _, err := ParseProfile(p.Body); err != nil {
			return err
		}
	case KindReply, KindReaction, KindEdit, KindDelete:
		if _, err := ParseRef(p.Kind, p.Body); err != nil {
			return err
		}
	case KindFile:
		if _, err := ParseManifest(p.Body); err != nil {
			return err
		}
	}
	return nil
}

// appendSigned appends everything the signature covers.
func (p *Payload) appendSigned(b []byte) []byte {
	b = append(b, PayloadVersion)
	b = append(b, p.GroupID[:]...)
	b = binary.BigEndian.AppendUint64(b, p.Epoch)
	b = append(b, p.StateHead[:]...)
	b = append(b, p.Author[:]...)
	b = binary.BigEndian.AppendUint64(b, p.Seq)
	b = append(b, byte(len(p.Parents)))
	for _, id := range p.Parents {
		b = append(b, id[:]...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(p.Sent))
	b = append(b, byte(p.Kind))
	b = append(b, byte(len(p.Nick)))
	b = append(b, p.Nick...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Body)))
	return append(b, p.Body...)
}

// signedFields are the bytes the author signs under PayloadSigContext
// (keymgmt's signature layout adds the context in front).
func (p *Payload) signedFields() []byte {
	return p.appendSigned(make([]byte, 0, p.encodedLen()))
}

// MarshalPayload encodes a signed payload. It refuses unsigned or invalid
// payloads (it does not verify the signature; SealMessage does).
func MarshalPayload(p *Payload) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if p.unsigned() {
		return nil, fmt.Errorf("%w: sign the payload with SignPayload before encoding it", ErrNotSigned)
	}
	return p.marshal(), nil
}

// marshal encodes a validated payload.
func (p *Payload) marshal() []byte {
	b := p.appendSigned(make([]byte, 0, p.encodedLen()))
	return append(b, p.Signature[:]...)
}

func (p *Payload) unsigned() bool {
	return p.Signature == [ed25519.SignatureSize]byte{} || p.Author == [32]byte{}
}

// Signer is an author's identity key; *keymgmt.Identity implements it.
type Signer interface {
	SigningKey() ed25519.PublicKey
	Sign(context string, msg []byte) []byte
}

// SignPayloadAs sets p.Author to the signer's key and signs p with it.
func SignPayloadAs(p *Payload, s Signer) error {
	pub := s.SigningKey()
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: author key is %d bytes, want %d", ErrNotSigned, len(pub), ed25519.PublicKeySize)
	}
	copy(p.Author[:], pub)
	if err := p.validate(); err != nil {
		return err
	}
	copy(p.Signature[:], s.Sign(PayloadSigContext, p.signedFields()))
	return nil
}

// SignPayload sets p.Author to authorKey's public key and signs p.
func SignPayload(p *Payload, authorKey ed25519.PrivateKey) error {
	if len(authorKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: author key is %d bytes, want %d", ErrNotSigned, len(authorKey), ed25519.PrivateKeySize)
	}
	return SignPayloadAs(p, rawSigner(authorKey))
}

type rawSigner ed25519.PrivateKey

func (k rawSigner) SigningKey() ed25519.PublicKey {
	return ed25519.PrivateKey(k).Public().(ed25519.PublicKey)
}

func (k rawSigner) Sign(context string, msg []byte) []byte {
	return keymgmt.SignWithKey(ed25519.PrivateKey(k), context, msg)
}

// VerifyAuthor checks that p is signed by p.Author.
func (p *Payload) VerifyAuthor() error {
	if err := p.validate(); err != nil {
		return err
	}
	if p.unsigned() {
		return ErrNotSigned
	}
	return p.verifySignature()
}

// verifySignature checks the signature of a payload already validated.
func (p *Payload) verifySignature() error {
	if err := keymgmt.VerifySignature(p.AuthorKey(), PayloadSigContext, p.signedFields(), p.Signature[:]); err != nil {
		return fmt.Errorf("%w: author %x", ErrAuthorSignature, p.Author[:4])
	}
	return nil
}

// ParsePayload decodes a payload encoding strictly (every length exact, no
// trailing bytes, known kind, nick and body rules). It does not verify the
// author signature: call VerifyAuthor (OpenMessage does both). The result
// shares no memory with b.
func ParsePayload(b []byte) (*Payload, error) {
	if len(b) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPayloadMalformed, len(b), MaxPayloadSize)
	}
	if len(b) < payloadFixed {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte minimum", ErrPayloadMalformed, len(b), payloadFixed)
	}
	d := newDecoder(b)
	if v := d.u8(); v != PayloadVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrPayloadMalformed, v, PayloadVersion)
	}
	p := &Payload{}
	copy(p.GroupID[:], d.take(len(p.GroupID)))
	p.Epoch = d.u64()
	copy(p.StateHead[:], d.take(len(p.StateHead)))
	copy(p.Author[:], d.take(len(p.Author)))
	p.Seq = d.u64()
	np := int(d.u8())
	if np > MaxParents {
		return nil, fmt.Errorf("%w: %d parents; at most %d", ErrPayloadMalformed, np, MaxParents)
	}
	if np > 0 {
		p.Parents = make([]envelope.ID, np)
		for i := range p.Parents {
			copy(p.Parents[i][:], d.take(len(envelope.ID{})))
		}
	}
	p.Sent = int64(d.u64())
	p.Kind = Kind(d.u8())
	nick := d.take(int(d.u8()))
	bodyLen := d.u32()
	if !d.ok || uint64(bodyLen) != uint64(d.remaining()-ed25519.SignatureSize) {
		return nil, fmt.Errorf("%w: lengths do not add up to the %d-byte encoding", ErrPayloadMalformed, len(b))
	}
	p.Nick = string(nick)
	if bodyLen > 0 {
		p.Body = append([]byte(nil), d.take(int(bodyLen))...)
	}
	copy(p.Signature[:], d.take(ed25519.SignatureSize))
	if !d.done() {
		return nil, fmt.Errorf("%w: lengths do not add up to the %d-byte encoding", ErrPayloadMalformed, len(b))
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	if p.unsigned() {
		return nil, ErrNotSigned
	}
	return p, nil
}

// CheckNick reports whether nick is a valid nickname (empty allowed: the
// payload then carries none). Callers check it before storing a nickname
// that every later payload will carry.
func CheckNick(nick string) error { return checkText("nickname", nick, true, MaxNameLen) }
