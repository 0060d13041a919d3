package kernel

import (
	"bufio"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Counters are the kernel's IP and TCP counters (/proc/net/snmp and
// /proc/net/netstat, what nstat and netstat -s read) by dotted name, e.g.
// "Tcp.ActiveOpens" or "TcpExt.DelayedACKs". They are per network
// namespace: in a namespace made for the run they are the run's alone.
type Counters map[string]int64

// ReadCounters reads the counters of the namespace ns (nil: the
// process's).
func ReadCounters(ns *NetNS) (Counters, error) {
	c := Counters{}
	err := ns.Do(func() error {
		// thread-self: /proc/net is the main thread's namespace, not this
		// thread's.
		for _, f := range []string{"/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"} {
			if err := c.read(f); err != nil {
				return err
			}
		}
		return nil
	})
	return c, err
}

// read reads a file of header and value lines in pairs:
// "Tcp: RtoAlgorithm RtoMin ..." then "Tcp: 1 200 ...". Only IP's and
// TCP's are kept.
func (c Counters) read(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var names []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		group := strings.TrimSuffix(fields[0], ":")
		if names == nil || names[0] != fields[0] {
			names = fields
			continue
		}
		if group == "Ip" || group == "Tcp" || group == "TcpExt" || group == "IpExt" {
			for i := 1; i < len(fields) && i < len(names); i++ {
				if v, err := strconv.ParseInt(fields[i], 10, 64); err == nil {
					c[group+"."+names[i]] = v
				}
			}
		}
		names = nil
	}
	return sc.Err()
}

// Sub returns the counters that changed since before, as c minus before.
func (c Counters) Sub(before Counters) Counters {
	d := Counters{}
	for k, v := range c {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// Names returns the counter names in order.
func (c Counters) Names() []string {
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
