package ftp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Class is what kind of failure an error from the client or server is,
// for a program that must tell failures apart (the nsftp command maps
// each to an exit code). An error can wrap several sentinels at once (a
// transfer cut short by a timeout is both incomplete and a timeout);
// Classify decides in a fixed order, the first class that fits.
type Class int

// The classes, in the order Classify tries them.
const (
	ClassNone        Class = iota // no error
	ClassBadArgument              // the caller's argument was unusable (ErrBadArgument)
	ClassLocalFile                // a local file could not be read or written (ErrLocalFile)
	ClassTLS                      // TLS required and refused, or a certificate not trusted
	ClassTimeout                  // a timeout expired
	ClassLogin                    // the server refused the login (ErrLoginRefused)
	ClassIncomplete               // the transfer was short, long or unconfirmed (ErrIncomplete)
	ClassProtocol                 // the server broke the protocol (ErrProtocol)
	ClassServer                   // the server answered with an error reply (*ReplyError)
	ClassNetwork                  // the network failed: refused, unreachable, reset, hung up
	ClassOther                    // anything else
)

var classNames = [...]string{"none", "bad argument", "local file", "TLS", "timeout", "login",
	"incomplete", "protocol", "server", "network", "other"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Classify says what kind of failure err is.
func Classify(err error) Class {
	var re *ReplyError
	var ne net.Error
	switch {
	case err == nil:
		return ClassNone
	case errors.Is(err, ErrBadArgument):
		return ClassBadArgument
	case errors.Is(err, ErrLocalFile):
		return ClassLocalFile
	case errors.Is(err, ErrTLSRequired), isCertError(err):
		return ClassTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, ErrLoginRefused):
		return ClassLogin
	case errors.Is(err, ErrIncomplete):
		return ClassIncomplete
	case errors.Is(err, ErrProtocol):
		return ClassProtocol
	case errors.As(err, &re):
		return ClassServer
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.ErrUnexpectedEOF), // the server hung up without a word
		errors.As(err, new(*net.OpError)):
		return ClassNetwork
	}
	return ClassOther
}

// isCertError reports a certificate that could not be verified.
func isCertError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}
