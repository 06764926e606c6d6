package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// cpuSet is a Linux cpu_set_t for up to 1024 CPUs.
type cpuSet [1024 / 64]uint64

func (s *cpuSet) add(cpu int)     { s[cpu/64] |= 1 << (cpu % 64) }
func (s cpuSet) has(cpu int) bool { return s[cpu/64]&(1<<(cpu%64)) != 0 }
func (s cpuSet) cpus() []int      { return s.filter(func(int) bool { return true }) }
func (s cpuSet) String() string   { return cpuList(s.cpus()) }
func (s cpuSet) count() int       { return len(s.cpus()) }
func (s cpuSet) filter(keep func(int) bool) []int {
	var out []int
	for c := range len(s) * 64 {
		if s.has(c) && keep(c) {
			out = append(out, c)
		}
	}
	return out
}

func cpuList(cpus []int) string {
	parts := make([]string, len(cpus))
	for i, c := range cpus {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}

// getAffinity reads the CPU set of one thread (0: the calling one).
func getAffinity(tid int) (cpuSet, error) {
	var s cpuSet
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(s), uintptr(unsafe.Pointer(&s)))
	if e != 0 {
		return s, fmt.Errorf("fanout: sched_getaffinity: %w", e)
	}
	return s, nil
}

// setAffinity pins one thread (0: the calling one).
func setAffinity(tid int, s cpuSet) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(s), uintptr(unsafe.Pointer(&s)))
	if e != 0 {
		return fmt.Errorf("fanout: sched_setaffinity: %w", e)
	}
	return nil
}

// pinProcess moves every thread of this process to s and sets GOMAXPROCS
// to its size. Threads made later inherit the set from the thread that
// makes them; the loop runs until a pass finds no thread it had not seen,
// for those started meanwhile.
func pinProcess(s cpuSet) error {
	runtime.GOMAXPROCS(s.count())
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		entries, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("fanout: threads: %w", err)
		}
		fresh := 0
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			// A thread that has exited since the listing is not an error.
			if err := setAffinity(tid, s); err != nil && !errors.Is(err, syscall.ESRCH) {
				return err
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
	return nil
}

// startPinned starts cmd with its CPU set limited to s: the child inherits
// the set of the thread that forks it, so that thread is pinned for the
// moment of the fork and restored after.
func startPinned(cmd *exec.Cmd, s cpuSet) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := getAffinity(0)
	if err != nil {
		return err
	}
	if err := setAffinity(0, s); err != nil {
		return err
	}
	startErr := cmd.Start()
	if err := setAffinity(0, old); err != nil {
		return errors.Join(startErr, err)
	}
	return startErr
}

// cpuPlan splits the CPUs this process may use between crieur (the first
// n) and the inbox servers (the rest). n == 0 means no pinning: everyone
// shares every CPU.
type cpuPlan struct {
	all, crieur, receivers cpuSet
	pinned                 bool
}

func planCPUs(n int) (cpuPlan, error) {
	all, err := getAffinity(0)
	if err != nil {
		return cpuPlan{}, err
	}
	p := cpuPlan{all: all, crieur: all, receivers: all}
	if n == 0 {
		return p, nil
	}
	cpus := all.cpus()
	if n >= len(cpus) {
		return p, fmt.Errorf("fanout: -crieur-cpus %d leaves no CPU for the inbox servers (this process may use %s)", n, all)
	}
	p.crieur, p.receivers, p.pinned = cpuSet{}, cpuSet{}, true
	for i, c := range cpus {
		if i < n {
			p.crieur.add(c)
		} else {
			p.receivers.add(c)
		}
	}
	return p, nil
}
