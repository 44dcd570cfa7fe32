package node

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/internal/lsm"
)

// memberDB is a member's private database: group secrets, decrypted
// messages, profiles, cursors. It is a separate Badger instance from the
// host store, encrypted at rest with the keystore's DataKey (Badger's
// AES-CTR encryption), so a stolen data directory without the passphrase
// reveals neither secrets nor plaintext.
//
// Key layout (gid = 16-byte group ID):
//
//	'G' gid                    → groupstate.Group binary (secrets included)
//	'L' gid                    → groupLocal JSON (own seq, heads, cursors)
//	'T' gid                    → groupstate.SeqTracker binary
//	'M' gid order(8) seq(8) id(32) → Message JSON (display order: the sent
//	                             time bounded by parents and arrival, then
//	                             the author's sequence; admission.go)
//	'I' gid id(32)             → order(8): envelope processed (dedupe; 0
//	                             for a refused one)
//	'P' gid author(32)         → profile JSON (nick, HPKE KEM and key)
//	'S' gid key(32) seq(8)     → sequence record: 32 envelope ‖ 32 digest ‖
//	                             8 order ‖ 8 epoch, per sequence space (the
//	                             author; a membership in a managed group)
//	'J' gid at(8) id(32) kind(1) → rejection log entry (rejections.go)
//	'U' gid id(32)             → outbox record of an own envelope:
//	                             pending (with the envelope), stored by
//	                             which hosts, or failed and why
//	                             (outbox_record.go)
//	'W' gid key(32) first(8)   → open gap notice: 8 last ‖ 8 missing ‖
//	                             the notice's 'M' key (gapnotice.go)
//	'V' gid key(32) seq(8)     → equivocation evidence (groupstate
//	                             encoding); 'V' gid "notice" author(32) →
//	                             time of the notice shown for the author
//	'r' gid                    → read marker JSON: the position of the
//	                             latest message read (readmarks.go)
//	'F' fingerprint (text)     → verified mark JSON: since when this person
//	                             marked that fingerprint verified (verified.go)
//
// Every prefix is one of the pfx constants below, and no two are equal
// (TestMemberDBPrefixesDistinct checks every pfx constant of the package).
//
// Managed groups (managed.go, rotation.go, welcome.go, bot.go):
//
//	'C' gid                    → groupstate.Chain binary (the state chain)
//	'O' gid event(32)          → state event binary whose parent is not
//	                             known yet (re-added to the chain at load)
//	'Q' gid author(32) id(32)  → deferred payload: 8 epoch ‖ payload
//	                             encoding, retried when the chain grows
//	'E' gid event(32)          → 32 envelope ‖ 8 epoch: the envelope that
//	                             carried a state event (evidence.go)
//	'R' gid request(32)        → manager request binary queued for the bot
//	                             (key: SHA-256 of the request)
//	'H' gid key(32)            → head claims of older versions (no longer
//	                             written; deleted with the group)
//	'X' gid key(32)            → split report JSON (key: SHA-256 of what
//	                             identifies the split, so it is reported once)
//	'K' kp(32)                 → pendingKeyPackage JSON: an own key package
//	                             whose welcome is awaited (key: SHA-256 of it)
//
//	'd' …                      → the contact records: package contacts owns
//	                             the namespace (contacts.Namespace) and its
//	                             layout (contacts/records.go)
type memberDB struct {
	db *badger.DB
	// compact compacts an in-memory database, which runs without
	// Badger's compactors (nil on disk).
	compact *lsm.Compactor
}

// memberL0Tables is the level-0 table count at which an in-memory member
// database is compacted (Badger's default NumLevelZeroTables).
const memberL0Tables = lsm.DefaultTables

const (
	pfxGroup   = 'G'
	pfxLocal   = 'L'
	pfxTracker = 'T'
	pfxMessage = 'M'
	pfxSeen    = 'I'
	pfxProfile = 'P'
	pfxSeq     = 'S'

	pfxOutbox       = 'U'
	pfxNotice       = 'W'
	pfxRejection    = 'J'
	pfxEquivocation = 'V'
	pfxEventEnv     = 'E'
	pfxReadMark     = 'r'
	pfxVerified     = 'F'

	pfxChain      = 'C'
	pfxOrphan     = 'O'
	pfxDeferred   = 'Q'
	pfxRequest    = 'R'
	pfxSplit      = 'X'
	pfxClaim      = 'H'
	pfxKeyPackage = 'K'

	// pfxContacts is the namespace of package contacts (equal to
	// contacts.Namespace, checked by TestMemberDBPrefixesDistinct).
	pfxContacts = 'd'
)

func openMemberDB(dir string, key []byte, inMemory bool, memTable int64) (*memberDB, error) {
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(true).
		// A member's database is small: a few MiB of tables suffice.
		WithMemTableSize(memTable).
		// Values up to a tenth of a memtable stay in the LSM tree
		// (messages are small); Badger requires it below its batch size.
		WithValueThreshold(min(64<<10, memTable/10)).
		WithNumMemtables(2).
		WithBlockCacheSize(4 << 20).
		WithNumCompactors(2).
		WithCompression(options.None)
	if inMemory {
		// In memory Badger refuses values above the threshold instead of
		// moving them to a value log, and an outbox record holds a whole
		// envelope (up to 64 KiB): raise it to what one transaction may
		// carry (15% of a memtable), at most Badger's 1 MiB.
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true).
			WithValueThreshold(min(1<<20, memTable*15/100-4<<10))
		if len(key) == 0 {
			// Nothing to decrypt or decompress: a block cache would only
			// cost its ristretto counters (about 0.4 MiB per database,
			// which a simulator of thousands of nodes pays per node).
			opts = opts.WithBlockCacheSize(0)
		}
		// No compactor goroutines: Badger's wake every 50 ms each, written
		// to or not, and a simulator runs thousands of member databases in
		// one process. The member loop compacts on demand (what processing
		// writes, in processMailbox,
		// and a look at every processing tick).
		opts = lsm.Options(opts, memberL0Tables)
	}
	if len(key) > 0 {
		// Encryption needs an index cache (Badger requirement).
		opts = opts.WithEncryptionKey(key).WithIndexCacheSize(4 << 20)
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("node: open member database: %w", err)
	}
	mdb := &memberDB{db: db}
	if inMemory {
		mdb.compact = lsm.New(db, memberL0Tables, memTable, nil)
	}
	return mdb, nil
}

// Close waits for a running compaction, then closes the database.
func (m *memberDB) Close() error {
	m.compact.Close()
	return m.db.Close()
}

func gkey(pfx byte, g groupstate.GroupID, rest ...[]byte) []byte {
	k := append([]byte{pfx}, g[:]...)
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (m *memberDB) get(key []byte) ([]byte, error) {
	var out []byte
	err := m.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	return out, err
}

// scan calls fn for every key with prefix, in key order.
func (m *memberDB) scan(prefix []byte, fn func(k, v []byte) error) error {
	return m.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(it.Item().KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("stop scan")

// scanReverse calls fn for every key with prefix, in reverse key order; fn
// may return errStopScan to stop.
func (m *memberDB) scanReverse(prefix []byte, fn func(k, v []byte) error) error {
	return m.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		// In reverse, Seek finds the largest key <= its argument: start past
		// every key with the prefix (no key of ours is 128 bytes longer
		// than its prefix).
		seek := append(append([]byte(nil), prefix...), bytes.Repeat([]byte{0xff}, 128)...)
		for it.Seek(seek); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(it.Item().KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// groupLocal is a member's own bookkeeping for a group.
type groupLocal struct {
	Nick string `json:"nick"`
	// NextSeq is the per-author sequence number of the next own message.
	NextSeq uint64 `json:"next_seq"`
	// Heads are the IDs of the latest envelopes seen (causal parents).
	Heads []envelope.ID `json:"heads"`
	// Local is the cursor into this node's own store, per mailbox (hex).
	Local map[string][]byte `json:"local"`
	// Hosts are cursors per "peer/mailbox" for catch-up from other hosts.
	Hosts map[string][]byte `json:"hosts"`
	// Reported gaps (author hex → highest missing seq reported), so each
	// unfillable gap is announced once.
	Reported map[string]uint64 `json:"reported,omitempty"`
	// EpochMsgs counts the text and direct messages seen in the current
	// epoch (a managed group's rotate-after policy).
	EpochMsgs uint64 `json:"epoch_msgs,omitempty"`
	// Removed is set when this member learns it was removed from a
	// managed group; it keeps what it had and reads nothing new.
	Removed bool `json:"removed,omitempty"`
	// Membership is this member's membership of an open group (32 random
	// bytes drawn when it created or joined it; its payloads carry it as
	// their state head: groupstate.OpenSeqSpace). Empty for a managed
	// group, and for an open group joined before memberships existed.
	Membership []byte `json:"membership,omitempty"`
}

func decodeLocal(b []byte) (*groupLocal, error) {
	l := &groupLocal{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, l); err != nil {
			return nil, fmt.Errorf("%w: group bookkeeping: %v", ErrCorrupt, err)
		}
	}
	if l.NextSeq == 0 {
		l.NextSeq = 1
	}
	if l.Local == nil {
		l.Local = map[string][]byte{}
	}
	if l.Hosts == nil {
		l.Hosts = map[string][]byte{}
	}
	if l.Reported == nil {
		l.Reported = map[string]uint64{}
	}
	if len(l.Heads) > groupstate.MaxParents {
		return nil, fmt.Errorf("%w: %d heads", ErrCorrupt, len(l.Heads))
	}
	if len(l.Membership) != 0 && len(l.Membership) != 32 {
		return nil, fmt.Errorf("%w: a membership of %d bytes", ErrCorrupt, len(l.Membership))
	}
	return l, nil
}

// profileRec is what a member knows of another member from its profile
// messages.
type profileRec struct {
	Nick      string `json:"nick"`
	KEM       uint16 `json:"kem"`
	PublicKey []byte `json:"public_key"`
}

func decodeProfileRec(b []byte) (*profileRec, error) {
	p := &profileRec{}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%w: profile: %v", ErrCorrupt, err)
	}
	return p, nil
}

func decodeMessage(b []byte) (*Message, error) {
	msg := &Message{}
	if err := json.Unmarshal(b, msg); err != nil {
		return nil, fmt.Errorf("%w: message: %v", ErrCorrupt, err)
	}
	return msg, nil
}
