package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// Admission budgets: how the store protects established mailboxes from
// whoever creates new ones (issue 14; ARCHITECTURE §11).
//
// A mailbox is established once it was created EstablishAfter ago or more
// and EstablishMinEnvelopes envelopes have been stored in it (its writers
// have a history here); mailboxes that already held envelopes before this
// store recorded creation times count as created long ago. Until then it
// is new, and:
//
//   - its bytes are capped by NewMailboxQuotaBytes (as well as by its
//     policy's quota);
//   - it may not use the last ReserveFraction of GlobalQuotaBytes: a Put
//     that would take the store past (1-ReserveFraction)·GlobalQuotaBytes
//     is refused (ErrQuotaExceeded, ErrReserved), so the host's nearing
//     its quota refuses new mailboxes long before established ones;
//   - it is evicted first: when a Put to an established mailbox would
//     exceed GlobalQuotaBytes, the writer removes envelopes of the newest
//     new mailboxes (newest mailbox first, its oldest envelopes first,
//     with tombstones, in the same transaction) until the Put fits, so an
//     established mailbox loses no write while new mailboxes hold data.
//
// Creation times are kept in one record per mailbox, written with its
// first envelope:
//
//	"a" ‖ mailbox    version(1)=1 ‖ created(8): Unix nanoseconds      9 bytes
//
// and mirrored in memory (admIndex), so Standing costs no Badger read.

// prefixAdmission keys the admission record of a mailbox.
const prefixAdmission = 'a'

const (
	admissionVersion = 1
	admissionSize    = 1 + 8
)

// evictPressure labels evictions that made room for an established
// mailbox (meshnode_store_evictions_total).
const evictPressure = "pressure"

// Rejection reasons of the admission budgets.
const (
	reasonQuotaNew     = "quota_new_mailbox"
	reasonQuotaReserve = "quota_reserved"
)

// maxPressureVictims bounds the envelopes one Put may evict to make room.
const maxPressureVictims = 1024

var (
	// ErrNewMailboxQuota: a new mailbox is at NewMailboxQuotaBytes. It
	// is returned wrapped together with ErrQuotaExceeded.
	ErrNewMailboxQuota = errors.New("store: a new mailbox's byte budget is spent")
	// ErrReserved: the rest of the global quota is reserved for
	// established mailboxes. Returned wrapped with ErrQuotaExceeded.
	ErrReserved = errors.New("store: the rest of the quota is reserved for established mailboxes")
	// ErrStoreFull: the global quota is reached. Returned wrapped with
	// ErrQuotaExceeded (a mailbox's own quota is ErrQuotaExceeded alone).
	ErrStoreFull = errors.New("store: the host's store is full")
)

// AdmissionParams protect established mailboxes (see above). The zero
// value turns every budget off.
type AdmissionParams struct {
	EstablishAfter        time.Duration
	EstablishMinEnvelopes uint64
	// NewMailboxQuotaBytes caps a new mailbox's bytes (0: no cap).
	NewMailboxQuotaBytes int64
	// ReserveFraction of GlobalQuotaBytes is for established mailboxes
	// only (0: none). In [0, 1).
	ReserveFraction float64
}

// DefaultAdmissionParams: a day and four envelopes make a mailbox
// established; a new one may hold 16 MiB; a quarter of the global quota is
// reserved.
func DefaultAdmissionParams() AdmissionParams {
	return AdmissionParams{
		EstablishAfter:        24 * time.Hour,
		EstablishMinEnvelopes: 4,
		NewMailboxQuotaBytes:  16 << 20,
		ReserveFraction:       0.25,
	}
}

func (a AdmissionParams) validate() error {
	switch {
	case a.EstablishAfter < 0 || a.NewMailboxQuotaBytes < 0:
		return fmt.Errorf("%w: negative admission budget (0 means none)", ErrInvalidParams)
	case a.ReserveFraction < 0 || a.ReserveFraction >= 1:
		return fmt.Errorf("%w: Admission.ReserveFraction %v outside [0, 1)", ErrInvalidParams, a.ReserveFraction)
	}
	return nil
}

// Standing is what the store knows of a mailbox, for admission.
type Standing uint8

const (
	// StandingUnknown: nothing was ever stored in the mailbox.
	StandingUnknown Standing = iota
	// StandingNew: stored, but not established.
	StandingNew
	// StandingEstablished: created EstablishAfter ago and holding a
	// history of EstablishMinEnvelopes.
	StandingEstablished
)

func (s Standing) String() string {
	switch s {
	case StandingNew:
		return "new"
	case StandingEstablished:
		return "established"
	}
	return "unknown"
}

// admEntry is the in-memory admission state of a mailbox.
type admEntry struct {
	created int64  // Unix ns; 0: before creation times were recorded
	stored  uint64 // envelopes ever stored (the state's next-1)
}

// admIndex mirrors every mailbox's admission state for readers. The
// writer updates it after each commit; fresh (creation order of
// mailboxes that may still be new) belongs to the writer alone.
type admIndex struct {
	mu sync.RWMutex
	m  map[envelope.MailboxID]admEntry

	// Writer-owned: the mailboxes that may still be new, oldest first
	// (eviction candidates), and the same as a set.
	fresh   []envelope.MailboxID
	inFresh map[envelope.MailboxID]struct{}
	added   int // additions since fresh was last swept of established mailboxes
}

// addFresh appends m to the eviction candidates unless it is one.
func (idx *admIndex) addFresh(m envelope.MailboxID) {
	if _, ok := idx.inFresh[m]; ok {
		return
	}
	idx.inFresh[m] = struct{}{}
	idx.fresh = append(idx.fresh, m)
	idx.added++
}

func (a AdmissionParams) established(e admEntry, now time.Time) bool {
	return e.stored >= a.EstablishMinEnvelopes && e.created+int64(a.EstablishAfter) <= now.UnixNano()
}

// Standing reports the admission standing of m now.
func (s *Store) Standing(m envelope.MailboxID) Standing {
	s.adm.mu.RLock()
	e, ok := s.adm.m[m]
	s.adm.mu.RUnlock()
	switch {
	case !ok || e.stored == 0:
		return StandingUnknown
	case s.p.Admission.established(e, s.cfg.now()):
		return StandingEstablished
	}
	return StandingNew
}

// AdmissionUsage describes the store against its admission budgets.
type AdmissionUsage struct {
	// NewLimitBytes is where new mailboxes stop: the global quota less
	// the reserve (0: no global quota).
	NewLimitBytes int64
	// Bytes is what the store holds (as Usage).
	Bytes int64
	// NewRefused: the store is past NewLimitBytes, so new mailboxes'
	// Puts are refused now.
	NewRefused bool
}

// AdmissionUsage returns the store's state against its admission budgets.
func (s *Store) AdmissionUsage() AdmissionUsage {
	u := AdmissionUsage{Bytes: s.usageBytes.Load(), NewLimitBytes: s.newLimit()}
	u.NewRefused = u.NewLimitBytes > 0 && u.Bytes >= u.NewLimitBytes
	return u
}

// newLimit is the most bytes the store may hold when a new mailbox's Put
// is accepted (0: no limit).
func (s *Store) newLimit() int64 {
	q := s.p.GlobalQuotaBytes
	if q <= 0 {
		return 0
	}
	return q - int64(float64(q)*s.p.Admission.ReserveFraction)
}

func admissionKey(m envelope.MailboxID) []byte { return mailboxKey(prefixAdmission, m) }

func encodeAdmission(created int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{admissionVersion}, uint64(created))
}

func decodeAdmission(b []byte) (int64, error) {
	if len(b) != admissionSize || b[0] != admissionVersion {
		return 0, fmt.Errorf("%w: admission record of %d bytes, version %d", ErrCorrupt, len(b), firstByte(b))
	}
	created := int64(binary.BigEndian.Uint64(b[1:]))
	if created < 0 {
		return 0, fmt.Errorf("%w: admission record created at %d", ErrCorrupt, created)
	}
	return created, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// loadAdmission builds the admission index from the mailbox states and the
// admission records, at Open.
func loadAdmission(db *badger.DB, states map[envelope.MailboxID]*mailboxState, p AdmissionParams, now time.Time) (*admIndex, error) {
	idx := &admIndex{m: make(map[envelope.MailboxID]admEntry, len(states)), inFresh: map[envelope.MailboxID]struct{}{}}
	for m, st := range states {
		idx.m[m] = admEntry{stored: st.next - 1}
	}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte{prefixAdmission}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != mailboxKeySize {
				return fmt.Errorf("%w: admission key of %d bytes", ErrCorrupt, len(k))
			}
			var m envelope.MailboxID
			copy(m[:], k[1:])
			var created int64
			if err := it.Item().Value(func(b []byte) (err error) { created, err = decodeAdmission(b); return err }); err != nil {
				return fmt.Errorf("mailbox %s: %w", m.Short(), err)
			}
			e := idx.m[m]
			e.created = created
			idx.m[m] = e
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: loading admission records: %w", err)
	}
	type fresh struct {
		m       envelope.MailboxID
		created int64
	}
	var fs []fresh
	for m, e := range idx.m {
		if e.created > 0 && !p.established(e, now) {
			fs = append(fs, fresh{m, e.created})
		}
	}
	slices.SortFunc(fs, func(a, b fresh) int {
		switch {
		case a.created < b.created:
			return -1
		case a.created > b.created:
			return 1
		}
		return 0
	})
	for _, f := range fs {
		idx.addFresh(f.m)
	}
	return idx, nil
}

// batchAdmission is what one batch did for admission: mailboxes created
// (their admission record written) in it.
type batchAdmission struct {
	created map[envelope.MailboxID]int64
}

// entry returns the admission state of m as the batch sees it.
func (b *batch) admEntry(m envelope.MailboxID, st *mailboxState) admEntry {
	idx := b.w.s.adm
	idx.mu.RLock()
	e := idx.m[m]
	idx.mu.RUnlock()
	if c, ok := b.adm.created[m]; ok {
		e.created = c
	}
	e.stored = st.next - 1
	return e
}

// admit applies the admission budgets to a Put of size bytes into m
// (state st) before the quota checks. A refusal is returned with
// stop=true; err aborts the batch (a Badger failure while evicting).
func (b *batch) admit(m envelope.MailboxID, st *mailboxState, size int64, now time.Time) (out outcome, stop bool, err error) {
	s := b.w.s
	a := s.p.Admission
	used := b.w.usage.bytes + b.delta.bytes
	if st.next > 1 && a.established(b.admEntry(m, st), now) {
		if q := s.p.GlobalQuotaBytes; q > 0 && used+size > q {
			if err := b.makeRoom(used+size-q, now); err != nil {
				return outcome{}, false, err
			}
		}
		return outcome{}, false, nil
	}
	if q := a.NewMailboxQuotaBytes; q > 0 && int64(st.bytes)+size > q {
		return b.reject(reasonQuotaNew, fmt.Errorf("%w: %w: mailbox %s holds %d bytes, +%d exceeds %d until it is established",
			ErrQuotaExceeded, ErrNewMailboxQuota, m.Short(), st.bytes, size, q)), true, nil
	}
	if limit := s.newLimit(); limit > 0 && used+size > limit {
		return b.reject(reasonQuotaReserve, fmt.Errorf("%w: %w: store holds %d bytes, +%d exceeds the %d open to new mailboxes",
			ErrQuotaExceeded, ErrReserved, used, size, limit)), true, nil
	}
	return outcome{}, false, nil
}

// noteCreated writes m's admission record if this Put is its first
// envelope ever (st is the state before the Put).
func (b *batch) noteCreated(m envelope.MailboxID, st *mailboxState, now time.Time) error {
	if st.next != 1 {
		return nil
	}
	if _, ok := b.adm.created[m]; ok {
		return nil
	}
	idx := b.w.s.adm
	idx.mu.RLock()
	_, known := idx.m[m]
	created := idx.m[m].created
	idx.mu.RUnlock()
	if known && created > 0 {
		return nil
	}
	if b.adm.created == nil {
		b.adm.created = map[envelope.MailboxID]int64{}
	}
	b.adm.created[m] = now.UnixNano()
	return b.txn.Set(admissionKey(m), encodeAdmission(now.UnixNano()))
}

// makeRoom evicts envelopes of the newest mailboxes that are not
// established, newest mailbox first, until need bytes are freed or
// nothing new is left (then the global quota check refuses the Put).
func (b *batch) makeRoom(need int64, now time.Time) error {
	idx := b.w.s.adm
	freed := int64(0)
	victims := 0
	for i := len(idx.fresh) - 1; i >= 0 && freed < need && victims < maxPressureVictims; i-- {
		m := idx.fresh[i]
		cur, ok := b.states[m]
		if !ok {
			cur = b.w.states[m]
		}
		if cur == nil || cur.count == 0 || b.w.s.p.Admission.established(b.admEntry(m, cur), now) {
			continue
		}
		st := b.state(m)
		vs, err := b.pressureVictims(m, st, need-freed, maxPressureVictims-victims)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				b.w.s.log.Warn("cannot evict from a corrupt mailbox to make room", "mailbox", m.Short(), "err", err)
				continue
			}
			return err
		}
		expiry := encodeTombstone(now.Add(b.w.s.p.tombstoneTTL()).UnixNano())
		for _, v := range vs {
			for _, err := range []error{
				b.txn.Delete(arrivalKey(m, v.seq)),
				b.txn.Delete(indexKey(m, v.id)),
				b.txn.Set(tombstoneKey(m, v.id), expiry),
			} {
				if err != nil {
					return err
				}
			}
			st.count--
			st.bytes -= v.size
			st.floor = v.seq
			st.tombstones++
			b.delta.count--
			b.delta.bytes -= int64(v.size)
			b.delta.tombstones++
			b.evictions[evictPressure]++
			freed += int64(v.size)
			victims++
		}
		if len(vs) > 0 {
			b.dirty[m] = true
		}
	}
	return nil
}

// pressureVictims are m's oldest envelopes, at most max of them, enough
// to free need bytes (or all of them).
func (b *batch) pressureVictims(m envelope.MailboxID, st *mailboxState, need int64, max int) ([]victim, error) {
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: mailboxKey(prefixArrival, m)})
	defer it.Close()
	var out []victim
	freed := int64(0)
	want := st.floor + 1
	for it.Seek(arrivalKey(m, want)); it.Valid() && len(out) < max && freed < need; it.Next() {
		seq, err := seqFromArrivalKey(it.Item().Key())
		if err != nil {
			return nil, err
		}
		if seq != want {
			return nil, fmt.Errorf("%w: arrival sequence %d where %d was expected", ErrCorrupt, seq, want)
		}
		v := victim{seq: seq, reason: evictPressure}
		err = it.Item().Value(func(val []byte) error {
			id, _, raw, err := decodeArrivalHeader(val)
			v.id, v.size = id, uint64(len(raw))
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		freed += int64(v.size)
		want++
	}
	return out, nil
}

// installAdmission publishes a committed batch's admission changes: the
// envelopes-ever counts of its mailboxes and the mailboxes it created.
// Called by the writer after the commit.
func (w *writer) installAdmission(b *batch) {
	idx := w.s.adm
	idx.mu.Lock()
	for m := range b.dirty {
		e := idx.m[m]
		e.stored = b.states[m].next - 1
		if c, ok := b.adm.created[m]; ok {
			e.created = c
		}
		idx.m[m] = e
	}
	idx.mu.Unlock()
	// Creation order is commit order within the writer: the batch's new
	// mailboxes go last. A mailbox emptied and dropped from the list
	// (below) comes back when it is written to again.
	for m := range b.adm.created {
		idx.addFresh(m)
	}
	now := w.s.cfg.now()
	for m := range b.dirty {
		if _, created := b.adm.created[m]; !created && b.states[m].count > 0 {
			if _, ok := idx.inFresh[m]; !ok && idx.m[m].created > 0 && !w.s.p.Admission.established(idx.m[m], now) {
				idx.addFresh(m)
			}
		}
	}
	// Keep the list to the mailboxes that can still be evicted: drop the
	// empty ones at its end, and now and then every established one.
	for n := len(idx.fresh); n > 0; n = len(idx.fresh) {
		m := idx.fresh[n-1]
		if st := w.states[m]; st != nil && st.count > 0 {
			break
		}
		idx.fresh = idx.fresh[:n-1]
		delete(idx.inFresh, m)
	}
	if idx.added >= 1024 {
		idx.added = 0
		idx.fresh = slices.DeleteFunc(idx.fresh, func(m envelope.MailboxID) bool {
			if w.s.p.Admission.established(idx.m[m], now) {
				delete(idx.inFresh, m)
				return true
			}
			return false
		})
	}
}

// ValidateParams checks p as Open would.
func ValidateParams(p Params) error { return p.validate() }
