package groupstate

import (
	"crypto/rand"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
	"golang.org/x/crypto/chacha20poly1305"
)

// SealMessage encrypts a signed payload for an epoch and wraps it in an
// envelope signed with the epoch write key:
//
//	padded = pad(MarshalPayload(p))
//	nonce  = 24 random bytes
//	ct     = XChaCha20-Poly1305(K_n, nonce, padded, AAD = envelope header)
//	env    = envelope.Seal(WPriv_n, nonce, ct)
//
// The payload must verify under its author key: unsigned content is never
// sent. Read-only keys give ErrCannotWrite; a payload too large for the
// largest bucket gives ErrTooLong.
func SealMessage(keys *keymgmt.EpochKeys, p *Payload) (*envelope.Envelope, error) {
	if keys == nil || !keys.CanWrite() {
		return nil, fmt.Errorf("%w: this member holds no write secret for the epoch", ErrCannotWrite)
	}
	if err := p.VerifyAuthor(); err != nil {
		return nil, err
	}
	return sealPadded(keys, p.marshal())
}

// sealPadded pads plaintext to its bucket, encrypts it under the epoch read
// key with the envelope header as AAD and signs the envelope with the
// write key: the envelope layer every member-made envelope shares.
func sealPadded(keys *keymgmt.EpochKeys, plaintext []byte) (*envelope.Envelope, error) {
	aead, err := chacha20poly1305.NewX(keys.ReadKey[:])
	if err != nil {
		return nil, fmt.Errorf("groupstate: read key: %w", err)
	}
	padded, err := pad(plaintext, aead.Overhead())
	if err != nil {
		return nil, err
	}
	// K_n is shared by every writer of the epoch and nobody coordinates
	// counters, so nonces must be random. XChaCha20's 192-bit nonce makes
	// that safe: the chance of any repeat among 2^64 messages under one key
	// is about 2^-64, whereas a 96-bit nonce would already be risky after
	// 2^32 messages.
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	// The AAD is the envelope header the receiver will see (version, WPub,
	// nonce, ciphertext length): a host cannot move the ciphertext to
	// another mailbox, swap its nonce or resize it without breaking the tag.
	aad := envelope.HeaderAAD(keys.WritePub, nonce, len(padded)+aead.Overhead())
	ct := aead.Seal(padded[:0], nonce, padded, aad)
	env, err := envelope.Seal(keys.WritePriv, nonce, ct, 0)
	if err != nil {
		return nil, fmt.Errorf("groupstate: seal envelope: %w", err)
	}
	return env, nil
}

// OpenMessage checks, decrypts and verifies an envelope from the mailbox of
// group g's epoch (whose keys are keys). In order: the envelope must be for
// keys.Mailbox (ErrWrongMailbox) and carry a valid write signature
// (ErrEnvelopeSignature); its ciphertext size must be a bucket plus the tag
// (ErrPadding); it must decrypt under K_n with the header as AAD
// (ErrDecrypt); the padding must be exact (ErrPadding); the payload must
// parse (ErrPayloadMalformed, ErrUnknownKind, ErrNotSigned) and verify
// under its author key (ErrAuthorSignature); and it must name g and epoch
// (ErrWrongGroup, ErrWrongEpoch).
func OpenMessage(keys *keymgmt.EpochKeys, g GroupID, epoch uint64, env *envelope.Envelope) (*Payload, error) {
	body, err := openPadded(keys, env, func() string { return fmt.Sprintf("epoch %d of group %s", epoch, g.Short()) })
	if err != nil {
		return nil, err
	}
	p, err := ParsePayload(body)
	if err != nil {
		return nil, err
	}
	// ParsePayload validated every field and refused an unsigned payload.
	if err := p.verifySignature(); err != nil {
		return nil, err
	}
	if p.GroupID != g {
		return nil, fmt.Errorf("%w: payload names group %s, it arrived for group %s", ErrWrongGroup, p.GroupID.Short(), g.Short())
	}
	if p.Epoch != epoch {
		return nil, fmt.Errorf("%w: payload names epoch %d, it arrived in the mailbox of epoch %d", ErrWrongEpoch, p.Epoch, epoch)
	}
	return p, nil
}

// openPadded is the envelope layer of OpenMessage: mailbox, write
// signature, bucket size, decryption with the header as AAD, padding. It
// returns the unpadded plaintext; what names the mailbox's owner in errors.
func openPadded(keys *keymgmt.EpochKeys, env *envelope.Envelope, what func() string) ([]byte, error) {
	if keys == nil || env == nil {
		return nil, fmt.Errorf("%w: no keys or no envelope", ErrDecrypt)
	}
	if env.Mailbox() != keys.Mailbox {
		return nil, fmt.Errorf("%w: envelope is for mailbox %s, %s is %s",
			ErrWrongMailbox, env.Mailbox().Short(), what(), keys.Mailbox.Short())
	}
	if err := env.Verify(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelopeSignature, err)
	}
	aead, err := chacha20poly1305.NewX(keys.ReadKey[:])
	if err != nil {
		return nil, fmt.Errorf("groupstate: read key: %w", err)
	}
	ct := env.Ciphertext
	if len(ct) < aead.Overhead() || !isBucket(len(ct)-aead.Overhead()) {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes is not a padding bucket plus the %d-byte tag", ErrPadding, len(ct), aead.Overhead())
	}
	if len(env.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d", ErrDecrypt, len(env.Nonce), aead.NonceSize())
	}
	// Decrypt into a fresh buffer: the envelope's bytes must stay intact.
	padded, err := aead.Open(make([]byte, 0, len(ct)-aead.Overhead()), env.Nonce, ct, env.AAD())
	if err != nil {
		return nil, fmt.Errorf("%w: the ciphertext, its header or the key is wrong", ErrDecrypt)
	}
	return unpad(padded)
}
