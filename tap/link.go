package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// linkInfo is what the kernel says about one network interface, read over
// rtnetlink (what `ip -d link show` prints). Reading it through netlink
// rather than /sys/class/net matters: sysfs shows the namespace it was
// mounted in, not the namespace of the thread reading it.
type linkInfo struct {
	index     int
	flags     uint32 // IFF_UP, IFF_RUNNING, ...
	operState uint8  // IF_OPER_*: UP once the kernel has activated the link
	mtu       int
	mac       net.HardwareAddr
	kind      string // IFLA_INFO_KIND: "tun" for TUN and TAP devices, "" for plain ones

	// Set for kind "tun" only.
	tunType    uint8 // unix.IFF_TUN or unix.IFF_TAP
	pi         bool  // packet information header (IFF_NO_PI clear)
	vnetHdr    bool
	multiQueue bool
	persist    bool
	queues     int // attached file descriptors
}

// lookupLink returns the interface called name in the current thread's
// network namespace, or nil if there is none.
func lookupLink(name string) (*linkInfo, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		li := &linkInfo{
			index: int(int32(binary.NativeEndian.Uint32(m.Data[4:8]))),
			flags: binary.NativeEndian.Uint32(m.Data[8:12]),
		}
		match := false
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFLA_IFNAME:
				match = cString(a.Value) == name
			case syscall.IFLA_OPERSTATE:
				if len(a.Value) >= 1 {
					li.operState = a.Value[0]
				}
			case syscall.IFLA_MTU:
				if len(a.Value) >= 4 {
					li.mtu = int(binary.NativeEndian.Uint32(a.Value))
				}
			case syscall.IFLA_ADDRESS:
				li.mac = append(net.HardwareAddr(nil), a.Value...)
			case unix.IFLA_LINKINFO:
				li.parseLinkInfo(a.Value)
			}
		}
		if match {
			return li, nil
		}
	}
	return nil, nil
}

func (li *linkInfo) parseLinkInfo(b []byte) {
	var data []byte
	eachAttr(b, func(typ uint16, v []byte) {
		switch typ {
		case unix.IFLA_INFO_KIND:
			li.kind = cString(v)
		case unix.IFLA_INFO_DATA:
			data = v
		}
	})
	if li.kind != "tun" {
		return
	}
	eachAttr(data, func(typ uint16, v []byte) {
		if len(v) == 0 {
			return
		}
		switch typ {
		case unix.IFLA_TUN_TYPE:
			li.tunType = v[0]
		case unix.IFLA_TUN_PI:
			li.pi = v[0] != 0
		case unix.IFLA_TUN_VNET_HDR:
			li.vnetHdr = v[0] != 0
		case unix.IFLA_TUN_MULTI_QUEUE:
			li.multiQueue = v[0] != 0
		case unix.IFLA_TUN_PERSIST:
			li.persist = v[0] != 0
		case unix.IFLA_TUN_NUM_QUEUES:
			if len(v) >= 4 {
				li.queues = int(binary.NativeEndian.Uint32(v))
			}
		}
	})
}

// nlaTypeMask strips the nested and byte-order flags from an attribute type.
const nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

// eachAttr calls fn for each netlink attribute in b.
func eachAttr(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= unix.SizeofNlAttr {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if n < unix.SizeofNlAttr || n > len(b) {
			return
		}
		fn(typ, b[unix.SizeofNlAttr:n])
		n = (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if n > len(b) {
			return
		}
		b = b[n:]
	}
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// describe names what kind of interface li is, for error messages.
func (li *linkInfo) describe() string {
	switch {
	case li.kind == "tun" && li.tunType == unix.IFF_TUN:
		return "a TUN device (it carries IP packets; nsftp needs a TAP device, which carries Ethernet frames)"
	case li.kind != "":
		return fmt.Sprintf("a %s interface, not a TAP device", li.kind)
	default:
		return "an interface that is not a TAP device"
	}
}

// CheckAddress fails with ErrAddressInUse if the kernel side of the device
// called name (in the network namespace at netns, "" for the caller's)
// already has addr's IP address. nsftp's stack must use an address of its
// own on the same subnet: with the kernel's address it would answer ARP for
// the kernel and the two would steal each other's traffic. It fails with
// ErrNoDevice if there is no such interface.
func CheckAddress(name string, addr netip.Prefix, netns string) error {
	fail := func(sentinel, sys error, detail string) error {
		return &Error{Op: "check address", Device: name, NetNS: netns, Err: sentinel, Sys: sys, Detail: detail}
	}
	if err := checkName(name); err != nil {
		return fail(err, nil, fmt.Sprintf("%q", name))
	}
	if !addr.IsValid() {
		return fail(syscall.EINVAL, nil, fmt.Sprintf("invalid address %v", addr))
	}
	want := addr.Addr().Unmap()
	var have []netip.Prefix
	var found bool
	err := inNetNS(netns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		found = true
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(ipn.IP)
				ones, _ := ipn.Mask.Size()
				have = append(have, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
		return nil
	})
	if err != nil {
		var ns *nsError
		switch {
		case errors.As(err, &ns) && isPermission(err):
			return fail(ErrPermission, ns.err, "entering a network namespace needs CAP_SYS_ADMIN")
		case errors.As(err, &ns):
			return fail(ns.err, nil, "entering network namespace "+ns.path)
		case !found:
			return fail(ErrNoDevice, nil, "")
		}
		return fail(err, nil, "")
	}
	for _, p := range have {
		if p.Addr() == want {
			return fail(ErrAddressInUse, nil, fmt.Sprintf(
				"%v is the kernel's own address on %s; give nsftp another address in %v", want, name, p.Masked()))
		}
	}
	return nil
}
