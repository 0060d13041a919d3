// Package stack runs real TCP/IP stacks inside the program (gVisor's
// netstack), one per Host, on a TAP device or on a virtual Ethernet wire
// that joins hosts in one process, with every socket call, segment and
// change of TCP state recorded as it happens.
//
// A Host speaks Go's net package at its edge: DialContext as net.Dialer's
// (so an http.Transport takes it as it is), Listen and ListenPacket as
// net.ListenConfig's, and a Resolver that asks through the host; its
// connections are net.Conns whose deadlines behave as the kernel's
// sockets' do. Below that edge are the BSD calls the 2005 article made
// in the kernel (Socket, Bind, Listen, Accept, Connect, Send, Recv), each
// one traced when the host has an Observer.
//
// A Pair (two hosts) or a Network (any number) on a Wire is a hermetic
// network for tests: no root, no devices, real TCP. The wire's Path can
// limit the rate behind a finite queue, delay and jitter, lose frames at
// random or in bursts, duplicate, reorder and corrupt them, and take the
// link down for a while, per direction, as tc-netem does. Package
// stacktest builds these networks for Go tests and keeps the pcap and the
// timeline of a test that fails.
//
// What nsftp adds to a socket rides in its context (trace.WithLabel,
// trace.WithBacklog), never in a positional parameter.
package stack
