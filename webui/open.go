package webui

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
)

// ErrNoBrowser: no program to open a URL with was found.
var ErrNoBrowser = errors.New("webui: no program to open a browser with (open the URL yourself)")

// OpenBrowser opens url in the person's browser with the system's
// opener (xdg-open, open, or the Windows shell), without waiting for it.
// Only http URLs are opened.
func OpenBrowser(url string) error {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("webui: refusing to open %q: not an http URL", url)
	}
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return ErrNoBrowser
	}
	cmd := exec.Command(path, append(args, url)...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("webui: starting %s: %w", name, err)
	}
	// The opener returns at once (the browser outlives it); reap it.
	go func() { _ = cmd.Wait() }()
	return nil
}
