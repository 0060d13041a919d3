package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/lesson/browsertest"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// settled is true once the page has read every chunk it asked for.
const settled = `(document.documentElement.dataset.pending || '0') === '0'`

// panel is what a panel of the page says, as text.
func panel(p *browsertest.Page, id string) string {
	return p.String(`document.getElementById('` + id + `').innerText`)
}

// cursor is the event the page's cursor is on.
func cursor(p *browsertest.Page) uint64 {
	var n uint64
	fmt.Sscan(p.String(`document.documentElement.dataset.cursor || '0'`), &n)
	return n
}

// press presses key and waits for the panels to be drawn.
func press(p *browsertest.Page, key string) {
	p.Key(key)
	p.Wait(settled, 10*time.Second)
}

// TestLessonPage opens the demo's lesson (nsftp demo --html) in headless
// Chromium and steps through it as a student would, checking each panel
// against the run's recording: the first SYN by layer, the state diagram
// through the handshake, the TCB after it, the way back, and the position
// kept in the address. The page logs no error and asks for nothing
// beyond itself.
func TestLessonPage(t *testing.T) {
	b := browsertest.Start(t, 1920, 1080)
	dir := t.TempDir()
	rec, page := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "demo.html")
	if _, errOut, err := runIn(t, "", "demo", "-q", "--record", rec, "--html", page); err != nil {
		t.Fatalf("demo --html: %v\n%s", err, errOut)
	}
	evs := readRecording(t, rec)
	// The client's first SYN, from the recording: the page must show it.
	var syn *trace.Event
	for i := range evs {
		e := &evs[i]
		if e.Kind == trace.KindSegment && e.Host == "client" && e.Segment.Dir == trace.Out && e.Segment.Flags == trace.SYN {
			syn = e
			break
		}
	}
	if syn == nil || syn.Segment.Label != trace.Control {
		t.Fatalf("the recording has no client control SYN: %+v", syn)
	}
	sock := syn.Segment.Socket
	sockName := fmt.Sprintf("client fd%d control", sock)

	pageURL := (&url.URL{Scheme: "file", Path: page}).String()
	p := b.Open(t, pageURL, `document.documentElement.dataset.readyMs`)
	p.Wait(settled, 10*time.Second)
	if c := cursor(p); c != evs[0].Seq {
		t.Errorf("the page opens at event %d, want the first, %d", c, evs[0].Seq)
	}

	// → until the first SYN: the layer panel shows its flags and socket.
	presses := 0
	for ; presses < 300; presses++ {
		press(p, "ArrowRight")
		if p.String(`(document.querySelector('#l-tcp [data-flags]')||{dataset:{}}).dataset.flags || ''`) == "SYN" {
			break
		}
	}
	if c := cursor(p); c != syn.Seq {
		t.Fatalf("after %d presses of → the layer panel shows a SYN at event %d; the client's first SYN is event %d", presses, c, syn.Seq)
	}
	if got := p.String(`document.querySelector('#l-tcp [data-k=socket]').textContent`); got != sockName {
		t.Errorf("the first SYN's TCP layer says its socket is %q, want %q", got, sockName)
	}
	if got := p.String(`document.querySelector('#l-tcp [data-k=sequence]').textContent`); !strings.HasPrefix(got, fmt.Sprint(syn.Segment.Seq)) || !strings.Contains(got, "relative 0") {
		t.Errorf("the first SYN's sequence number shows as %q, want %d (relative 0)", got, syn.Segment.Seq)
	}
	layersAtSYN, statesAtSYN := panel(p, "layers"), panel(p, "p-states")
	synPresses := presses

	// The state diagram marks the client's socket in SYN-SENT, then, on
	// through the handshake, in ESTABLISHED.
	marked := func(state string) bool {
		return p.String(`(() => { const n = document.getElementById('st-`+state+`');
			return n && n.classList.contains('focus') ? n.querySelector('.chips').textContent : ''; })()`) != "" &&
			strings.Contains(p.String(`document.getElementById('st-`+state+`').querySelector('.chips').textContent`), sockName)
	}
	if !marked("SYN-SENT") {
		t.Errorf("at the first SYN the state diagram does not mark %s in SYN-SENT:\n%s", sockName, statesAtSYN)
	}
	for ; presses < 400 && !marked("ESTABLISHED"); presses++ {
		press(p, "ArrowRight")
	}
	if !marked("ESTABLISHED") {
		t.Fatalf("stepping on, the state diagram never marks %s in ESTABLISHED", sockName)
	}
	established := cursor(p)

	// After the handshake, the TCB panel shows the recording's TCB sample
	// for that moment, field by field.
	col := fmt.Sprintf(`#tcbtable td[data-sock="0:%d"]`, sock)
	for ; presses < 500 && p.String(`(document.querySelector('`+col+`[data-f=snd_una]')||{dataset:{}}).dataset.v || ''`) == ""; presses++ {
		press(p, "ArrowRight")
	}
	at := cursor(p)
	var sample *trace.TCB
	for i := range evs {
		if e := &evs[i]; e.Kind == trace.KindTCB && e.Host == "client" && e.TCB.Socket == sock && e.Seq <= at {
			sample = e.TCB
		}
	}
	if sample == nil || at < established {
		t.Fatalf("the TCB panel shows the client's TCB at event %d, where the recording has no sample for it (ESTABLISHED at %d)", at, established)
	}
	want := map[string]string{
		"state": string(sample.State), "snd_una": fmt.Sprint(sample.SndUna), "snd_nxt": fmt.Sprint(sample.SndNxt),
		"snd_wnd": fmt.Sprint(sample.SndWnd), "rcv_nxt": fmt.Sprint(sample.RcvNxt), "rcv_wnd": fmt.Sprint(sample.RcvWnd),
		"cwnd": fmt.Sprint(sample.Cwnd), "ssthresh": fmt.Sprint(sample.Ssthresh), "mss": fmt.Sprint(sample.MSS),
		"srtt_ns": fmt.Sprint(int64(sample.SRTT)), "rto_ns": fmt.Sprint(int64(sample.RTO)), "congestion": sample.Congestion,
		"iss": fmt.Sprint(sample.ISS),
	}
	for f, v := range want {
		if got := p.String(`(document.querySelector('` + col + `[data-f=` + f + `]')||{dataset:{}}).dataset.v || ''`); got != v {
			t.Errorf("TCB panel at event %d: %s = %q, the recording's sample says %q", at, f, got, v)
		}
	}
	if got := p.String(`document.querySelector('` + col + `[data-f=snd_nxt]').firstChild.textContent`); got != fmt.Sprint(sample.SndNxt-sample.ISS) {
		t.Errorf("TCB panel: SND.NXT relative to ISS shows %q, want %d", got, sample.SndNxt-sample.ISS)
	}
	tcbAt := panel(p, "tcb")
	if testkit.Updating() {
		p.Wait(settled, 5*time.Second)
		if err := os.WriteFile(filepath.Join("..", "..", "..", "docs", "lesson.png"), p.Screenshot(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// ← as many times brings back the SYN, and its panels as they were.
	for i := synPresses; i < presses; i++ {
		press(p, "ArrowLeft")
	}
	if c := cursor(p); c != syn.Seq {
		t.Fatalf("← %d times from event %d lands on event %d, want the SYN, %d", presses-synPresses, at, c, syn.Seq)
	}
	if got := panel(p, "layers"); got != layersAtSYN {
		t.Errorf("back at the SYN, the layer panel differs:\n%s", lineDiff(layersAtSYN, got))
	}
	if !marked("SYN-SENT") {
		t.Error("back at the SYN, the state diagram does not mark SYN-SENT again")
	}

	// The position is in the address: reloading it restores the moment.
	for i := synPresses; i < presses; i++ {
		press(p, "ArrowRight")
	}
	hash := p.String(`location.hash`)
	if hash != fmt.Sprintf("#e=%d", at) {
		t.Errorf("the address keeps %q, want #e=%d", hash, at)
	}
	p.Navigate("about:blank", "")
	p.Navigate(pageURL+hash, `document.documentElement.dataset.readyMs`)
	p.Wait(settled, 10*time.Second)
	if c := cursor(p); c != at {
		t.Errorf("opened at %s, the page's cursor is at event %d", hash, c)
	}
	if got := panel(p, "tcb"); got != tcbAt {
		t.Errorf("opened at %s, the TCB panel differs:\n%s", hash, lineDiff(tcbAt, got))
	}

	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
	for _, r := range p.Requests() {
		if r != pageURL && !strings.HasPrefix(r, "data:") {
			t.Errorf("the page asked for %s; it may ask for nothing beyond itself", r)
		}
	}
}

// TestLessonLive drives demo --web from the page: Next call lets exactly
// one socket call run (the recording shows it), Continue runs to the
// end, and the page shows the transfer's 226.
func TestLessonLive(t *testing.T) {
	stacktest.CheckGoroutines(t)
	b := browsertest.Start(t, 1400, 900)
	rec := filepath.Join(t.TempDir(), "live.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errR, errW := io.Pipe()
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		err := Run(ctx, []string{"demo", "-q", "--web", "--record", rec}, strings.NewReader(""), &out, errW)
		errW.Close()
		done <- err
	}()
	// The address nsftp prints.
	lines := bufio.NewScanner(errR)
	var addr string
	for lines.Scan() {
		if m := regexp.MustCompile(`http://\S+token=\w+`).FindString(lines.Text()); m != "" {
			addr = m
			break
		}
	}
	go io.Copy(io.Discard, errR)
	if addr == "" {
		t.Fatal("demo --web printed no address")
	}
	if !strings.HasPrefix(addr, "http://127.0.0.1:") {
		t.Errorf("--web listens on %s, want 127.0.0.1 by default", addr)
	}
	begins := func() int {
		n := 0
		for _, e := range readRecording(t, rec) {
			if e.Kind == trace.KindCall && e.Phase == trace.Begin {
				n++
			}
		}
		return n
	}
	paused := `!document.getElementById('lcall').disabled`
	p := b.Open(t, addr, paused)
	status := p.String(`document.getElementById('lstatus').textContent`)
	if !strings.Contains(status, "paused before") {
		t.Errorf("the live page says %q, want what the run is paused before", status)
	}
	before := begins()
	p.Click("#lcall")
	p.Wait(paused+` && document.getElementById('lstatus').textContent !== `+jsString(status), 20*time.Second)
	if after := begins(); after != before+1 {
		t.Errorf("Next call let %d socket calls begin, want exactly one", after-before)
	}
	p.Click("#lcont")
	p.Wait(`document.documentElement.dataset.done === '1'`, 60*time.Second)
	if err := <-done; err != nil {
		t.Fatalf("demo --web: %v", err)
	}
	if !strings.Contains(out.String(), "identical to the file served") {
		t.Errorf("demo --web did not complete the download:\n%s", out.String())
	}
	// Only the FTP dialogue in the list: the 226 is among its rows.
	for _, kind := range []string{"call", "segment", "state", "other"} {
		p.Click(`#fkinds input[value=` + kind + `]`)
	}
	p.Wait(settled, 10*time.Second)
	if rows := p.String(`document.getElementById('lists').innerText`); !strings.Contains(rows, "226 ") {
		t.Errorf("the live page's FTP rows show no 226:\n%s", rows)
	}
	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("the live page logged errors: %q", errs)
	}
	origin := addr[:strings.Index(addr[len("http://"):], "/")+len("http://")]
	for _, r := range p.Requests() {
		if !strings.HasPrefix(r, origin+"/") && !strings.HasPrefix(r, "data:") {
			t.Errorf("the live page asked for %s, beyond the nsftp that serves it", r)
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// BenchmarkLessonLoad measures how long the lesson page of a long run
// takes to open in headless Chromium: from the start of navigation to
// the page drawn with the run in it (ready-ms, the page's own
// performance.now() when it is), and the page's size. The 100 MiB
// demo's page keeps every segment steppable; the 1 GiB demo's (1.5
// million events) keeps its bulk data in bands, as the text view shows
// it. The recordings are made once per run of the benchmark:
//
//	go test ./cmd/nsftp/cli -run '^$' -bench LessonLoad -benchtime 5x
func BenchmarkLessonLoad(b *testing.B) {
	for _, size := range []string{"100MiB", "1GiB"} {
		b.Run(size, func(b *testing.B) {
			dir := b.TempDir()
			rec, page := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "run.html")
			var out, errOut strings.Builder
			if err := Run(context.Background(), []string{"demo", "-q", "--size", size, "--record", rec}, strings.NewReader(""), &out, &errOut); err != nil {
				b.Fatalf("demo --size %s: %v\n%s", size, err, errOut.String())
			}
			genStart := time.Now()
			if err := Run(context.Background(), []string{"show", rec, "--html", page}, strings.NewReader(""), io.Discard, &errOut); err != nil {
				b.Fatalf("show --html: %v\n%s", err, errOut.String())
			}
			gen := time.Since(genStart)
			fi, _ := os.Stat(page)
			f, err := os.Open(rec)
			if err != nil {
				b.Fatal(err)
			}
			evs, err := trace.ReadJSON(f)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			br := browsertest.Start(b, 1920, 1080)
			pageURL := (&url.URL{Scheme: "file", Path: page}).String()
			ready := `document.documentElement.dataset.readyMs`
			p := br.Open(b, pageURL, ready)
			b.ResetTimer()
			var total float64
			for range b.N {
				p.Navigate("about:blank", "")
				p.Navigate(pageURL, ready)
				var ms float64
				fmt.Sscan(p.String(ready), &ms)
				total += ms
			}
			b.StopTimer()
			// Scrolling: with every band open, a screen at a time through
			// up to a thousand screens of the list, each drawn in a frame;
			// the longest draw is what a reader would feel.
			p.Click("#openbands") // every segment a row: 75,000 of them in the 100 MiB run
			p.Eval(`(() => { const d = document.documentElement.dataset; d.renderMaxMs = '0'; d.renderSumMs = '0'; d.renders = '0'; })()`, nil)
			var frames int
			p.Eval(`(async () => { const sc = document.querySelector('.rows'); let n = 0;
				for (let i = 0; i < 1000 && sc.scrollTop + sc.clientHeight < sc.scrollHeight; i++, n++) {
					sc.scrollTop += sc.clientHeight;
					await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
				}
				return n; })()`, &frames)
			var scrollMax, scrollSum, draws float64
			fmt.Sscan(p.String(`document.documentElement.dataset.renderMaxMs`), &scrollMax)
			fmt.Sscan(p.String(`document.documentElement.dataset.renderSumMs`), &scrollSum)
			fmt.Sscan(p.String(`document.documentElement.dataset.renders`), &draws)
			if errs := p.Errors(); len(errs) > 0 {
				b.Errorf("the page logged errors: %q", errs)
			}
			b.ReportMetric(total/float64(b.N), "ready-ms")
			b.ReportMetric(float64(fi.Size())/1e6, "page-MB")
			b.ReportMetric(float64(len(evs)), "events")
			b.ReportMetric(gen.Seconds(), "show-s")
			b.ReportMetric(scrollMax, "scroll-draw-max-ms")
			b.ReportMetric(scrollSum/max(draws, 1), "scroll-draw-ms")
			b.ReportMetric(float64(frames), "screens-scrolled")
		})
	}
}

// TestWebControl: the live lesson's page and stream are anyone's who can
// reach the address (127.0.0.1 by default); its control needs the token
// nsftp printed, and it answers only to its own name, so a page
// elsewhere cannot reach it through a name of its own that resolves to
// 127.0.0.1.
func TestWebControl(t *testing.T) {
	stacktest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errR, errW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, []string{"demo", "-q", "--web=127.0.0.1:0"}, strings.NewReader(""), io.Discard, errW)
		errW.Close()
		done <- err
	}()
	var addr, reach string
	lines := bufio.NewScanner(errR)
	for lines.Scan() {
		if m := regexp.MustCompile(`http://\S+token=\w+`).FindString(lines.Text()); m != "" {
			addr = m
			lines.Scan()
			reach = lines.Text()
			break
		}
	}
	go io.Copy(io.Discard, errR)
	u, err := url.Parse(addr)
	if err != nil || addr == "" {
		t.Fatalf("demo --web printed %q", addr)
	}
	if !strings.Contains(reach, "this machine only") {
		t.Errorf("--web on 127.0.0.1 says %q, want who can reach it", reach)
	}
	token := u.Query().Get("token")
	base := u.Scheme + "://" + u.Host + "/"
	post := func(host, tok, body string) int {
		req, _ := http.NewRequest("POST", base+"control", strings.NewReader(body))
		if host != "" {
			req.Host = host
		}
		if tok != "" {
			req.Header.Set("X-Nsftp-Token", tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	res, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "connect-src 'self'") || strings.Contains(string(page), token) {
		t.Errorf("the page: %d, %d bytes; it must carry its policy and never the token", res.StatusCode, len(page))
	}
	if code := post("", "", "continue"); code != http.StatusForbidden {
		t.Errorf("control without the token: %d, want 403", code)
	}
	if code := post("", "0123456789abcdef0123456789abcdef", "continue"); code != http.StatusForbidden {
		t.Errorf("control with another token: %d, want 403", code)
	}
	if code := post("lesson.example:"+u.Port(), token, "continue"); code != http.StatusMisdirectedRequest {
		t.Errorf("control by another name than the server's own: %d, want 421", code)
	}
	if code := post("", token, "reboot"); code != http.StatusBadRequest {
		t.Errorf("an unknown command: %d, want 400", code)
	}
	// The stream: the model, and what the run waits for.
	res, err = http.Get(base + "events")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 16<<20)
	var kinds []string
	for sc.Scan() && len(kinds) < 2 {
		if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			kinds = append(kinds, k)
		}
	}
	res.Body.Close()
	if !slices.Equal(kinds, []string{"model", "status"}) {
		t.Errorf("the stream opens with %q, want the model and the status", kinds)
	}
	// Continue, once the run waits at its first call (409 until then).
	code := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code = post("", token, "continue"); code != http.StatusConflict {
			break
		}
	}
	if code != http.StatusNoContent {
		t.Errorf("continue with the token: %d, want 204", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("demo --web, continued: %v", err)
	}
}
