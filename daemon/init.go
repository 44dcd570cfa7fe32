package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

// InitParams say how to create a home.
type InitParams struct {
	Role node.Role
	Nick string
	// ListenAddrs replace the role's default listen addresses if set.
	ListenAddrs []string
	// Suite is the profile's HPKE suite (keymgmt.DefaultSuite, the hybrid
	// post-quantum one, or keymgmt.SuiteX25519).
	Suite keymgmt.Suite
	// Unencrypted stores the keystore without encryption; the passphrase
	// must then be empty.
	Unencrypted bool
	// KDF are the keystore's Argon2id parameters (zero: keymgmt's
	// defaults). Only tests should lower them.
	KDF keymgmt.KDFParams
}

// DefaultInitParams: a member with the default suite and an encrypted
// keystore.
func DefaultInitParams() InitParams {
	return InitParams{Role: node.RoleMember, Suite: keymgmt.DefaultSuite}
}

// InitResult describes a new home.
type InitResult struct {
	Home        *Home
	Config      Config
	Fingerprint string
	// Suite is the profile's HPKE suite.
	Suite keymgmt.Suite
}

// Init creates a home in dir: the directory (0700), config.json, api.token
// and the profile keystore. dir must not exist or be empty; Init never
// overwrites anything, and on failure removes what it created.
func Init(dir string, p InitParams, passphrase []byte) (_ *InitResult, err error) {
	cfg := DefaultConfig(p.Role)
	cfg.Nick = p.Nick
	if len(p.ListenAddrs) > 0 {
		cfg.ListenAddrs = append([]string(nil), p.ListenAddrs...)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !p.Suite.Valid() {
		return nil, fmt.Errorf("%w: unknown key suite %d", ErrConfig, p.Suite)
	}
	if p.Unencrypted && len(passphrase) > 0 {
		return nil, fmt.Errorf("%w: a passphrase was given for an unencrypted keystore", ErrConfig)
	}
	if !p.Unencrypted && len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: empty passphrase (set one, or store the keystore unencrypted explicitly)", keymgmt.ErrPassphraseRequired)
	}
	if !p.Unencrypted {
		if err := keymgmt.CheckNewPassphrase(passphrase); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("daemon: home %s: %w", dir, err)
	}
	created, err := makeHomeDir(abs)
	if err != nil {
		return nil, err
	}
	h := &Home{dir: abs}
	defer func() {
		if err == nil {
			return
		}
		// Remove only what this call made.
		if created {
			os.RemoveAll(abs)
			return
		}
		for _, f := range []string{FileKeystore, FileToken, FileConfig} {
			os.Remove(h.Path(f))
		}
	}()

	ks, err := keymgmt.NewKeystore(p.Suite)
	if err != nil {
		return nil, err
	}
	if err := keymgmt.CreateKeystore(h.Path(FileKeystore), ks, passphrase,
		keymgmt.KeystoreOptions{Unencrypted: p.Unencrypted, KDF: p.KDF}); err != nil {
		return nil, err
	}
	var tok [api.TokenSize]byte
	rand.Read(tok[:])
	if err := writeFileAtomic(h.Path(FileToken), []byte(hex.EncodeToString(tok[:])+"\n"), 0o600); err != nil {
		return nil, err
	}
	// config.json last: its presence marks the home as initialised.
	b, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(h.Path(FileConfig), b, 0o600); err != nil {
		return nil, err
	}
	return &InitResult{Home: h, Config: cfg, Fingerprint: ks.Identity.Fingerprint(), Suite: ks.Identity.Suite()}, nil
}

// makeHomeDir creates dir with mode 0700 (and its parents), or accepts an
// existing empty directory. It reports whether it created dir.
func makeHomeDir(dir string) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return false, fmt.Errorf("daemon: create home: %w", err)
	}
	err := os.Mkdir(dir, 0o700)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("daemon: create home: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileConfig)); err == nil {
		return false, fmt.Errorf("%w: %s is already a meshnode home (refusing to overwrite it)", ErrHomeExists, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("%w: %s exists and cannot be read: %v", ErrHomeExists, dir, err)
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("%w: %s exists and is not empty (refusing to overwrite it; pick a new directory)", ErrHomeExists, dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return false, fmt.Errorf("daemon: create home: %w", err)
	}
	return false, nil
}
