package cli

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// onNetstack runs the session on two netstack hosts on a virtual wire in
// this process, as sg asks to see it. It returns what was downloaded, and
// apart from a failure of the run, a failure to write the trace.
func (d *demoRun) onNetstack(ctx context.Context, sg *seeing) (res demoResult, traceErr, err error) {
	_, how := d.mode()
	off := ""
	switch d.offload {
	case stack.OffloadGSO:
		off = ", 64 KiB segments passed whole"
	case stack.OffloadTSO:
		off = ", 64 KiB segments cut into frames at the wire and merged at the receiver"
	}
	sg.begin("nsftp demo", fmt.Sprintf("client %s and server %s on a virtual wire (MTU %d%s%s), %s",
		stack.ClientIPv4, stack.ServerIPv4, d.mtu, off, pathSummary(d.up, d.down), how))
	// The capture is the wire's: every frame once, as its sender sent it,
	// whatever the path then does to it. TIME-WAIT is short, so the lesson
	// can show it end.
	clientCfg := sg.hostConfig("client", trace.Client, false)
	serverCfg := sg.hostConfig("server", trace.Server, false)
	clientCfg.TimeWait, serverCfg.TimeWait = demoTimeWait, demoTimeWait
	wire := stack.WireConfig{MTU: d.mtu, Path: d.up, Offload: d.offload, PCAP: sg.wireCapture(), Observer: sg.wireObserver()}
	// A lesson's capture shows the checksums a real NIC would; with the
	// stacks' segments passed whole there are none to show, as on veth.
	wire.Checksums = d.offload != stack.OffloadGSO
	if !reflect.DeepEqual(d.up, d.down) {
		wire.Out = map[int]stack.Path{stack.ClientPort: d.up, stack.ServerPort: d.down}
	}
	p, err := stack.NewPair(stack.PairConfig{Wire: wire, Client: clientCfg, Server: serverCfg})
	if err != nil {
		return res, nil, &setupError{err}
	}
	defer p.Close()
	sg.hostStarted(p.Client)
	sg.hostStarted(p.Server)

	serverAddr := net.JoinHostPort(stack.ServerIPv4, "21")
	l, err := p.Server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", serverAddr)
	if err != nil {
		return res, nil, &setupError{err}
	}
	res, err = d.serveAndDownload(ctx, p.Server, p.Client, l, serverAddr, sg.ftpObserver())
	// The lesson ends when every connection has: last ACKs in, TIME-WAIT
	// over. What follows is teardown, and the trace ends here.
	sg.settle(ctx, demoTimeWait+2*time.Second)
	traceErr = sg.stopTrace()
	if err != nil {
		return res, traceErr, err
	}
	// The pcap is complete once the hosts are closed.
	p.Close()
	return res, traceErr, nil
}
