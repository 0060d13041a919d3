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
// source for 127.0.0.2.
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
	if err := sg.startKernel(ns); err != nil {
		return res, nil, err
	}
	sg.begin("nsftp demo --net os", fmt.Sprintf("client %s and server %s on %s, %s's TCP, %s; Linux keeps TIME-WAIT 60s, and the run does not wait for it",
		kernelClientAddr.Addr(), kernelServerAddr.Addr(), where, kernel.Release(), how))
	// The kernel's defaults, as the article's program had them: Nagle's
	// algorithm on.
	client := sg.kernelNetwork("client", trace.Client, ns, []netip.Prefix{kernelClientAddr}, false)
	server := sg.kernelNetwork("server", trace.Server, ns, []netip.Prefix{kernelServerAddr}, false)
	l, err := server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", netip.AddrPortFrom(kernelServerAddr.Addr(), uint16(port)).String())
	if err != nil {
		return res, sg.stopTrace(), &setupError{err}
	}
	res, err = d.serveAndDownload(ctx, server, client, l, l.Addr().String(), sg.ftpObserver())
	traceErr = sg.stopTrace()
	return res, traceErr, err
}
