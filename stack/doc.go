// Package stack embeds a TCP/IP stack (gVisor's netstack) in the program:
// hosts with their own IPv4/IPv6 stacks, configured as they run (DHCP's
// lease, router advertisements), TCP and UDP BSD-style sockets on them
// whose every call is traced, packet capture on their links, and an
// in-memory virtual wire that joins hosts inside one process.
package stack
