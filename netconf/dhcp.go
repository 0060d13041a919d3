package netconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// DHCPConfig tunes Acquire.
type DHCPConfig struct {
	// Device names the link in messages: "tap0".
	Device string
	// Wait is how long to try for a lease before giving up; 0 means
	// DefaultDHCPWait.
	Wait time.Duration
	// Hostname, if set, is sent as option 12, so that the server's list
	// of leases names the client.
	Hostname string
}

// DefaultDHCPWait is how long Acquire tries for a lease: long enough for
// four DISCOVERs, at 0, 1, 3 and 7 seconds.
const DefaultDHCPWait = 10 * time.Second

// firstRetransmit is the wait for a server's answer before the first
// retransmission; each later wait doubles it. RFC 2131 section 4.1
// suggests 4 seconds on a 10 Mb/s Ethernet; a command someone waits for
// asks sooner.
const firstRetransmit = time.Second

// The DHCP ports (RFC 2131 section 4.1).
const (
	serverPort = 67
	clientPort = 68
)

// Lease is an IPv4 address a DHCP server granted, applied to a host: the
// address with its subnet, the router and name servers the server named,
// and how long it lasts.
type Lease struct {
	Addr     netip.Prefix
	Router   netip.Addr   // invalid if the server named none
	DNS      []netip.Addr // the name servers the server named
	Server   netip.Addr   // the server that granted it (its identifier, option 54)
	Duration time.Duration

	h      *stack.Host
	ack    *dhcpv4.DHCPv4
	device string

	stop     chan struct{} // closed by Release: the renewals end
	done     chan struct{} // closed when they have
	stopOnce sync.Once
}

// Acquire gets an IPv4 lease for h over its own UDP sockets (the DORA
// exchange of RFC 2131 section 3.1: DISCOVER, OFFER, REQUEST, ACK, all
// broadcast from 0.0.0.0:68), probes the address with ARP before taking
// it (RFC 5227; a DHCPDECLINE goes to the server if another host answers),
// and configures h with the address, the router and the name servers.
// The lease must be released (Release) when the host is done with it.
func Acquire(ctx context.Context, h *stack.Host, cfg DHCPConfig) (*Lease, error) {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultDHCPWait
	}
	c := &client{h: h, cfg: cfg, mac: h.MAC(), start: time.Now()}
	// The wait bounds the exchange; the probe that follows has its own
	// time (stack.HostConfig.ProbeWait).
	run := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()
	var l *Lease
	err := h.Unconfigured(func() error {
		s, err := h.UDPSocket(trace.WithLabel(ctx, trace.DHCP), "udp4")
		if err != nil {
			return err
		}
		defer s.Close()
		s.SetBroadcast(true)
		if err := s.Bind(ctx, netip.AddrPortFrom(netip.IPv4Unspecified(), clientPort)); err != nil {
			return err
		}
		c.s = s
		for naks := 0; ; naks++ {
			l, err = c.dora(ctx)
			if !errors.Is(err, errNak) || naks == maxNaks {
				break
			}
			// A NAK sends the client back to DISCOVER (RFC 2131
			// section 3.1, step 5).
		}
		if err != nil {
			return err
		}
		if err := h.ProbeAddress(run, l.Addr.Addr()); err != nil {
			var dup *stack.DuplicateAddressError
			if errors.As(err, &dup) {
				c.decline(run, l)
				return &Error{Err: err, msg: fmt.Sprintf(
					"the DHCP server %v leased us %v, but that address is already in use on %s: %v answered our ARP probe (RFC 5227); DHCPDECLINE sent to the server",
					l.Server, l.Addr.Addr(), cfg.Device, dup.Holder)}
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, c.failure(err)
	}
	if err := h.Configure(stack.Change{Source: trace.FromDHCP, Addr: l.Addr, Router: l.Router, DNS: l.DNS,
		Server: l.Server, Lease: l.Duration}); err != nil {
		return nil, err
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.keep(time.Now())
	return l, nil
}

// client is one DHCP exchange.
type client struct {
	h     *stack.Host
	cfg   DHCPConfig
	mac   net.HardwareAddr
	s     *stack.UDPSocket
	start time.Time

	discovers, requests int
	offer               *dhcpv4.DHCPv4 // the last offer, for messages
	nak                 *dhcpv4.DHCPv4 // the last refusal
}

var errNak = errors.New("DHCPNAK")

// maxNaks is how many times a server may refuse a REQUEST before the
// client gives up rather than ask again.
const maxNaks = 3

// dora runs DISCOVER, OFFER, REQUEST, ACK once.
func (c *client) dora(ctx context.Context) (*Lease, error) {
	mods := []dhcpv4.Modifier{
		// A client without an address cannot take a unicast reply to
		// the address offered: it asks for broadcasts (RFC 2131 4.1).
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionServerIdentifier),
	}
	if c.cfg.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(c.cfg.Hostname)))
	}
	discover, err := dhcpv4.NewDiscovery(c.mac, mods...)
	if err != nil {
		return nil, fmt.Errorf("building a DHCPDISCOVER: %w", err)
	}
	offer, err := c.exchange(ctx, discover, &c.discovers, dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, err
	}
	c.offer = offer
	request, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		return nil, fmt.Errorf("building a DHCPREQUEST: %w", err)
	}
	ack, err := c.exchange(ctx, request, &c.requests, dhcpv4.MessageTypeAck)
	if err != nil {
		return nil, err
	}
	return c.lease(ack)
}

// exchange broadcasts m and waits for the answer of type want with m's
// transaction ID, sending m again after 1, 2, 4... seconds without one.
// A DHCPNAK to a REQUEST is errNak. Anything else that arrives (another
// client's traffic, a second server's offer) is skipped.
func (c *client) exchange(ctx context.Context, m *dhcpv4.DHCPv4, sent *int, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	return c.exchangeTo(ctx, m, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), serverPort), sent, want)
}

// exchangeTo is exchange with m sent to dst.
func (c *client) exchangeTo(ctx context.Context, m *dhcpv4.DHCPv4, dst netip.AddrPort, sent *int, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	wait := firstRetransmit
	buf := make([]byte, 1500)
	for {
		if _, err := c.s.SendTo(ctx, m.ToBytes(), dst); err != nil {
			return nil, err
		}
		*sent++
		c.s.SetReadDeadline(time.Now().Add(wait))
		for {
			n, _, err := c.s.RecvFrom(ctx, buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // send again
			}
			if err != nil {
				return nil, err
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || r.OpCode != dhcpv4.OpcodeBootReply || r.TransactionID != m.TransactionID {
				continue
			}
			switch r.MessageType() {
			case want:
				return r, nil
			case dhcpv4.MessageTypeNak:
				if want == dhcpv4.MessageTypeAck {
					c.nak = r
					return nil, errNak
				}
			}
		}
		wait = min(2*wait, maxRetransmit)
	}
}

// maxRetransmit is the longest wait between two sendings of a message
// (RFC 2131 section 4.1: doubling up to 64 seconds).
const maxRetransmit = 64 * time.Second

// lease reads what an ACK grants.
func (c *client) lease(ack *dhcpv4.DHCPv4) (*Lease, error) {
	a, ok := netip.AddrFromSlice(ack.YourIPAddr)
	a = a.Unmap()
	if !ok || !a.Is4() || a.IsUnspecified() {
		return nil, fmt.Errorf("the DHCP server's ACK grants no address (yiaddr %v)", ack.YourIPAddr)
	}
	bits := 24 // RFC 2132 section 3.3: the mask is optional; a class C guess is what clients do
	if m := ack.SubnetMask(); m != nil {
		if ones, size := m.Size(); size == 32 {
			bits = ones
		}
	}
	l := &Lease{Addr: netip.PrefixFrom(a, bits), h: c.h, ack: ack, device: c.cfg.Device,
		Duration: ack.IPAddressLeaseTime(0)}
	if r := ack.Router(); len(r) > 0 {
		if ra, ok := netip.AddrFromSlice(r[0]); ok {
			l.Router = ra.Unmap()
		}
	}
	for _, d := range ack.DNS() {
		if da, ok := netip.AddrFromSlice(d); ok {
			l.DNS = append(l.DNS, da.Unmap())
		}
	}
	if sid, ok := netip.AddrFromSlice(ack.ServerIdentifier()); ok {
		l.Server = sid.Unmap()
	}
	return l, nil
}

// decline tells the server the address it leased is taken (RFC 2131
// section 4.4.1: DHCPDECLINE, broadcast, with the address in option 50).
func (c *client) decline(ctx context.Context, l *Lease) {
	m, err := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithHwAddr(c.mac),
		dhcpv4.WithTransactionID(l.ack.TransactionID),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(l.Addr.Addr().AsSlice())),
		dhcpv4.WithOptionCopied(l.ack, dhcpv4.OptionServerIdentifier),
	)
	if err != nil {
		return
	}
	c.s.SendTo(ctx, m.ToBytes(), netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), serverPort))
}

// failure turns what stopped the exchange into the error a person reads.
func (c *client) failure(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	waited := time.Since(c.start).Round(100 * time.Millisecond)
	if errors.Is(err, errNak) && c.nak != nil {
		sid, _ := netip.AddrFromSlice(c.nak.ServerIdentifier())
		why := ""
		if m := c.nak.Message(); m != "" {
			why = ": " + m
		}
		return &Error{Err: ErrNoLease, msg: fmt.Sprintf("the DHCP server %v refused our DHCPREQUEST for %v on %s %d times (DHCPNAK%s); give nsftp an address with --addr CIDR",
			sid.Unmap(), c.offer.YourIPAddr, c.cfg.Device, maxNaks+1, why)}
	}
	if errors.Is(err, context.Canceled) {
		return err // the run was stopped: nothing to explain
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		if c.offer == nil {
			return &Error{Err: ErrNoLease, msg: fmt.Sprintf(
				"no DHCP server answered on %s in %v (%d DHCPDISCOVERs sent); on a network without DHCP, give nsftp an address with --addr CIDR",
				c.cfg.Device, waited, c.discovers)}
		}
		sid, _ := netip.AddrFromSlice(c.offer.ServerIdentifier())
		return &Error{Err: ErrNoLease, msg: fmt.Sprintf(
			"the DHCP server %v offered %v on %s but did not acknowledge our DHCPREQUEST in %v (%d sent); give nsftp an address with --addr CIDR",
			sid.Unmap(), c.offer.YourIPAddr, c.cfg.Device, waited, c.requests)}
	}
	return &Error{Err: err, msg: fmt.Sprintf("DHCP on %s: %v", c.cfg.Device, err)}
}

// keep renews the lease for as long as the host holds it (RFC 2131
// section 4.4.5): at T1 (option 58, or half the lease) a REQUEST goes
// straight to the server that granted it, and again at half the time
// left, at least a minute apart, until an ACK extends the lease or it
// runs out and the address is given up. Release stops it.
func (l *Lease) keep(granted time.Time) {
	defer close(l.done)
	if l.Duration <= 0 || l.Duration >= dhcpv4.MaxLeaseTime {
		return // infinite
	}
	next := granted.Add(l.ack.IPAddressRenewalTime(l.Duration / 2))
	for {
		expiry := granted.Add(l.Duration)
		t := time.NewTimer(time.Until(next))
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(expiry) {
			l.h.Configure(stack.Change{Source: trace.FromDHCP, Removed: true, Addr: l.Addr, Router: l.Router, DNS: l.DNS, Server: l.Server})
			return
		}
		ack, err := l.renew(time.Until(expiry))
		switch {
		case err == nil:
			granted, l.ack = time.Now(), ack
			l.Duration = ack.IPAddressLeaseTime(l.Duration)
			next = granted.Add(ack.IPAddressRenewalTime(l.Duration / 2))
			l.h.Configure(stack.Change{Source: trace.FromDHCP, Addr: l.Addr, Server: l.Server, Lease: l.Duration})
		case errors.Is(err, errNak):
			// The server takes the address back.
			l.h.Configure(stack.Change{Source: trace.FromDHCP, Removed: true, Addr: l.Addr, Router: l.Router, DNS: l.DNS, Server: l.Server})
			return
		default:
			next = time.Now().Add(max(time.Until(expiry)/2, time.Minute))
			if next.After(expiry) {
				next = expiry
			}
		}
	}
}

// renew asks the server to extend the lease: a REQUEST from the address
// itself (ciaddr set, RFC 2131 section 4.3.2, RENEWING), unicast.
func (l *Lease) renew(left time.Duration) (*dhcpv4.DHCPv4, error) {
	ctx, cancel := context.WithTimeout(context.Background(), min(left, 10*time.Second))
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	s, err := l.h.UDPSocket(trace.WithLabel(ctx, trace.DHCP), "udp4")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.Bind(ctx, netip.AddrPortFrom(l.Addr.Addr(), clientPort)); err != nil {
		return nil, err
	}
	m, err := dhcpv4.NewRenewFromAck(l.ack, dhcpv4.WithTransactionID(newXID(l.ack)))
	if err != nil {
		return nil, err
	}
	c := &client{h: l.h, s: s}
	var sent int
	return c.exchangeTo(ctx, m, netip.AddrPortFrom(l.Server, serverPort), &sent, dhcpv4.MessageTypeAck)
}

// newXID is a transaction ID for a new exchange: the old one, changed.
func newXID(old *dhcpv4.DHCPv4) dhcpv4.TransactionID {
	x := old.TransactionID
	x[3]++
	return x
}

// Release gives the address back (RFC 2131 section 4.4.6: DHCPRELEASE,
// unicast from the address to the server) and removes it, its router and
// its name servers from the host. The server's answer is not waited for:
// there is none. Renewals stop. Releasing again does nothing.
func (l *Lease) Release(ctx context.Context) error {
	first := false
	l.stopOnce.Do(func() { close(l.stop); first = true })
	<-l.done
	if !first || !l.h.HasAddress(l.Addr) {
		return nil // released already, ran out, or the server took it back
	}
	s, err := l.h.UDPSocket(trace.WithLabel(ctx, trace.DHCP), "udp4")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Bind(ctx, netip.AddrPortFrom(l.Addr.Addr(), clientPort)); err != nil {
		return err
	}
	m, err := dhcpv4.NewReleaseFromACK(l.ack)
	if err != nil {
		return err
	}
	// Resolve the server's Ethernet address first: the release then
	// leaves at once rather than waiting on ARP, and is not lost if the
	// host closes right after.
	if _, err := l.h.LinkAddress(ctx, l.Server); err != nil {
		return fmt.Errorf("releasing the DHCP lease of %v: the server %v does not answer ARP: %w", l.Addr.Addr(), l.Server, err)
	}
	if _, err := s.SendTo(ctx, m.ToBytes(), netip.AddrPortFrom(l.Server, serverPort)); err != nil {
		return fmt.Errorf("releasing the DHCP lease of %v: %w", l.Addr.Addr(), err)
	}
	s.Close()
	return l.h.Configure(stack.Change{Source: trace.FromDHCP, Removed: true, Addr: l.Addr, Router: l.Router, DNS: l.DNS, Server: l.Server})
}
