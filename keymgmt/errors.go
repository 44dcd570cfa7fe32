package keymgmt

import "errors"

// Sentinel errors; match with errors.Is. The wrapped message says what
// exactly was wrong.
var (
	// ErrInvalidKey: key material of the wrong length or that does not
	// match what it claims to be.
	ErrInvalidKey = errors.New("keymgmt: invalid key")

	// ErrMalformed: bytes or text that are not a valid encoding (truncated,
	// lengths that do not add up, unknown version, trailing data).
	ErrMalformed = errors.New("keymgmt: malformed encoding")
	// ErrUnknownSuite: an HPKE suite this node does not speak. Always
	// wrapped together with ErrMalformed when it comes from decoding.
	ErrUnknownSuite = errors.New("keymgmt: unknown HPKE suite")
	// ErrBadSignature: an identity signature that does not verify under the
	// claimed key and context.
	ErrBadSignature = errors.New("keymgmt: bad signature")
	// ErrDecrypt: an HPKE-sealed message that cannot be opened: not sealed
	// to this identity, sealed under another info, tampered or truncated.
	ErrDecrypt = errors.New("keymgmt: cannot decrypt")
	// ErrChecksum: a key package text whose checksum does not match, almost
	// always a copy/paste or typing mistake.
	ErrChecksum = errors.New("keymgmt: checksum mismatch (check for a typo or an incomplete copy)")
	// ErrExpired: a key package past its expiry time; ask for a fresh one.
	ErrExpired = errors.New("keymgmt: expired")
	// ErrInvalidParams: invalid parameters or options passed by the caller.
	ErrInvalidParams = errors.New("keymgmt: invalid parameters")
	// ErrNoProof and ErrBadProof: a connection request without the proof
	// of work its package asks for, or with one that does not check out.
	ErrNoProof  = errors.New("keymgmt: connection request carries no proof of work")
	ErrBadProof = errors.New("keymgmt: connection request proof of work does not check out")

	// ErrWrongPassphrase: the keystore did not decrypt. Authenticated
	// encryption cannot tell a wrong passphrase from a corrupted file.
	ErrWrongPassphrase = errors.New("keymgmt: wrong passphrase or corrupted keystore")
	// ErrPassphraseRequired: the keystore is encrypted (or is to be) and no
	// passphrase was given.
	ErrPassphraseRequired = errors.New("keymgmt: passphrase required")
	// ErrWeakPassphrase: a new keystore's passphrase is shorter than
	// MinPassphraseLen.
	ErrWeakPassphrase = errors.New("keymgmt: passphrase too short")
	// ErrKeystoreCorrupt: the keystore file is not a keystore this node can
	// read (bad magic, version, lengths or checksum).
	ErrKeystoreCorrupt = errors.New("keymgmt: keystore corrupt")
	// ErrKeystoreExists: CreateKeystore refused to overwrite an existing
	// file; pass KeystoreOptions.Overwrite to replace it.
	ErrKeystoreExists = errors.New("keymgmt: keystore already exists")
)

// ErrNotRecipient: a rotation's wrapped secrets hold no copy for this
// identity (it was not a member when the rotation was made, or was removed).
var ErrNotRecipient = errors.New("keymgmt: no wrapped copy for this identity")
