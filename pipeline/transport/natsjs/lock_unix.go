//go:build unix

package natsjs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive flock on <dir>/jetstream.lock, so two busbar
// processes never share one store. The kernel drops the lock when the
// process dies, so a lock file left by a crash (kill -9) is no obstacle.
func lockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "jetstream.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another busbar process (lock %s held); give each process its own --data-dir", dir, path)
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
