package tap

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// savedState is what Open found on a device the user made and is about
// to change: what Close, or a Guard if nsftp dies first, puts back.
//
// Some of a TAP device's settings belong to the device, not to the file
// descriptor attached to it, and outlive the program that set them: the
// TUNSETIFF flags (a virtio-net header on every frame, packet
// information), the virtio-net header's size and byte order, and the
// offloads (TUNSETOFFLOAD). A program that leaves them changed breaks the
// next user of the device: one that reads plain frames is handed 64 KiB
// segments with their checksums unfinished.
type savedState struct {
	Name  string `json:"name"`
	NetNS string `json:"netns,omitempty"`
	// Flags are the TUNSETIFF flags that give the device its own back.
	Flags   uint16       `json:"flags"`
	Offload offloadState `json:"offload"`
	// VnetHdrSize is the virtio-net header's size (TUNGETVNETHDRSZ); 0
	// when not read yet.
	VnetHdrSize int `json:"vnet_hdr_size,omitempty"`
	// VnetBE is the big-endian header flag (TUNGETVNETBE), for kernels
	// that have it.
	VnetBE bool `json:"vnet_be,omitempty"`
}

// key names the device a state belongs to, in its namespace.
func (s *savedState) key() string { return s.NetNS + "\x00" + s.Name }

// readAttached fills in what can be read only through a descriptor
// attached to the device.
func (s *savedState) readAttached(fd int) error {
	n, err := unix.IoctlGetInt(fd, unix.TUNGETVNETHDRSZ)
	if err != nil {
		return fmt.Errorf("reading the virtio-net header size: %w", err)
	}
	s.VnetHdrSize = n
	be, err := unix.IoctlGetInt(fd, unix.TUNGETVNETBE)
	switch {
	case errors.Is(err, unix.EINVAL):
		// A kernel without CONFIG_TUN_VNET_CROSS_LE: headers are in the
		// host's byte order, whatever anyone asked.
	case err != nil:
		return fmt.Errorf("reading the virtio-net header byte order: %w", err)
	default:
		s.VnetBE = be != 0
	}
	return nil
}

// setVnet gives the device on fd the virtio-net header nsftp writes and
// reads: 10 bytes (struct virtio_net_hdr), in the host's byte order.
func setVnet(fd int) error {
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
		return fmt.Errorf("setting the virtio-net header size: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETBE, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("setting the virtio-net header byte order: %w", err)
	}
	return nil
}

// restore puts the device back as s says: it attaches once more with the
// device's own TUNSETIFF flags, sets its offloads and header back through
// that descriptor (TUNSETOFFLOAD works only while attached), detaches,
// and puts back the requested offload features (ETHTOOL_SFEATURES).
//
// wait is how long to wait for the device to be free: a guard runs when
// nsftp has died, and the kernel may still be closing nsftp's descriptor.
func (s *savedState) restore(wait time.Duration) error {
	return inNetNS(s.NetNS, func() error {
		fd, err := attachWhenFree(s.Name, s.Flags, wait)
		if err != nil {
			return fmt.Errorf("restoring device flags: %w", err)
		}
		var errs []error
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, s.Offload.TunFlags); err != nil {
			errs = append(errs, fmt.Errorf("restoring offloads: %w", err))
		}
		if s.VnetHdrSize > 0 {
			if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, s.VnetHdrSize); err != nil {
				errs = append(errs, fmt.Errorf("restoring the virtio-net header size: %w", err))
			}
			be := 0
			if s.VnetBE {
				be = 1
			}
			if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETBE, be); err != nil && !(be == 0 && errors.Is(err, unix.EINVAL)) {
				errs = append(errs, fmt.Errorf("restoring the virtio-net header byte order: %w", err))
			}
		}
		unix.Close(fd)
		if len(s.Offload.Valid) > 0 {
			if err := s.Offload.restoreRequested(s.Name); err != nil && !isPermission(err) {
				errs = append(errs, fmt.Errorf("restoring requested offloads: %w", err))
			}
		}
		return errors.Join(errs...)
	})
}

// attachWhenFree attaches to the device with flags, waiting up to wait
// while another descriptor holds a single-queue device (EBUSY).
func attachWhenFree(name string, flags uint16, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		fd, err := attach(name, flags)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fd, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// attach attaches a new descriptor to name with the given TUNSETIFF flags.
func attach(name string, flags uint16) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
