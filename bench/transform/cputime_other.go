//go:build !linux

package benchtransform

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
