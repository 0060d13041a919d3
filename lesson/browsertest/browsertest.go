// Package browsertest drives a headless Chromium for the tests of the
// lesson page: it opens a page, presses keys and clicks as a person
// would, reads what the page shows, and keeps every console message and
// every request the page made, so a test can say the page logged no
// error and asked for nothing beyond itself. A test skips, with the
// reason, where Chromium is not installed (CI installs it).
package browsertest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Path finds Chromium: $NSFTP_CHROMIUM, or chromium or chromium-browser
// or google-chrome on the PATH, or Debian's /usr/bin/chromium.
func Path() (string, bool) {
	if p := os.Getenv("NSFTP_CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// Browser is one headless Chromium, with a fresh profile of its own.
type Browser struct {
	ctx    context.Context
	cancel context.CancelFunc
	dir    string
}

// Start starts Chromium for t, and stops it when t ends. Without
// Chromium, t is skipped with the reason.
func Start(t testing.TB, width, height int) *Browser {
	t.Helper()
	path, ok := Path()
	if !ok {
		t.Skip("the lesson page's browser tests need Chromium (Debian: apt-get install chromium; or set NSFTP_CHROMIUM): not found")
	}
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		// Nothing of Chromium's own on the network: a closed network
		// makes those requests slow, and the page must ask for nothing.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(width, height),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{ctx: actx, cancel: cancel, dir: dir}
	t.Cleanup(cancel)
	return b
}

// Page is one tab.
type Page struct {
	t        testing.TB
	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex
	console  []string
	errors   []string
	requests []string
}

// Open opens url in a new tab and waits for the page to say it is ready
// (ready, a JavaScript expression, turns truthy).
func (b *Browser) Open(t testing.TB, url, ready string) *Page {
	t.Helper()
	p := &Page{t: t}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			p.mu.Lock()
			p.requests = append(p.requests, e.Request.URL)
			p.mu.Unlock()
		}
	}))
	p.ctx, p.cancel = ctx, cancel
	t.Cleanup(cancel)
	// The first Run starts the browser; its context must not time out.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m.String())
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.errors = append(p.errors, m.String())
			}
			p.mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enabling the network domain: %v", err)
	}
	// The browser's own log: a refused request, a broken policy.
	if _, err := chromedp.Call(ctx, cdplog.Enable, struct{}{}); err != nil {
		t.Fatalf("enabling the log domain: %v", err)
	}
	p.Navigate(url, ready)
	return p
}

// Navigate loads url in the tab and waits for ready.
func (p *Page) Navigate(url, ready string) {
	p.t.Helper()
	if err := p.do(chromedp.Navigate(url)); err != nil {
		p.t.Fatalf("opening %s: %v", url, err)
	}
	if ready != "" {
		p.Wait(ready, 30*time.Second)
	}
}

func (p *Page) do(a ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	return chromedp.Do(ctx, a...)
}

// Wait waits until the expression is truthy. It asks again until then:
// a page being loaded has no context to ask in for a moment.
func (p *Page) Wait(expr string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(p.ctx, time.Until(deadline))
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(15 * time.Millisecond)
	}
	p.t.Fatalf("waiting for %s: %v (console: %v)", expr, last, p.Console())
}

// Eval evaluates a JavaScript expression and decodes its value into v
// (a promise's, once it settles).
func (p *Page) Eval(expr string, v any) {
	p.t.Helper()
	raw, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			p.t.Fatalf("evaluating %s: %s: %v", expr, raw, err)
		}
	}
}

// String evaluates an expression that gives a string.
func (p *Page) String(expr string) string {
	p.t.Helper()
	var s string
	p.Eval(expr, &s)
	return s
}

// Key presses a key, as a person at the keyboard does: "ArrowRight",
// "ArrowLeft", "n", " ".
func (p *Page) Key(key string) {
	p.t.Helper()
	k := map[string]string{"ArrowRight": kb.ArrowRight, "ArrowLeft": kb.ArrowLeft, "ArrowUp": kb.ArrowUp, "ArrowDown": kb.ArrowDown,
		"Home": kb.Home, "End": kb.End, "Enter": kb.Enter}[key]
	if k == "" {
		k = key
	}
	if err := p.do(chromedp.KeyEvent(k)); err != nil {
		p.t.Fatalf("pressing %s: %v", key, err)
	}
}

// Click clicks the element the CSS selector finds first.
func (p *Page) Click(sel string) {
	p.t.Helper()
	if err := p.do(chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("clicking %s: %v", sel, err)
	}
}

// Screenshot is a PNG of the window, as a person sees it.
func (p *Page) Screenshot() []byte {
	p.t.Helper()
	buf, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	return buf
}

// Console is every console message so far.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Errors is every console error and uncaught exception so far.
func (p *Page) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// Requests is the URL of every request the page made.
func (p *Page) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}
