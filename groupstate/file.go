package groupstate

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

// Files (issue 18). A file travels as chunk envelopes in a mailbox of its
// own and one manifest message in the group:
//
//   - The sender draws fresh secrets R_f, W_f for the file and derives
//     keys exactly as for an epoch (keymgmt.EpochSecrets.Derive): the
//     chunk read key K_f, the write keypair, and the mailbox tag T_f =
//     SHA-256(label ‖ WPub_f). Hosts see T_f as one more self-certifying
//     mailbox: nothing links it to the group's mailbox, and a member
//     catching up on the group never fetches it — chunks are fetched only
//     when someone downloads the file.
//   - Each chunk is sealed like a message (sealPadded: padded to a
//     bucket, XChaCha20-Poly1305 under K_f with the envelope header as
//     AAD, signed with WPriv_f), so a host cannot tell a chunk from a
//     message by its size bucket. Every chunk but the last fills the
//     largest bucket.
//   - The manifest (KindFile, signed by its author inside the group's
//     ciphertext like any payload) carries name, media type, size,
//     SHA-256 of the whole file, the chunk size, R_f and WPub_f — but not
//     W_f: members can read and check the chunks, only the sender could
//     write them.
//
// Chunk plaintext:
//
//	1 version (0x01) ‖ 4 index (from 0) ‖ data (ChunkData bytes, except the last chunk)
//
// Manifest body:
//
//	1 version (0x01) ‖ 1+N name (1..255 bytes, no path) ‖ 1+M media type
//	(0..127 bytes) ‖ 8 size ‖ 32 SHA-256 ‖ 4 chunk data size ‖ 32 R_f ‖ 32 WPub_f
const (
	// KindFile: body is a FileManifest.
	KindFile Kind = 11

	fileVersion  = 1
	chunkVersion = 1
	chunkHeader  = 1 + 4

	// ChunkData is the file bytes in each chunk but the last: what fills
	// the largest padding bucket after the chunk header.
	ChunkData = MaxPayloadSize - chunkHeader
	// MaxFileNameLen bounds a file name in bytes; MaxMediaTypeLen its
	// media type.
	MaxFileNameLen  = 255
	MaxMediaTypeLen = 127
	// MaxFileSize is the protocol's bound on a file (a node sets a lower
	// limit of its own): 2^32 chunks is far beyond it.
	MaxFileSize = 1 << 40
)

// FileManifest describes a file sent to a group.
type FileManifest struct {
	Name      string
	MediaType string
	Size      uint64
	SHA256    [32]byte
	// ChunkData is the data bytes per chunk (ChunkData for this version).
	ChunkData uint32
	// Read is R_f; WritePub is WPub_f.
	Read     [keymgmt.SecretSize]byte
	WritePub [ed25519.PublicKeySize]byte
}

// Chunks is the number of chunk envelopes of the file.
func (f *FileManifest) Chunks() int {
	if f.Size == 0 {
		return 1
	}
	return int((f.Size + uint64(f.ChunkData) - 1) / uint64(f.ChunkData))
}

// Keys derives the read-only keys of the file's chunk mailbox.
func (f *FileManifest) Keys() (*keymgmt.EpochKeys, error) {
	s := &keymgmt.EpochSecrets{Read: f.Read, WPub: ed25519.PublicKey(f.WritePub[:])}
	return s.Derive()
}

// ChunkLen is the length of chunk i's data.
func (f *FileManifest) ChunkLen(i int) int {
	n := f.Chunks()
	if i < n-1 {
		return int(f.ChunkData)
	}
	return int(f.Size - uint64(n-1)*uint64(f.ChunkData))
}

func (f *FileManifest) check() error {
	switch {
	case f.Name == "" || len(f.Name) > MaxFileNameLen:
		return fmt.Errorf("%w: a file name of %d bytes (1 to %d)", ErrFileMalformed, len(f.Name), MaxFileNameLen)
	case len(f.MediaType) > MaxMediaTypeLen:
		return fmt.Errorf("%w: a media type of %d bytes (at most %d)", ErrFileMalformed, len(f.MediaType), MaxMediaTypeLen)
	case f.Size > MaxFileSize:
		return fmt.Errorf("%w: a file of %d bytes (at most %d)", ErrFileMalformed, f.Size, uint64(MaxFileSize))
	case f.ChunkData != ChunkData:
		return fmt.Errorf("%w: chunks of %d bytes, want %d", ErrFileMalformed, f.ChunkData, ChunkData)
	}
	if err := checkText("file name", f.Name, false, MaxFileNameLen); err != nil {
		return fmt.Errorf("%w: %w", ErrFileMalformed, err)
	}
	for _, c := range f.Name {
		if c == '/' || c == '\\' {
			return fmt.Errorf("%w: a file name with a path separator", ErrFileMalformed)
		}
	}
	if f.Name == "." || f.Name == ".." {
		return fmt.Errorf("%w: the file name %q", ErrFileMalformed, f.Name)
	}
	if err := checkText("media type", f.MediaType, true, MaxMediaTypeLen); err != nil {
		return fmt.Errorf("%w: %w", ErrFileMalformed, err)
	}
	return nil
}

// MarshalManifest encodes a manifest after checking it.
func MarshalManifest(f *FileManifest) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	b := []byte{fileVersion, byte(len(f.Name))}
	b = append(b, f.Name...)
	b = append(b, byte(len(f.MediaType)))
	b = append(b, f.MediaType...)
	b = binary.BigEndian.AppendUint64(b, f.Size)
	b = append(b, f.SHA256[:]...)
	b = binary.BigEndian.AppendUint32(b, f.ChunkData)
	b = append(b, f.Read[:]...)
	return append(b, f.WritePub[:]...), nil
}

// ParseManifest decodes a manifest strictly.
func ParseManifest(b []byte) (*FileManifest, error) {
	d := newDecoder(b)
	if v := d.u8(); v != fileVersion {
		return nil, fmt.Errorf("%w: version %d", ErrFileMalformed, v)
	}
	f := &FileManifest{}
	f.Name = string(d.take(int(d.u8())))
	f.MediaType = string(d.take(int(d.u8())))
	f.Size = d.u64()
	copy(f.SHA256[:], d.take(32))
	f.ChunkData = d.u32()
	copy(f.Read[:], d.take(keymgmt.SecretSize))
	copy(f.WritePub[:], d.take(ed25519.PublicKeySize))
	if !d.ok || !d.done() {
		return nil, fmt.Errorf("%w: %d bytes do not add up to a manifest", ErrFileMalformed, len(b))
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// SealChunk seals chunk index of a file with the file's write keys.
func SealChunk(keys *keymgmt.EpochKeys, index uint32, data []byte) (*envelope.Envelope, error) {
	if keys == nil || !keys.CanWrite() {
		return nil, fmt.Errorf("%w: no write key for the file", ErrCannotWrite)
	}
	if len(data) > ChunkData {
		return nil, fmt.Errorf("%w: a chunk of %d bytes (at most %d)", ErrFileMalformed, len(data), ChunkData)
	}
	b := make([]byte, 0, chunkHeader+len(data))
	b = append(b, chunkVersion)
	b = binary.BigEndian.AppendUint32(b, index)
	return sealPadded(keys, append(b, data...))
}

// OpenChunk checks and decrypts a chunk envelope of the file whose keys
// are keys, and checks it against the manifest: its index exists and its
// length is the index's.
func OpenChunk(f *FileManifest, keys *keymgmt.EpochKeys, env *envelope.Envelope) (int, []byte, error) {
	b, err := openPadded(keys, env, func() string { return "the file " + f.Name })
	if err != nil {
		return 0, nil, err
	}
	return parseChunk(f, b)
}

func parseChunk(f *FileManifest, b []byte) (int, []byte, error) {
	if len(b) < chunkHeader || b[0] != chunkVersion {
		return 0, nil, fmt.Errorf("%w: a chunk of %d bytes", ErrFileMalformed, len(b))
	}
	i := binary.BigEndian.Uint32(b[1:])
	if uint64(i) >= uint64(f.Chunks()) {
		return 0, nil, fmt.Errorf("%w: chunk %d of a file of %d", ErrFileMalformed, i, f.Chunks())
	}
	data := b[chunkHeader:]
	if len(data) != f.ChunkLen(int(i)) {
		return 0, nil, fmt.Errorf("%w: chunk %d holds %d bytes, want %d", ErrFileMalformed, i, len(data), f.ChunkLen(int(i)))
	}
	return int(i), data, nil
}
