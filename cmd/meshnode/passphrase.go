package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/meshnode/meshnode/keymgmt"
)

// envPassphraseFile names a file holding the passphrase.
const envPassphraseFile = "MESHNODE_PASSPHRASE_FILE"

// readPassphrase returns $MESHNODE_PASSPHRASE, or the contents of
// $MESHNODE_PASSPHRASE_FILE, or asks on the terminal (twice when confirm is
// set, for a new keystore). It never echoes.
func readPassphrase(stderr io.Writer, confirm bool) ([]byte, error) {
	if p, ok := keymgmt.PassphraseFromEnv(); ok {
		return p, nil
	}
	if path := os.Getenv(envPassphraseFile); path != "" {
		// A file the service manager provides (a systemd credential).
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading the passphrase from $%s: %w", envPassphraseFile, err)
		}
		p := bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		if len(p) == 0 {
			return nil, fmt.Errorf("%w: %s is empty", keymgmt.ErrPassphraseRequired, path)
		}
		return p, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("%w: set $%s or $%s, or run in a terminal to be asked", keymgmt.ErrPassphraseRequired, keymgmt.EnvPassphrase, envPassphraseFile)
	}
	fmt.Fprint(stderr, "Keystore passphrase: ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: the passphrase is empty", keymgmt.ErrPassphraseRequired)
	}
	if !confirm {
		return p, nil
	}
	fmt.Fprint(stderr, "Repeat the passphrase: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	defer clear(again)
	if err != nil {
		clear(p)
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if !bytes.Equal(p, again) {
		clear(p)
		return nil, fmt.Errorf("the passphrases do not match")
	}
	return p, nil
}
