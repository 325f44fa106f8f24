//go:build !unix

package natsjs

// lockDir is a no-op where flock is not available: run one busbar process
// per data dir.
func lockDir(string) (func(), error) { return func() {}, nil }
