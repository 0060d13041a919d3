package tap

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Config says which TAP device to open and how.
type Config struct {
	// Name is the interface name, at most 15 bytes (IFNAMSIZ-1). If no
	// interface has that name, Open creates a TAP device, which Close
	// removes again.
	Name string
	// MAC is nsftp's own Ethernet address on the link; nil picks a random
	// locally administered unicast address. It is not the kernel side's
	// address, which Open leaves alone.
	MAC net.HardwareAddr
	// MTU is the largest IP packet nsftp's stack sends (with Offload, the
	// size the kernel cuts larger TCP segments to). 0 takes the device's
	// MTU from the kernel; a larger value than the device's is an error
	// (ErrMTU), since the kernel would drop such packets.
	MTU int
	// NetNS, if set, is the path of a network namespace (such as
	// /var/run/netns/lab, made by `ip netns add lab`) to find or create the
	// device in. The device's file stays bound to that namespace; nsftp
	// itself does not move.
	NetNS string
	// Offload opens the device with a virtio-net header (IFF_VNET_HDR) and
	// turns on checksum and TCP segmentation offload, so that TCP segments
	// of up to 64 KiB cross the device in one read or write whatever the
	// MTU. The kernel then checksums and segments on nsftp's behalf, and
	// segments it sends to nsftp arrive unsegmented: captures show large
	// segments both ways, as tcpdump does on a NIC with TSO and GRO. It is
	// several times faster at small MTUs. Off, every frame on the device
	// is at most MTU bytes.
	Offload bool
	// DisableGRO, on the plain path, hands every frame to the stack as it
	// came, so that a capture shows the frames on the device. By default
	// consecutive segments of a TCP stream read in one go are merged first
	// (generic receive offload, as Linux does), which saves the stack most
	// of its per-segment work.
	DisableGRO bool
	// Guard, if set, is told what a device the user made was like before
	// Open changes it, so that it can put the device back should this
	// process die without closing it (see Guard).
	Guard *Guard
}

// Device is an open TAP device. Its Endpoint is the link of one
// stack.Host; closing either closes both.
type Device struct {
	name    string
	netns   string
	mac     net.HardwareAddr
	mtu     int
	created bool
	offload bool
	gro     bool

	file *os.File // non-blocking, in the Go poller: closing it wakes a blocked read
	ep   *endpoint

	// What Close puts back on a device the user made; nil for one Open
	// created, which closing its last descriptor removes.
	saved *savedState
	guard *Guard

	closeOnce sync.Once
	closeErr  error
}

// Open opens the TAP device cfg.Name, creating it if there is none, and
// prepares its endpoint. Nothing is read or written until a stack attaches
// the endpoint. The device must be closed, directly or by closing the host
// it is the link of.
func Open(cfg Config) (*Device, error) {
	if err := checkName(cfg.Name); err != nil {
		detail := fmt.Sprintf("%q", cfg.Name)
		if errors.Is(err, ErrNameTooLong) {
			detail = fmt.Sprintf("%q is %d bytes; Linux allows at most %d", cfg.Name, len(cfg.Name), unix.IFNAMSIZ-1)
		}
		return nil, &Error{Op: "open", Device: cfg.Name, NetNS: cfg.NetNS, Err: err, Detail: detail}
	}
	o := &opener{cfg: cfg}
	if len(cfg.MAC) != 0 {
		if len(cfg.MAC) != 6 || cfg.MAC[0]&1 != 0 || isZero(cfg.MAC) {
			return nil, o.fail(syscall.EINVAL, nil, "MAC %v is not a unicast Ethernet address", cfg.MAC)
		}
	}
	if cfg.MTU != 0 && cfg.MTU < minMTU {
		return nil, o.fail(ErrMTU, nil, "MTU %d is below IPv4's minimum of %d", cfg.MTU, minMTU)
	}
	err := inNetNS(cfg.NetNS, o.open)
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			return nil, te
		}
		var ns *nsError
		if errors.As(err, &ns) {
			if isPermission(err) {
				return nil, o.fail(ErrPermission, ns.err, "entering a network namespace needs CAP_SYS_ADMIN")
			}
			return nil, o.fail(ns.err, nil, "entering network namespace %s", ns.path)
		}
		return nil, o.fail(err, nil, "")
	}
	return o.dev, nil
}

// opener carries Open's state through the steps that run inside the
// network namespace.
type opener struct {
	cfg Config
	dev *Device
}

func (o *opener) open() error {
	name := o.cfg.Name
	before, err := lookupLink(name)
	if err != nil {
		return o.fail(err, nil, "")
	}
	if before != nil {
		if before.kind != "tun" || before.tunType != unix.IFF_TAP {
			return o.fail(ErrWrongType, nil, "%s is %s", name, before.describe())
		}
		// A single-queue device takes one reader at a time; TUNSETIFF
		// would say EBUSY too, but water leaks its descriptor on failure.
		if !before.multiQueue && before.queues > 0 {
			return o.fail(ErrBusy, syscall.EBUSY, "another program has %s open", name)
		}
		if o.cfg.MTU > before.mtu {
			return o.mtuError(before.mtu)
		}
	}

	d := &Device{name: name, netns: o.cfg.NetNS, created: before == nil, offload: o.cfg.Offload, gro: !o.cfg.Offload && !o.cfg.DisableGRO}
	if before != nil {
		// What the device is like now, whatever an earlier program left,
		// is what Close puts back; the guard hears of it before anything
		// changes.
		d.saved = &savedState{Name: name, NetNS: o.cfg.NetNS, Flags: tunFlags(before)}
		if d.saved.Offload, err = readOffloads(name); err != nil {
			return o.fail(err, nil, "reading the device's offload settings")
		}
		if g := o.cfg.Guard; g != nil {
			if err := g.send("keep", d.saved); err != nil {
				return o.fail(err, nil, "")
			}
			d.guard = g
		}
	}
	if o.cfg.Offload {
		d.file, err = o.openVnet(before, d.saved)
	} else {
		d.file, err = o.openWater(before, d.saved)
	}
	if err != nil {
		d.release()
		return err
	}

	// From here on, a failure closes the device again: removes it, or
	// puts the user's back as it was.
	after, err := lookupLink(name)
	if err == nil && after == nil {
		err = errors.New("device vanished after opening")
	}
	if err != nil {
		d.close()
		return o.fail(err, nil, "")
	}
	after = waitActive(name, after)
	d.mtu = o.cfg.MTU
	if d.mtu == 0 {
		d.mtu = after.mtu
	}
	if d.mtu > after.mtu || d.mtu < minMTU {
		d.close()
		return o.mtuError(after.mtu)
	}
	d.mac = o.cfg.MAC
	for len(d.mac) == 0 || d.mac.String() == after.mac.String() {
		d.mac = randomMAC()
	}
	d.ep, err = newEndpoint(d)
	if err != nil {
		d.close()
		return o.fail(err, nil, "")
	}
	o.dev = d
	return nil
}

// waitActive waits, briefly, for the kernel to activate an up device now
// that a program has attached to it. Attaching raises the carrier, but the
// kernel brings the device's transmit queue up only when its link watcher
// runs, up to a second later; until then it drops what it sends to us,
// and our first ARP request would go unanswered for a full retry interval.
// A device that is down is not waited for.
func waitActive(name string, li *linkInfo) *linkInfo {
	const ifOperUp = 6 // IF_OPER_UP
	if li.flags&unix.IFF_UP == 0 {
		return li
	}
	deadline := time.Now().Add(2 * time.Second)
	for li.operState != ifOperUp && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		next, err := lookupLink(name)
		if err != nil || next == nil {
			return li
		}
		li = next
	}
	return li
}

// minMTU is IPv4's minimum (RFC 791); IPv6 needs 1280 and is simply not
// usable below that.
const minMTU = 68

func (o *opener) mtuError(devMTU int) error {
	if o.cfg.MTU == 0 {
		return o.fail(ErrMTU, nil, "the device's MTU %d is below IPv4's minimum of %d", devMTU, minMTU)
	}
	return o.fail(ErrMTU, nil, "MTU %d exceeds the device's MTU %d; ask for at most %d, or raise the device's with: ip link set %s mtu %d",
		o.cfg.MTU, devMTU, devMTU, o.cfg.Name, o.cfg.MTU)
}

// openWater opens the device the plain way, through water, with no
// offloads: whatever an earlier program turned on (TUNSETOFFLOAD), the
// kernel must hand nsftp whole frames of at most the MTU with their
// checksums complete. A device that existed keeps its persist flag: water
// sets or clears the flag as told, and clearing it would delete the
// user's device when nsftp exits.
func (o *opener) openWater(before *linkInfo, saved *savedState) (*os.File, error) {
	wc := water.Config{DeviceType: water.TAP}
	wc.Name = o.cfg.Name
	if before != nil {
		wc.Persist = before.persist
		wc.MultiQueue = before.multiQueue
	}
	// water opens /dev/net/tun without O_CLOEXEC. Holding ForkLock until
	// the flag is set keeps a concurrent exec (nsftp runs helpers) from
	// inheriting the descriptor and holding the device open.
	syscall.ForkLock.RLock()
	ifce, err := water.New(wc)
	var f *os.File
	if err == nil {
		f, _ = ifce.ReadWriteCloser.(*os.File)
		if f == nil {
			err = errors.New("water returned no file")
		} else if cerr := control(f, func(fd int) error { unix.CloseOnExec(fd); return nil }); cerr != nil {
			f.Close()
			err = cerr
		}
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		step := "attaching to the device"
		var se *os.SyscallError
		if !errors.As(err, &se) {
			step = "opening /dev/net/tun"
		}
		return nil, o.classify(step, err, before != nil)
	}
	if err := control(f, func(fd int) error { return o.prepare(fd, saved, 0) }); err != nil {
		f.Close()
		return nil, o.undo(before, err)
	}
	return f, nil
}

// prepare reads, through fd just attached, what saved still lacks, then
// sets the offloads nsftp needs, and for the offload path the virtio-net
// header it reads and writes.
func (o *opener) prepare(fd int, saved *savedState, offloads int) error {
	if saved != nil {
		if err := saved.readAttached(fd); err != nil {
			return err
		}
		if o.cfg.Guard != nil {
			if err := o.cfg.Guard.send("keep", saved); err != nil {
				return err
			}
		}
	}
	if o.cfg.Offload {
		if err := setVnet(fd); err != nil {
			return err
		}
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloads); err != nil {
		return fmt.Errorf("setting offloads: %w", err)
	}
	return nil
}

// undo puts back a device whose opening failed after attaching, and
// returns the failure.
func (o *opener) undo(before *linkInfo, err error) error {
	if before != nil {
		reattach(o.cfg.Name, tunFlags(before)) // the flags TUNSETIFF changed
	}
	return o.fail(err, nil, "")
}

// openVnet opens the device with a virtio-net header on every frame and
// the offloads on, which water cannot do.
func (o *opener) openVnet(before *linkInfo, saved *savedState) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, o.classify("opening /dev/net/tun", err, before != nil)
	}
	ifr, err := unix.NewIfreq(o.cfg.Name)
	if err != nil {
		unix.Close(fd)
		return nil, o.fail(ErrInvalidName, err, "%q", o.cfg.Name)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if before != nil && before.multiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, o.classify("attaching to the device", err, before != nil)
	}
	if err := o.prepare(fd, saved, vnetOffloads); err != nil {
		unix.Close(fd)
		return nil, o.undo(before, err)
	}
	// The descriptor is non-blocking, so os.NewFile puts it in the Go
	// poller.
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// vnetOffloads are the offloads the Offload path turns on: the kernel may
// hand nsftp TCP segments with a partial checksum and up to 64 KiB long.
const vnetOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN

// tunFlags returns the TUNSETIFF flags that give a device li's flags back.
func tunFlags(li *linkInfo) uint16 {
	f := uint16(unix.IFF_TAP)
	if !li.pi {
		f |= unix.IFF_NO_PI
	}
	if li.vnetHdr {
		f |= unix.IFF_VNET_HDR
	}
	if li.multiQueue {
		f |= unix.IFF_MULTI_QUEUE
	}
	return f
}

// checkName applies the kernel's rules for interface names (dev_valid_name)
// before any system call, so the user sees why.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return ErrInvalidName
	case len(name) > unix.IFNAMSIZ-1:
		return ErrNameTooLong
	case strings.ContainsAny(name, "/:% \t\n\r\v\f\x00"):
		// '%' would make the kernel pick a name from a pattern.
		return ErrInvalidName
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// randomMAC returns a random locally administered unicast address.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	rand.Read(mac)
	mac[0] = mac[0]&^1 | 2
	return mac
}

func isPermission(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}

// control runs fn with the file's descriptor.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Endpoint returns the device as a gVisor link endpoint for
// stack.HostConfig.Link: Ethernet framing, ARP and NDP for neighbours,
// LinkAddress the device's MAC and MTU its MTU. The host that gets it owns
// it: closing the host closes the device.
func (d *Device) Endpoint() gstack.LinkEndpoint { return d.ep }

// Name returns the interface name.
func (d *Device) Name() string { return d.name }

// MAC returns nsftp's Ethernet address on the link.
func (d *Device) MAC() net.HardwareAddr { return d.mac }

// MTU returns the MTU nsftp's stack uses on the link.
func (d *Device) MTU() int { return d.mtu }

// Created reports whether Open created the device, in which case Close
// removes it; otherwise Close leaves it as it found it.
func (d *Device) Created() bool { return d.created }

// Offload reports whether the device is on the offload path.
func (d *Device) Offload() bool { return d.offload }

// Stats returns the device's counters.
func (d *Device) Stats() Stats { return d.ep.stats() }

// Err returns the error that stopped the device's reader early, such as
// the interface being deleted under nsftp, or nil.
func (d *Device) Err() error { return d.ep.err() }

// Close stops the reader and writer and waits for them, puts back the
// flags and offloads of a device the user made, and closes the device's
// file, which removes a device Open created. It is safe to call more than
// once and from the host's own Close; later calls return the first
// call's result.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.close() })
	return d.closeErr
}

func (d *Device) close() error {
	if d.ep != nil {
		d.ep.shutdown()
	}
	var errs []error
	if err := d.file.Close(); err != nil {
		errs = append(errs, err)
	}
	if d.saved != nil {
		// Detached now: attach once more to put back what belongs to
		// the device.
		if err := d.saved.restore(time.Second); err != nil {
			errs = append(errs, err)
		} else {
			d.release()
		}
	}
	if len(errs) > 0 {
		return &Error{Op: "close", Device: d.name, NetNS: d.netns, Err: errors.Join(errs...)}
	}
	return nil
}

// release tells the guard the device needs no putting back: it is as it
// was, or was never changed.
func (d *Device) release() {
	if d.guard != nil {
		d.guard.send("done", d.saved)
		d.guard = nil
	}
}

// reattach attaches to name with the given TUNSETIFF flags and detaches.
func reattach(name string, flags uint16) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(flags)
	return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
}

// Stats counts what crossed the device, frames and bytes including the
// Ethernet header.
type Stats struct {
	RxFrames, RxBytes uint64
	RxDropped         uint64 // not for this host, malformed, bad checksum, or no stack attached
	TxFrames, TxBytes uint64
	TxErrors          uint64 // writes the kernel refused, such as while the device is down
}
