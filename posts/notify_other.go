//go:build !linux

package posts

// newNotifier is fsnotify where crieur has no notifier of its own.
func newNotifier() (notifier, error) { return newFSNotify() }
