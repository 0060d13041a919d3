package tap

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// From linux/ethtool.h.
const (
	ethSSFeatures = 4  // ETH_SS_FEATURES: the string set of feature names
	ethGStringLen = 32 // ETH_GSTRING_LEN
)

// offloadState is a device's offload features as `ethtool -k` shows them,
// reduced to the ones a TUN/TAP device lets its user switch.
type offloadState struct {
	// TunFlags are the TUNSETOFFLOAD flags that reproduce the active
	// features.
	TunFlags int `json:"tun_flags"`
	// Valid marks, per block of 32 feature bits, the switchable features;
	// Requested holds what was asked of them. TUNSETOFFLOAD sets both
	// requested and active, while a fresh device has them requested on
	// but inactive, so Close must put requested back separately. (The
	// fields are exported for the guard's JSON only.)
	Valid     []uint32 `json:"valid"`
	Requested []uint32 `json:"requested"`
}

// tunFeatures maps the feature names (from the kernel's ethtool string
// table; their bit numbers differ between kernel versions) that
// TUNSETOFFLOAD switches to its flags.
var tunFeatures = map[string]int{
	"tx-checksum-ip-generic":  unix.TUN_F_CSUM,
	"tx-tcp-segmentation":     unix.TUN_F_TSO4,
	"tx-tcp6-segmentation":    unix.TUN_F_TSO6,
	"tx-tcp-ecn-segmentation": unix.TUN_F_TSO_ECN,
	"tx-udp-segmentation":     unix.TUN_F_USO4 | unix.TUN_F_USO6,
	// Linux 6.17 and later.
	"tx-udp_tnl-segmentation":      tunFUDPTunnelGSO,
	"tx-udp_tnl-csum-segmentation": tunFUDPTunnelGSOCsum,
}

// From linux/if_tun.h, newer than golang.org/x/sys.
const (
	tunFUDPTunnelGSO     = 0x080 // TUN_F_UDP_TUNNEL_GSO
	tunFUDPTunnelGSOCsum = 0x100 // TUN_F_UDP_TUNNEL_GSO_CSUM
)

// readOffloads reads the device's offload state, so that Close can give a
// user's device back the offloads it had. There is no TUNGETOFFLOAD; the
// features are read with ethtool's ioctls.
func readOffloads(name string) (offloadState, error) {
	var st offloadState
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)

	// How many features does this kernel name?
	var info struct {
		cmd      uint32
		reserved uint32
		mask     uint64
		count    uint32
		_        uint32
	}
	info.cmd = unix.ETHTOOL_GSSET_INFO
	info.mask = 1 << ethSSFeatures
	if err := ethtool(fd, name, unsafe.Pointer(&info)); err != nil {
		return st, fmt.Errorf("ethtool feature count: %w", err)
	}
	n := int(info.count)
	if info.mask == 0 || n == 0 || n > 4096 {
		return st, fmt.Errorf("ethtool reports %d features", n)
	}

	// Their names.
	strs := make([]byte, 12+n*ethGStringLen)
	*(*uint32)(unsafe.Pointer(&strs[0])) = unix.ETHTOOL_GSTRINGS
	*(*uint32)(unsafe.Pointer(&strs[4])) = ethSSFeatures
	*(*uint32)(unsafe.Pointer(&strs[8])) = uint32(n)
	if err := ethtool(fd, name, unsafe.Pointer(&strs[0])); err != nil {
		return st, fmt.Errorf("ethtool feature names: %w", err)
	}

	// Their state, in blocks of 32: available, requested, active, never changed.
	blocks := (n + 31) / 32
	feats := make([]uint32, 2+4*blocks)
	feats[0] = unix.ETHTOOL_GFEATURES
	feats[1] = uint32(blocks)
	if err := ethtool(fd, name, unsafe.Pointer(&feats[0])); err != nil {
		return st, fmt.Errorf("ethtool features: %w", err)
	}
	st.Valid = make([]uint32, blocks)
	st.Requested = make([]uint32, blocks)
	active := 0
	for i := 0; i < n; i++ {
		flag, ok := tunFeatures[cString(strs[12+i*ethGStringLen:12+(i+1)*ethGStringLen])]
		if !ok {
			continue
		}
		blk, bit := i/32, uint32(1)<<(i%32)
		st.Valid[blk] |= bit
		st.Requested[blk] |= feats[2+4*blk+1] & bit
		if feats[2+4*blk+2]&bit != 0 {
			active |= flag
		}
	}
	// TUNSETOFFLOAD refuses segmentation without checksum offload, and
	// ECN without TSO; mirror its rules.
	switch {
	case active&unix.TUN_F_CSUM == 0:
		active = 0
	case active&(unix.TUN_F_TSO4|unix.TUN_F_TSO6) == 0:
		active &^= unix.TUN_F_TSO_ECN
	}
	if active&(unix.TUN_F_TSO4|unix.TUN_F_TSO6|unix.TUN_F_USO4) == 0 {
		active &^= tunFUDPTunnelGSO | tunFUDPTunnelGSOCsum
	}
	st.TunFlags = active
	return st, nil
}

// restoreRequested puts back the requested state of the switchable
// features (ETHTOOL_SFEATURES, what `ethtool -K` does). It needs
// CAP_NET_ADMIN; without it the device keeps the right active features
// and only `ethtool -k`'s "[requested on]" notes differ.
func (st offloadState) restoreRequested(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	req := make([]uint32, 2+2*len(st.Valid))
	req[0] = unix.ETHTOOL_SFEATURES
	req[1] = uint32(len(st.Valid))
	for i := range st.Valid {
		req[2+2*i] = st.Valid[i]
		req[2+2*i+1] = st.Requested[i]
	}
	return ethtool(fd, name, unsafe.Pointer(&req[0]))
}

// ethtool issues SIOCETHTOOL for the interface name with data as ifr_data.
func ethtool(fd int, name string, data unsafe.Pointer) error {
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
	}
	copy(ifr.name[:], name)
	ifr.data = data
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
