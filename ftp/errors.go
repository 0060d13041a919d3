package ftp

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nsftp/nsftp/trace"
)

// Sentinel errors the client returns, wrapped, for the cases callers
// branch on. Test them with errors.Is.
var (
	// ErrLoginRefused: the server refused USER or PASS (530 and the like).
	ErrLoginRefused = errors.New("ftp: login refused")
	// ErrServiceClosing: the server sent 421 and is closing the session.
	ErrServiceClosing = errors.New("ftp: server is closing the session")
	// ErrIncomplete: a transfer ended without its final 226/250 reply, or
	// with a byte count that differs from the size the server announced.
	ErrIncomplete = errors.New("ftp: transfer incomplete")
	// ErrDataPeer: in active mode, a data connection came from an address
	// other than the control connection's peer and was refused, and the
	// peer's own never came. (A refused connection alone is no error: the
	// client waits on for the right one, and reports the refusal as a
	// note event.)
	ErrDataPeer = errors.New("ftp: data connection from a foreign address")
	// ErrLocalFile: reading or writing a local file failed.
	ErrLocalFile = errors.New("ftp: local file")
	// ErrClientClosed: the client was used after Close or after the
	// session ended.
	ErrClientClosed = errors.New("ftp: client closed")
)

// ReplyError is a reply the client did not want: a 4xx or 5xx, or a code
// that makes no sense for the command sent.
type ReplyError struct {
	Command string // the command as sent, "PASS ****" for a password; "" for the greeting
	Reply   *Reply
	// Want describes what was expected, for unexpected but non-error codes.
	Want string
}

// maxErrorReply is how much of a reply an error message shows: a hostile
// server's 64 KB reply must not become a 64 KB error line.
const maxErrorReply = 300

func (e *ReplyError) Error() string {
	r := sanitize(truncate(e.Reply.String(), maxErrorReply))
	switch {
	case e.Command == "" && e.Want != "":
		return fmt.Sprintf("server greeted with %s (expected %s)", r, e.Want)
	case e.Command == "":
		return "server refused the session: " + r
	case e.Want != "":
		return fmt.Sprintf("server answered %s with %s (expected %s)", e.Command, r, e.Want)
	}
	return fmt.Sprintf("server refused %s: %s", e.Command, r)
}

// Is makes errors.Is(err, ErrLoginRefused) and errors.Is(err,
// ErrServiceClosing) hold for the replies that mean them, and errors.Is(err,
// ErrProtocol) for a reply code that is no answer to the command at all
// (a 2xx to RETR, a 1xx to USER).
func (e *ReplyError) Is(target error) bool {
	switch target {
	case ErrServiceClosing:
		return e.Reply.Code == 421
	case ErrLoginRefused:
		verb, _, _ := strings.Cut(e.Command, " ")
		return (verb == "USER" || verb == "PASS" || verb == "ACCT") && e.Reply.Code != 421
	case ErrProtocol:
		return e.Want != "" && e.Reply.Class() != 4 && e.Reply.Class() != 5
	}
	return false
}

// sanitize is trace.Clean: the one rule for showing untrusted text.
func sanitize(s string) string { return trace.Clean(s) }

// Sanitize returns s with every control character, bidirectional control
// and invalid byte replaced by '?', for showing text from a server
// (replies, listings, names) on a terminal. It is trace.Clean.
func Sanitize(s string) string { return trace.Clean(s) }

// LocalFileError marks err as a failure of a local file, so that
// errors.Is(err, ErrLocalFile) holds for it.
func LocalFileError(err error) error { return &localError{err: err} }
