package keymgmt

import (
	"fmt"
	"unicode/utf8"
)

// MinPassphraseLen is the fewest characters a new keystore's passphrase
// may have. Argon2id makes each guess expensive, but a passphrase of a few
// characters is found by trying them all anyway; eight is the floor NIST
// SP 800-63B sets for memorised secrets. Several words are stronger and
// easier to remember than a short string of symbols.
const MinPassphraseLen = 8

// CheckNewPassphrase refuses a passphrase shorter than MinPassphraseLen
// characters for a new keystore (an existing one opens with whatever it was
// created with).
func CheckNewPassphrase(p []byte) error {
	if n := utf8.RuneCount(p); n < MinPassphraseLen {
		return fmt.Errorf("%w: it has %d character(s); use at least %d (a few words are best)", ErrWeakPassphrase, n, MinPassphraseLen)
	}
	return nil
}
