//go:build !unix

package storage

// LockFile is a no-op where bbolt does not lock with flock: crieur's admin
// socket is Unix-only, so its commands do not run there.
func LockFile(path string) (release func(), err error) { return func() {}, nil }
