//go:build linux

package benchfilters

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time consumed so far by the calling OS thread
// (getrusage RUSAGE_THREAD). Lock the goroutine to its thread around the
// measured loop.
func threadCPU() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD, Linux only
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
