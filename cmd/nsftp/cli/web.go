package cli

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nsftp/nsftp/lesson"
	"github.com/nsftp/nsftp/trace"
)

// webFlag is --web (127.0.0.1, a port of the system's choosing) or
// --web=ADDR.
type webFlag struct {
	addr string
	set  bool
}

func (w *webFlag) String() string   { return w.addr }
func (w *webFlag) IsBoolFlag() bool { return true }
func (w *webFlag) Set(v string) error {
	switch v {
	case "false", "":
		w.addr, w.set = "", false
		return nil
	case "true":
		w.addr, w.set = "127.0.0.1:0", true
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		// A port alone, or an address alone.
		if strings.Trim(v, "0123456789") == "" {
			host, port = "127.0.0.1", v
		} else {
			host, port = strings.Trim(v, "[]"), "0"
		}
	}
	w.addr, w.set = net.JoinHostPort(host, port), true
	return nil
}

// webLesson is a live lesson: a small web server that streams the run to
// every browser that opens it, as the page's model grows, and lets one
// holding the token drive the run through step mode's gate: next call,
// next segment, continue, stop. It is step mode's keyReader.
type webLesson struct {
	ln     net.Listener
	srv    *http.Server
	url    string
	token  string
	b      *lesson.Builder
	cancel context.CancelCauseFunc
	// loopback says the server is reachable from this machine only: a
	// request must name it by its address, so a web page elsewhere that
	// has a name resolve to 127.0.0.1 (DNS rebinding) cannot read it.
	loopback bool

	keys chan byte // a browser's command for the prompt waiting

	mu       sync.Mutex
	status   []byte        // the latest status, as JSON
	statusN  int           // counts statuses
	paused   bool          // a prompt waits for a command
	wake     chan struct{} // closed and renewed when there is something new
	done     bool          // the run is over: the last status sent
	clients  int
	finalled sync.WaitGroup // browsers still to be sent the end
	graphSet bool
}

var _ keyReader = (*webLesson)(nil)

// startWeb listens on addr and serves the live lesson.
func startWeb(addr string, title string, cancel context.CancelCauseFunc) (*webLesson, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &setupError{fmt.Errorf("--web: %w", err)}
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	w := &webLesson{ln: ln, token: hex.EncodeToString(tok), b: lesson.NewBuilder(lesson.Options{}),
		cancel: cancel, keys: make(chan byte), wake: make(chan struct{})}
	tcp := ln.Addr().(*net.TCPAddr)
	w.loopback = tcp.IP.IsLoopback()
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	w.url = "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port)) + "/?token=" + w.token
	w.setStatus(map[string]any{"text": "starting"})
	var page strings.Builder
	if err := lesson.WriteLive(&page, title); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	body := page.String()
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		rw.Header().Set("Cache-Control", "no-store")
		io.WriteString(rw, body)
	})
	mux.HandleFunc("GET /events", w.events)
	mux.HandleFunc("POST /control", w.control)
	w.srv = &http.Server{Handler: w.guard(mux), ReadHeaderTimeout: 10 * time.Second}
	go w.srv.Serve(ln)
	return w, nil
}

// guard refuses requests for the server by another name when it listens
// on loopback.
func (w *webLesson) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.loopback {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if ip := net.ParseIP(strings.Trim(host, "[]")); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
				http.Error(rw, "this lesson answers to its own address only", http.StatusMisdirectedRequest)
				return
			}
		}
		h.ServeHTTP(rw, r)
	})
}

// reach says who can open the lesson.
func (w *webLesson) reach() string {
	tcp := w.ln.Addr().(*net.TCPAddr)
	switch {
	case tcp.IP.IsLoopback():
		return "this machine only"
	case tcp.IP.IsUnspecified():
		return fmt.Sprintf("anyone who can reach port %d of any of this machine's addresses can watch; only the address with the token can drive the run", tcp.Port)
	}
	return fmt.Sprintf("anyone who can reach %s can watch; only the address with the token can drive the run", w.ln.Addr())
}

// sink is the Builder, waking the browsers as events come.
func (w *webLesson) sink() trace.Sink { return webSink{w} }

type webSink struct{ w *webLesson }

func (s webSink) Event(e *trace.Event) {
	s.w.b.Event(e)
	s.w.poke()
}

func (s webSink) Flush() error {
	s.w.b.Flush()
	s.w.poke()
	return nil
}

// poke wakes the browsers' streams.
func (w *webLesson) poke() {
	w.mu.Lock()
	close(w.wake)
	w.wake = make(chan struct{})
	w.mu.Unlock()
}

func (w *webLesson) setStatus(s map[string]any) {
	b, _ := json.Marshal(s)
	w.mu.Lock()
	w.status = b
	w.statusN++
	w.mu.Unlock()
	w.poke()
}

// announce says what the run is paused before: step mode calls it as it
// prompts.
func (w *webLesson) announce(e trace.Event) {
	var text string
	switch {
	case e.Call != nil:
		c := e.Call
		text = fmt.Sprintf("paused before %s fd%d %s: about to %s", e.Host, c.Socket, c.Label, describeCall(c))
	case e.Segment != nil:
		text = "paused: " + trace.Clean(describeFrame(e)) + "  " + e.Segment.Addrs()
	}
	w.setStatus(map[string]any{"paused": true, "text": text, "event": e})
}

// next implements keyReader: it waits for a browser's command.
func (w *webLesson) next(ctx context.Context) (byte, error) {
	w.mu.Lock()
	w.paused = true
	w.mu.Unlock()
	w.poke()
	defer func() {
		w.mu.Lock()
		w.paused = false
		w.mu.Unlock()
	}()
	select {
	case k := <-w.keys:
		w.setStatus(map[string]any{"text": "running"})
		return k, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// control takes a command from a browser that holds the token.
func (w *webLesson) control(rw http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Nsftp-Token")), []byte(w.token)) != 1 {
		http.Error(rw, "control needs the token nsftp printed", http.StatusForbidden)
		return
	}
	cmd, _ := io.ReadAll(io.LimitReader(r.Body, 64))
	keys := map[string]byte{"next-call": '\n', "next-segment": 's', "continue": 'c', "stop": 'q'}
	k, ok := keys[strings.TrimSpace(string(cmd))]
	if !ok {
		http.Error(rw, "commands: next-call, next-segment, continue, stop", http.StatusBadRequest)
		return
	}
	select {
	case w.keys <- k:
		rw.WriteHeader(http.StatusNoContent)
		return
	default:
	}
	if k == 'q' {
		// Running on (after continue): stop all the same, as Ctrl-C would;
		// the client still ends its session with QUIT.
		w.cancel(&stoppedError{where: "from the browser while the run went on"})
		rw.WriteHeader(http.StatusNoContent)
		return
	}
	http.Error(rw, "the run is not paused", http.StatusConflict)
}

// events streams the model and the status to a browser (server-sent
// events): all of it first, then what is new, at most ten times a
// second.
func (w *webLesson) events(rw http.ResponseWriter, r *http.Request) {
	fl, ok := rw.(http.Flusher)
	if !ok {
		http.Error(rw, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-store")
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		http.Error(rw, "the run is over", http.StatusGone)
		return
	}
	w.clients++
	w.finalled.Add(1)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.clients--
		w.mu.Unlock()
	}()
	var mark lesson.Mark
	sentVer, sentStatus := int64(-1), -1
	finalled := false
	defer func() {
		if !finalled {
			w.finalled.Done()
		}
	}()
	for {
		w.mu.Lock()
		wake, status, statusN, done := w.wake, w.status, w.statusN, w.done
		w.mu.Unlock()
		if v := w.b.Version(); v != sentVer {
			var d []byte
			d, mark = w.b.Delta(mark)
			sentVer = v
			fmt.Fprintf(rw, "event: model\ndata: %s\n\n", d)
		}
		if statusN != sentStatus {
			sentStatus = statusN
			fmt.Fprintf(rw, "event: status\ndata: %s\n\n", status)
		}
		fl.Flush()
		if done {
			finalled = true
			w.finalled.Done()
			return
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
		select { // a tenth of a second's events at once
		case <-time.After(100 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
}

// finish ends the lesson: the model's last rows and graph, a last status,
// and, once every browser has them (or after a few seconds), the server
// stops. The pages keep the run.
func (w *webLesson) finish(events []trace.Event, err error) {
	w.b.Finish()
	if events != nil {
		w.b.SetGraph(events)
	}
	text := "the run is over; this page keeps it (nsftp demo --html FILE writes one to keep)"
	if err != nil {
		var stopped *stoppedError
		if errors.As(err, &stopped) {
			text = "stopped: " + stopped.Error() + "; this page keeps the run"
		} else {
			text = "the run ended: " + trace.Clean(err.Error())
		}
	}
	b, _ := json.Marshal(map[string]any{"done": true, "text": text})
	w.mu.Lock()
	w.status, w.statusN, w.done = b, w.statusN+1, true
	w.mu.Unlock()
	w.poke()
	waited := make(chan struct{})
	go func() { w.finalled.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(3 * time.Second):
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.srv.Shutdown(ctx)
	w.srv.Close()
}
