// This file is not part of tools/fanout: it is added to cmd/crieur at build
// time with `go build -overlay`, to profile the real binary without a
// -pprof flag in crieur (see README.md, "Profiling crieur"). Environment:
//
//	CRIEUR_CPUPROFILE=file   CPU profile from start for CRIEUR_PROFILE_FOR
//	CRIEUR_TRACE=file        execution trace, same window
//	CRIEUR_BLOCKPROFILE=file block and mutex profiles (file, file.mutex)
//	CRIEUR_PROFILE_FOR=15s   how long (default 15s)

package main

import (
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

func init() {
	d, err := time.ParseDuration(os.Getenv("CRIEUR_PROFILE_FOR"))
	if err != nil || d <= 0 {
		d = 15 * time.Second
	}
	var stops []func()
	if p := os.Getenv("CRIEUR_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if p := os.Getenv("CRIEUR_TRACE"); p != "" {
		if f, err := os.Create(p); err == nil && trace.Start(f) == nil {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	if p := os.Getenv("CRIEUR_BLOCKPROFILE"); p != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		runtime.SetMutexProfileFraction(10)
		stops = append(stops, func() {
			for name, file := range map[string]string{"block": p, "mutex": p + ".mutex"} {
				if f, err := os.Create(file); err == nil {
					_ = pprof.Lookup(name).WriteTo(f, 0)
					f.Close()
				}
			}
		})
	}
	if len(stops) > 0 {
		go func() {
			time.Sleep(d)
			for _, s := range stops {
				s()
			}
		}()
	}
}
