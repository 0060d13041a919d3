package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// names is the article's kernel call, today's kernel function and the
// netstack call behind a socket call; for the kernel's calls, the system
// calls nsftp made.
func names(c *Call) string {
	how := c.Netstack
	if how == "" {
		how = c.Syscall
	}
	return fmt.Sprintf("%s -> %s | %s", c.Article, c.Kernel, how)
}

func (t *Text) beginLine(e *Event) {
	c := e.Call
	t.line(t.fit(t.head(e.Time, e.Host, c.Socket, c.Label), BSDCall(c, false), t.paint("dim", names(c))))
}

// callLine shows a call that ended with nothing in between on one line;
// begin may be nil (a recording without beginnings).
func (t *Text) callLine(begin, end *Event) {
	c := end.Call
	at := end.Time
	if begin != nil {
		at = begin.Time
	}
	body := BSDCall(c, true)
	if r := CallResult(c); r != "" && c.Op != OpAccept && c.Op != OpRecv && c.Op != OpRecvfrom && c.Op != OpGetsockname && c.Op != OpGetpeername {
		body += " = " + r
	}
	var states []string
	for _, s := range t.heldState {
		states = append(states, string(s.State.From)+" -> "+string(s.State.To))
	}
	if len(states) > 0 {
		body += "  " + t.paint("bold", strings.Join(states, ", "))
	} else if c.StateAfter != "" {
		body += "  " + string(c.StateAfter)
	}
	tail := t.paint("dim", names(c)) + t.errText(c)
	t.line(t.fit(t.head(at, end.Host, c.Socket, c.Label), body, tail))
}

// resultLine shows what a call whose beginning had a line of its own
// returned.
func (t *Text) resultLine(e *Event) {
	c := e.Call
	body := "└ " + string(c.Op) + "() = " + CallResult(c)
	if c.Closed {
		body = "└ " + string(c.Op) + "() ended: this program closed the socket"
		t.line(t.head(e.Time, e.Host, c.Socket, c.Label) + t.paint("dim", body))
		return
	}
	tail := fmt.Sprint(c.Duration.Round(time.Microsecond))
	if c.StateAfter != "" {
		tail = string(c.StateAfter) + "  " + tail
	}
	tail = t.paint("dim", tail) + t.errText(c)
	t.line(t.fit(t.head(e.Time, e.Host, c.Socket, c.Label), body, tail))
}

func (t *Text) errText(c *Call) string {
	if c.Err == "" || c.Err == "EOF" || c.Closed {
		return ""
	}
	return "  " + t.paint("error", "error: "+Clean(c.Err))
}

// BSDCall is a call as a program writes it, with its arguments and, when
// done, its result where the result is the point (accept, recv,
// getsockname).
func BSDCall(c *Call, done bool) string {
	switch c.Op {
	case OpSocket:
		return "socket()"
	case OpBind:
		return "bind(" + addrText(c.Local) + ")"
	case OpListen:
		return "listen(" + addrText(c.Local) + ")"
	case OpAccept:
		if done && c.Err == "" {
			return fmt.Sprintf("accept() = fd%d from %s", c.NewSocket, addrText(c.Remote))
		}
		return "accept()"
	case OpConnect:
		return "connect(" + addrText(c.Remote) + ")"
	case OpSend:
		return fmt.Sprintf("send(%d bytes)", c.Bytes)
	case OpRecv:
		if !done {
			return "recv()"
		}
		if c.Err == "EOF" {
			return "recv() = 0 (EOF: the peer's FIN)"
		}
		if c.Err != "" {
			return "recv() = -1"
		}
		return fmt.Sprintf("recv() = %d bytes", c.Bytes)
	case OpGetsockname:
		return "getsockname() = " + addrText(c.Local)
	case OpGetpeername:
		return "getpeername() = " + addrText(c.Remote)
	case OpSendto:
		return fmt.Sprintf("sendto(%d bytes, %s)", c.Bytes, addrText(c.Remote))
	case OpRecvfrom:
		if !done {
			return "recvfrom()"
		}
		if c.Err != "" {
			return "recvfrom() = -1"
		}
		return "recvfrom() = " + CallResult(c)
	}
	return string(c.Op) + "()"
}

// CallResult is what a call returned.
func CallResult(c *Call) string {
	switch {
	case c.Err == "EOF":
		return "0 (EOF: the peer's FIN)"
	case c.Err != "":
		return "-1"
	case c.Op == OpAccept:
		return fmt.Sprintf("fd%d from %s", c.NewSocket, addrText(c.Remote))
	case c.Op == OpRecv || c.Op == OpSend || c.Op == OpSendto:
		return fmt.Sprintf("%d bytes", c.Bytes)
	case c.Op == OpRecvfrom:
		return fmt.Sprintf("%d bytes from %s", c.Bytes, addrText(c.Remote))
	case c.Op == OpSocket:
		return fmt.Sprintf("fd%d", c.Socket)
	case c.Op == OpGetsockname:
		return addrText(c.Local)
	case c.Op == OpGetpeername:
		return addrText(c.Remote)
	}
	return "0"
}

func addrText(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (t *Text) stateLine(e *Event) {
	s := e.State
	body := "  " + t.paint("bold", fmt.Sprintf("%s -> %s", s.From, s.To))
	tail := s.Cause
	if s.Listener != 0 {
		tail += fmt.Sprintf(" on fd%d: a new connection", s.Listener)
	}
	if s.To == StateTimeWait {
		switch info := t.infos[e.Host]; {
		case info == nil || info.TimeWait == 0:
		case info.Kernel != "":
			tail += fmt.Sprintf("; TIME-WAIT lasts %ds on Linux (TCP_TIMEWAIT_LEN, 2 MSL)", int(info.TimeWait.Seconds()))
		case info.TimeWait != 60*time.Second:
			tail += fmt.Sprintf("; TIME-WAIT lasts %v here (2 MSL; Linux: 60s)", info.TimeWait)
		}
	}
	t.line(t.fit(t.head(e.Time, e.Host, s.Socket, s.Label), body, t.paint("dim", tail)))
	t.kernelStack(s.Stack)
}

// kernelStack shows, with Explain, the kernel functions that did what the
// line above says: the article's Figure 3, for the kernel.
func (t *Text) kernelStack(stack []string) {
	if !t.opt.Explain || len(stack) == 0 {
		return
	}
	indent := strings.Repeat(" ", headWidth+4)
	chain := strings.Join(stack, " -> ")
	if chain == t.lastChain {
		t.line(indent + t.paint("dim", "(by the same kernel functions as above)"))
		return
	}
	t.line(t.wrap(indent+t.paint("dim", "in the kernel: ")+chain, headWidth+6))
	t.lastChain = chain
}

// tcpEventLine shows what a kernel's TCP did on its own: a retransmission,
// a reset.
func (t *Text) tcpEventLine(e *Event) {
	te := e.TCPEvent
	if te == nil {
		return
	}
	var what string
	switch te.What {
	case Retransmit:
		what = "the kernel retransmits"
	case ResetSent:
		what = "the kernel sends a reset"
	case ResetReceived:
		what = "the kernel takes a reset"
	default:
		what = string(te.What)
	}
	body := "  " + t.paint("error", "! "+what)
	if te.State != "" {
		body += " in " + string(te.State)
	}
	tail := ""
	if te.Reason != "" {
		tail = "reason " + Clean(te.Reason) + "  "
	}
	if te.Src.IsValid() {
		tail += fmt.Sprintf("%s > %s", te.Src, te.Dst)
	}
	t.line(t.fit(t.head(e.Time, e.Host, te.Socket, te.Label), body, t.paint("dim", tail)))
	t.kernelStack(te.Stack)
}
