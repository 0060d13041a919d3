package trace

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// CompareOptions tune WriteCompare.
type CompareOptions struct {
	// Width is the whole width in columns; 0 means 160.
	Width int
	// Left and Right title the two runs' columns.
	Left, Right string
	// DifferencesOnly leaves out the runs, side by side: only what
	// differs is shown.
	DifferencesOnly bool
	// Explain shows, under each line, the functions behind it where the
	// run recorded them: the kernel's own stack at each change of state
	// (tracefs), and the netstack functions that sent each segment.
	Explain bool
}

// WriteCompare shows two runs of the same FTP session side by side (on
// nsftp's stack and on the kernel's, say), step by step of the client's
// dialogue: between one command or reply and the next, each run's socket
// calls, changes of state and segments, one short line each. It ends with
// what differs between the runs: the handshakes' options and windows,
// each socket's states, when a listener's connection is born, TIME-WAIT,
// how many segments and ACKs, the longest waits for a segment to leave
// and for an ACK. It is a pure function of the two runs' events.
func WriteCompare(w io.Writer, left, right []Event, opt CompareOptions) error {
	if opt.Width <= 0 {
		opt.Width = 160
	}
	bw := bufio.NewWriter(w)
	col := max((opt.Width-3)/2, 20)
	sides := [2]*compareSide{newCompareSide(left, opt.Explain, col), newCompareSide(right, opt.Explain, col)}
	if opt.DifferencesOnly {
		writeDifferences(bw, sides, opt)
		return bw.Flush()
	}
	fmt.Fprintf(bw, "%s │ %s\n", pad(opt.Left, col), opt.Right)
	fmt.Fprintf(bw, "%s─┼─%s\n", strings.Repeat("─", col), strings.Repeat("─", col))
	n := max(len(sides[0].steps), len(sides[1].steps))
	for i := range n {
		var heads [2]string
		var lines [2][]string
		for s, side := range sides {
			if i < len(side.steps) {
				heads[s] = side.steps[i].head
				lines[s] = side.steps[i].lines
			}
		}
		if heads[0] != "" || heads[1] != "" {
			head := heads[0]
			if heads[1] != heads[0] {
				head = pad(heads[0], col) + " │ " + heads[1]
			}
			fmt.Fprintf(bw, "%s\n", rule(head, opt.Width))
		}
		for j := range max(len(lines[0]), len(lines[1])) {
			var l, r string
			if j < len(lines[0]) {
				l = lines[0][j]
			}
			if j < len(lines[1]) {
				r = lines[1][j]
			}
			fmt.Fprintf(bw, "%s │ %s\n", pad(l, col), strings.TrimRight(cut(r, col), " "))
		}
	}
	writeDifferences(bw, sides, opt)
	return bw.Flush()
}

// compareStep is one step of a run: the client's FTP command or reply
// that opens it, and what the stacks did until the next.
type compareStep struct {
	head  string
	lines []string
}

// compareSide is one run, as WriteCompare shows and measures it.
type compareSide struct {
	evs   []Event
	text  *Text // learns each connection's first sequence numbers and window scales
	t0    time.Time
	steps []compareStep

	explain   bool
	col       int    // the column's width, for the explanations' lines
	lastChain string // the functions last explained, not repeated
}

func newCompareSide(evs []Event, explain bool, col int) *compareSide {
	s := &compareSide{evs: evs, text: NewText(io.Discard, TextOptions{Every: true}), explain: explain, col: col}
	// Times count from the first socket call: how long each run took to
	// set up its hosts is not the stacks' doing.
	for _, e := range evs {
		if e.Kind == KindCall {
			s.t0 = e.Time
			break
		}
	}
	s.steps = []compareStep{{}}
	for i := range evs {
		e := &evs[i]
		s.text.Event(e)
		if e.Message != nil && e.Side == Client && (e.Kind == KindCommand || e.Kind == KindReply) {
			arrow := "->"
			if e.Kind == KindReply {
				arrow = "<-"
			}
			text := Clean(RedactCommand(e.Text))
			if e.Kind == KindReply {
				text = fmt.Sprintf("%d %s", e.Code, Clean(strings.ReplaceAll(e.Text, "\n", " / ")))
			}
			s.steps = append(s.steps, compareStep{head: arrow + " " + text})
			continue
		}
		if l := s.line(i); l != "" {
			st := &s.steps[len(s.steps)-1]
			st.lines = append(st.lines, l)
			st.lines = append(st.lines, s.explained(e)...)
		}
	}
	return s
}

// explained returns the lines that say which functions did what e's line
// says, with Explain: the kernel's stack at a change of state, the
// netstack functions that sent a segment. The same functions twice in a
// row are said once.
func (s *compareSide) explained(e *Event) []string {
	if !s.explain {
		return nil
	}
	var who string
	var chain []string
	switch {
	case e.Kind == KindState && e.State != nil:
		who, chain = "in the kernel: ", e.State.Stack
	case e.Kind == KindTCPEvent && e.TCPEvent != nil:
		who, chain = "in the kernel: ", e.TCPEvent.Stack
	case e.Kind == KindSegment && e.Segment != nil:
		who, chain = "in netstack: ", e.Segment.Chain
	}
	if len(chain) == 0 {
		return nil
	}
	const indent = 16
	joined := strings.Join(chain, " -> ")
	if joined == s.lastChain {
		return []string{strings.Repeat(" ", indent) + "(the same functions as above)"}
	}
	s.lastChain = joined
	return wrapWords(who+joined, indent, s.col)
}

// wrapWords breaks s into lines of at most width columns, the first
// indented by indent and the rest by indent+2; a word longer than a line
// is cut.
func wrapWords(s string, indent, width int) []string {
	var lines []string
	line, n, empty := strings.Repeat(" ", indent), indent, true
	for _, w := range strings.Fields(s) {
		wn := utf8.RuneCountInString(w)
		if !empty && n+1+wn > width {
			lines = append(lines, line)
			line, n, empty = strings.Repeat(" ", indent+2), indent+2, true
		}
		if !empty {
			line += " "
			n++
		}
		line, n, empty = line+w, n+wn, false
	}
	return append(lines, line)
}

// traced reports whether host h recorded its own frames.
func (s *compareSide) sentBy(e *Event) bool {
	seg := e.Segment
	return seg.Dir == Out || !s.text.traced(seg.Src)
}

// line is the short line of event i, or "" when it is not shown: a call's
// beginning when its end follows at once, address queries, frames
// received from a host that traced sending them, the FTP side's events.
func (s *compareSide) line(i int) string {
	e := &s.evs[i]
	head := fmt.Sprintf("%s %-6s ", stamp(e.Time.Sub(s.t0), 10, 2), e.Host)
	sock := func(n int) string {
		if n == 0 {
			return "     "
		}
		return fmt.Sprintf("fd%-2d ", n)
	}
	switch {
	case e.Kind == KindCall && e.Call != nil:
		c := e.Call
		if c.Op == OpGetsockname || c.Op == OpGetpeername {
			return ""
		}
		if e.Phase == Begin {
			if s.endsNext(i) {
				return ""
			}
			return head + sock(c.Socket) + BSDCall(c, false)
		}
		body := BSDCall(c, true)
		if r := CallResult(c); r != "" && c.Op != OpAccept && c.Op != OpRecv {
			body += " = " + r
		}
		if !s.beganJustBefore(i) {
			body = "└ " + body
		}
		return head + sock(c.Socket) + body
	case e.Kind == KindState && e.State != nil:
		st := e.State
		return head + sock(st.Socket) + fmt.Sprintf("  %s -> %s  %s", st.From, st.To, st.Cause)
	case e.Kind == KindSegment && e.Segment != nil:
		seg := e.Segment
		if seg.Proto != "tcp" {
			if seg.Dir == In {
				return ""
			}
			return head + sock(0) + "  > " + seg.Proto + " " + Clean(seg.Info)
		}
		if !s.sentBy(e) {
			return ""
		}
		l := head + sock(seg.Socket) + "  > " + s.text.SegmentText(seg)
		if seg.Options != "" {
			l += " <" + seg.Options + ">"
		}
		return l
	case e.Kind == KindTCPEvent && e.TCPEvent != nil:
		return head + sock(e.TCPEvent.Socket) + "  ! " + string(e.TCPEvent.What)
	case e.Kind == KindDataOpen && e.Message != nil && e.Side == Client:
		return head + "     == data connection open"
	case e.Kind == KindDataClose && e.Message != nil && e.Side == Client:
		return head + fmt.Sprintf("     == data connection closed, %d bytes", e.Bytes)
	}
	return ""
}

// endsNext reports whether the call begun at i ends with the next event
// shown.
func (s *compareSide) endsNext(i int) bool {
	b := &s.evs[i]
	for j := i + 1; j < len(s.evs); j++ {
		e := &s.evs[j]
		if e.Kind == KindCall && e.Call != nil && e.Phase == End && e.Host == b.Host && e.Call.Socket == b.Call.Socket && e.Call.Op == b.Call.Op {
			return true
		}
		if e.Kind == KindCall && e.Call != nil && (e.Call.Op == OpGetsockname || e.Call.Op == OpGetpeername) {
			continue
		}
		if e.Kind == KindState && e.State != nil && e.Host == b.Host && e.State.Socket == b.Call.Socket && e.State.By == ByCall {
			continue
		}
		if s.shown(j) {
			return false
		}
	}
	return false
}

// shown reports whether event j has a line, whichever way calls pair up.
func (s *compareSide) shown(j int) bool {
	e := &s.evs[j]
	switch {
	case e.Kind == KindCall && e.Call != nil:
		return e.Call.Op != OpGetsockname && e.Call.Op != OpGetpeername
	case e.Kind == KindState, e.Kind == KindTCPEvent:
		return true
	case e.Kind == KindSegment && e.Segment != nil:
		if e.Segment.Proto != "tcp" {
			return e.Segment.Dir == Out
		}
		return s.sentBy(e)
	}
	return e.Message != nil
}

// beganJustBefore reports whether the call ending at i began with no
// line shown in between.
func (s *compareSide) beganJustBefore(i int) bool {
	end := &s.evs[i]
	for j := i - 1; j >= 0; j-- {
		e := &s.evs[j]
		if e.Kind == KindCall && e.Call != nil && e.Phase == Begin && e.Host == end.Host && e.Call.Socket == end.Call.Socket && e.Call.Op == end.Call.Op {
			return s.endsNext(j)
		}
	}
	return true
}

func pad(s string, n int) string {
	s = cut(s, n)
	return s + strings.Repeat(" ", max(0, n-utf8.RuneCountInString(s)))
}

func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func rule(head string, width int) string {
	s := "── " + head + " "
	return s + strings.Repeat("─", max(3, width-utf8.RuneCountInString(s)))
}

// A difference is one thing measured on both runs.
type difference struct {
	what        string
	left, right string
}

func writeDifferences(w *bufio.Writer, sides [2]*compareSide, opt CompareOptions) {
	// What either side's hosts could not see is measured on neither: a
	// thing one side never saw is a difference only if it could have.
	var unseen [2]map[Seen]string
	blind := map[Seen]bool{}
	for i, s := range sides {
		unseen[i] = s.unseen()
		for k := range unseen[i] {
			blind[k] = true
		}
	}
	a, b := sides[0].measure(blind), sides[1].measure(blind)
	var differ []difference
	var same []string
	notMeasured := map[Seen][]string{}
	measurable := func(m measure) bool {
		for _, n := range m.needs {
			if blind[n] {
				if !slices.Contains(notMeasured[n], m.group) {
					notMeasured[n] = append(notMeasured[n], m.group)
				}
				return false
			}
		}
		return true
	}
	for _, m := range a {
		if !measurable(m) {
			continue
		}
		i := slices.IndexFunc(b, func(n measure) bool { return n.what == m.what })
		if i < 0 {
			differ = append(differ, difference{m.what, m.value, "(not seen)"})
			continue
		}
		if m.value == b[i].value {
			same = append(same, m.what)
			continue
		}
		differ = append(differ, difference{m.what, m.value, b[i].value})
	}
	for _, m := range b {
		if measurable(m) && !slices.ContainsFunc(a, func(n measure) bool { return n.what == m.what }) {
			differ = append(differ, difference{m.what, "(not seen)", m.value})
		}
	}
	fmt.Fprintf(w, "\nWhat differs (%d of %d things measured on both stacks):\n", len(differ), len(differ)+len(same))
	width := max(len(opt.Left), len(opt.Right))
	for _, d := range differ {
		fmt.Fprintf(w, "  %s\n      %-*s  %s\n      %-*s  %s\n", d.what, width, opt.Left, d.left, width, opt.Right, d.right)
	}
	if len(same) > 0 {
		fmt.Fprintf(w, "The same on both: %s.\n", strings.Join(same, "; "))
	}
	if len(notMeasured) > 0 {
		var parts []string
		for _, k := range []Seen{SeenSegments, SeenStates, SeenCalls} {
			if len(notMeasured[k]) == 0 {
				continue
			}
			why := unseen[1][k]
			if why == "" {
				why = unseen[0][k]
			}
			parts = append(parts, fmt.Sprintf("%s (%s)", strings.Join(notMeasured[k], ", "), why))
		}
		who := opt.Right
		if len(unseen[1]) == 0 {
			who = opt.Left
		}
		fmt.Fprintf(w, "Not measured on %s, so not compared (run as root to see them): %s.\n", who, strings.Join(parts, "; "))
	}
}

// unseen is what the side's hosts said they could not see, and why.
func (s *compareSide) unseen() map[Seen]string {
	out := map[Seen]string{}
	for _, e := range s.evs {
		if e.Kind == KindHost && e.HostInfo != nil {
			for _, u := range e.HostInfo.Unseen {
				if u.What != SeenCalls {
					out[u.What] = u.Why
				}
			}
		}
	}
	return out
}

// measure is one thing a run is measured by, as text, and what a run
// must have seen to measure it (group names it among those not measured).
type measure struct {
	what, value string
	needs       []Seen
	group       string
}

// measure measures the run: what its hosts and sockets did, in the order
// a reader meets it. blind is what either run could not see: where it is
// the changes of state, the states the socket calls saw stand in for
// them.
func (s *compareSide) measure(blind map[Seen]bool) []measure {
	var out []measure
	add := func(needs []Seen, group, what, format string, args ...any) {
		out = append(out, measure{what, fmt.Sprintf(format, args...), needs, group})
	}
	segs, states := []Seen{SeenSegments}, []Seen{SeenStates}
	type sockKey struct {
		host string
		fd   int
	}
	var (
		order     []sockKey
		stateSeq  = map[sockKey][]string{}
		labels    = map[sockKey]Conn{}
		segCount  int
		dataSegs  int
		pureACKs  int
		retrans   int
		bytes     int64
		largest   int
		syns      = map[string]string{} // "client control SYN" -> options
		born      []string
		timeWait  = map[string][]string{} // host -> sockets
		infos     = map[string]*HostInfo{}
		lastFTP   time.Time
		sendWait  time.Duration
		sendWho   string
		sendNagle bool
		peerSeg   = map[dirKey]time.Time{} // the last segment each way
		ackWait   time.Duration
		ackWho    string
		pendingTx = map[sockKey]time.Time{} // a send() waiting for its first segment
		unacked   = map[dirKey]time.Time{}  // data received, not yet acknowledged
		synackAt  = map[sockKey]bool{}      // a SYN|ACK sent on the socket
		fullest   = map[dirKey]int{}        // the largest data segment each way so far

		callOrder  []sockKey
		callStates = map[sockKey][]string{}
		callLabels = map[sockKey]Conn{}
		listens    = map[sockKey]bool{}
		closed     = map[sockKey]bool{} // close() begun (a run never gives a socket's number again)

		data = s.dataTransfer()
	)
	for i := range s.evs {
		e := &s.evs[i]
		switch {
		case e.Kind == KindHost && e.HostInfo != nil:
			infos[e.Host] = e.HostInfo
		case e.Message != nil && e.Side == Client:
			lastFTP = e.Time
		case e.Kind == KindCall && e.Call != nil && e.Call.Op == OpSend && e.Phase == Begin:
			pendingTx[sockKey{e.Host, e.Call.Socket}] = e.Time
		}
		if e.Kind == KindCall && e.Call != nil && e.Call.Proto == "" && e.Call.Op != OpGetsockname && e.Call.Op != OpGetpeername {
			c := e.Call
			k := sockKey{e.Host, c.Socket}
			st := c.StateAfter
			if e.Phase == Begin && c.Op == OpClose {
				closed[k] = true
			}
			switch {
			case e.Phase == Begin:
				st = c.StateBefore
			case c.Op == OpAccept, c.Op == OpClose, closed[k]:
				// accept's is the new connection's; after close(2) the
				// kernel's socket is out of TCP_INFO's reach, for a call
				// that close cut short too (a recv() waiting in another
				// thread), whose state netstack would give as it happened
				// to be at that moment.
				st = ""
			}
			if c.Op == OpListen {
				listens[k] = true
			}
			if st != "" {
				if _, ok := callStates[k]; !ok {
					callOrder = append(callOrder, k)
					callLabels[k] = c.Label
				}
				if l := callStates[k]; len(l) == 0 || l[len(l)-1] != string(st) {
					callStates[k] = append(l, string(st))
				}
			}
		}
		switch {
		case e.Kind == KindState && e.State != nil:
			st := e.State
			k := sockKey{e.Host, st.Socket}
			if _, ok := stateSeq[k]; !ok {
				order = append(order, k)
				stateSeq[k] = []string{string(st.From)}
				labels[k] = st.Label
			}
			stateSeq[k] = append(stateSeq[k], string(st.To))
			if st.From == StateListen && st.To == StateSynReceived {
				when := "as the SYN arrives, before its SYN|ACK"
				if synackAt[k] {
					when = "as the handshake's last ACK arrives, after its SYN|ACK"
				}
				born = append(born, when)
			}
			if st.To == StateTimeWait {
				timeWait[e.Host] = append(timeWait[e.Host], string(st.Label))
			}
		case e.Kind == KindSegment && e.Segment != nil && e.Segment.Proto == "tcp" && s.sentBy(e):
			seg := e.Segment
			k := sockKey{e.Host, seg.Socket}
			d := dirKey{seg.Src, seg.Dst}
			segCount++
			bytes += int64(seg.Len)
			largest = max(largest, seg.Len)
			if seg.Flags.Has(SYN) {
				who := e.Host + " " + string(seg.Label) + " " + seg.Flags.String()
				if _, ok := syns[who]; !ok {
					syns[who] = fmt.Sprintf("win=%d <%s>", seg.Window, seg.Options)
				}
				if seg.Flags.Has(ACK) && seg.Dir == Out {
					synackAt[k] = true
				}
			}
			if seg.Len > 0 {
				dataSegs++
				if seg.Retransmit {
					retrans++
				}
				if at, ok := pendingTx[k]; ok && seg.Dir == Out {
					if w := e.Time.Sub(at); w > sendWait {
						sendWait, sendWho = w, fmt.Sprintf("%s %s, %d bytes", e.Host, seg.Label, seg.Len)
						// Nagle's algorithm holds only a segment shorter
						// than a full one; a full one waits for the window.
						p, ok := peerSeg[dirKey{seg.Dst, seg.Src}]
						sendNagle = ok && p.After(at) && e.Time.Sub(p) < time.Millisecond && seg.Len < fullest[d]
					}
					delete(pendingTx, k)
				}
				fullest[d] = max(fullest[d], seg.Len)
				if _, ok := unacked[d]; !ok {
					unacked[d] = e.Time
				}
			} else if seg.Flags == ACK {
				pureACKs++
			}
			peerSeg[d] = e.Time
			if seg.Flags.Has(ACK) {
				back := dirKey{seg.Dst, seg.Src}
				if at, ok := unacked[back]; ok {
					if w := e.Time.Sub(at); w > ackWait {
						ackWait, ackWho = w, fmt.Sprintf("%s %s connection", e.Host, seg.Label)
					}
					delete(unacked, back)
				}
			}
		}
	}
	const hs = "the handshakes' windows and options"
	for _, who := range []string{"client control SYN", "server control SYN|ACK", "server data SYN", "client data SYN|ACK", "client data SYN", "server data SYN|ACK"} {
		if v, ok := syns[who]; ok {
			add(segs, hs, "the "+who+"'s window and options", "%s", v)
		}
	}
	if len(born) > 0 {
		add(states, "when a listener's connection becomes a socket", "a listening socket's connection becomes a socket in SYN-RECEIVED", "%s", born[0])
	}
	name := func(k sockKey, label Conn, listening bool, nth map[string]int) string {
		n := k.host + " " + string(label)
		if listening {
			n += " listening socket"
		} else {
			n += " connection"
		}
		nth[n]++
		if nth[n] > 1 {
			n += fmt.Sprintf(" #%d", nth[n])
		}
		return n
	}
	nth := map[string]int{}
	for _, k := range order {
		listening := slices.Contains(stateSeq[k], string(StateListen)) && stateSeq[k][0] != string(StateListen)
		add(states, "each socket's states", "the states of the "+name(k, labels[k], listening, nth), "%s", strings.Join(stateSeq[k], " > "))
	}
	if blind[SeenStates] {
		// The states TCP_INFO (or netstack) gave at each call's beginning
		// and end, which every run has.
		nth := map[string]int{}
		for _, k := range callOrder {
			add(nil, "", "the states the calls on the "+name(k, callLabels[k], listens[k], nth)+" saw", "%s", strings.Join(callStates[k], " > "))
		}
	}
	for _, h := range []string{"client", "server"} {
		if info := infos[h]; info != nil && info.TimeWait > 0 {
			socks := "no socket"
			if tw := timeWait[h]; len(tw) > 0 {
				socks = strings.Join(tw, " and ") + " socket"
				if len(tw) > 1 {
					socks += "s"
				}
			}
			add(states, "TIME-WAIT", "TIME-WAIT on the "+h, "%s, for %s", socks, durationText(info.TimeWait))
		}
	}
	add(segs, "the segments sent", "TCP segments sent", "%d (%d with data, %d bare ACKs, %d retransmitted)", segCount, dataSegs, pureACKs, retrans)
	add(segs, "the segments sent", "the largest segment", "%d bytes", largest)
	if sendNagle && sendWait > 5*time.Millisecond {
		sendWho += "; it left as the peer's ACK came: Nagle's algorithm (RFC 896) holds a small segment while data is unacknowledged"
	}
	add(segs, "the waits for a segment and for an ACK", "the longest wait from a send() to its first segment", "%s (%s)", Duration(sendWait), sendWho)
	if ackWait > 5*time.Millisecond {
		ackWho += "; a delayed ACK (RFC 1122 section 4.2.3.2)"
	}
	add(segs, "the waits for a segment and for an ACK", "the longest wait for data to be acknowledged", "%s (by the %s)", Duration(ackWait), ackWho)
	if data.bytes > 0 {
		if data.took > 0 {
			add(nil, "", "the data connection's goodput (what the client's recv() calls returned, over the time they took)", "%s (%s in %s)",
				BitRate(float64(data.bytes)*8/data.took.Seconds()), Bytes(data.bytes), Duration(data.took))
		}
		if data.samples > 0 {
			add(nil, "", "the data sender's largest congestion window", "%d segments (%s)", data.maxCwnd, Bytes(int64(data.maxCwnd*data.mss)))
			add(nil, "", "the data sender's largest send window (the receiver's advertised window)", "%s", Bytes(int64(data.maxSndWnd)))
		}
		if data.retransKnown {
			add(nil, "", "the data sender's retransmissions", "%d segments (%s)", data.retrans, data.retransHow)
		}
	}
	if !lastFTP.IsZero() {
		add(nil, "", "from the run's start to the server's last reply", "%s", Duration(lastFTP.Sub(s.t0)))
	}
	return out
}

// transfer is what a run's data connection moved, as its ends saw it.
type transfer struct {
	bytes        int64         // the client's recv() calls' bytes, after the first
	took         time.Duration // from the first recv() that returned data to the last
	samples      int           // the sender's TCB samples
	maxCwnd, mss int
	maxSndWnd    uint32
	retrans      int
	retransKnown bool
	retransHow   string
}

// dataTransfer measures the run's (largest) data connection: the goodput
// the client's recv() calls saw, and the sender's window and
// retransmissions from its own samples: netstack's segments sent again,
// or the kernel's count (TCP_INFO's total_retrans), which includes what a
// queue dropped before any capture could see it.
func (s *compareSide) dataTransfer() transfer {
	type sockKey struct {
		host string
		fd   int
	}
	got := map[sockKey]int64{}
	first, last := map[sockKey]time.Time{}, map[sockKey]time.Time{}
	firstN := map[sockKey]int64{}
	senders := map[sockKey]bool{}
	for _, e := range s.evs {
		if e.Kind != KindCall || e.Call == nil || e.Call.Label != Data || e.Phase != End || e.Call.Bytes == 0 {
			continue
		}
		k := sockKey{e.Host, e.Call.Socket}
		switch e.Call.Op {
		case OpRecv:
			if _, ok := first[k]; !ok {
				first[k], firstN[k] = e.Time, int64(e.Call.Bytes)
			}
			last[k] = e.Time
			got[k] += int64(e.Call.Bytes)
		case OpSend:
			senders[k] = true
		}
	}
	var t transfer
	for k, n := range got {
		if n > t.bytes+firstN[k] || t.bytes == 0 {
			t.bytes, t.took = n-firstN[k], last[k].Sub(first[k])
		}
	}
	// The sender: its samples, and the data segments it sent again.
	kernelRetrans, kernelKnown := 0, false
	segRetrans, segKnown := 0, false
	for _, e := range s.evs {
		switch {
		case e.Kind == KindTCB && e.TCB != nil && senders[sockKey{e.Host, e.TCB.Socket}]:
			b := e.TCB
			t.samples++
			t.maxCwnd = max(t.maxCwnd, b.Cwnd)
			t.maxSndWnd = max(t.maxSndWnd, b.SndWnd)
			if b.MSS > 0 {
				t.mss = b.MSS
			}
			if b.Source == FromTCPInfo {
				kernelRetrans, kernelKnown = max(kernelRetrans, b.TotalRetrans), true
			}
		case e.Kind == KindSegment && e.Segment != nil && e.Segment.Dir == Out && e.Segment.Proto == "tcp" && e.Segment.Len > 0 &&
			senders[sockKey{e.Host, e.Segment.Socket}] && e.Layer == LayerStack:
			segKnown = true
			if e.Segment.Retransmit {
				segRetrans++
			}
		}
	}
	switch {
	case kernelKnown:
		t.retrans, t.retransKnown, t.retransHow = kernelRetrans, true, "TCP_INFO's total_retrans at the sender's last call"
	case segKnown:
		t.retrans, t.retransKnown, t.retransHow = segRetrans, true, "data segments it sent again"
	}
	return t
}

// durationText writes whole seconds as such ("60s"), anything else as
// Duration does.
func durationText(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return Duration(d)
}

// CompareRuns splits a recording of --compare into its two runs: each
// begins with a run event that names its stack (Run.Compare). ok is
// false for a recording of one run.
func CompareRuns(events []Event) (left, right []Event, ok bool) {
	var starts []int
	for i, e := range events {
		if e.Kind == KindRun && e.Run != nil && e.Run.Compare != "" {
			starts = append(starts, i)
		}
	}
	if len(starts) != 2 {
		return nil, nil, false
	}
	return events[starts[0]:starts[1]], events[starts[1]:], true
}
