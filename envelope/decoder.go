package envelope

import "bytes"

// A Decoder decodes a run of envelopes, such as the pages of one mailbox
// fetched from a host, without the per-envelope work that a run makes
// redundant: it hashes a write key into its mailbox tag once for as long
// as the envelopes share it (all of one mailbox's do), and DecodeInPlace
// slices the encoding instead of copying it. The checks are Decode's. A
// Decoder is not safe for concurrent use; the zero value is not usable.
type Decoder struct {
	maxSize int
	wpub    [PublicKeySize]byte
	tag     MailboxID
	known   bool // wpub and tag hold the last key hashed
}

// NewDecoder returns a Decoder for encodings of at most maxSize bytes (as
// Decode's maxSize).
func NewDecoder(maxSize int) *Decoder { return &Decoder{maxSize: maxSize} }

// Decode is Decode: it copies b.
func (d *Decoder) Decode(b []byte) (*Envelope, error) {
	if err := check(b, d.maxSize); err != nil {
		return nil, err
	}
	return d.parse(append([]byte(nil), b...)), nil
}

// DecodeInPlace is Decode without the copy: the Envelope keeps b, which
// the caller must not modify or reuse while the Envelope is in use (a
// page body read into a buffer of its own, for example).
func (d *Decoder) DecodeInPlace(b []byte) (*Envelope, error) {
	if err := check(b, d.maxSize); err != nil {
		return nil, err
	}
	return d.parse(b[:len(b):len(b)]), nil
}

// parse is parse with the tag of the last key when the key is the same.
// The tag is a pure function of the key's bytes, so reusing it for equal
// bytes changes nothing but the cost.
func (d *Decoder) parse(raw []byte) *Envelope {
	wpub := raw[1 : 1+PublicKeySize]
	if !d.known || !bytes.Equal(wpub, d.wpub[:]) {
		copy(d.wpub[:], wpub)
		d.tag = MailboxFor(wpub)
		d.known = true
	}
	return parse(raw, &d.tag)
}
