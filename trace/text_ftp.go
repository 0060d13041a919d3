package trace

import (
	"fmt"
	"strings"
)

func (t *Text) ftpLine(e *Event) string {
	m := e.Message
	head := t.head(e.Time, string(m.Side), 0, m.Conn)
	switch e.Kind {
	case KindCommand:
		arrow := "->"
		if m.Side == Server {
			arrow = "<-"
		}
		return fmt.Sprintf("%s%s %s", head, arrow, t.paint("bold", Clean(RedactCommand(m.Text))))
	case KindReply:
		arrow := "<-"
		if m.Side == Server {
			arrow = "->"
		}
		text := strings.ReplaceAll(m.Text, "\n", " / ")
		return fmt.Sprintf("%s%s %s", head, arrow, t.paint("bold", fmt.Sprintf("%d %s", m.Code, Clean(text))))
	case KindDataOpen:
		return fmt.Sprintf("%s== %s data connection open: %s <-> %s", head, m.Mode, addrText(m.Local), addrText(m.Remote))
	case KindDataClose:
		s := fmt.Sprintf("%s== data connection closed after %d bytes", head, m.Bytes)
		if m.Err != "" {
			s += ": " + Clean(m.Err)
		}
		return s
	case KindTLS:
		return fmt.Sprintf("%s== TLS: %s", head, Clean(m.Text))
	}
	s := fmt.Sprintf("%s!! %s", head, Clean(m.Text))
	if m.Err != "" {
		s += ": " + Clean(m.Err)
	}
	return s
}

// ConfigText says what a change in a host's configuration is and where it
// came from: "address 192.0.2.57/24, router 192.0.2.1, name server
// 192.0.2.1 (DHCP lease from 192.0.2.1 for 1h0m0s)".
func ConfigText(c *Config) string {
	var parts []string
	if c.Addr.IsValid() {
		parts = append(parts, "address "+c.Addr.String())
	}
	if c.Router.IsValid() {
		parts = append(parts, "router "+c.Router.String())
	}
	if len(c.DNS) > 0 {
		var ds []string
		for _, a := range c.DNS {
			ds = append(ds, a.String())
		}
		name := "name server "
		if len(ds) > 1 {
			name = "name servers "
		}
		parts = append(parts, name+strings.Join(ds, " "))
	}
	what := strings.Join(parts, ", ")
	if c.Removed {
		what = "gave up " + what
	}
	var from string
	switch c.Source {
	case FromDHCP:
		from = "DHCP"
		if !c.Removed {
			from = "DHCP lease"
			if c.Server.IsValid() {
				from += " from " + c.Server.String()
			}
			if c.Lease > 0 {
				from += " for " + c.Lease.String()
			}
		}
	case FromRA:
		from = "router advertisement"
	case FromSLAAC:
		from = "SLAAC: an advertised prefix and the interface's own identifier"
	case FromLinkLocal:
		from = "link-local"
	case FromCommandLine:
		from = "command line"
	case FromResolvConf:
		from = "/etc/resolv.conf"
	default:
		from = string(c.Source)
	}
	return what + " (" + from + ")"
}
