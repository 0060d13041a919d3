//go:build nsftp_profhook

package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

// A binary built with -tags nsftp_profhook writes a heap profile to
// $NSFTP_HEAP_PROFILE.N (and its goroutines to .N.goroutine) each time it receives SIGUSR2, and a CPU profile
// of its whole run to $NSFTP_HEAP_PROFILE.cpu (ended by SIGUSR1), for the
// crowd benchmarks (-crowd-profile) to find where a server's memory and
// time go. Other builds have no such hook.
func init() {
	base := os.Getenv("NSFTP_HEAP_PROFILE")
	if base == "" {
		return
	}
	if f, err := os.Create(base + ".cpu"); err == nil {
		pprof.StartCPUProfile(f)
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGUSR1)
		go func() {
			<-stop
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	go func() {
		for n := 1; ; n++ {
			<-c
			f, err := os.Create(fmt.Sprintf("%s.%d", base, n))
			if err != nil {
				continue
			}
			runtime.GC()
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
			if f, err := os.Create(fmt.Sprintf("%s.%d.goroutine", base, n)); err == nil {
				pprof.Lookup("goroutine").WriteTo(f, 1)
				f.Close()
			}
		}
	}()
}
