package groupstate

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/meshnode/meshnode/keymgmt"
)

func testFile(t testing.TB, size int) (*FileManifest, *keymgmt.EpochKeys) {
	t.Helper()
	s, err := keymgmt.NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.Derive()
	if err != nil {
		t.Fatal(err)
	}
	f := &FileManifest{Name: "report.pdf", MediaType: "application/pdf", Size: uint64(size), ChunkData: ChunkData, Read: s.Read}
	copy(f.WritePub[:], keys.WritePub)
	return f, keys
}

func TestFileChunks(t *testing.T) {
	data := bytes.Repeat([]byte("meshnode"), 2*ChunkData/8+100)
	f, wk := testFile(t, len(data))
	f.SHA256 = sha256.Sum256(data)
	b, err := MarshalManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseManifest(b)
	if err != nil || *g != *f {
		t.Fatalf("manifest round trip: %+v %v", g, err)
	}
	if f.Chunks() != 3 || f.ChunkLen(2) != len(data)-2*ChunkData {
		t.Fatalf("%d chunks, last of %d", f.Chunks(), f.ChunkLen(2))
	}
	rk, err := f.Keys()
	if err != nil || rk.CanWrite() || rk.Mailbox != wk.Mailbox {
		t.Fatalf("reader keys: %v", err)
	}
	var got []byte
	sizes := map[int]bool{}
	for i := range f.Chunks() {
		part := data[i*ChunkData : i*ChunkData+f.ChunkLen(i)]
		env, err := SealChunk(wk, uint32(i), part)
		if err != nil {
			t.Fatal(err)
		}
		sizes[len(env.Ciphertext)] = true
		j, d, err := OpenChunk(f, rk, env)
		if err != nil || j != i {
			t.Fatalf("chunk %d: %d %v", i, j, err)
		}
		got = append(got, d...)
		// Another file's keys do not open it.
		other, _ := testFile(t, len(data))
		ok, _ := other.Keys()
		if _, _, err := OpenChunk(other, ok, env); !errors.Is(err, ErrWrongMailbox) {
			t.Fatalf("another file's keys: %v", err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("chunks do not add up to the file")
	}
	for sz := range sizes {
		if !isBucket(sz - 16) {
			t.Fatalf("a chunk ciphertext of %d bytes is not a bucket", sz)
		}
	}
	// A chunk with a wrong length or index for the manifest.
	env, _ := SealChunk(wk, 0, data[:10])
	if _, _, err := OpenChunk(f, rk, env); !errors.Is(err, ErrFileMalformed) {
		t.Fatalf("short chunk: %v", err)
	}
	env, _ = SealChunk(wk, 7, data[:10])
	if _, _, err := OpenChunk(f, rk, env); !errors.Is(err, ErrFileMalformed) {
		t.Fatalf("chunk past the end: %v", err)
	}
}

func TestManifestBadInput(t *testing.T) {
	f, _ := testFile(t, 10)
	for _, tc := range []struct {
		name string
		mut  func(*FileManifest)
	}{
		{"no name", func(f *FileManifest) { f.Name = "" }},
		{"a path", func(f *FileManifest) { f.Name = "../etc/passwd" }},
		{"dot dot", func(f *FileManifest) { f.Name = ".." }},
		{"backslash", func(f *FileManifest) { f.Name = `a\b` }},
		{"control", func(f *FileManifest) { f.Name = "a\nb" }},
		{"bidi", func(f *FileManifest) { f.Name = "exe.\u202efdp" }},
		{"chunk size", func(f *FileManifest) { f.ChunkData = 100 }},
		{"too large", func(f *FileManifest) { f.Size = MaxFileSize + 1 }},
	} {
		g := *f
		tc.mut(&g)
		if _, err := MarshalManifest(&g); !errors.Is(err, ErrFileMalformed) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	b, _ := MarshalManifest(f)
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte(nil), b...), 0), append([]byte{2}, b[1:]...)} {
		if _, err := ParseManifest(bad); !errors.Is(err, ErrFileMalformed) {
			t.Errorf("bad encoding: %v", err)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	m, _ := testFile(f, 1000)
	b, _ := MarshalManifest(m)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		out, err := MarshalManifest(m)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("manifest does not round-trip: %v", err)
		}
	})
}

func FuzzParseChunk(f *testing.F) {
	m, _ := testFile(f, ChunkData+10)
	f.Add([]byte{1, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		i, d, err := parseChunk(m, data)
		if err == nil && (i >= m.Chunks() || len(d) != m.ChunkLen(i)) {
			t.Fatalf("chunk %d of %d bytes accepted", i, len(d))
		}
	})
}
