//go:build !linux

package pipe

import "time"

func selfCPU() time.Duration         { return 0 }
func serverCPU(string) time.Duration { return -1 }
func maxRSS() int64                  { return 0 }
func loadAvg() string                { return "?" }
