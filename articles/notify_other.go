//go:build !linux

package articles

// newNotifier is fsnotify where crieur has no notifier of its own.
func newNotifier() (notifier, error) { return newFSNotify() }
