//go:build !linux

package benchfilters

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
