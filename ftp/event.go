package ftp

import "time"

// EventKind names what an Event records.
type EventKind string

// The kinds of protocol event.
const (
	EventCommand   EventKind = "command"    // a command line sent (client) or received (server)
	EventReply     EventKind = "reply"      // a reply received (client) or sent (server)
	EventDataOpen  EventKind = "data-open"  // a data connection established
	EventDataClose EventKind = "data-close" // a data connection closed, with its byte count
	EventTLS       EventKind = "tls"        // a TLS handshake completed on a connection
	EventNote      EventKind = "note"       // anything else worth showing (refused data peer, ...)
)

// Event is one step of the FTP dialogue, as plain data. Passwords never
// appear in an Event: a PASS command's argument is replaced by "****".
type Event struct {
	Time   time.Time `json:"time"`
	Side   string    `json:"side"` // "client" or "server"
	Kind   EventKind `json:"kind"`
	Conn   string    `json:"conn"`           // "control" or "data"
	Text   string    `json:"text,omitempty"` // command line or reply text, without CRLF
	Code   int       `json:"code,omitempty"` // reply code
	Local  string    `json:"local,omitempty"`
	Remote string    `json:"remote,omitempty"`
	Mode   string    `json:"mode,omitempty"` // data connections: "active" or "passive"
	Bytes  int64     `json:"bytes,omitempty"`
	Err    string    `json:"err,omitempty"`
}

// Observer receives protocol events. It is called synchronously from the
// goroutine doing the work, so it must not block for long.
type Observer func(Event)
