package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nsftp/nsftp/stack"
)

// pathFlags are the virtual wire's path, as tc-netem and a bottleneck
// take them: units as tc writes them, and each either one value for both
// directions or UP/DOWN, client to server and server to client.
type pathFlags struct {
	rate, delay, jitter, queue, queueBytes, loss, burst, down string
	duplicate, reorder, corrupt                               string
}

func (pf *pathFlags) register(fs *flagSet) {
	fs.group("Virtual wire (one value for both directions, or UP/DOWN: client to server / server to client)")
	fs.stringVar(&pf.rate, "rate", "", "a bottleneck of `RATE` (tc's units: 20mbit, 512kbit, 1gbit, 2mbps) with a tail-drop queue")
	fs.stringVar(&pf.queue, "queue", "", "the bottleneck's queue holds `N` frames (default 1000, as netem's limit)")
	fs.stringVar(&pf.queueBytes, "queue-bytes", "", "the bottleneck's queue holds `SIZE` bytes instead (64kb, 1mb)")
	fs.stringVar(&pf.delay, "delay", "", "delay every frame by `DURATION` (20ms)")
	fs.stringVar(&pf.jitter, "jitter", "", "vary the delay by up to `DURATION` either way; frames keep their order")
	fs.stringVar(&pf.loss, "loss", "", "drop `PERCENT` of frames, each independently (1, 0.5%)")
	fs.stringVar(&pf.burst, "burst", "", "drop frames in bursts, netem's gemodel: `P,R[,1-H[,1-K]][@STEP]` percentages (1,25: into a burst 1%, out 25%; 0 for none), the state moving per frame, or with @STEP once every STEP of time (2,20@1ms)")
	fs.stringVar(&pf.down, "down", "", "the link is down from AT for FOR: `AT+FOR[,AT+FOR...]` (2s+2s), counted from the start")
	fs.stringVar(&pf.duplicate, "duplicate", "", "deliver `PERCENT` of frames twice")
	fs.stringVar(&pf.reorder, "reorder", "", "let `PERCENT` of frames be overtaken by the next")
	fs.stringVar(&pf.corrupt, "corrupt", "", "flip one bit in `PERCENT` of frames (the checksums catch it)")
}

// paths returns the client-to-server and server-to-client paths.
func (pf *pathFlags) paths() (up, down stack.Path, err error) {
	set := func(flag, v string, parse func(string, *stack.Path) error) {
		if err != nil || v == "" {
			return
		}
		u, d, two := strings.Cut(v, "/")
		if !two {
			d = u
		}
		for _, x := range []struct {
			s string
			p *stack.Path
		}{{u, &up}, {d, &down}} {
			if perr := parse(strings.TrimSpace(x.s), x.p); perr != nil {
				err = usagef("--%s %s: %v", flag, v, perr)
				return
			}
		}
	}
	set("rate", pf.rate, func(s string, p *stack.Path) (e error) { p.Rate, e = parseRate(s); return })
	set("queue", pf.queue, func(s string, p *stack.Path) (e error) {
		p.Queue, e = strconv.Atoi(s)
		if e == nil && p.Queue < 1 {
			e = fmt.Errorf("a queue holds at least 1 frame")
		}
		return
	})
	set("queue-bytes", pf.queueBytes, func(s string, p *stack.Path) (e error) {
		n, e := parseSize(s)
		p.QueueBytes = int(n)
		return
	})
	set("delay", pf.delay, func(s string, p *stack.Path) (e error) { p.Delay, e = parseDelay(s); return })
	set("jitter", pf.jitter, func(s string, p *stack.Path) (e error) { p.Jitter, e = parseDelay(s); return })
	set("loss", pf.loss, func(s string, p *stack.Path) (e error) { p.Loss, e = parsePercent(s); return })
	set("duplicate", pf.duplicate, func(s string, p *stack.Path) (e error) { p.Duplicate, e = parsePercent(s); return })
	set("reorder", pf.reorder, func(s string, p *stack.Path) (e error) { p.Reorder, e = parsePercent(s); return })
	set("corrupt", pf.corrupt, func(s string, p *stack.Path) (e error) { p.Corrupt, e = parsePercent(s); return })
	set("burst", pf.burst, func(s string, p *stack.Path) error {
		if s == "0" {
			return nil // none this way: --burst 0/1,25
		}
		s, stepText, byTime := strings.Cut(s, "@")
		var step time.Duration
		if byTime {
			d, err := time.ParseDuration(stepText)
			if err != nil || d <= 0 {
				return fmt.Errorf("@%s: the step is a positive duration, like @1ms", stepText)
			}
			step = d
		}
		parts := strings.Split(s, ",")
		if len(parts) < 2 || len(parts) > 4 {
			return fmt.Errorf("want P,R[,1-H[,1-K]][@STEP]")
		}
		var v [4]float64
		v[2] = 100
		for i, x := range parts {
			f, err := parsePercent(x)
			if err != nil {
				return err
			}
			v[i] = f
		}
		p.Burst = &stack.GilbertElliott{P: v[0], R: v[1], LossBad: v[2], LossGood: v[3], Step: step}
		return nil
	})
	set("down", pf.down, func(s string, p *stack.Path) error {
		for _, o := range strings.Split(s, ",") {
			at, length, ok := strings.Cut(o, "+")
			if !ok {
				return fmt.Errorf("want AT+FOR, like 2s+2s")
			}
			a, err := time.ParseDuration(at)
			if err != nil {
				return err
			}
			f, err := time.ParseDuration(length)
			if err != nil {
				return err
			}
			if a < 0 || f <= 0 {
				return fmt.Errorf("%s: a time from the start, then a length", o)
			}
			p.Down = append(p.Down, stack.Outage{At: a, For: f})
		}
		return nil
	})
	if err != nil {
		return stack.Path{}, stack.Path{}, err
	}
	for _, p := range []*stack.Path{&up, &down} {
		if p.Delay > 10*time.Second || p.Jitter > p.Delay && p.Jitter > 0 && p.Delay > 0 {
			return up, down, usagef("--delay at most 10s, and --jitter at most the delay")
		}
		if p.Loss > 50 {
			return up, down, usagef("--loss %v%% out of range 0-50: TCP would hardly move", p.Loss)
		}
	}
	return up, down, nil
}

// parseRate reads a rate as tc writes it: bit, kbit, mbit, gbit (bits per
// second) or bps, kbps, mbps, gbps (bytes per second); a bare number is
// bits per second.
func parseRate(s string) (int64, error) {
	num, unit := splitUnit(strings.ToLower(s))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a rate like 20mbit", s)
	}
	mult := map[string]float64{"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
		"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (bit, kbit, mbit, gbit, bps, kbps, mbps, gbps)", unit)
	}
	r := v * mult
	if r < 8000 || r > 1e12 {
		return 0, fmt.Errorf("%s out of range 8kbit-1000gbit", s)
	}
	return int64(r), nil
}

// parseDelay reads a delay as tc or Go writes it (20ms, 1.5s, 250us).
func parseDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a delay like 20ms", s)
	}
	return d, nil
}

// parsePercent reads a percentage: 1, 0.5, 2%.
func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a percentage from 0 to 100", s)
	}
	return v, nil
}

// parseSize reads a size in bytes: 4096, 64kb, 32MiB, 1GiB, 1.5gb (tc's kb
// is 1024 bytes, as is kib).
func parseSize(s string) (int64, error) {
	num, unit := splitUnit(strings.ToLower(s))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a size like 32MiB", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (b, kb, mb, gb, or KiB, MiB, GiB)", unit)
	}
	n := v * mult
	if n > 1<<40 {
		return 0, fmt.Errorf("%s is more than 1 TiB", s)
	}
	return int64(n), nil
}

// splitUnit splits "20mbit" into "20" and "mbit".
func splitUnit(s string) (string, string) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}
