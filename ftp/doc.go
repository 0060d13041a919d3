// Package ftp speaks FTP (RFC 959 and its extensions) over any TCP sockets:
// the wire format as pure functions, a client and a server, each running on a
// Network that is either the operating system's sockets or nsftp's embedded,
// traced netstack.
package ftp
