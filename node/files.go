package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// Files (issue 18; the formats are groupstate's, file.go). Sending:
// the file is read once, chunk by chunk; each chunk envelope goes to the
// node's own store (which then hosts the file's mailbox and serves it) and
// through the outbox to the group's hosts, like any own envelope, so
// quotas, admission and retention apply to chunks as to messages. Only
// when every chunk is stored locally and the whole file was read and
// hashed is the manifest sent: a file cut short, over the limit or
// refused by the own store leaves no manifest, and nothing is shown.
//
// Downloading: the chunk mailbox is fetched from the group's hosts (or,
// in a group without hosts, from members met on its topics) into the own
// store, where the chunks stay encrypted at rest; the fetch cursor per
// source is saved, so a download interrupted by a restart goes on where
// it stopped, and chunks already held are not fetched again. Then every
// chunk is opened and checked against the manifest (mailbox, write
// signature, AEAD, index, length) and the whole file against its SHA-256
// before a byte of it is handed out (Node.OpenFile). A group's catch-up
// never fetches a chunk mailbox.
//
//	'f' gid id(32) 0x00         → manifest (groupstate encoding)
//	'f' gid id(32) 0x01 peer    → fetch cursor of the chunk mailbox at peer
const pfxFile = 'f'

// ChunkData is the file bytes per chunk (groupstate.ChunkData).
const ChunkData = groupstate.ChunkData

// DefaultMaxFileSize is the largest file a node sends unless
// Params.MaxFileSize says otherwise.
const DefaultMaxFileSize = 100 << 20

// FileInfo is what a file message shows (JSON: the stored message's).
type FileInfo struct {
	Name      string `json:"name"`
	MediaType string `json:"media_type"`
	Size      uint64 `json:"size"`
	SHA256    string `json:"sha256"`
}

func fileInfoOf(f *groupstate.FileManifest) *FileInfo {
	return &FileInfo{Name: f.Name, MediaType: f.MediaType, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256[:])}
}

func manifestKey(g groupstate.GroupID, id envelope.ID) []byte {
	return gkey(pfxFile, g, id[:], []byte{0})
}

func fileCursorKey(g groupstate.GroupID, id envelope.ID, p peer.ID) []byte {
	return gkey(pfxFile, g, id[:], []byte{1}, []byte(p))
}

// MaxFileSize is the largest file this node sends.
func (n *Node) MaxFileSize() int64 { return n.maxFileSize() }

// File describes the file message id (or unique ID prefix).
func (n *Node) File(id string) (*FileInfo, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	_, _, f, err := m.manifest(id)
	if err != nil {
		return nil, err
	}
	return fileInfoOf(f), nil
}

func (n *Node) maxFileSize() int64 {
	if n.params.MaxFileSize > 0 {
		return n.params.MaxFileSize
	}
	return DefaultMaxFileSize
}

// SendFile sends size bytes read from r to group as a file named name
// (media type mediaType).
func (n *Node) SendFile(ctx context.Context, group, name, mediaType string, r io.Reader, size int64) (*SendResult, error) {
	if size < 0 || size > n.maxFileSize() {
		return nil, fmt.Errorf("%w: the file is %d bytes; this node sends files of at most %d bytes", ErrFileTooLarge, size, n.maxFileSize())
	}
	sec, err := keymgmt.NewEpochSecrets()
	if err != nil {
		return nil, err
	}
	keys, err := sec.Derive()
	if err != nil {
		return nil, err
	}
	f := &groupstate.FileManifest{Name: name, MediaType: mediaType, Size: uint64(size), ChunkData: groupstate.ChunkData, Read: sec.Read}
	copy(f.WritePub[:], keys.WritePub)
	if _, err := groupstate.MarshalManifest(f); err != nil {
		return nil, err // the name or type, before anything is read
	}
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	e, ok := m.groups[gid]
	if ok {
		err = m.checkCanPost(e, groupstate.KindFile)
	}
	m.mu.Unlock()
	if !ok {
		return nil, ErrUnknownGroup
	}
	if err != nil {
		return nil, err
	}
	if err := n.st.CheckSpace(); err != nil {
		return nil, err
	}
	h := sha256.New()
	buf := make([]byte, groupstate.ChunkData)
	for i := range f.Chunks() {
		want := f.ChunkLen(i)
		if _, err := io.ReadFull(r, buf[:want]); err != nil {
			return nil, fmt.Errorf("%w: the file ended after %d of %d bytes", ErrFileIncomplete, int64(i)*groupstate.ChunkData, size)
		}
		h.Write(buf[:want])
		env, err := groupstate.SealChunk(keys, uint32(i), buf[:want])
		if err != nil {
			return nil, err
		}
		if _, err := n.Deliver(ctx, env, n.h.ID()); err != nil {
			return nil, fmt.Errorf("storing chunk %d of %d: %w", i+1, f.Chunks(), err)
		}
		if err := m.db.db.Update(func(txn *badger.Txn) error { return queueOwnTxn(txn, gid, env, time.Now()) }); err != nil {
			return nil, err
		}
		m.outbox.submit(ctx, gid, env)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if extra, _ := r.Read(buf[:1]); extra > 0 {
		return nil, fmt.Errorf("%w: the file is longer than the %d bytes announced", ErrFileIncomplete, size)
	}
	h.Sum(f.SHA256[:0])
	body, err := groupstate.MarshalManifest(f)
	if err != nil {
		return nil, err
	}
	if err := n.awaitRecovered(ctx); err != nil {
		return nil, err
	}
	m, e, err = n.lockGroup(gid.String())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p, err := m.buildPayload(e, groupstate.KindFile, body, now)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	msg := m.newMessage(e, p, envelope.ID{}, now)
	msg.File = fileInfoOf(f)
	env, err := m.sealOwn(e, p, msg)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return n.deliverOwn(ctx, gid, env)
}

// handleFile completes msg for an admitted manifest and keeps the
// manifest. Call with m.mu held.
func handleFileTxn(txn *badger.Txn, g groupstate.GroupID, p *groupstate.Payload, id envelope.ID, msg *Message) error {
	f, err := groupstate.ParseManifest(p.Body)
	if err != nil {
		return err
	}
	msg.File = fileInfoOf(f)
	return txn.Set(manifestKey(g, id), p.Body)
}

// FileProgress reports a download: Held of Chunks chunk envelopes are in
// the own store.
type FileProgress struct {
	Held, Chunks int
}

// DownloadResult is a downloaded and verified file, ready for OpenFile.
type DownloadResult struct {
	ID   string
	File FileInfo
	// Fetched counts the chunk envelopes fetched now (0 when all were
	// held already).
	Fetched int
	Failed  map[string]string
}

// Download fetches the chunks of the file message id (or unique ID
// prefix) that the own store lacks from the group's hosts, then checks
// the whole file. progress, if set, is called after each page fetched.
func (n *Node) Download(ctx context.Context, id string, progress func(FileProgress)) (*DownloadResult, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	gid, tid, f, err := m.manifest(id)
	if err != nil {
		return nil, err
	}
	keys, err := f.Keys()
	if err != nil {
		return nil, err
	}
	res := &DownloadResult{ID: tid.String(), File: *fileInfoOf(f), Failed: map[string]string{}}
	mb := keys.Mailbox
	if err := n.host(mb, false); err != nil {
		return nil, err
	}
	held := func() int {
		c, _ := n.chunksHeld(f, keys)
		return c
	}
	if h := held(); h < f.Chunks() {
		m.mu.Lock()
		e, ok := m.groups[gid]
		var hosts []string
		var mbs []envelope.MailboxID
		if ok {
			hosts, mbs = e.g.Hosts, m.mailboxesOf(e)
		}
		m.mu.Unlock()
		if progress != nil {
			progress(FileProgress{Held: h, Chunks: f.Chunks()})
		}
		for _, p := range n.catchUpSources(hosts, mbs) {
			got, err := n.fetchFile(ctx, gid, tid, p, mb, func() {
				if progress != nil {
					progress(FileProgress{Held: held(), Chunks: f.Chunks()})
				}
			})
			res.Fetched += got
			if err != nil {
				res.Failed[p.String()] = err.Error()
			}
			if held() == f.Chunks() {
				break
			}
		}
	}
	if err := n.verifyFile(f, keys, io.Discard); err != nil {
		return res, err
	}
	return res, nil
}

// fetchFile pages through a chunk mailbox at p from the saved cursor.
func (n *Node) fetchFile(ctx context.Context, gid groupstate.GroupID, id envelope.ID, p peer.ID, mb envelope.MailboxID, each func()) (int, error) {
	m := n.member
	cur, err := m.db.get(fileCursorKey(gid, id, p))
	if err != nil {
		return 0, err
	}
	save := func(pg store.Page) error {
		for _, env := range pg.Envelopes {
			if env.Mailbox() != mb {
				continue
			}
			if _, err := n.Deliver(ctx, env, p); err != nil && !errors.Is(err, store.ErrExpired) {
				return err
			}
		}
		each()
		if len(pg.Next) == 0 {
			return nil
		}
		return m.db.db.Update(func(txn *badger.Txn) error { return txn.Set(fileCursorKey(gid, id, p), pg.Next) })
	}
	_, got, err := n.fetchCl.CatchUp(ctx, p, mb, store.Cursor(cur), save)
	if errors.Is(err, store.ErrUnknownCursor) || errors.Is(err, store.ErrExpiredCursor) {
		var more int
		_, more, err = n.fetchCl.CatchUp(ctx, p, mb, nil, save)
		got += more
	}
	return got, err
}

// chunksHeld counts the distinct valid chunks of f in the own store.
func (n *Node) chunksHeld(f *groupstate.FileManifest, keys *keymgmt.EpochKeys) (int, error) {
	seen := make(map[int]bool, f.Chunks())
	err := n.eachChunk(f, keys, func(i int, _ []byte) error {
		seen[i] = true
		return nil
	})
	return len(seen), err
}

// eachChunk calls fn for every valid chunk of f in the own store (in
// arrival order; an index may come twice if the sender's node sent it
// twice, and invalid envelopes are skipped).
func (n *Node) eachChunk(f *groupstate.FileManifest, keys *keymgmt.EpochKeys, fn func(int, []byte) error) error {
	var cur store.Cursor
	for {
		pg, err := n.st.Page(keys.Mailbox, cur, 64, 8<<20)
		if err != nil {
			return err
		}
		for _, env := range pg.Envelopes {
			i, data, err := groupstate.OpenChunk(f, keys, env)
			if err != nil {
				continue // not a chunk of this file: never shown
			}
			if err := fn(i, data); err != nil {
				return err
			}
		}
		if !pg.More || len(pg.Next) == 0 {
			return nil
		}
		cur = pg.Next
	}
}

// verifyFile writes f's bytes to w in order if every chunk is held and
// the whole file matches its SHA-256 (w sees bytes before the check ends:
// pass io.Discard first, as Download does).
func (n *Node) verifyFile(f *groupstate.FileManifest, keys *keymgmt.EpochKeys, w io.Writer) error {
	h := sha256.New()
	out := io.MultiWriter(h, w)
	// Chunks arrive in any order: read them in index order, a window at a
	// time, so memory stays bounded by the window whatever the file size.
	const window = 16
	for base := 0; base < f.Chunks(); base += window {
		got := map[int][]byte{}
		err := n.eachChunk(f, keys, func(i int, data []byte) error {
			if i >= base && i < base+window {
				got[i] = data
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := base; i < min(base+window, f.Chunks()); i++ {
			data, ok := got[i]
			if !ok {
				return fmt.Errorf("%w: chunk %d of %d is not held (no host supplied it)", ErrFileIncomplete, i+1, f.Chunks())
			}
			if _, err := out.Write(data); err != nil {
				return err
			}
		}
	}
	var sum [32]byte
	if h.Sum(sum[:0]); !bytes.Equal(sum[:], f.SHA256[:]) {
		return fmt.Errorf("%w: the chunks do not add up to the file's SHA-256", ErrFileCorrupt)
	}
	return nil
}

// OpenFile writes the verified bytes of a downloaded file to w (after
// Download). It checks the whole file before writing a byte.
func (n *Node) OpenFile(id string, w io.Writer) (*FileInfo, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	_, _, f, err := m.manifest(id)
	if err != nil {
		return nil, err
	}
	keys, err := f.Keys()
	if err != nil {
		return nil, err
	}
	if err := n.verifyFile(f, keys, io.Discard); err != nil {
		return nil, err
	}
	return fileInfoOf(f), n.verifyFile(f, keys, w)
}

// manifest finds a file message's manifest.
func (m *member) manifest(id string) (groupstate.GroupID, envelope.ID, *groupstate.FileManifest, error) {
	gid, tid, t, err := m.findMessage(id, nil)
	if err != nil {
		return gid, tid, nil, err
	}
	if t.kind != groupstate.KindFile {
		return gid, tid, nil, fmt.Errorf("%w: message %s is a %s, not a file", ErrUnknownMessage, tid.Short(), t.kind)
	}
	var f *groupstate.FileManifest
	err = m.db.db.View(func(txn *badger.Txn) error {
		if deleted, err := isDeletedTxn(txn, gid, tid, t); err != nil || deleted {
			if err == nil {
				err = fmt.Errorf("%w: the file %s was deleted", ErrUnknownMessage, tid.Short())
			}
			return err
		}
		item, err := txn.Get(manifestKey(gid, tid))
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		f, err = groupstate.ParseManifest(b)
		if err != nil {
			return fmt.Errorf("%w: file manifest: %v", ErrCorrupt, err)
		}
		return nil
	})
	return gid, tid, f, err
}
