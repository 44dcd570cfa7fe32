package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// Issue 18, item 2 over real libp2p: alice sends a file of three chunks;
// bob, who caught up on the group's texts, holds none of its chunks until
// he downloads it from the host; the file he gets is alice's, byte for
// byte, and after a restart his node holds it without fetching again.
// A file over the limit or cut short is refused and leaves no message.
func TestFileSendDownload(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.tweak = func(p *Params) { p.MaxFileSize = 1 << 20 }
	alice.start()
	bob.start()
	ctx := context.Background()
	info, invite, err := alice.n.CreateGroup(ctx, "files", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	gid := info.ID
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2*groupstate.ChunkData+1234)
	rand.Read(data)
	res, err := alice.n.SendFile(ctx, gid, "photo.jpg", "image/jpeg", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.Send(ctx, gid, "that is the photo"); err != nil {
		t.Fatal(err)
	}
	// Refused: over the limit, cut short, longer than announced.
	if _, err := alice.n.SendFile(ctx, gid, "big.bin", "", bytes.NewReader(make([]byte, 2<<20)), 2<<20); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("a file over the limit: %v", err)
	}
	if _, err := alice.n.SendFile(ctx, gid, "short.bin", "", bytes.NewReader(data[:1000]), int64(len(data))); !errors.Is(err, ErrFileIncomplete) {
		t.Fatalf("a file cut short: %v", err)
	}
	if _, err := alice.n.SendFile(ctx, gid, "long.bin", "", bytes.NewReader(data), 1000); !errors.Is(err, ErrFileIncomplete) {
		t.Fatalf("a file longer than announced: %v", err)
	}
	if _, err := alice.n.SendFile(ctx, gid, "../../etc/passwd", "", bytes.NewReader(data[:10]), 10); !errors.Is(err, groupstate.ErrFileMalformed) {
		t.Fatalf("a file name with a path: %v", err)
	}
	waitText(t, bob, gid, "that is the photo")
	var fm *Message
	tu.Eventually(t, 20*time.Second, func() bool { fm = messageByID(t, bob, gid, res.ID); return fm != nil }, "bob has the file message")
	sum := sha256.Sum256(data)
	if fm.Kind != "file" || fm.File == nil || fm.File.Name != "photo.jpg" || fm.File.Size != uint64(len(data)) || fm.File.MediaType != "image/jpeg" {
		t.Fatalf("bob's file message: %+v", fm)
	}
	for _, m := range messagesOf(t, bob.n, gid) {
		if m.File != nil && m.File.Name != "photo.jpg" {
			t.Fatalf("a refused file shows: %+v", m)
		}
	}
	// Catching up on texts fetched no chunk.
	_, _, f, err := bob.n.member.manifest(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := f.Keys()
	if held, _ := bob.n.chunksHeld(f, keys); held != 0 {
		t.Fatalf("bob holds %d chunks before downloading", held)
	}
	var progress []FileProgress
	dl, err := bob.n.Download(ctx, res.ID[:10], func(p FileProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if dl.Fetched != 3 || len(progress) == 0 || progress[len(progress)-1].Held != 3 {
		t.Fatalf("download: %+v, progress %+v", dl, progress)
	}
	var out bytes.Buffer
	fi, err := bob.n.OpenFile(res.ID, &out)
	if err != nil || !bytes.Equal(out.Bytes(), data) || fi.SHA256 != fmtHex(sum[:]) {
		t.Fatalf("bob's copy: %d bytes, %v", out.Len(), err)
	}
	// After a restart the chunks are still held: nothing is fetched.
	bob.stop()
	bob.start()
	dl, err = bob.n.Download(ctx, res.ID, nil)
	if err != nil || dl.Fetched != 0 {
		t.Fatalf("download after a restart: %+v %v", dl, err)
	}
	// Deleted: no longer downloadable, and the keys are gone.
	if _, _, err := alice.n.Delete(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		m := messageByID(t, bob, gid, res.ID)
		return m != nil && m.File == nil && m.View != nil && m.View.Deleted
	}, "bob sees the file deleted")
	if _, err := bob.n.Download(ctx, res.ID, nil); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("download of a deleted file: %v", err)
	}
}

func fmtHex(b []byte) string { return envelope.ID(b).String() }

// A manifest whose chunks do not match its hash, and one some of whose
// chunks no host holds: the download fails with a clear error, and
// nothing is handed out.
func TestFileBadManifest(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	bob.start()
	ctx := context.Background()
	info, invite, err := alice.n.CreateGroup(ctx, "bad files", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	gid := info.ID
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	mk := func(data []byte, chunks int, lie bool) string {
		sec, _ := keymgmt.NewEpochSecrets()
		keys, _ := sec.Derive()
		f := &groupstate.FileManifest{Name: "x.bin", Size: uint64(len(data)), ChunkData: groupstate.ChunkData, Read: sec.Read, SHA256: sha256.Sum256(data)}
		copy(f.WritePub[:], keys.WritePub)
		if lie {
			f.SHA256[0] ^= 1
		}
		for i := range chunks {
			env, err := groupstate.SealChunk(keys, uint32(i), data[i*groupstate.ChunkData:i*groupstate.ChunkData+f.ChunkLen(i)])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := host.Deliver(ctx, env, alice.n.ID()); err != nil {
				t.Fatal(err)
			}
		}
		body, err := groupstate.MarshalManifest(f)
		if err != nil {
			t.Fatal(err)
		}
		env := craft(t, alice, gid, 0, groupstate.KindFile, string(body), nil)
		alice.n.member.mu.Lock()
		entry(t, alice, gid).local.NextSeq++
		alice.n.member.mu.Unlock()
		if _, err := host.Deliver(ctx, env, alice.n.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.n.Deliver(ctx, env, alice.n.ID()); err != nil {
			t.Fatal(err)
		}
		id := env.ID().String()
		tu.Eventually(t, 20*time.Second, func() bool { return messageByID(t, bob, gid, id) != nil }, "bob has the manifest")
		return id
	}
	data := make([]byte, groupstate.ChunkData+10)
	rand.Read(data)
	lying := mk(data, 2, true)
	if _, err := bob.n.Download(ctx, lying, nil); !errors.Is(err, ErrFileCorrupt) {
		t.Fatalf("a manifest whose hash the chunks do not match: %v", err)
	}
	var out bytes.Buffer
	if _, err := bob.n.OpenFile(lying, &out); !errors.Is(err, ErrFileCorrupt) || out.Len() != 0 {
		t.Fatalf("opening it: %d bytes, %v", out.Len(), err)
	}
	truncated := mk(data, 1, false)
	if _, err := bob.n.Download(ctx, truncated, nil); !errors.Is(err, ErrFileIncomplete) {
		t.Fatalf("a file missing a chunk: %v", err)
	}
}
