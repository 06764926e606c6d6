package delivery

import (
	"runtime"
	"testing"
	"time"
)

// A burst starts a few requests per CPU and grows to Workers with time
// alone (the harness test in delivery_test.go checks it end to end).
func TestDeliveryStartRampSlots(t *testing.T) {
	const workers = 100
	d := &Deliverer{opts: Options{Workers: workers}}
	start := min(startPerCPU*runtime.GOMAXPROCS(0), workers)
	d.burstSince = time.Now()
	if got := d.slotsLocked(); got != start {
		t.Errorf("slots at the start of a burst = %d, want %d", got, start)
	}
	d.burstSince = time.Now().Add(-startRamp)
	if got := d.slotsLocked(); got != workers {
		t.Errorf("slots after the ramp = %d, want %d", got, workers)
	}

}
