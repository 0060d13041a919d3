package ftp

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrSkipLine is wrapped by the error ParseListLine returns for a line that
// is not an entry at all ("total 12", a blank line): callers skip such lines
// silently, unlike lines that fail with ErrProtocol.
var ErrSkipLine = errors.New("ftp: not a listing entry")

// Entry is one file in a directory listing. Every field comes from the peer
// and is untrusted: Name in particular may contain "/" or be "..", and must
// be checked before it is used as a local path.
type Entry struct {
	// Name is the file name, which may contain spaces and semicolons.
	Name string
	// Type is "file", "dir", "link", "cdir" (the listed directory itself,
	// also given for "." in LIST), "pdir" (its parent, also for ".." in
	// LIST), an MLSD "os.xxx=..." type with its part before any ':'
	// lower-cased (e.g. "os.unix=slink:/Target"), another lower-cased MLSD
	// type, or "" when unknown (such as LIST device files).
	Type string
	// Size is the size in bytes, or -1 when unknown.
	Size int64
	// ModTime is the modification time in UTC, or the zero time when
	// unknown. LIST times are the server's local time, taken as UTC.
	ModTime time.Time
	// Perm is the MLSD perm fact (e.g. "adfrw"), or the LIST mode string
	// (e.g. "-rw-r--r--"), or "".
	Perm string
	// Target is the target of a LIST symbolic link ("name -> target"), else
	// "".
	Target string
	// Facts holds every MLSD fact, keys lower-cased, values verbatim. It is
	// non-nil for MLSD entries and nil for LIST entries.
	Facts map[string]string
}

// ParseMLSDLine parses one line of an MLSD listing, or the entry line of an
// MLST reply without its leading space (RFC 3659 section 7.2),
// "fact=value;fact=value; name", without its CRLF. Fact names are
// case-insensitive; the name is everything after the first space and may
// contain spaces and semicolons. A trailing ';' after the last fact may be
// missing. Known facts fill Entry's fields: type (lower-cased), size (a
// non-negative decimal), modify (YYYYMMDDHHMMSS[.sss] in UTC, RFC 3659
// section 2.3) and perm.
//
// A line without a space, with an empty name, a fact without '=', a
// repeated fact, a control character among the facts, a malformed size or
// modify fact, or a CR, LF or NUL byte anywhere returns an error wrapping
// ErrProtocol.
func ParseMLSDLine(line string) (Entry, error) {
	fail := func(msg string) (Entry, error) {
		return Entry{}, &ProtocolError{Msg: "MLSD line " + msg, Line: quoteLine([]byte(line))}
	}
	if strings.ContainsAny(line, "\r\n\x00") {
		return fail("contains a CR, LF or NUL byte")
	}
	sp := strings.IndexByte(line, ' ')
	if sp < 0 {
		return fail("has no space before the name")
	}
	facts, name := line[:sp], line[sp+1:]
	if name == "" {
		return fail("has an empty name")
	}
	for i := 0; i < len(facts); i++ {
		if c := facts[i]; c < ' ' || c == 0x7f {
			return fail("has a control character in its facts")
		}
	}
	e := Entry{Name: name, Size: -1, Facts: map[string]string{}}
	for facts != "" {
		f := facts
		if i := strings.IndexByte(facts, ';'); i >= 0 {
			f, facts = facts[:i], facts[i+1:]
		} else {
			facts = ""
		}
		eq := strings.IndexByte(f, '=')
		if eq <= 0 {
			return fail("has a fact that is not name=value")
		}
		key := strings.ToLower(f[:eq])
		if _, dup := e.Facts[key]; dup {
			return fail("repeats the " + strconv.Quote(key) + " fact")
		}
		e.Facts[key] = f[eq+1:]
	}
	if v, ok := e.Facts["type"]; ok {
		e.Type = lowerType(v)
	}
	if v, ok := e.Facts["size"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if !allDigits(v) || err != nil {
			return fail("has a size fact that is not a non-negative decimal number")
		}
		e.Size = n
	}
	if v, ok := e.Facts["modify"]; ok {
		t, ok := parseMLSDTime(v)
		if !ok {
			return fail("has a modify fact that is not YYYYMMDDHHMMSS[.sss]")
		}
		e.ModTime = t
	}
	e.Perm = e.Facts["perm"]
	return e, nil
}

// lowerType lower-cases an MLSD type up to its first ':', keeping the rest
// (such as a symbolic link's target in "OS.unix=slink:/Target") verbatim.
func lowerType(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		return strings.ToLower(v[:i]) + v[i:]
	}
	return strings.ToLower(v)
}

// parseMLSDTime parses an RFC 3659 time-val, YYYYMMDDHHMMSS[.F+], in UTC.
func parseMLSDTime(v string) (time.Time, bool) {
	frac := ""
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v, frac = v[:i], v[i+1:]
		if !allDigits(frac) {
			return time.Time{}, false
		}
	}
	if len(v) != 14 || !allDigits(v) {
		return time.Time{}, false
	}
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	year, month, day := num(v[0:4]), num(v[4:6]), num(v[6:8])
	hour, min, sec := num(v[8:10]), num(v[10:12]), num(v[12:14])
	if month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || min > 59 || sec > 60 {
		return time.Time{}, false
	}
	nsec := 0
	for i, scale := 0, 100000000; i < len(frac) && i < 9; i, scale = i+1, scale/10 {
		nsec += int(frac[i]-'0') * scale
	}
	return time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC), true
}

// daysIn returns the number of days in month m of year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// FormatMLSDLine renders e as an MLSD line without CRLF (RFC 3659 section
// 7.2), such as "type=file;size=12;modify=20260102150405;perm=r; name":
// type (if not ""), size (if not negative), modify (if not zero, in UTC, with
// a fraction only when the time has one), perm (if not ""), then the other
// entries of Facts in key order. A fact whose name or value cannot be
// carried (containing ';', '=' in the name, a space or a control byte) is
// left out. The name is written as it is: the caller makes sure it holds no
// CR or LF.
func FormatMLSDLine(e Entry) string {
	var b strings.Builder
	add := func(k, v string) {
		if factOK(k, v) {
			b.WriteString(k + "=" + v + ";")
		}
	}
	if e.Type != "" {
		add("type", e.Type)
	}
	if e.Size >= 0 {
		add("size", strconv.FormatInt(e.Size, 10))
	}
	if !e.ModTime.IsZero() {
		if t := e.ModTime.UTC(); t.Year() >= 0 && t.Year() <= 9999 {
			s := t.Format("20060102150405")
			if ns := t.Nanosecond(); ns != 0 {
				s += "." + strings.TrimRight(fmt.Sprintf("%09d", ns), "0")
			}
			add("modify", s)
		}
	}
	if e.Perm != "" {
		add("perm", e.Perm)
	}
	keys := make([]string, 0, len(e.Facts))
	for k := range e.Facts {
		switch strings.ToLower(k) {
		case "type", "size", "modify", "perm":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, e.Facts[k])
	}
	b.WriteByte(' ')
	b.WriteString(e.Name)
	return b.String()
}

// factOK reports whether an MLSD fact can be written unambiguously.
func factOK(k, v string) bool {
	if k == "" || strings.ContainsAny(k, "=") {
		return false
	}
	for _, s := range []string{k, v} {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c == ';' || c == 0x7f {
				return false
			}
		}
	}
	return true
}

// field is one whitespace-separated field of a LIST line: line[start:end].
type field struct{ start, end int }

// splitFields splits line at runs of spaces and tabs, keeping positions so
// that a name can be taken verbatim from the line.
func splitFields(line string) []field {
	var fs []field
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		fs = append(fs, field{i, j})
		i = j
	}
	return fs
}

// ParseListLine parses one line of a LIST reply, without its line
// terminator (a trailing CR is tolerated). Since LIST output is not
// standardized, it recognizes the common formats:
//
//   - Unix "ls -l": "drwxr-xr-x 2 user group 4096 Jan  2 15:04 name", or
//     with a year instead of a time ("Jan  2  2024"), or an ISO date
//     ("2024-01-02 15:04"); the link count or the group column may be
//     missing; user and group may be numeric; a symbolic link's
//     "name -> target" is split into Name and Target; a device file's
//     "major, minor" gives Size -1. The name is everything after the single
//     space following the time, so it may contain (and start with) spaces.
//   - Windows/IIS DOS style: "01-02-26  03:04PM       <DIR>          name"
//     or "01-02-2026  15:04  1234 name" (two-digit years below 70 are
//     20xx); Perm is then "".
//
// A date without a year gets the latest year that puts it no more than six
// months after now, the way ls chooses to show the time instead of the
// year. "." and ".." directories get Type "cdir" and "pdir".
//
// A "total N" line or a blank line returns an error wrapping ErrSkipLine;
// any other line that is not understood, including one with a CR, LF or NUL
// byte, returns an error wrapping ErrProtocol.
func ParseListLine(line string, now time.Time) (Entry, error) {
	line = strings.TrimSuffix(line, "\r")
	if strings.TrimLeft(line, " \t") == "" {
		return Entry{}, fmt.Errorf("%w: blank line", ErrSkipLine)
	}
	fail := func(msg string) (Entry, error) {
		return Entry{}, &ProtocolError{Msg: "LIST line " + msg, Line: quoteLine([]byte(line))}
	}
	if strings.ContainsAny(line, "\r\n\x00") {
		return fail("contains a CR, LF or NUL byte")
	}
	fs := splitFields(line)
	tok := func(i int) string { return line[fs[i].start:fs[i].end] }
	if len(fs) == 2 && strings.EqualFold(tok(0), "total") && allDigits(tok(1)) {
		return Entry{}, fmt.Errorf("%w: %q line", ErrSkipLine, line)
	}
	var e Entry
	var ok bool
	switch {
	case isMode(tok(0)):
		e, ok = parseUnixLine(line, fs, now)
	case isDigit(line[fs[0].start]):
		e, ok = parseDOSLine(line, fs)
	}
	if !ok {
		return fail("is not in a known format")
	}
	if e.Name == "" {
		return fail("has an empty name")
	}
	return e, nil
}

// isMode reports whether s looks like an ls mode string: a type letter,
// nine permission characters, and an optional ACL or context marker.
func isMode(s string) bool {
	if len(s) != 10 && len(s) != 11 {
		return false
	}
	if !strings.ContainsRune("-dlcbpsDn?", rune(s[0])) {
		return false
	}
	for i := 1; i < 10; i++ {
		if !strings.ContainsRune("rwxsStTlL-", rune(s[i])) {
			return false
		}
	}
	return len(s) == 10 || strings.ContainsRune("+@.", rune(s[10]))
}

// parseMonth parses an English three-letter month name, in any case.
func parseMonth(s string) (time.Month, bool) {
	if len(s) == 3 {
		const names = "janfebmaraprmayjunjulaugsepoctnovdec"
		if i := strings.Index(names, strings.ToLower(s)); i >= 0 && i%3 == 0 {
			return time.Month(i/3 + 1), true
		}
	}
	return 0, false
}

// parseUnixLine parses an "ls -l" line whose first field is a mode string.
func parseUnixLine(line string, fs []field, now time.Time) (Entry, bool) {
	tok := func(i int) string { return line[fs[i].start:fs[i].end] }
	mode := tok(0)
	e := Entry{Perm: mode, Size: -1}
	switch mode[0] {
	case '-':
		e.Type = "file"
	case 'd':
		e.Type = "dir"
	case 'l':
		e.Type = "link"
	}
	device := mode[0] == 'c' || mode[0] == 'b'
	// Find the date: the first place where it parses and is preceded by a
	// size (or device numbers) and one to three of links, user and group.
	for k := 3; k < len(fs); k++ {
		t, next, ok := parseUnixDate(line, fs, k, now)
		if !ok {
			continue
		}
		sizeAt := k - 1
		if device {
			if strings.HasSuffix(tok(k-2), ",") {
				sizeAt = k - 2 // "8, 1"
			}
		} else {
			n, err := strconv.ParseInt(tok(k-1), 10, 64)
			if !allDigits(tok(k-1)) || err != nil {
				continue
			}
			e.Size = n
		}
		if owners := sizeAt - 1; owners < 1 || owners > 3 {
			continue
		}
		e.ModTime = t
		start := fs[next-1].end + 1
		if start >= len(line) {
			return Entry{}, false
		}
		e.Name = line[start:]
		if e.Type == "link" {
			if i := strings.Index(e.Name, " -> "); i >= 0 {
				e.Name, e.Target = e.Name[:i], e.Name[i+4:]
			}
		}
		if e.Type == "dir" {
			switch e.Name {
			case ".":
				e.Type = "cdir"
			case "..":
				e.Type = "pdir"
			}
		}
		return e, true
	}
	return Entry{}, false
}

// parseUnixDate parses the date at fields k.. of an ls line: "Jan 2 15:04",
// "Jan 2 2024" or "2024-01-02 15:04". It returns the time and the index of
// the field after the date.
func parseUnixDate(line string, fs []field, k int, now time.Time) (time.Time, int, bool) {
	tok := func(i int) string { return line[fs[i].start:fs[i].end] }
	if k+1 >= len(fs) {
		return time.Time{}, 0, false
	}
	if y, m, d, ok := parseISODate(tok(k)); ok {
		h, mi, ok := parseClock(tok(k + 1))
		if !ok {
			return time.Time{}, 0, false
		}
		return time.Date(y, m, d, h, mi, 0, 0, time.UTC), k + 2, true
	}
	if k+2 >= len(fs) {
		return time.Time{}, 0, false
	}
	m, ok := parseMonth(tok(k))
	if !ok {
		return time.Time{}, 0, false
	}
	d, ok := parseDecimal(tok(k+1), 2, 31)
	if !ok || d == 0 {
		return time.Time{}, 0, false
	}
	third := tok(k + 2)
	if h, mi, ok := parseClock(third); ok {
		t, ok := inferYear(m, d, h, mi, now)
		return t, k + 3, ok
	}
	y, ok := parseDecimal(third, 4, 9999)
	if !ok || len(third) != 4 || d > daysIn(m, y) {
		return time.Time{}, 0, false
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), k + 3, true
}

// parseISODate parses "YYYY-MM-DD".
func parseISODate(s string) (int, time.Month, int, bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	y, ok1 := parseDecimal(s[:4], 4, 9999)
	m, ok2 := parseDecimal(s[5:7], 2, 12)
	d, ok3 := parseDecimal(s[8:], 2, 31)
	if !ok1 || !ok2 || !ok3 || m == 0 || d == 0 || d > daysIn(time.Month(m), y) {
		return 0, 0, 0, false
	}
	return y, time.Month(m), d, true
}

// parseClock parses "H:MM" or "HH:MM", 24-hour.
func parseClock(s string) (int, int, bool) {
	i := strings.IndexByte(s, ':')
	if i < 1 || len(s)-i != 3 {
		return 0, 0, false
	}
	h, ok1 := parseDecimal(s[:i], 2, 23)
	m, ok2 := parseDecimal(s[i+1:], 2, 59)
	return h, m, ok1 && ok2
}

// recentLimit is the latest time ParseListLine gives a date without a year:
// six months after now.
func recentLimit(now time.Time) time.Time { return now.UTC().AddDate(0, 6, 0) }

// inferYear returns the latest valid date with the given month, day and
// time that is not after recentLimit(now).
func inferYear(m time.Month, d, h, mi int, now time.Time) (time.Time, bool) {
	limit := recentLimit(now)
	for y := limit.Year(); y >= limit.Year()-8; y-- {
		if d > daysIn(m, y) {
			continue // February 29th
		}
		if t := time.Date(y, m, d, h, mi, 0, 0, time.UTC); !t.After(limit) {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseDOSLine parses a Windows/IIS line: date, time, "<DIR>" or size, name.
func parseDOSLine(line string, fs []field) (Entry, bool) {
	if len(fs) < 4 {
		return Entry{}, false
	}
	tok := func(i int) string { return line[fs[i].start:fs[i].end] }
	date := tok(0)
	if len(date) != 8 && len(date) != 10 || date[2] != date[5] || date[2] != '-' && date[2] != '/' {
		return Entry{}, false
	}
	m, ok1 := parseDecimal(date[:2], 2, 12)
	d, ok2 := parseDecimal(date[3:5], 2, 31)
	y, ok3 := parseDecimal(date[6:], 4, 9999)
	if !ok1 || !ok2 || !ok3 || m == 0 || d == 0 {
		return Entry{}, false
	}
	if len(date) == 8 {
		if y < 70 {
			y += 2000
		} else {
			y += 1900
		}
	}
	if d > daysIn(time.Month(m), y) {
		return Entry{}, false
	}
	clock := tok(1)
	h, mi, ok := 0, 0, false
	if n := len(clock); n > 2 && (strings.EqualFold(clock[n-2:], "AM") || strings.EqualFold(clock[n-2:], "PM")) {
		h, mi, ok = parseClock(clock[:n-2])
		if !ok || h < 1 || h > 12 {
			return Entry{}, false
		}
		h %= 12
		if strings.EqualFold(clock[n-2:], "PM") {
			h += 12
		}
	} else if h, mi, ok = parseClock(clock); !ok {
		return Entry{}, false
	}
	e := Entry{ModTime: time.Date(y, time.Month(m), d, h, mi, 0, 0, time.UTC), Size: -1}
	if sz := tok(2); strings.EqualFold(sz, "<DIR>") {
		e.Type = "dir"
	} else {
		n, err := strconv.ParseInt(sz, 10, 64)
		if !allDigits(sz) || err != nil {
			return Entry{}, false
		}
		e.Type, e.Size = "file", n
	}
	e.Name = line[fs[3].start:]
	if e.Type == "dir" {
		switch e.Name {
		case ".":
			e.Type = "cdir"
		case "..":
			e.Type = "pdir"
		}
	}
	return e, true
}

// FormatListLine renders e as an "ls -l" line for a LIST reply, without
// CRLF: the mode (Perm if it looks like a mode string, else "drwxr-xr-x"
// for directories, "lrwxrwxrwx" for links, "-rw-r--r--" otherwise), "1 ftp
// ftp", the size (0 if unknown), the date ("Jan _2 15:04" if ModTime is
// within six months of now and ParseListLine would read it back as the
// same time, else "Jan _2  2006"; the zero time shows as 1970), and the
// name, followed by " -> Target" for a link with a target. The name is
// written as it is: the caller makes sure it holds no CR or LF.
func FormatListLine(e Entry, now time.Time) string {
	mode := e.Perm
	if !isMode(mode) {
		switch e.Type {
		case "dir", "cdir", "pdir":
			mode = "drwxr-xr-x"
		case "link":
			mode = "lrwxrwxrwx"
		default:
			mode = "-rw-r--r--"
		}
	}
	size := e.Size
	if size < 0 {
		size = 0
	}
	t := e.ModTime.UTC()
	if e.ModTime.IsZero() {
		t = time.Unix(0, 0).UTC()
	}
	date := t.Format("Jan _2  2006")
	now = now.UTC()
	if !t.Before(now.AddDate(0, -6, 0)) && !t.After(now.AddDate(0, 6, 0)) {
		tm := t.Truncate(time.Minute)
		if back, ok := inferYear(tm.Month(), tm.Day(), tm.Hour(), tm.Minute(), now); ok && back.Equal(tm) {
			date = t.Format("Jan _2 15:04")
		}
	}
	name := e.Name
	if mode[0] == 'l' && e.Target != "" {
		name += " -> " + e.Target
	}
	return fmt.Sprintf("%s 1 ftp ftp %12d %s %s", mode, size, date, name)
}
