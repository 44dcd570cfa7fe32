// Package keymgmt owns every key of a meshnode member: the profile identity
// (Ed25519 signing key and HPKE key), the keystore at rest, epoch secrets and
// the keys derived from them, sealing and opening key updates, and
// fingerprints. It does no network I/O (enforced by a layering test).
//
// # Epoch keys
//
// Each epoch n of a group has a read secret R_n and a write secret W_n, 32
// random bytes each. By HKDF-SHA256 (no salt: the secrets are uniformly
// random and used for nothing else):
//
//	K_n     = HKDF(R_n, info=LabelReadKey, 32)        XChaCha20-Poly1305 key
//	seed_n  = HKDF(W_n, info=LabelWriteKey, 32)       Ed25519 seed
//	WPub_n  = Ed25519 public key of seed_n
//	T_n     = SHA-256("meshnode/v1/mailbox" ‖ WPub_n)  mailbox tag
//
// Read-only members hold R_n and WPub_n but not W_n.
package keymgmt
