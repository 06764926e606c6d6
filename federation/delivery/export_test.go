package delivery

// Internals the external tests (package delivery_test, which may import
// the shared harness) read.
const (
	MaxRetryAfter    = maxRetryAfter
	MinRetryAfter    = minRetryAfter
	PollInterval     = pollInterval
	StartRamp        = startRamp
	KeepStrangerKeys = keepStrangerKeys
)
