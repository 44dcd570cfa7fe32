package node

import "github.com/meshnode/meshnode/store"

// memberStoreParams size a member's host store. A member's store holds
// the envelopes of its own groups (what it reads and serves to the
// others), not a community's, so the store's defaults for hosts —
// memtables of 16 MiB, three of them, each an arena that becomes resident
// as it fills, a 32 MiB index cache, 256 MiB value-log files mapped in
// memory (whose written pages count in the process's RSS until the file
// is rotated) — cost a member memory for nothing. With envelopes in the
// value log (ValueThreshold 512) a 4 MiB memtable still takes ~25,000
// envelopes between two flushes. Measured with `meshnode bench soak`: a
// member sending 20 messages a second for 5 minutes ended with 58 MiB of
// mapped files instead of 80.
func memberStoreParams() store.Params {
	p := store.DefaultParams()
	p.Badger.MemTableSize = 4 << 20
	p.Badger.NumMemtables = 2
	p.Badger.IndexCacheSize = 8 << 20
	p.Badger.ValueLogFileSize = 64 << 20
	p.Badger.BaseTableSize = 1 << 20
	// What Badger needs to open and flush these memtables on a full disk
	// (diskspace.go in store), with room to spare.
	p.Disk.BallastBytes = 16 << 20
	return p
}
