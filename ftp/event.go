package ftp

import (
	"net/netip"

	"github.com/nsftp/nsftp/trace"
)

// event is one step of the dialogue as the client or the server notes it;
// the Observer receives it as a trace.Event of layer "ftp". Addresses are
// as net.Addr.String gives them. Secrets never appear in an event: a PASS
// or ACCT command's argument is "****" (trace.RedactCommand).
type event struct {
	Kind   trace.Kind
	Conn   trace.Conn
	Text   string // command line or reply text, without CRLF
	Code   int    // reply code
	Local  string
	Remote string
	Mode   string // data connections: "active" or "passive"
	Bytes  int64
	Err    string
}

// traced is e as the timeline records it, from side.
func (e event) traced(side trace.Role) trace.Event {
	return trace.Event{Layer: trace.LayerFTP, Kind: e.Kind, Message: &trace.Message{
		Side: side, Conn: e.Conn, Text: e.Text, Code: e.Code,
		Local: addrPort(e.Local), Remote: addrPort(e.Remote),
		Mode: trace.DataMode(e.Mode), Bytes: e.Bytes, Err: e.Err,
	}}
}

// addrPort reads an address as net.Addr.String writes it; anything else
// (an empty string) is the zero value.
func addrPort(s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
