package contacts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Store reads and writes the contact records, in their namespace of the
// member database (records.go) and nowhere else. It holds no lock: the
// caller's contact lock orders read-modify-writes.
type Store struct {
	db *badger.DB
}

// NewStore keeps the contact records in db (the member database).
func NewStore(db *badger.DB) *Store { return &Store{db: db} }

// DB is the database the records are in, for the transactions that still
// span several kinds of record (the quarantine and pruning, in node).
func (s *Store) DB() *badger.DB { return s.db }

// Get returns the value under key, nil if there is none.
func (s *Store) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
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
func (s *Store) scan(prefix []byte, fn func(k, v []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
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

func (s *Store) putJSON(key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, b) })
}

// Name returns the record of a published name, nil if there is none.
func (s *Store) Name(name string) (*NameRec, error) {
	b, err := s.Get(Key(KeyName, []byte(name)))
	if err != nil || b == nil {
		return nil, err
	}
	return DecodeNameRec(b)
}

// PutName writes a name's record.
func (s *Store) PutName(rec *NameRec) error { return s.putJSON(Key(KeyName, []byte(rec.Name)), rec) }

// Names returns every published name.
func (s *Store) Names() ([]*NameRec, error) {
	var out []*NameRec
	err := s.scan(Key(KeyName), func(k, v []byte) error {
		rec, err := DecodeNameRec(v)
		if err != nil {
			return fmt.Errorf("name %q: %w", k[2:], err)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

// DeleteName forgets a name and its package secrets: requests sent
// through it are not read any more.
func (s *Store) DeleteName(rec *NameRec) error {
	return s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(Key(KeyName, []byte(rec.Name))); err != nil {
			return err
		}
		return DeleteSecretsTxn(txn, func(sr *SecretRec) bool { return sr.Kind == rec.Kind && sr.Name == rec.Name })
	})
}

// PutSecrets keeps the HPKE secrets of packages, by key ID.
func (s *Store) PutSecrets(secrets []SecretRec) error {
	return s.db.Update(func(txn *badger.Txn) error {
		for _, sr := range secrets {
			sec, err := keymgmt.ParseConnSecret(sr.Secret)
			if err != nil {
				return err
			}
			id := sec.KeyID()
			b, err := json.Marshal(&sr)
			if err != nil {
				return err
			}
			if err := txn.Set(Key(KeySecret, id[:]), b); err != nil {
				return err
			}
		}
		return nil
	})
}

// RaiseProofBits raises to bits the proof of work the live package
// secrets of rec's name ask for (those asking for less).
func (s *Store) RaiseProofBits(rec *NameRec, bits uint8) error {
	return s.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: Key(KeySecret), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			sr, _, err := DecodeSecretRec(v)
			if err != nil || sr.Kind != rec.Kind || sr.Name != rec.Name || sr.ProofBits >= bits {
				continue
			}
			sr.ProofBits = bits
			b, err := json.Marshal(sr)
			if err != nil {
				return err
			}
			if err := txn.Set(it.Item().KeyCopy(nil), b); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteSecretsTxn deletes the package secrets match selects, and those
// that do not decode (of no use to anyone).
func DeleteSecretsTxn(txn *badger.Txn, match func(*SecretRec) bool) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: Key(KeySecret), PrefetchValues: true})
	var del [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			it.Close()
			return err
		}
		if sr, _, err := DecodeSecretRec(v); err != nil || match(sr) {
			del = append(del, it.Item().KeyCopy(nil))
		}
	}
	it.Close()
	for _, k := range del {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// PutContact writes a contact's record, under its connection group.
func (s *Store) PutContact(rec *ContactRec) error {
	gid, err := groupstate.ParseGroupID(rec.Group)
	if err != nil {
		return err
	}
	return s.putJSON(Key(KeyContact, gid[:]), rec)
}

// Contacts returns every contact's record.
func (s *Store) Contacts() ([]*ContactRec, error) {
	var recs []*ContactRec
	err := s.scan(Key(KeyContact), func(_, v []byte) error {
		rec, err := DecodeContactRec(v)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		return nil
	})
	return recs, err
}

// IsContactGroup reports whether gid is a contact's connection group.
func (s *Store) IsContactGroup(gid groupstate.GroupID) bool {
	b, err := s.Get(Key(KeyContact, gid[:]))
	return err == nil && b != nil
}

// Requests returns the requests in quarantine.
func (s *Store) Requests() ([]*RequestRec, error) {
	var out []*RequestRec
	err := s.scan(Key(KeyRequest), func(_, v []byte) error {
		r, err := DecodeRequestRec(v)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Request returns the request in quarantine with that ID
// (ErrUnknownRequest if none).
func (s *Store) Request(id string) (*RequestRec, error) {
	b, err := s.Get(Key(KeyRequest, []byte(strings.TrimSpace(id))))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRequest, id)
	}
	return DecodeRequestRec(b)
}

// PutQueuedAdd writes a queued add.
func (s *Store) PutQueuedAdd(rec *PendingAddRec) error {
	return s.putJSON(Key(KeyQueuedAdd, []byte(rec.ID)), rec)
}

// DeleteQueuedAdd forgets a queued add.
func (s *Store) DeleteQueuedAdd(id string) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Delete(Key(KeyQueuedAdd, []byte(id))) })
}

// QueuedAdds returns the queued adds, oldest first.
func (s *Store) QueuedAdds() ([]*PendingAddRec, error) {
	var out []*PendingAddRec
	err := s.scan(Key(KeyQueuedAdd), func(_, v []byte) error {
		r, err := DecodePendingAdd(v)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Queued.Before(out[j].Queued) })
	return out, err
}

// Prune forgets package secrets, establishment nonces and proof digests
// older than age past their use, requests left unanswered in quarantine
// for age, and the cursors of request mailboxes not in live (tags).
func (s *Store) Prune(now time.Time, age time.Duration, live map[string]bool) error {
	return s.db.Update(func(txn *badger.Txn) error {
		if err := DeleteSecretsTxn(txn, func(sr *SecretRec) bool { return now.After(sr.Expires.Add(age)) }); err != nil {
			return err
		}
		var del [][]byte
		it := txn.NewIterator(badger.IteratorOptions{Prefix: Key(KeyRequest), PrefetchValues: true})
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			// A record that does not decode is kept: listing the
			// quarantine reports it as corrupt.
			if r, err := DecodeRequestRec(v); err == nil && now.Sub(r.Received) > age {
				del = append(del, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
		// Cursor keys are 'd' 'r' peer ID "/" mailbox tag.
		it = txn.NewIterator(badger.IteratorOptions{Prefix: Key(KeyCursor)})
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if i := bytes.LastIndexByte(k, '/'); i < 0 || !live[string(k[i+1:])] {
				del = append(del, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
		// Establishment nonces and proof digests: a request older than
		// MaxRequestAge is dropped for its age anyway.
		for _, sub := range []byte{KeyNonce, KeyProof} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: Key(sub), PrefetchValues: true})
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil || len(v) != 8 || now.Sub(time.UnixMilli(int64(beUint64(v)))) > 2*age {
					del = append(del, it.Item().KeyCopy(nil))
				}
			}
			it.Close()
		}
		for _, k := range del {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// cursorKey is the key of the cursor of a request mailbox on a directory
// host: 'd' 'r' peer ID "/" mailbox tag.
func cursorKey(host, mailbox string) []byte { return Key(KeyCursor, []byte(host+"/"+mailbox)) }

// Cursor is where the last fetch of a request mailbox from a directory
// host ended (nil: from the start).
func (s *Store) Cursor(host, mailbox string) ([]byte, error) { return s.Get(cursorKey(host, mailbox)) }

// PutCursor records where a fetch of a request mailbox ended.
func (s *Store) PutCursor(host, mailbox string, cur []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(cursorKey(host, mailbox), cur) })
}
