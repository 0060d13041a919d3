// Package kernel runs nsftp's FTP on the operating system's TCP and shows
// what the kernel does with it: a traced ftp.Network that makes the BSD
// socket calls itself (socket, bind, listen, accept, connect, send, recv,
// shutdown, close) and records each with the kernel's TCP state before
// and after; a Watch that reads the kernel's own account of the run's
// sockets from tracefs (changes of state with the kernel functions that
// made them, retransmissions, resets) and every frame of their
// connections from a packet socket; and a network namespace made for one
// run. It knows no gVisor: this is the other stack.
package kernel
