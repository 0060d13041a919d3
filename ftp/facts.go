package ftp

import (
	"strings"
	"time"
)

// mlstFacts is a set of the MLST facts the server knows (RFC 3659 section
// 7.5). A session keeps the facts OPTS MLST turned off, so that its zero
// value sends them all.
type mlstFacts uint8

const (
	factType mlstFacts = 1 << iota
	factSize
	factModify
	factPerm
	allFacts = factType | factSize | factModify | factPerm
)

// factNames are the facts in the order FEAT and OPTS MLST list them.
var factNames = []struct {
	f    mlstFacts
	name string
}{{factType, "type"}, {factSize, "size"}, {factModify, "modify"}, {factPerm, "perm"}}

// parseFacts reads OPTS MLST's fact list ("type;size;modify;", names in
// any case) and returns the facts it leaves off: every known fact not
// named. Names the server does not know are ignored (RFC 3659 section
// 7.9).
func parseFacts(list string) (off mlstFacts) {
	on := mlstFacts(0)
	for _, name := range strings.Split(strings.TrimSpace(list), ";") {
		for _, f := range factNames {
			if strings.EqualFold(strings.TrimSpace(name), f.name) {
				on |= f.f
			}
		}
	}
	return allFacts &^ on
}

// list names the facts sent, each followed by ';', as OPTS MLST's reply
// says them.
func (off mlstFacts) list() string {
	var b strings.Builder
	for _, f := range factNames {
		if off&f.f == 0 {
			b.WriteString(f.name + ";")
		}
	}
	return b.String()
}

// feature is FEAT's MLST line: every fact known, those sent starred.
func (off mlstFacts) feature() string {
	var b strings.Builder
	for _, f := range factNames {
		b.WriteString(f.name)
		if off&f.f == 0 {
			b.WriteByte('*')
		}
		b.WriteByte(';')
	}
	return b.String()
}

// strip leaves out of e the facts turned off.
func (off mlstFacts) strip(e Entry) Entry {
	if off&factType != 0 {
		e.Type = ""
	}
	if off&factSize != 0 {
		e.Size = -1
	}
	if off&factModify != 0 {
		e.ModTime = time.Time{}
	}
	if off&factPerm != 0 {
		e.Perm = ""
	}
	return e
}

// parseTimeVal reads RFC 3659's time-val, YYYYMMDDHHMMSS[.sss], in UTC.
func parseTimeVal(s string) (time.Time, bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if len(whole) != len(mdtmLayout) {
		return time.Time{}, false
	}
	t, err := time.Parse(mdtmLayout, whole)
	if err != nil {
		return time.Time{}, false
	}
	if hasFrac {
		if frac == "" || len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, false
		}
		ns := 0
		for i := 0; i < 9; i++ {
			ns *= 10
			if i < len(frac) {
				ns += int(frac[i] - '0')
			}
		}
		t = t.Add(time.Duration(ns))
	}
	return t, true
}
