// Package packet reads and writes the frames nsftp sees on a link, as
// smoltcp's wire module does for its stack: byte-slice views of Ethernet,
// ARP, IPv4, IPv6 with its extension headers, ICMPv4, ICMPv6 and NDP, TCP
// with its options, UDP, and summaries of DHCP and DNS messages; the
// emitters tests build frames with; Decode, which summarises a frame as
// the trace.Segment every segment event carries; and a pcap writer and
// reader.
//
// Its contract: no I/O but through the io.Writer or io.Reader it is
// given; no gVisor; Decode, NeedsPayload, ParseTCPOptions and the pcap
// reader take any bytes without panicking (each is fuzzed), while the
// views read fixed offsets and leave the length checks their doc comments
// name to the caller, as gVisor's header package does; and no allocation
// when decoding a TCP segment that carries no SACK blocks and no SYN: the
// stack decodes every frame it sends or receives, and the kernel package
// every frame of a traced run. Both decode with this one package, so a
// field added here reaches both.
package packet
