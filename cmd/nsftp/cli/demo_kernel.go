package cli

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"github.com/nsftp/nsftp/kernel"
	"github.com/nsftp/nsftp/trace"
)

// The demo's addresses on the kernel's loopback: two of 127.0.0.0/8, so
// that the views tell the hosts apart. The kernel picks 127.0.0.1 as the
// source for 127.0.0.2. In a namespace made for the run the server's is
// the namespace's own (kernel.NetNS.Loopback), for the kernel's tracepoints
// to tell the run's connections from those of other runs at the same
// time, whose namespaces the tracepoints see too.
var (
	kernelClientAddr = netip.MustParsePrefix("127.0.0.1/8")
	kernelServerAddr = netip.MustParsePrefix("127.0.0.2/8")
)

// onKernel runs the session on the kernel's TCP, nsftp making every
// socket call itself: over the loopback of a network namespace made for
// the run (loopback's MTU set to the wire's), when it may make one, else
// over this system's loopback with the server on a port the kernel
// chooses.
func (d *demoRun) onKernel(ctx context.Context, e *env, sg *seeing) (res demoResult, traceErr, err error) {
	_, how := d.mode()
	ns, nsErr := kernel.NewNetNS(d.mtu)
	where := fmt.Sprintf("the loopback of a network namespace made for the run (MTU %d)", d.mtu)
	port := 21
	if nsErr != nil {
		where, port = "this system's loopback (MTU 65536; no namespace of its own: that needs root)", 0
		if os.Geteuid() == 0 {
			fmt.Fprintf(e.stderr, "nsftp: running on this system's loopback: %v\n", nsErr)
		}
	}
	defer ns.Close()
	if d.up.Rate > 0 {
		if nsErr != nil {
			return res, nil, &setupError{fmt.Errorf("--rate on the kernel's TCP shapes the loopback of a network namespace made for the run, which needs root: %w", nsErr)}
		}
		b := kernel.BottleneckFor(d.up.Rate, d.up.Queue, d.up.QueueBytes, d.mtu)
		if err := ns.Shape(b); err != nil {
			return res, nil, &setupError{err}
		}
		where += fmt.Sprintf(", a bottleneck of %s: %s (a queue of %s; the wire's queue counted in frames of %d bytes), both directions through it",
			trace.BitRate(float64(b.Rate)), b, trace.Bytes(int64(b.Queue)), d.mtu+14)
	}
	if err := sg.startKernel(ns); err != nil {
		return res, nil, err
	}
	serverAddr := kernelServerAddr
	if nsErr == nil {
		serverAddr = netip.PrefixFrom(ns.Loopback(2), 8)
	}
	sg.begin("nsftp demo --net os", fmt.Sprintf("client %s and server %s on %s, %s's TCP, %s; Linux keeps TIME-WAIT 60s, and the run does not wait for it",
		kernelClientAddr.Addr(), serverAddr.Addr(), where, kernel.Release(), how))
	// The kernel's defaults, as the article's program had them: Nagle's
	// algorithm on.
	client := sg.kernelNetwork("client", trace.Client, ns, []netip.Prefix{kernelClientAddr}, false)
	server := sg.kernelNetwork("server", trace.Server, ns, []netip.Prefix{serverAddr}, false)
	l, err := server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", netip.AddrPortFrom(serverAddr.Addr(), uint16(port)).String())
	if err != nil {
		return res, sg.stopTrace(), &setupError{err}
	}
	res, err = d.serveAndDownload(ctx, server, client, l, l.Addr().String(), sg.ftpObserver())
	if d.up.Rate > 0 && sg.rec != nil {
		// What the bottleneck did, from the qdisc's own counters: the
		// frames it dropped are seen nowhere else (the packet socket
		// sees what leaves it).
		dropped, sent := ns.QueueDrops()
		sg.rec.Record(trace.Event{Layer: trace.LayerKernel, Kind: trace.KindNote, Message: &trace.Message{
			Text: fmt.Sprintf("the bottleneck's queue (tbf on loopback) sent %d packets and dropped %d, its queue full", sent, dropped)}})
	}
	traceErr = sg.stopTrace()
	return res, traceErr, err
}
