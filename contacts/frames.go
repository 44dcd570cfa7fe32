package contacts

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

// Welcomes over connection groups (ARCHITECTURE §8, issue 7). Once two
// people are connected, a manager can add the other to a managed group
// without asking for a key package or knowing whether the other can reach
// the group's hosts:
//
//  1. Each node keeps one fresh key package of its own offered to every
//     connected contact: a text message in the connection group whose
//     whole text is the key package ("mnkp1.…", as `meshnode keypackage`
//     prints it). It is a pending key package like any other (welcome.go):
//     its welcome mailbox is watched, and the connection group's hosts are
//     where it is fetched from. Once a welcome consumed it, or when half
//     its validity is gone, the node offers a new one.
//  2. AddContactToGroup takes the contact's newest offered key package
//     that the manager has not used yet and whose identity is the
//     contact's verified one, adds it as AddMember does (the welcome goes
//     to the group's hosts as always), and also sends the welcome's
//     envelopes inside the connection group, as text messages in the frame
//     format below.
//  3. The member's node reassembles the frames sent by the contact, keeps
//     the envelopes addressed to the welcome mailbox of one of its pending
//     key packages, and delivers them to its own store, where the welcome
//     code (checkWelcomes → joinWelcomed) opens and joins them as if they
//     had been fetched from the group's hosts. The welcome names the hosts,
//     so the member needs no other way to find them.
//
// The welcome is sealed to the key package as always; the connection
// group adds a second layer (its epoch key) and its hosts see one more
// padded envelope per frame, never the welcome mailbox.
//
// Frame text (one text message each):
//
//	"meshnode-welcome-v1." ‖ base64url without padding of
//	0   1   version (0x01)
//	1   16  tag: random per delivery, groups the frames of one welcome
//	17  2   index, big-endian (< count)
//	19  2   count, big-endian (1..MaxWelcomeParts)
//	21  …   chunk: exactly frameChunk bytes except in the last
//	        frame (1..frameChunk)
//
// The chunks, in index order, make up
//
//	2   N: envelope count, big-endian (1..groupstate.MaxWelcomeParts)
//	N × (4 L, big-endian (≤ envelope.AbsoluteMaxSize) ‖ L bytes of envelope
//	     encoding)
//
// with nothing after the last envelope.

// WelcomePrefix starts the text of a welcome frame.
const WelcomePrefix = "meshnode-welcome-v1."

const (
	frameVersion = 1
	frameHeader  = 1 + 16 + 2 + 2
	// frameChunk keeps a frame's text (base64: 4/3 of it, plus
	// the prefix) under the longest text a payload carries with a full
	// nick and parent list (about 64,900 bytes).
	frameChunk = 40 << 10
	// MaxWelcomeParts bounds the frames of one welcome: 5 MiB of
	// envelopes, a chain of some ten thousand events. A larger welcome is
	// refused by AddContactToGroup (add the member with AddMember instead).
	MaxWelcomeParts = 128
)

var frameB64 = base64.RawURLEncoding

// WelcomeTexts cuts a welcome's envelopes into frame texts.
func WelcomeTexts(envs []*envelope.Envelope) ([]string, error) {
	if len(envs) == 0 || len(envs) > groupstate.MaxWelcomeParts {
		return nil, fmt.Errorf("%w: a welcome of %d envelopes", ErrWelcomeTooLarge, len(envs))
	}
	stream := binary.BigEndian.AppendUint16(nil, uint16(len(envs)))
	for _, env := range envs {
		b := env.Bytes()
		stream = binary.BigEndian.AppendUint32(stream, uint32(len(b)))
		stream = append(stream, b...)
	}
	count := (len(stream) + frameChunk - 1) / frameChunk
	if count > MaxWelcomeParts {
		return nil, fmt.Errorf("%w: %d bytes need %d frames, at most %d go over a connection group; add the member with their key package instead",
			ErrWelcomeTooLarge, len(stream), count, MaxWelcomeParts)
	}
	// The tag only keeps two welcomes in one connection group apart.
	var tag [16]byte
	rand.Read(tag[:])
	out := make([]string, 0, count)
	for i := range count {
		chunk := stream[i*frameChunk : min((i+1)*frameChunk, len(stream))]
		f := make([]byte, 0, frameHeader+len(chunk))
		f = append(f, frameVersion)
		f = append(f, tag[:]...)
		f = binary.BigEndian.AppendUint16(f, uint16(i))
		f = binary.BigEndian.AppendUint16(f, uint16(count))
		f = append(f, chunk...)
		out = append(out, WelcomePrefix+frameB64.EncodeToString(f))
	}
	return out, nil
}

// frame is one decoded welcome frame.
type frame struct {
	tag          [16]byte
	index, count int
	chunk        []byte
}

// parseFrame decodes a frame text strictly.
func parseFrame(text string) (*frame, error) {
	body, ok := strings.CutPrefix(text, WelcomePrefix)
	if !ok {
		return nil, fmt.Errorf("%w: not a welcome frame", ErrBadWelcome)
	}
	if len(body) > frameB64.EncodedLen(frameHeader+frameChunk) {
		return nil, fmt.Errorf("%w: frame text of %d bytes", ErrBadWelcome, len(body))
	}
	b, err := frameB64.Strict().DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: frame encoding: %v", ErrBadWelcome, err)
	}
	if len(b) < frameHeader+1 || b[0] != frameVersion {
		return nil, fmt.Errorf("%w: frame of %d bytes or unknown version", ErrBadWelcome, len(b))
	}
	f := &frame{index: int(binary.BigEndian.Uint16(b[17:])), count: int(binary.BigEndian.Uint16(b[19:])), chunk: b[frameHeader:]}
	copy(f.tag[:], b[1:17])
	switch {
	case f.count == 0 || f.count > MaxWelcomeParts || f.index >= f.count:
		return nil, fmt.Errorf("%w: frame %d of %d", ErrBadWelcome, f.index, f.count)
	case f.index < f.count-1 && len(f.chunk) != frameChunk:
		// Only the last chunk may be short, so the frames of a welcome
		// add up to one size only.
		return nil, fmt.Errorf("%w: frame %d of %d holds %d bytes, not a full chunk", ErrBadWelcome, f.index, f.count, len(f.chunk))
	}
	return f, nil
}

// parseWelcome decodes reassembled chunks into envelopes, each
// checked as an envelope (size, write signature).
func parseWelcome(stream []byte) ([]*envelope.Envelope, error) {
	if len(stream) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadWelcome, len(stream))
	}
	n := int(binary.BigEndian.Uint16(stream))
	if n == 0 || n > groupstate.MaxWelcomeParts {
		return nil, fmt.Errorf("%w: %d envelopes", ErrBadWelcome, n)
	}
	rest := stream[2:]
	out := make([]*envelope.Envelope, 0, n)
	for i := range n {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: envelope %d truncated", ErrBadWelcome, i)
		}
		l := binary.BigEndian.Uint32(rest)
		if l > envelope.AbsoluteMaxSize || uint64(l) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: envelope %d of %d bytes", ErrBadWelcome, i, l)
		}
		env, err := envelope.Open(rest[4:4+l], envelope.AbsoluteMaxSize, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: envelope %d: %w", ErrBadWelcome, i, err)
		}
		out = append(out, env)
		rest = rest[4+l:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last envelope", ErrBadWelcome, len(rest))
	}
	return out, nil
}

// ReassembleWelcomes groups frame texts by tag and returns, per
// complete welcome, its envelopes. Bad frames, incomplete welcomes and
// those in done are skipped; a welcome whose frames disagree (two frames
// with one index) is skipped too.
func ReassembleWelcomes(texts []string, done map[[16]byte]bool) map[[16]byte][]*envelope.Envelope {
	type set struct {
		count  int
		chunks map[int][]byte
		bad    bool
	}
	sets := map[[16]byte]*set{}
	for _, t := range texts {
		f, err := parseFrame(t)
		if err != nil || done[f.tag] {
			continue
		}
		s := sets[f.tag]
		if s == nil {
			s = &set{count: f.count, chunks: map[int][]byte{}}
			sets[f.tag] = s
		}
		if _, dup := s.chunks[f.index]; dup || s.count != f.count {
			s.bad = true
		}
		s.chunks[f.index] = f.chunk
	}
	out := map[[16]byte][]*envelope.Envelope{}
	for tag, s := range sets {
		if s.bad || len(s.chunks) != s.count {
			continue
		}
		var stream []byte
		for i := range s.count {
			stream = append(stream, s.chunks[i]...)
		}
		envs, err := parseWelcome(stream)
		if err != nil {
			continue
		}
		out[tag] = envs
	}
	return out
}
