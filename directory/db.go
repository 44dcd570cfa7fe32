package directory

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

// record is everything a host keeps for one name hash: the owner key, the
// last accepted signed timestamp, the expiry, the request mailboxes and
// the opaque package blobs. A removed name is a tombstone (no mailboxes,
// no blobs) until MaxSkew has passed.
//
// Badger layout: 'n' ‖ H (33 bytes) → record encoding:
//
//	1   version (0x01)
//	32  owner Ed25519 public key
//	8   last signed timestamp, Unix milliseconds
//	8   expires, Unix seconds
//	1   M, then M × 32 request mailbox tags
//	1   B, then B × (2-byte length ‖ blob)
type record struct {
	owner     ed25519.PublicKey
	lastTS    int64
	expires   int64
	mailboxes []envelope.MailboxID
	blobs     [][]byte
}

const (
	recordVersion = 1
	prefixName    = 'n'
)

func nameKey(h keymgmt.NameHash) []byte { return append([]byte{prefixName}, h[:]...) }

func (r *record) live(now time.Time) bool { return now.Unix() < r.expires }

func (r *record) marshal() []byte {
	n := 1 + 32 + 8 + 8 + 1 + 32*len(r.mailboxes) + 1
	for _, b := range r.blobs {
		n += 2 + len(b)
	}
	out := make([]byte, 0, n)
	out = append(out, recordVersion)
	out = append(out, r.owner...)
	out = binary.BigEndian.AppendUint64(out, uint64(r.lastTS))
	out = binary.BigEndian.AppendUint64(out, uint64(r.expires))
	out = append(out, byte(len(r.mailboxes)))
	for _, m := range r.mailboxes {
		out = append(out, m[:]...)
	}
	out = append(out, byte(len(r.blobs)))
	for _, b := range r.blobs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out
}

// parseRecord decodes a stored record within the absolute bounds.
func parseRecord(b []byte) (*record, error) {
	c := &cursor{b: b, ok: true}
	if v := c.u8(); c.ok && v != recordVersion {
		return nil, fmt.Errorf("%w: directory record version %d", ErrMalformed, v)
	}
	r := &record{owner: ed25519.PublicKey(clone(c.take(ed25519.PublicKeySize))), lastTS: c.i64(), expires: c.i64()}
	nm := c.u8()
	if nm > AbsMaxMailboxes {
		return nil, fmt.Errorf("%w: record with %d mailboxes", ErrMalformed, nm)
	}
	for range nm {
		var m envelope.MailboxID
		copy(m[:], c.take(32))
		r.mailboxes = append(r.mailboxes, m)
	}
	nb := c.u8()
	if nb > AbsMaxBlobs {
		return nil, fmt.Errorf("%w: record with %d blobs", ErrMalformed, nb)
	}
	for range nb {
		n := c.u16()
		if c.ok && (n < minBlobSize || n > AbsMaxBlobSize) {
			return nil, fmt.Errorf("%w: record blob of %d bytes", ErrMalformed, n)
		}
		r.blobs = append(r.blobs, clone(c.take(n)))
	}
	if !c.ok || len(c.b) != 0 {
		return nil, fmt.Errorf("%w: directory record of %d bytes is truncated or has trailing data", ErrMalformed, len(b))
	}
	return r, nil
}

// db is the host's directory storage: a small Badger database of its own.
// One mutex serialises every read-modify-write, so the name count and the
// mailbox reference counts always match what is stored, and the mailbox
// hook sees changes in commit order.
type db struct {
	bdb  *badger.DB
	hook MailboxHook

	mu     sync.Mutex
	closed bool
	names  int
	// refs counts the live names listing each request mailbox.
	refs map[envelope.MailboxID]int
}

func openDB(dir string, inMemory bool, hook MailboxHook, now time.Time) (*db, error) {
	if !inMemory && dir == "" {
		return nil, fmt.Errorf("%w: a directory for the host's directory database is required unless it is in memory", ErrInvalidParams)
	}
	o := badger.DefaultOptions(dir)
	if inMemory {
		o = badger.DefaultOptions("").WithInMemory(true)
	}
	o = o.WithLogger(nil).
		// A publish is acknowledged only once it is on disk.
		WithSyncWrites(!inMemory).
		// One mutex serialises writers (see db).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		// Records are small (at most ~70 KiB with default Params) and few:
		// 1 MiB memtables keep the footprint small next to the store.
		WithMemTableSize(1 << 20).
		WithNumMemtables(2).
		WithValueThreshold(64 << 10).
		WithBlockCacheSize(1 << 20).
		WithNumCompactors(2).
		WithValueLogFileSize(16 << 20).
		WithMetricsEnabled(false).
		WithNumGoroutines(1).
		WithCompression(options.None)
	bdb, err := badger.Open(o)
	if err != nil {
		return nil, fmt.Errorf("directory: open database: %w", err)
	}
	d := &db{bdb: bdb, hook: hook, refs: map[envelope.MailboxID]int{}}
	// Load the live names and drop the expired ones (without telling the
	// hook about them: it never heard of them in this process).
	var expired [][]byte
	var added []envelope.MailboxID
	err = d.each(func(h keymgmt.NameHash, r *record) error {
		if !r.live(now) {
			expired = append(expired, nameKey(h))
			return nil
		}
		d.names++
		for _, m := range r.mailboxes {
			if d.refs[m] == 0 {
				added = append(added, m)
			}
			d.refs[m]++
		}
		return nil
	})
	if err == nil && len(expired) > 0 {
		err = bdb.Update(func(txn *badger.Txn) error {
			for _, k := range expired {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("directory: load names: %w", err)
	}
	if d.hook != nil && len(added) > 0 {
		d.hook(added, nil)
	}
	return d, nil
}

func (d *db) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.bdb.Close()
}

// each calls fn for every stored record (any state), in key order.
func (d *db) each(fn func(keymgmt.NameHash, *record) error) error {
	return d.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixName}, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var h keymgmt.NameHash
			k := it.Item().Key()
			if len(k) != 1+len(h) {
				return fmt.Errorf("%w: directory key of %d bytes", ErrMalformed, len(k))
			}
			copy(h[:], k[1:])
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			r, err := parseRecord(v)
			if err != nil {
				return fmt.Errorf("name %x: %w", h[:4], err)
			}
			if err := fn(h, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// get loads a record; nil if there is none. Call with d.mu held.
func (d *db) get(h keymgmt.NameHash) (*record, error) {
	var r *record
	err := d.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(nameKey(h))
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		r, err = parseRecord(v)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	return r, err
}

// put stores r under h (nil deletes it) and updates the name count and
// mailbox references from old to r. Call with d.mu held.
func (d *db) put(h keymgmt.NameHash, old, r *record) error {
	err := d.bdb.Update(func(txn *badger.Txn) error {
		if r == nil {
			return txn.Delete(nameKey(h))
		}
		return txn.Set(nameKey(h), r.marshal())
	})
	if err != nil {
		return fmt.Errorf("%w: store name: %v", ErrUnavailable, err)
	}
	switch {
	case old == nil && r != nil:
		d.names++
	case old != nil && r == nil:
		d.names--
	}
	d.relist(old, r)
	return nil
}

// relist moves mailbox references from old's list to r's and tells the
// hook about mailboxes that appeared or disappeared.
func (d *db) relist(old, r *record) {
	var added, removed []envelope.MailboxID
	if r != nil {
		for _, m := range r.mailboxes {
			if d.refs[m] == 0 {
				added = append(added, m)
			}
			d.refs[m]++
		}
	}
	if old != nil {
		for _, m := range old.mailboxes {
			if d.refs[m]--; d.refs[m] <= 0 {
				delete(d.refs, m)
				removed = append(removed, m)
			}
		}
	}
	// A mailbox both added and removed was listed before and after.
	added, removed = without(added, removed), without(removed, added)
	if d.hook != nil && (len(added) > 0 || len(removed) > 0) {
		d.hook(added, removed)
	}
}

func without(a, b []envelope.MailboxID) []envelope.MailboxID {
	var out []envelope.MailboxID
	for _, m := range a {
		found := false
		for _, x := range b {
			if x == m {
				found = true
				break
			}
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}

// checkTS checks a signed request's timestamp against the clock.
func checkTS(ts int64, now time.Time, skew time.Duration) error {
	if d := time.Duration(ts-now.UnixMilli()) * time.Millisecond; d > skew || d < -skew {
		return fmt.Errorf("%w: request time is %v away from the host's clock (at most %v); check the clock", ErrStale, d.Round(time.Second), skew)
	}
	return nil
}

// owned loads h's live record and checks that q is from its owner and, if
// fresh, newer than the last signed request. Call with d.mu held.
func (d *db) owned(q *request, now time.Time, fresh bool) (*record, error) {
	r, err := d.get(q.name)
	if err != nil {
		return nil, err
	}
	if r == nil || !r.live(now) {
		return r, nil
	}
	if !bytes.Equal(r.owner, q.owner) {
		return nil, fmt.Errorf("%w: this name is registered to another owner key on this host", ErrNotOwner)
	}
	if fresh && q.ts <= r.lastTS {
		return nil, fmt.Errorf("%w: a request as new or newer was already accepted for this name", ErrStale)
	}
	return r, nil
}

// publish replaces h's packages and mailboxes (registering the owner on
// first use, or when the previous registration expired).
func (d *db) publish(q *request, now time.Time, p Params) error {
	if err := checkTS(q.ts, now, p.MaxSkew); err != nil {
		return err
	}
	if exp := time.Unix(q.expires, 0); !exp.After(now) {
		return fmt.Errorf("%w: packages expire at %s, before the host's time", ErrStale, exp.UTC().Format(time.RFC3339))
	} else if exp.Sub(now) > p.MaxTTL {
		return fmt.Errorf("%w: packages expire in %v, this host keeps them at most %v", ErrTooLarge, exp.Sub(now).Round(time.Second), p.MaxTTL)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	old, err := d.owned(q, now, true)
	if err != nil {
		return err
	}
	if old == nil && d.names >= p.MaxNames {
		return fmt.Errorf("%w: %d names", ErrFull, d.names)
	}
	r := &record{owner: q.owner, lastTS: q.ts, expires: q.expires, mailboxes: q.mailboxes, blobs: q.blobs}
	return d.put(q.name, old, r)
}

// take hands out one package of h and consumes it, unless it is the last
// one, which stays as a last resort until the owner replaces it.
func (d *db) take(h keymgmt.NameHash, now time.Time) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	r, err := d.get(h)
	if err != nil {
		return nil, err
	}
	if r == nil || !r.live(now) || len(r.blobs) == 0 {
		return nil, ErrUnknownName
	}
	blob := r.blobs[0]
	if len(r.blobs) > 1 {
		next := *r
		next.blobs = r.blobs[1:]
		if err := d.put(h, r, &next); err != nil {
			return nil, err
		}
	}
	return blob, nil
}

// remove turns h into a tombstone that keeps the owner and the last
// timestamp for MaxSkew, so a replayed publish cannot bring it back.
func (d *db) remove(q *request, now time.Time, p Params) error {
	if err := checkTS(q.ts, now, p.MaxSkew); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	old, err := d.owned(q, now, true)
	if err != nil {
		return err
	}
	if old == nil || !old.live(now) || len(old.blobs) == 0 {
		return ErrUnknownName
	}
	tomb := &record{owner: old.owner, lastTS: q.ts, expires: now.Add(p.MaxSkew).Unix() + 1}
	return d.put(q.name, old, tomb)
}

// status reports how many packages h has left and when they expire.
func (d *db) status(q *request, now time.Time, p Params) (int, int64, error) {
	if err := checkTS(q.ts, now, p.MaxSkew); err != nil {
		return 0, 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, 0, ErrClosed
	}
	r, err := d.owned(q, now, false)
	if err != nil {
		return 0, 0, err
	}
	if r == nil || !r.live(now) || len(r.blobs) == 0 {
		return 0, 0, ErrUnknownName
	}
	return len(r.blobs), r.expires, nil
}

// sweep deletes expired records (tombstones included).
func (d *db) sweep(now time.Time) (int, error) {
	var expired []keymgmt.NameHash
	err := d.each(func(h keymgmt.NameHash, r *record) error {
		if !r.live(now) {
			expired = append(expired, h)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	removed := 0
	for _, h := range expired {
		if d.closed {
			return removed, ErrClosed
		}
		r, err := d.get(h)
		if err != nil {
			return removed, err
		}
		if r == nil || r.live(now) { // republished meanwhile
			continue
		}
		if err := d.put(h, r, nil); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// count is the number of names held (tombstones included).
func (d *db) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.names
}
