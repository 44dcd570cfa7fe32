package node

import (
	"encoding/binary"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// An in-memory member database runs without Badger's polling compactors:
// the member loop's look at level 0 (compact.Check, every processing
// tick) must compact it, and lose nothing. On disk Badger's compactors
// stay.
func TestInMemoryMemberDBCompactsOnDemand(t *testing.T) {
	disk, err := openMemberDB(t.TempDir(), nil, false, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if disk.compact != nil {
		t.Error("an on-disk member database has an on-demand compactor; Badger's compactors run there")
	}
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}

	m, err := openMemberDB("", nil, true, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.compact == nil {
		t.Fatal("an in-memory member database has no on-demand compactor")
	}
	// 16 MiB through 1 MiB memtables, the same 2,000 keys overwritten:
	// about 16 flushes into level 0, three times memberL0Tables.
	val := make([]byte, 8<<10)
	key := func(i int) []byte { return binary.BigEndian.AppendUint32([]byte{pfxLocal}, uint32(i)) }
	for round := range 8 {
		for i := range 256 {
			binary.BigEndian.PutUint32(val, uint32(round))
			if err := m.db.Update(func(txn *badger.Txn) error { return txn.Set(key(i), val) }); err != nil {
				t.Fatal(err)
			}
			m.compact.Check() // what the member loop does on its tick
		}
	}
	m.compact.Close() // waits for a running compaction (Close is idempotent for it)
	if n := m.db.Levels()[0].NumTables; n > memberL0Tables+2 {
		t.Errorf("level 0 holds %d tables after 16 MiB of writes; want it compacted near %d", n, memberL0Tables)
	}
	err = m.db.View(func(txn *badger.Txn) error {
		for i := range 256 {
			it, err := txn.Get(key(i))
			if err != nil {
				return err
			}
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			if binary.BigEndian.Uint32(v) != 7 {
				t.Fatalf("key %d holds round %d; want the last, 7", i, binary.BigEndian.Uint32(v))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
