package bench

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// profile runs fn under a CPU profile written to path (runtime/pprof's
// format, for go tool pprof), or just runs fn if path is empty. The
// profile covers fn alone: a measured phase, not the setup around it.
func profile(path string, fn func() error) (err error) {
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: cpu profile: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("bench: cpu profile: %w", cerr)
		}
	}()
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("bench: cpu profile: %w", err)
	}
	defer pprof.StopCPUProfile()
	return fn()
}
