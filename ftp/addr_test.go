package ftp

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParsePORT(t *testing.T) {
	// RFC 959 section 4.1.2: PORT h1,h2,h3,h4,p1,p2, each a decimal 0..255.
	valid := []struct {
		in   string
		want string
	}{
		{"132,235,1,2,24,131", "132.235.1.2:6275"},
		{"0,0,0,0,0,1", "0.0.0.0:1"},
		{"255,255,255,255,255,255", "255.255.255.255:65535"},
		{"10,0,0,1,0,21", "10.0.0.1:21"},
		{"010,000,000,001,000,021", "10.0.0.1:21"}, // decimal, leading zeros are not octal
	}
	for _, tt := range valid {
		got, err := ParsePORT(tt.in)
		if err != nil || got != netip.MustParseAddrPort(tt.want) {
			t.Errorf("ParsePORT(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	invalid := []string{
		"256,0,0,1,0,21",        // octet 256
		"1,2,3,4,256,1",         // port byte 256
		"1,2,3,4,0,0",           // port 0
		"1,2,3,4,5",             // missing field
		"1,2,3,4,5,6,7",         // extra field
		"1,2,3,,5,6",            // empty field
		"1,2,3,4,5,",            // empty last field
		",1,2,3,4,5",            // empty first field
		"a,2,3,4,5,6",           // non-numeric
		"01a,2,3,4,5,6",         // trailing garbage in a field
		"-1,2,3,4,5,6",          // sign
		"+1,2,3,4,5,6",          // sign
		" 1,2,3,4,5,6",          // leading space
		"1,2,3,4,5,6 ",          // trailing space
		"1, 2,3,4,5,6",          // space inside
		"1,2,3,4,5,6\r\n",       // line end
		"0001,2,3,4,5,6",        // too many digits
		"1.2.3.4,5,6",           // dots
		"",                      // empty
		"1,2,3,4,99999999999,6", // overflow
	}
	for _, in := range invalid {
		got, err := ParsePORT(in)
		if err == nil {
			t.Errorf("ParsePORT(%q) = %v, want error", in, got)
		} else if !errors.Is(err, ErrProtocol) {
			t.Errorf("ParsePORT(%q): %v does not wrap ErrProtocol", in, err)
		}
	}
}

func TestFormatPORT(t *testing.T) {
	// RFC 959 section 4.1.2.
	tests := []struct {
		in, want string
	}{
		{"132.235.1.2:6275", "132,235,1,2,24,131"},
		{"[::ffff:10.0.0.1]:21", "10,0,0,1,0,21"}, // IPv4-mapped is unmapped
		{"0.0.0.0:65535", "0,0,0,0,255,255"},
	}
	for _, tt := range tests {
		got, err := FormatPORT(netip.MustParseAddrPort(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("FormatPORT(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, ap := range []netip.AddrPort{
		netip.MustParseAddrPort("[::1]:21"),
		netip.MustParseAddrPort("1.2.3.4:0"),
		{},
	} {
		if got, err := FormatPORT(ap); !errors.Is(err, ErrBadArgument) {
			t.Errorf("FormatPORT(%v) = %q, %v; want ErrBadArgument", ap, got, err)
		}
	}
}

func TestParsePASV(t *testing.T) {
	// RFC 959 section 4.1.2 and RFC 1123 section 4.1.2.6: scan the 227 text
	// for the first h1,h2,h3,h4,p1,p2, with or without parentheses.
	valid := []struct {
		in, want string
	}{
		{"Entering Passive Mode (132,235,1,2,24,131).", "132.235.1.2:6275"},
		{"Entering Passive Mode (132,235,1,2,24,131)", "132.235.1.2:6275"},
		{"Entering Passive Mode 132,235,1,2,24,131", "132.235.1.2:6275"},
		{"Entering Passive Mode 132,235,1,2,24,131.", "132.235.1.2:6275"},
		{"=132,235,1,2,24,131", "132.235.1.2:6275"},
		{"132,235,1,2,24,131", "132.235.1.2:6275"},
		{"Entering Passive Mode v2 (1,2) (10,0,0,1,4,1)", "10.0.0.1:1025"},       // shorter runs are skipped
		{"Passive 1,2,3,4,5,6,7 then (10,0,0,1,4,1)", "10.0.0.1:1025"},           // longer runs are skipped
		{"Entering Passive Mode (10,0,0,1,4,1) (10,0,0,2,4,1)", "10.0.0.1:1025"}, // the first wins
	}
	for _, tt := range valid {
		got, err := ParsePASV(tt.in)
		if err != nil || got != netip.MustParseAddrPort(tt.want) {
			t.Errorf("ParsePASV(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	invalid := []string{
		"Entering Passive Mode (256,0,0,1,4,1).",    // octet 256
		"Entering Passive Mode (1,2,3,4,0,0).",      // port 0
		"Entering Passive Mode (1,2,3,4,5).",        // missing field
		"Entering Passive Mode (1,2,3,4,5,).",       // empty field
		"Entering Passive Mode (a,2,3,4,5,6).",      // non-numeric
		"Entering Passive Mode (-1,2,3,4,5,6).",     // sign
		"Entering Passive Mode (1,2,3,4,5,6a).",     // trailing garbage
		"Entering Passive Mode (1, 2, 3, 4, 5, 6).", // spaces
		"Entering Passive Mode (1000,2,3,4,5,6).",   // too many digits
		"Entering Passive Mode.",
		"",
	}
	for _, in := range invalid {
		got, err := ParsePASV(in)
		if err == nil {
			t.Errorf("ParsePASV(%q) = %v, want error", in, got)
		} else if !errors.Is(err, ErrProtocol) {
			t.Errorf("ParsePASV(%q): %v does not wrap ErrProtocol", in, err)
		}
	}
}

func TestFormatPASV(t *testing.T) {
	got, err := FormatPASV(netip.MustParseAddrPort("132.235.1.2:6275"))
	if want := "Entering Passive Mode (132,235,1,2,24,131)."; err != nil || got != want {
		t.Fatalf("FormatPASV = %q, %v; want %q", got, err, want)
	}
	if back, err := ParsePASV(got); err != nil || back != netip.MustParseAddrPort("132.235.1.2:6275") {
		t.Fatalf("ParsePASV(FormatPASV) = %v, %v", back, err)
	}
	if _, err := FormatPASV(netip.MustParseAddrPort("[2001:db8::1]:21")); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("FormatPASV(IPv6): %v", err)
	}
}

func TestParseEPRT(t *testing.T) {
	// RFC 2428 section 2: EPRT <d><net-prt><d><net-addr><d><tcp-port><d>.
	valid := []struct {
		in, want string
	}{
		{"|1|132.235.1.2|6275|", "132.235.1.2:6275"},
		{"|2|1080::8:800:200C:417A|5282|", "[1080::8:800:200c:417a]:5282"},
		{"!1!10.0.0.1!21!", "10.0.0.1:21"},      // any delimiter 33..126
		{"~2~::1~65535~", "[::1]:65535"},        // any delimiter 33..126
		{"|2|::ffff:1.2.3.4|21|", "1.2.3.4:21"}, // IPv4-mapped is unmapped
	}
	for _, tt := range valid {
		got, err := ParseEPRT(tt.in)
		if err != nil || got != netip.MustParseAddrPort(tt.want) {
			t.Errorf("ParseEPRT(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	invalid := []string{
		"|1|::1|21|",                 // protocol 1 with an IPv6 address
		"|2|1.2.3.4|21|",             // protocol 2 with an IPv4 address
		"|3|1.2.3.4|21|",             // unknown protocol
		"||1.2.3.4|21|",              // empty protocol
		"|1|1.2.3.4|0|",              // port 0
		"|1|1.2.3.4|65536|",          // port out of range
		"|1|1.2.3.4|-1|",             // sign
		"|1|1.2.3.4|21",              // missing final delimiter
		"|1|1.2.3.4|21|x",            // trailing garbage
		"|1|1.2.3.4|21||",            // extra delimiter
		"|1|1.2.3.4!21!",             // mismatched delimiters
		"|1|256.2.3.4|21|",           // octet 256
		"|1|01.2.3.4|21|",            // leading zero (ambiguous octal)
		"|1| 1.2.3.4|21|",            // space
		"|2|fe80::1%eth0|21|",        // zone
		" 1 1.2.3.4 21 ",             // delimiter outside 33..126
		"\x7f1\x7f1.2.3.4\x7f21\x7f", // delimiter outside 33..126
		"|1|1.2.3.4|21 |",            // trailing space in port
		"",
		"|",
	}
	for _, in := range invalid {
		got, err := ParseEPRT(in)
		if err == nil {
			t.Errorf("ParseEPRT(%q) = %v, want error", in, got)
		} else if !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseEPRT(%q): %v does not wrap ErrProtocol", in, err)
		}
	}
}

func TestFormatEPRT(t *testing.T) {
	// RFC 2428 section 2 examples.
	tests := []struct {
		in, want string
	}{
		{"132.235.1.2:6275", "|1|132.235.1.2|6275|"},
		{"[1080::8:800:200C:417A]:5282", "|2|1080::8:800:200c:417a|5282|"},
		{"[::ffff:1.2.3.4]:21", "|1|1.2.3.4|21|"},
		{"[fe80::1%eth0]:21", "|2|fe80::1|21|"},
	}
	for _, tt := range tests {
		ap := netip.MustParseAddrPort(tt.in)
		got := FormatEPRT(ap)
		if got != tt.want {
			t.Errorf("FormatEPRT(%s) = %q, want %q", tt.in, got, tt.want)
		}
		if _, err := ParseEPRT(got); err != nil {
			t.Errorf("ParseEPRT(FormatEPRT(%s)): %v", tt.in, err)
		}
	}
}

func TestParseEPSV(t *testing.T) {
	// RFC 2428 section 3: 229 Entering Extended Passive Mode (<d><d><d><tcp-port><d>).
	valid := []struct {
		in   string
		want uint16
	}{
		{"Entering Extended Passive Mode (|||6446|)", 6446},
		{"Entering Extended Passive Mode (|||6446|).", 6446},
		{"(|||1|)", 1},
		{"(|||65535|)", 65535},
		{"Extended Passive (!!!21!)", 21},
		{"(111123451)", 12345},              // digit delimiter still unambiguous
		{"()))80))", 80},                    // ')' delimiter
		{"weird (x) then (|||6446|)", 6446}, // first matching parenthesis
		{"Entering Extended Passive Mode (|||06446|)", 6446},
	}
	for _, tt := range valid {
		got, err := ParseEPSV(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseEPSV(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	invalid := []string{
		"Entering Extended Passive Mode (|||70000|)",  // port > 65535
		"Entering Extended Passive Mode (|||0|)",      // port 0
		"Entering Extended Passive Mode (|!|6446|)",   // mismatched delimiters
		"Entering Extended Passive Mode (|||6446!)",   // mismatched delimiters
		"Entering Extended Passive Mode (|||6446|",    // no closing parenthesis
		"Entering Extended Passive Mode |||6446|",     // no parentheses
		"Entering Extended Passive Mode (||||)",       // no port
		"Entering Extended Passive Mode (|||-1|)",     // sign
		"Entering Extended Passive Mode (||| 80|)",    // space
		"Entering Extended Passive Mode (   80 )",     // space is not a delimiter (33..126)
		"Entering Extended Passive Mode (|1|::1|80|)", // address given, not allowed in 229
		"",
	}
	for _, in := range invalid {
		got, err := ParseEPSV(in)
		if err == nil {
			t.Errorf("ParseEPSV(%q) = %d, want error", in, got)
		} else if !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseEPSV(%q): %v does not wrap ErrProtocol", in, err)
		}
	}
}

func TestFormatEPSV(t *testing.T) {
	if got, want := FormatEPSV(6446), "Entering Extended Passive Mode (|||6446|)"; got != want {
		t.Fatalf("FormatEPSV = %q, want %q", got, want)
	}
	for _, p := range []uint16{1, 21, 65535} {
		if back, err := ParseEPSV(FormatEPSV(p)); err != nil || back != p {
			t.Errorf("ParseEPSV(FormatEPSV(%d)) = %d, %v", p, back, err)
		}
	}
}
