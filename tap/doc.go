// Package tap attaches nsftp's netstack to a Linux TAP device, so that the
// kernel on one side of the device and nsftp's own TCP/IP stack on the other
// exchange Ethernet frames: Open finds or creates the device (in a given
// network namespace if asked), Endpoint hands it to stack.NewHost as its link,
// and Close leaves a device the user made exactly as it was and removes one
// nsftp made itself.
//
// Two data paths share one endpoint. The plain path opens the device with
// github.com/songgao/water and moves one Ethernet frame per read and write;
// consecutive TCP segments read in one go are merged before the stack sees
// them (GRO), unless Config.DisableGRO. The offload path (Config.Offload)
// opens the device with IFF_VNET_HDR and turns on the kernel's checksum and
// TCP segmentation offloads, so that both sides move TCP segments of up to
// 64 KiB whatever the MTU, as a virtual machine's virtio NIC does; it is
// several times faster at small MTUs.
//
// The package is Linux-only, and with package stack it is the only one in
// nsftp that imports gVisor.
package tap
