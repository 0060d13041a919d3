package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/nsftp/nsftp/stack"
)

// flagSet is a FlagSet that reports errors instead of exiting, prints its
// usage with groups, and accepts flags after positional arguments
// (`nsftp get URL --active`), as users expect.
type flagSet struct {
	*flag.FlagSet
	usage   string // the command's usage line(s)
	groups  []flagGroup
	out     io.Writer
	aliases map[string]string // long name -> short name
}

type flagGroup struct {
	title string
	names []string
}

func newFlagSet(name, usage string, out io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), usage: usage, out: out}
	fs.SetOutput(io.Discard)
	return fs
}

// group starts a titled group of flags in the help text; flags defined
// after it belong to it.
func (fs *flagSet) group(title string) {
	fs.groups = append(fs.groups, flagGroup{title: title})
}

func (fs *flagSet) note(name string) {
	if len(fs.groups) == 0 {
		fs.group("Flags")
	}
	g := &fs.groups[len(fs.groups)-1]
	g.names = append(g.names, name)
}

func (fs *flagSet) boolVar(p *bool, name string, value bool, help string) {
	fs.BoolVar(p, name, value, help)
	fs.note(name)
}

func (fs *flagSet) stringVar(p *string, name, value, help string) {
	fs.StringVar(p, name, value, help)
	fs.note(name)
}

func (fs *flagSet) intVar(p *int, name string, value int, help string) {
	fs.IntVar(p, name, value, help)
	fs.note(name)
}

func (fs *flagSet) durationVar(p *time.Duration, name string, value time.Duration, help string) {
	fs.DurationVar(p, name, value, help)
	fs.note(name)
}

func (fs *flagSet) floatVar(p *float64, name string, value float64, help string) {
	fs.Float64Var(p, name, value, help)
	fs.note(name)
}

func (fs *flagSet) varFlag(v flag.Value, name, help string) {
	fs.Var(v, name, help)
	fs.note(name)
}

// alias makes short a second name for the already defined long flag.
func (fs *flagSet) alias(short, long string) {
	f := fs.Lookup(long)
	fs.Var(f.Value, short, "same as --"+long)
	if fs.aliases == nil {
		fs.aliases = map[string]string{}
	}
	fs.aliases[long] = short
}

// parse parses args, with flags allowed anywhere, and returns the
// positional arguments, of which there must be min to max; otherwise it
// fails with usage as the message. "--help" prints the usage and returns
// errHelp, which Run takes for success.
func (fs *flagSet) parse(args []string, min, max int, usage string) ([]string, error) {
	pos, err := fs.parseAll(args)
	if err == nil && (len(pos) < min || len(pos) > max) {
		return nil, usagef("%s", usage)
	}
	return pos, err
}

func (fs *flagSet) parseAll(args []string) ([]string, error) {
	args = optionalValues(fs, args)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				fs.printUsage()
				return nil, errHelp
			}
			return nil, usagef("%s: %v", fs.Name(), fs.flagError(err))
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// optionalValues lets a flag whose value is optional take it after a
// space when it looks like one: "--web 0.0.0.0:8080" is
// "--web=0.0.0.0:8080" (an address with a numeric port is no command's
// argument).
func optionalValues(fs *flagSet, args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		if f := fs.Lookup(name); f != nil && strings.HasPrefix(a, "-") && !strings.Contains(a, "=") && i+1 < len(args) {
			if _, ok := f.Value.(*webFlag); ok {
				if _, port, err := net.SplitHostPort(args[i+1]); err == nil && port != "" && strings.Trim(port, "0123456789") == "" {
					out = append(out, a+"="+args[i+1])
					i++
					continue
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// flagError rewrites the flag package's errors as nsftp's help spells
// flags: --name for a long flag (the package writes -name), and, for the
// flags that take an optional value (--offload[=tso], --trace[=json]),
// without its "invalid boolean value" preamble: their own message names
// the values they take.
func (fs *flagSet) flagError(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		_, rest, _ = strings.Cut(rest, " for -")
		name, why, ok := strings.Cut(rest, ": ")
		if f := fs.Lookup(name); ok && f != nil {
			switch f.Value.(type) {
			case *offloadFlag, *traceFlag:
				return errors.New(why)
			}
		}
	}
	return errors.New(flagNameRE.ReplaceAllStringFunc(msg, func(m string) string {
		if i := strings.IndexByte(m, '-'); len(m)-i > 2 {
			return m[:i] + "-" + m[i:] // a long name
		}
		return m
	}))
}

// flagNameRE finds where the flag package names a flag in its errors:
// "not defined: -x", "for flag -x:", "for -x:", "argument: -x".
var flagNameRE = regexp.MustCompile(`(defined: |for flag |for |argument: )-[A-Za-z0-9][-A-Za-z0-9_]*`)

// errHelp is returned after --help has printed the usage; it is not a
// failure.
var errHelp = fmt.Errorf("help shown")

func (fs *flagSet) printUsage() {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  %s\n", strings.ReplaceAll(strings.TrimSpace(fs.usage), "\n", "\n  "))
	for _, g := range fs.groups {
		fmt.Fprintf(&b, "\n%s:\n", g.title)
		for _, name := range g.names {
			f := fs.Lookup(name)
			arg, help := flag.UnquoteUsage(f)
			dash := "--"
			if len(name) == 1 {
				dash = "-"
			}
			left := dash + name
			if short, ok := fs.aliases[name]; ok {
				left = "-" + short + ", " + left
			}
			if _, ok := f.Value.(*traceFlag); ok {
				left, arg = "--trace[=json]", ""
			}
			if _, ok := f.Value.(*offloadFlag); ok {
				// Its default is none, and --offload alone is gso: the
				// help says both in words.
				left, arg, help = "--offload[=tso]", "", help+" (without the flag: none)"
			}
			if _, ok := f.Value.(*webFlag); ok {
				left, arg = "--web[=ADDR]", ""
			}
			if arg != "" {
				left += " " + arg
			}
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "text" && f.DefValue != "none" {
				help += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(&b, "  %-28s %s\n", left, help)
		}
	}
	fmt.Fprint(fs.out, b.String())
}

// offloadFlag is --offload (large segments across the wire),
// --offload=tso or --offload=none.
type offloadFlag struct{ mode stack.Offload }

func (o *offloadFlag) String() string   { return o.mode.String() }
func (o *offloadFlag) IsBoolFlag() bool { return true }
func (o *offloadFlag) Set(v string) error {
	switch v {
	case "true", "gso":
		o.mode = stack.OffloadGSO
	case "tso":
		o.mode = stack.OffloadTSO
	case "false", "none":
		o.mode = stack.OffloadNone
	default:
		return fmt.Errorf("--offload takes gso (what --offload alone means), tso or none, not %q", v)
	}
	return nil
}

// traceFlag is --trace (text) or --trace=json.
type traceFlag struct{ format string }

func (t *traceFlag) String() string   { return t.format }
func (t *traceFlag) IsBoolFlag() bool { return true }
func (t *traceFlag) Set(v string) error {
	switch v {
	case "true", "text":
		t.format = "text"
	case "false", "":
		t.format = ""
	case "json":
		t.format = "json"
	default:
		return fmt.Errorf("--trace takes text or json, not %q", v)
	}
	return nil
}
