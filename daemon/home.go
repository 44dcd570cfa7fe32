package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshnode/meshnode/api"
)

// EnvHome names the home directory used when --home is not given.
const EnvHome = "MESHNODE_HOME"

// Names of the files of a home directory (layout in the package doc).
const (
	FileConfig   = "config.json"
	FileToken    = "api.token"
	FileKeystore = "keystore"
	FileAPIAddr  = "api.addr"
	FilePeerKey  = "peer.key"
	FileLock     = "daemon.lock"
	DirData      = "data"
	DirMember    = "member"
)

// maxSmallFile bounds what is read of api.addr and api.token.
const maxSmallFile = 4 << 10

// DefaultHomeDir is $MESHNODE_HOME, or ~/.meshnode.
func DefaultHomeDir() (string, error) {
	if d := os.Getenv(EnvHome); d != "" {
		return d, nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("daemon: no home directory (set --home or $%s): %w", EnvHome, err)
	}
	return filepath.Join(h, ".meshnode"), nil
}

// Home is an initialised meshnode home directory.
type Home struct {
	dir string
}

// OpenHome opens an initialised home (one with a config.json).
func OpenHome(dir string) (*Home, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("daemon: home %s: %w", dir, err)
	}
	h := &Home{dir: abs}
	if _, err := os.Stat(h.Path(FileConfig)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s (create it with: meshnode init --home %s)", ErrNotInitialized, abs, FileConfig, abs)
		}
		return nil, fmt.Errorf("daemon: home %s: %w", abs, err)
	}
	return h, nil
}

// Dir is the home's absolute path.
func (h *Home) Dir() string { return h.dir }

// Path is the path of a file of the home (one of the File... names).
func (h *Home) Path(name string) string { return filepath.Join(h.dir, name) }

// Config reads config.json.
func (h *Home) Config() (Config, error) {
	b, err := readSmall(h.Path(FileConfig), maxConfigSize)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", h.Path(FileConfig), err)
	}
	return c, nil
}

// Token reads api.token.
func (h *Home) Token() (string, error) {
	b, err := readSmall(h.Path(FileToken), maxSmallFile)
	if err != nil {
		return "", err
	}
	t, err := api.ParseToken(string(b))
	if err != nil {
		return "", fmt.Errorf("%s: %w", h.Path(FileToken), err)
	}
	return t, nil
}

// APIAddr reads api.addr, the address the running daemon listens on. It
// returns ErrNotRunning when there is none.
func (h *Home) APIAddr() (string, error) {
	b, err := readSmall(h.Path(FileAPIAddr), maxSmallFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: no daemon is running on home %s", ErrNotRunning, h.dir)
	}
	if err != nil {
		return "", err
	}
	addr := strings.TrimSpace(string(b))
	if _, _, err := api.ParseAddress(addr); err != nil {
		return "", fmt.Errorf("%s: %w", h.Path(FileAPIAddr), err)
	}
	return addr, nil
}

// Client returns a client of the daemon running on this home.
func (h *Home) Client(opts ...api.Option) (*api.Client, error) {
	addr, err := h.APIAddr()
	if err != nil {
		return nil, err
	}
	tok, err := h.Token()
	if err != nil {
		return nil, err
	}
	return api.NewClient(addr, tok, opts...)
}

func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("daemon: read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrConfig, path, limit)
	}
	return b, nil
}

// writeFileAtomic writes data to a temporary file next to path with the
// given mode, syncs it and renames it into place, so readers see the old
// content or the new one, never a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	return nil
}
