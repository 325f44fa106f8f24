//go:build linux

package benchtransform

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time the calling OS thread has used (getrusage
// RUSAGE_THREAD): on a shared machine it measures the work, where wall time
// also counts the waits for a core.
func threadCPU() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD, Linux only
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
