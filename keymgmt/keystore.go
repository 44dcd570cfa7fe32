package keymgmt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// EnvPassphrase is the environment variable PassphraseFromEnv reads.
const EnvPassphrase = "MESHNODE_PASSPHRASE"

// DataKeySize is the size of Keystore.DataKey.
const DataKeySize = 32

// Keystore file format constants (layout in the package doc).
const (
	keystoreMagic   = "MNKSTORE"
	keystoreVersion = 1

	modeUnencrypted = 0x00
	modeArgon2XChaC = 0x01

	saltSize = 16
	// prefixSize is magic + version + mode.
	prefixSize = len(keystoreMagic) + 2
	// encHeaderSize: prefix, salt, time, memory, threads, nonce, length.
	encHeaderSize = prefixSize + saltSize + 4 + 4 + 1 + chacha20poly1305.NonceSizeX + 4
	// plainHeaderSize: prefix, length; a SHA-256 checksum follows the body.
	plainHeaderSize = prefixSize + 4

	secretsVersion = 1
	// Metadata limits keep the map "small" and bound what a load allocates.
	MaxMetaEntries   = 256
	MaxMetaKeySize   = 255
	MaxMetaValueSize = 4096
	// maxSecretsSize bounds the serialized secrets (metadata included), and
	// so the file.
	maxSecretsSize = 64 << 10
	maxFileSize    = encHeaderSize + maxSecretsSize + chacha20poly1305.Overhead + sha256.Size
)

// Argon2id bounds accepted from a file, so a corrupted header cannot make a
// load allocate without limit or run for hours.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 2 << 20 // 2 GiB, RFC 9106's first recommendation
)

// KDFParams are the Argon2id cost parameters of an encrypted keystore. They
// are stored in the file, so a keystore can always be opened with the
// parameters it was written with.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // parallelism
}

// DefaultKDFParams returns t=3, m=64 MiB, p=2 (RFC 9106's second
// recommendation, with two lanes for small machines). Tests may use far
// lower values; production code should not.
func DefaultKDFParams() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 2}
}

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d not in 1..%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return fmt.Errorf("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB not in %d..%d (8 KiB per thread minimum)",
			p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// KeystoreOptions control CreateKeystore and ChangePassphrase.
type KeystoreOptions struct {
	// Unencrypted stores the secrets in the clear (with only a checksum).
	// It must be asked for explicitly, and the passphrase must then be
	// empty. LoadKeystore flags such files.
	Unencrypted bool
	// Overwrite replaces an existing file; without it CreateKeystore
	// returns ErrKeystoreExists.
	Overwrite bool
	// KDF are the Argon2id parameters; the zero value means
	// DefaultKDFParams().
	KDF KDFParams
}

// Keystore is what the keystore file holds: the profile identity, the key
// that encrypts the member's private database, and free-form metadata.
type Keystore struct {
	Identity *Identity
	// DataKey is 32 random bytes; the node uses it as the Badger encryption
	// key of the member's private database.
	DataKey [DataKeySize]byte
	// Meta is small free-form metadata (at most MaxMetaEntries entries,
	// keys 1..MaxMetaKeySize bytes, values up to MaxMetaValueSize bytes).
	// It is stored inside the encryption.
	Meta map[string]string
	// Unencrypted is set by LoadKeystore when the file was stored without
	// encryption; the caller should warn "keystore is NOT encrypted".
	// CreateKeystore ignores it (KeystoreOptions.Unencrypted decides).
	Unencrypted bool
}

// NewKeystore draws a fresh identity of the given suite and a fresh DataKey.
func NewKeystore(suite Suite) (*Keystore, error) {
	id, err := NewIdentity(suite)
	if err != nil {
		return nil, err
	}
	ks := &Keystore{Identity: id, Meta: map[string]string{}}
	rand.Read(ks.DataKey[:])
	return ks, nil
}

// PassphraseFromEnv returns the passphrase in $MESHNODE_PASSPHRASE and
// whether it is set and non-empty. Prompting is the CLI's job.
func PassphraseFromEnv() ([]byte, bool) {
	v, ok := os.LookupEnv(EnvPassphrase)
	if !ok || v == "" {
		return nil, false
	}
	return []byte(v), true
}

// marshalSecrets: version ‖ len16 ‖ private identity ‖ DataKey ‖ count16 ‖
// count × (len8 ‖ key ‖ len16 ‖ value), keys in ascending byte order.
func (ks *Keystore) marshalSecrets() ([]byte, error) {
	if ks.Identity == nil {
		return nil, fmt.Errorf("%w: keystore has no identity", ErrInvalidParams)
	}
	if len(ks.Meta) > MaxMetaEntries {
		return nil, fmt.Errorf("%w: %d metadata entries, at most %d", ErrInvalidParams, len(ks.Meta), MaxMetaEntries)
	}
	priv, err := ks.Identity.MarshalPrivate()
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	out := make([]byte, 0, 3+len(priv)+DataKeySize+2)
	out = append(out, secretsVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(priv)))
	out = append(out, priv...)
	out = append(out, ks.DataKey[:]...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(ks.Meta)))
	for _, k := range slices.Sorted(maps.Keys(ks.Meta)) {
		v := ks.Meta[k]
		if len(k) < 1 || len(k) > MaxMetaKeySize || len(v) > MaxMetaValueSize {
			clear(out)
			return nil, fmt.Errorf("%w: metadata key %q: keys must be 1..%d bytes and values at most %d",
				ErrInvalidParams, k, MaxMetaKeySize, MaxMetaValueSize)
		}
		out = append(out, byte(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
		out = append(out, v...)
	}
	if len(out) > maxSecretsSize {
		clear(out)
		return nil, fmt.Errorf("%w: metadata too large (%d bytes of secrets, at most %d)", ErrInvalidParams, len(out), maxSecretsSize)
	}
	return out, nil
}

// parseSecrets is the inverse of marshalSecrets; it insists on the
// canonical form (sorted, unique keys, no trailing bytes).
func parseSecrets(b []byte) (*Keystore, error) {
	r := newReader(b)
	if v := r.u8(); r.ok && v != secretsVersion {
		return nil, fmt.Errorf("%w: secrets version %d, want %d", ErrKeystoreCorrupt, v, secretsVersion)
	}
	priv := r.bytes(int(r.u16()))
	dk := r.bytes(DataKeySize)
	n := int(r.u16())
	if !r.ok {
		return nil, fmt.Errorf("%w: secrets truncated", ErrKeystoreCorrupt)
	}
	if n > MaxMetaEntries {
		return nil, fmt.Errorf("%w: %d metadata entries, at most %d", ErrKeystoreCorrupt, n, MaxMetaEntries)
	}
	id, err := ParsePrivateIdentity(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: identity: %w", ErrKeystoreCorrupt, err)
	}
	ks := &Keystore{Identity: id, Meta: make(map[string]string, n)}
	copy(ks.DataKey[:], dk)
	prev := ""
	for i := range n {
		k := r.bytes(int(r.u8()))
		v := r.bytes(int(r.u16()))
		if !r.ok {
			return nil, fmt.Errorf("%w: metadata truncated", ErrKeystoreCorrupt)
		}
		if len(k) == 0 || len(v) > MaxMetaValueSize || (i > 0 && string(k) <= prev) {
			return nil, fmt.Errorf("%w: metadata entry %d is empty, too long or out of order", ErrKeystoreCorrupt, i)
		}
		prev = string(k)
		ks.Meta[prev] = string(v)
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: trailing bytes after secrets", ErrKeystoreCorrupt)
	}
	return ks, nil
}

// encodeKeystore serializes and (unless opts.Unencrypted) encrypts ks.
func encodeKeystore(ks *Keystore, passphrase []byte, opts KeystoreOptions) ([]byte, error) {
	if ks == nil {
		return nil, fmt.Errorf("%w: nil keystore", ErrInvalidParams)
	}
	if opts.Unencrypted && len(passphrase) > 0 {
		return nil, fmt.Errorf("%w: a passphrase was given for an unencrypted keystore; drop one or the other", ErrInvalidParams)
	}
	if !opts.Unencrypted && len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: set a passphrase, or ask for an unencrypted keystore explicitly", ErrPassphraseRequired)
	}
	params := opts.KDF
	if params == (KDFParams{}) {
		params = DefaultKDFParams()
	}
	if err := params.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	secrets, err := ks.marshalSecrets()
	if err != nil {
		return nil, err
	}
	defer clear(secrets)

	out := append([]byte(keystoreMagic), keystoreVersion)
	if opts.Unencrypted {
		out = append(out, modeUnencrypted)
		out = binary.BigEndian.AppendUint32(out, uint32(len(secrets)))
		out = append(out, secrets...)
		sum := sha256.Sum256(out)
		return append(out, sum[:]...), nil
	}

	out = append(out, modeArgon2XChaC)
	// A fresh random salt per write makes every file's key unique, even
	// for the same passphrase, and defeats precomputed tables.
	salt := make([]byte, saltSize)
	rand.Read(salt)
	out = append(out, salt...)
	out = binary.BigEndian.AppendUint32(out, params.Time)
	out = binary.BigEndian.AppendUint32(out, params.MemoryKiB)
	out = append(out, params.Threads)
	// A random 192-bit XChaCha20 nonce is safe: collisions are negligible
	// (about 2^-96 after 2^48 encryptions under one key), and each key is
	// used for a single encryption anyway since the salt is fresh.
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	out = append(out, nonce...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(secrets)+chacha20poly1305.Overhead))

	key := argon2.IDKey(passphrase, salt, params.Time, params.MemoryKiB, params.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("keymgmt: keystore cipher: %w", err)
	}
	// The whole header is AAD: changing the KDF parameters, salt, nonce or
	// mode fails authentication instead of producing a different key.
	return aead.Seal(out, nonce, secrets, out), nil
}

// fileKDFLimits bound the Argon2id parameters accepted from a file.
var fileKDFLimits = KDFParams{Time: maxKDFTime, MemoryKiB: maxKDFMemoryKiB, Threads: 255}

// decodeKeystore parses and (if needed) decrypts a keystore file. limits
// caps the Argon2id cost a file may demand (tests and fuzzing use less).
func decodeKeystore(b []byte, passphrase []byte, limits KDFParams) (*Keystore, error) {
	if len(b) < prefixSize || string(b[:len(keystoreMagic)]) != keystoreMagic {
		return nil, fmt.Errorf("%w: not a meshnode keystore (bad magic)", ErrKeystoreCorrupt)
	}
	if v := b[len(keystoreMagic)]; v != keystoreVersion {
		return nil, fmt.Errorf("%w: keystore version %d, this node reads %d", ErrKeystoreCorrupt, v, keystoreVersion)
	}
	switch mode := b[len(keystoreMagic)+1]; mode {
	case modeUnencrypted:
		return decodePlain(b)
	case modeArgon2XChaC:
		return decodeEncrypted(b, passphrase, limits)
	default:
		return nil, fmt.Errorf("%w: unknown keystore mode %#x", ErrKeystoreCorrupt, mode)
	}
}

func decodePlain(b []byte) (*Keystore, error) {
	if len(b) < plainHeaderSize+sha256.Size {
		return nil, fmt.Errorf("%w: unencrypted keystore truncated", ErrKeystoreCorrupt)
	}
	n := binary.BigEndian.Uint32(b[prefixSize:plainHeaderSize])
	if uint64(len(b)) != uint64(plainHeaderSize)+uint64(n)+sha256.Size {
		return nil, fmt.Errorf("%w: unencrypted keystore is %d bytes, header says %d", ErrKeystoreCorrupt, len(b), uint64(plainHeaderSize)+uint64(n)+sha256.Size)
	}
	body, check := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], check) {
		return nil, fmt.Errorf("%w: unencrypted keystore checksum mismatch", ErrKeystoreCorrupt)
	}
	ks, err := parseSecrets(body[plainHeaderSize:])
	if err != nil {
		return nil, err
	}
	ks.Unencrypted = true
	return ks, nil
}

func decodeEncrypted(b []byte, passphrase []byte, limits KDFParams) (*Keystore, error) {
	if len(b) < encHeaderSize {
		return nil, fmt.Errorf("%w: keystore header truncated", ErrKeystoreCorrupt)
	}
	r := newReader(b[prefixSize:encHeaderSize])
	salt := r.bytes(saltSize)
	params := KDFParams{Time: r.u32(), MemoryKiB: r.u32(), Threads: r.u8()}
	nonce := r.bytes(chacha20poly1305.NonceSizeX)
	n := r.u32()
	if uint64(len(b)) != uint64(encHeaderSize)+uint64(n) || n < chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: keystore is %d bytes, header says %d", ErrKeystoreCorrupt, len(b), uint64(encHeaderSize)+uint64(n))
	}
	if err := params.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeystoreCorrupt, err)
	}
	if params.Time > limits.Time || params.MemoryKiB > limits.MemoryKiB || params.Threads > limits.Threads {
		return nil, fmt.Errorf("%w: argon2id parameters %+v exceed the limits %+v", ErrKeystoreCorrupt, params, limits)
	}
	// Checked after the structure so a corrupt file is reported as such
	// even when no passphrase is at hand.
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: the keystore is encrypted", ErrPassphraseRequired)
	}
	key := argon2.IDKey(passphrase, salt, params.Time, params.MemoryKiB, params.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("keymgmt: keystore cipher: %w", err)
	}
	secrets, err := aead.Open(nil, nonce, b[encHeaderSize:], b[:encHeaderSize])
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	defer clear(secrets)
	return parseSecrets(secrets)
}

// CreateKeystore writes ks to path, encrypted under passphrase unless
// opts.Unencrypted. The file is written to a temporary file in the same
// directory with mode 0600, synced, and then moved into place, so a crash
// leaves either the old file or the new one, never a partial one. Without
// opts.Overwrite an existing path is never replaced (ErrKeystoreExists).
func CreateKeystore(path string, ks *Keystore, passphrase []byte, opts KeystoreOptions) error {
	data, err := encodeKeystore(ks, passphrase, opts)
	if err != nil {
		return err
	}
	defer clear(data)
	return writeFileAtomic(path, data, opts.Overwrite)
}

// LoadKeystore reads and decrypts the keystore at path. For an encrypted
// file an empty passphrase gives ErrPassphraseRequired (prompt and retry) and
// a wrong one ErrWrongPassphrase. An unencrypted file loads with any
// passphrase and has Unencrypted set.
func LoadKeystore(path string, passphrase []byte) (*Keystore, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keymgmt: open keystore: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(maxFileSize)+1))
	if err != nil {
		return nil, fmt.Errorf("keymgmt: read keystore: %w", err)
	}
	defer clear(b)
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: keystore file larger than %d bytes", ErrKeystoreCorrupt, maxFileSize)
	}
	ks, err := decodeKeystore(b, passphrase, fileKDFLimits)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", path, err)
	}
	return ks, nil
}

// ChangePassphrase re-encrypts the keystore at path under newPassphrase
// with a fresh salt and nonce (and opts.KDF). With opts.Unencrypted and an
// empty newPassphrase it removes the encryption. The replacement is atomic.
func ChangePassphrase(path string, oldPassphrase, newPassphrase []byte, opts KeystoreOptions) error {
	ks, err := LoadKeystore(path, oldPassphrase)
	if err != nil {
		return err
	}
	opts.Overwrite = true
	return CreateKeystore(path, ks, newPassphrase, opts)
}

// writeFileAtomic writes data to a 0600 temporary file next to path, syncs
// it and moves it into place, then syncs the directory.
func writeFileAtomic(path string, data []byte, overwrite bool) (err error) {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%w: %s", ErrKeystoreExists, path)
		}
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// os.CreateTemp creates the file with mode 0600 and O_EXCL.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("keymgmt: create keystore: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the write error is what matters
			// A leftover temporary file may hold secrets: report it with
			// the error rather than dropping it.
			if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("keymgmt: remove temporary keystore %s: %w", tmp, rmErr))
			}
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("keymgmt: chmod keystore: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("keymgmt: write keystore: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("keymgmt: sync keystore: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keymgmt: close keystore: %w", err)
	}
	if overwrite {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("keymgmt: replace keystore: %w", err)
		}
	} else {
		// A hard link fails atomically if path appeared since the check
		// above; rename would silently replace it.
		switch err := os.Link(tmp, path); {
		case err == nil:
			if err := os.Remove(tmp); err != nil {
				return fmt.Errorf("keymgmt: remove temporary keystore: %w", err)
			}
		case errors.Is(err, fs.ErrExist):
			return fmt.Errorf("%w: %s", ErrKeystoreExists, path)
		default:
			// The filesystem has no hard links: check again and rename,
			// accepting the small window between the two.
			if _, err := os.Lstat(path); err == nil {
				return fmt.Errorf("%w: %s", ErrKeystoreExists, path)
			}
			if err := os.Rename(tmp, path); err != nil {
				return fmt.Errorf("keymgmt: create keystore: %w", err)
			}
		}
	}
	return syncDir(dir)
}

// syncDir makes the rename durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keymgmt: sync keystore directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keymgmt: sync keystore directory: %w", err)
	}
	return nil
}
