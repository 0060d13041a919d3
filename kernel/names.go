package kernel

import (
	"bufio"
	"os"
	"strings"
	"sync"

	"github.com/nsftp/nsftp/trace"
)

// names is what a call is called: the article's call and the kernel
// function behind it, from the table nsftp shares with netstack (written
// from Linux 6.18's sources), checked against the running kernel's own
// symbols (/proc/kallsyms, which anyone may read): a function this
// kernel does not have under that name is marked as the table's.
func names(op trace.Op, v6 bool) (article, kernel string) {
	article, kernel = trace.Names(op, v6)
	if syms := kallsyms(); syms != nil && kernel != "" && !syms[kernel] {
		kernel += " (Linux 6.18's name; not in this kernel)"
	}
	return article, kernel
}

var (
	symsOnce sync.Once
	syms     map[string]bool
)

// kallsyms is the set of the table's kernel functions the running kernel
// has; nil if its symbols cannot be read.
func kallsyms() map[string]bool {
	symsOnce.Do(func() {
		want := map[string]bool{}
		for _, op := range []trace.Op{trace.OpSocket, trace.OpBind, trace.OpListen, trace.OpAccept, trace.OpConnect,
			trace.OpSend, trace.OpRecv, trace.OpShutdown, trace.OpClose, trace.OpGetsockname} {
			for _, v6 := range []bool{false, true} {
				_, k := trace.Names(op, v6)
				want[k] = true
			}
		}
		f, err := os.Open("/proc/kallsyms")
		if err != nil {
			return
		}
		defer f.Close()
		found := map[string]bool{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// "ffffffff81a2b3c0 T tcp_v4_connect"
			line := sc.Text()
			if i := strings.LastIndexByte(line, ' '); i >= 0 && want[line[i+1:]] {
				found[line[i+1:]] = true
			}
		}
		if sc.Err() == nil && len(found) > 0 {
			syms = found
		}
	})
	return syms
}
