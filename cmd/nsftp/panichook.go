//go:build nsftp_panichook

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// A binary built with -tags nsftp_panichook panics on a goroutine of its
// own when it receives SIGUSR2: a panic that runs no deferred call, the
// way TestTAPDeviceKeptOnEveryExit ends nsftp by one. Other builds have
// no such hook.
func init() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	go func() {
		<-c
		panic("SIGUSR2 asked for a panic (a binary built with -tags nsftp_panichook)")
	}()
}
