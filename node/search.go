package node

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
)

// Search (issue 18, item 4) over the decrypted history, with a word index
// in the member database, so encrypted at rest like the messages:
//
//	's' gid word 0x00 position(48) → nothing: the message at position
//	                                  (history.go) holds word
//	's' gid 0xff "v1"               → the group's index is complete
//
// Words are the lowercased runs of letters and digits of a message's text
// (and of a file's name), at least minWordRunes runes, cut at maxWordBytes.
// A query matches a message whose current text (its latest edit) has, for
// every query word, a word that starts with it. Its longest word picks the
// candidates from the index, newest first; each is read and checked
// against the whole query, so an index entry of an edited or deleted text
// never shows a message that no longer says it. A delete removes its
// message's entries; messages stored before the index existed are indexed
// at the group's first search.
const pfxSearch = 's'

const (
	minWordRunes = 2
	maxWordBytes = 32
	// maxWordsPerText bounds what one message adds to the transaction
	// that stores it (about 100 bytes a word): a long text is found by
	// its first maxWordsPerText distinct words.
	maxWordsPerText = 256
	// MaxSearchResults bounds one search's results.
	MaxSearchResults = 500
	// searchScanLimit bounds the candidates one search reads per group.
	searchScanLimit = 20000
)

var searchDoneMark = []byte{0xff, 'v', '1'}

// words are the distinct index words of a text.
func words(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if len([]rune(w)) < minWordRunes {
			continue
		}
		if len(w) > maxWordBytes {
			// Cut between runes.
			w = w[:maxWordBytes]
			for !utf8.ValidString(w) {
				w = w[:len(w)-1]
			}
		}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
			if len(out) == maxWordsPerText {
				break
			}
		}
	}
	return out
}

func searchKey(g groupstate.GroupID, word string, pos []byte) []byte {
	return gkey(pfxSearch, g, []byte(word), []byte{0}, pos)
}

// indexedText is what of a message is indexed.
func indexedText(msg *Message) string {
	if msg.File != nil {
		return msg.Text + " " + msg.File.Name
	}
	return msg.Text
}

func searchable(kind string) bool { return isWritten(kind) }

// indexTxn adds a text's words for the message at pos.
func indexTxn(txn *badger.Txn, g groupstate.GroupID, pos []byte, text string) error {
	for _, w := range words(text) {
		if err := txn.Set(searchKey(g, w, pos), nil); err != nil {
			return err
		}
	}
	return nil
}

// unindexTxn removes a text's words for the message at pos.
func unindexTxn(txn *badger.Txn, g groupstate.GroupID, pos []byte, text string) error {
	for _, w := range words(text) {
		if err := txn.Delete(searchKey(g, w, pos)); err != nil {
			return err
		}
	}
	return nil
}

// indexMessageTxn indexes a message being stored under key (markSeenTxn).
func indexMessageTxn(txn *badger.Txn, g groupstate.GroupID, key []byte, msg *Message) error {
	if msg == nil || !searchable(msg.Kind) {
		return nil
	}
	return indexTxn(txn, g, key[len(gkey(pfxMessage, g)):], indexedText(msg))
}

// ensureIndexed indexes a group's messages stored before the index
// existed, once.
func (m *member) ensureIndexed(g groupstate.GroupID) error {
	done, err := m.db.get(gkey(pfxSearch, g, searchDoneMark))
	if err != nil || done != nil {
		return err
	}
	prefix := gkey(pfxMessage, g)
	// A write batch commits as it fills, whatever the history's size.
	wb := m.db.db.NewWriteBatch()
	defer wb.Cancel()
	err = m.db.scan(prefix, func(k, v []byte) error {
		msg, err := decodeMessage(v)
		if err != nil || !searchable(msg.Kind) {
			return err
		}
		for _, w := range words(indexedText(msg)) {
			if err := wb.Set(searchKey(g, w, k[len(prefix):]), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return err
	}
	return m.db.db.Update(func(txn *badger.Txn) error { return txn.Set(gkey(pfxSearch, g, searchDoneMark), []byte{1}) })
}

// SearchQuery is a search.
type SearchQuery struct {
	Text string
	// Group limits it to one group ("": all).
	Group string
	// Limit bounds the results (0: 50; at most MaxSearchResults).
	Limit int
	// Hide leaves messages out (as PageQuery.Hide).
	Hide func(*Message) bool
}

// SearchResult is a search's answer: the matching messages, newest
// first, and whether more may match than were looked at.
type SearchResult struct {
	Messages []ListedMessage
	More     bool
}

// Search finds the messages whose current text holds every word of the
// query (as a word start), newest first.
func (n *Node) Search(q SearchQuery) (*SearchResult, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	qw := words(q.Text)
	if len(qw) == 0 {
		return nil, fmt.Errorf("%w: %q has no word of at least %d letters or digits", ErrBadQuery, q.Text, minWordRunes)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	if limit > MaxSearchResults {
		return nil, fmt.Errorf("%w: a limit of %d (at most %d)", ErrBadQuery, limit, MaxSearchResults)
	}
	var groups []groupstate.GroupID
	if q.Group != "" {
		_, gid, err := n.lookup(q.Group)
		if err != nil {
			return nil, err
		}
		groups = []groupstate.GroupID{gid}
	} else {
		m.mu.Lock()
		for g := range m.groups {
			groups = append(groups, g)
		}
		m.mu.Unlock()
	}
	res := &SearchResult{}
	for _, g := range groups {
		if err := m.ensureIndexed(g); err != nil {
			return nil, err
		}
		more, err := m.searchGroup(g, qw, limit, q.Hide, res)
		if err != nil {
			return nil, err
		}
		res.More = res.More || more
	}
	// Newest first across groups (positions start with the order time).
	slices.SortStableFunc(res.Messages, func(a, b ListedMessage) int { return strings.Compare(b.Cursor, a.Cursor) })
	if len(res.Messages) > limit {
		res.Messages, res.More = res.Messages[:limit], true
	}
	return res, nil
}

// searchGroup adds a group's matches, newest first, to res.
func (m *member) searchGroup(g groupstate.GroupID, qw []string, limit int, hide func(*Message) bool, res *SearchResult) (bool, error) {
	found := 0
	more := false
	err := m.db.db.View(func(txn *badger.Txn) error {
		pick := rarest(txn, g, qw)
		prefix := gkey(pfxSearch, g, []byte(pick))
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		// Entries of every word starting with pick, newest position
		// first within each word: collect positions, then read newest
		// first overall.
		var pos [][]byte
		for it.Seek(append(slices.Clip(prefix), bytes.Repeat([]byte{0xff}, maxWordBytes+1+messageCursorSize)...)); it.Valid(); it.Next() {
			k := it.Item().Key()
			i := bytes.IndexByte(k[len(prefix):], 0)
			if i < 0 || len(k)-len(prefix)-i-1 != messageCursorSize {
				continue
			}
			pos = append(pos, slices.Clone(k[len(k)-messageCursorSize:]))
			if len(pos) == searchScanLimit {
				more = true
				break
			}
		}
		slices.SortFunc(pos, func(a, b []byte) int { return bytes.Compare(b, a) })
		pos = slices.CompactFunc(pos, bytes.Equal)
		mp := gkey(pfxMessage, g)
		for _, p := range pos {
			item, err := txn.Get(append(slices.Clip(mp), p...))
			if err != nil {
				continue // an entry of a message no longer held
			}
			lm, err := listed(item, len(mp))
			if err != nil {
				return err
			}
			if hide != nil && hide(&lm.Message) {
				continue
			}
			if err := m.decorateTxn(txn, g, []*Message{&lm.Message}, false); err != nil {
				return err
			}
			if !matches(indexedText(&lm.Message), qw) {
				continue
			}
			res.Messages = append(res.Messages, *lm)
			if found++; found == limit {
				more = more || len(pos) > found
				return nil
			}
		}
		return nil
	})
	return more, err
}

// rarestCount bounds the index entries counted per query word to find
// the rarest.
const rarestCount = 1000

// rarest is the query word with the fewest index entries (counted up to
// rarestCount, keys only): its entries are the candidates.
func rarest(txn *badger.Txn, g groupstate.GroupID, qw []string) string {
	if len(qw) == 1 {
		return qw[0]
	}
	best, bestN := qw[0], rarestCount+1
	for _, w := range qw {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxSearch, g, []byte(w)), PrefetchValues: false})
		n := 0
		for it.Rewind(); it.Valid() && n <= rarestCount; it.Next() {
			n++
		}
		it.Close()
		if n < bestN {
			best, bestN = w, n
		}
	}
	return best
}

// matches reports whether every query word starts a word of text.
func matches(text string, qw []string) bool {
	tw := words(text)
	for _, q := range qw {
		if !slices.ContainsFunc(tw, func(w string) bool { return strings.HasPrefix(w, q) }) {
			return false
		}
	}
	return true
}
