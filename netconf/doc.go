// Package netconf configures a stack.Host from the network it is on, over
// the host's own traced sockets, as a host's DHCP client and stub resolver
// do: an IPv4 lease by DHCP (RFC 2131), probed with ARP before it is used
// (RFC 5227) and released at the end, and host names looked up with Go's
// resolver, its every DNS query dialled through the host to the name
// servers DHCP, router advertisements, the user or /etc/resolv.conf gave.
// IPv6 autoconfiguration itself is the stack's (stack.HostConfig.Autoconf).
//
// Every failure is an *Error: one sentence that says what was tried, for
// how long and on which device, and what to do about it.
package netconf
