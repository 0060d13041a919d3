package cli

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"nsftp/stack"
	"nsftp/trace"
)

// onNetstack runs the session on two netstack hosts on a virtual wire in
// this process, as sg asks to see it. It returns what was downloaded, and
// apart from a failure of the run, a failure to write the trace.
func (d *demoRun) onNetstack(ctx context.Context, sg *seeing) (got []byte, traceErr, err error) {
	_, how := d.mode()
	sg.begin("nsftp demo", fmt.Sprintf("client %s and server %s on a virtual wire (MTU %d), %s",
		stack.ClientAddr4.Addr(), stack.ServerAddr4.Addr(), d.mtu, how))
	// On one wire the client's link sees every frame: capture it there
	// only. TIME-WAIT is short, so the lesson can show it end.
	clientCfg := sg.hostConfig("client", trace.Client, true)
	serverCfg := sg.hostConfig("server", trace.Server, false)
	clientCfg.TimeWait, serverCfg.TimeWait = demoTimeWait, demoTimeWait
	p, err := stack.NewPair(stack.PairConfig{
		// A lesson's capture should show the checksums a real NIC would.
		Wire:   stack.WireConfig{MTU: d.mtu, Loss: d.loss, Delay: d.delay, Checksums: true},
		Client: clientCfg,
		Server: serverCfg,
	})
	if err != nil {
		return nil, nil, &setupError{err}
	}
	defer p.Close()
	sg.hostStarted(p.Client)
	sg.hostStarted(p.Server)

	serverAddr := netip.AddrPortFrom(stack.ServerAddr4.Addr(), 21).String()
	l, err := p.Server.Listen(ctx, trace.Control, serverAddr, 8)
	if err != nil {
		return nil, nil, &setupError{err}
	}
	got, err = d.serveAndDownload(ctx, p.Server, p.Client, l, serverAddr, sg.ftpObserver())
	// The lesson ends when every connection has: last ACKs in, TIME-WAIT
	// over. What follows is teardown, and the trace ends here.
	sg.settle(ctx, demoTimeWait+2*time.Second)
	traceErr = sg.stopTrace()
	if err != nil {
		return nil, traceErr, err
	}
	// The pcap is complete once the hosts are closed.
	p.Close()
	return got, traceErr, nil
}
