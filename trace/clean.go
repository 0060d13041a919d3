package trace

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean makes text from a run safe to show on a terminal or in a drawing:
// control characters (a hostile server's terminal escapes), bidirectional
// controls such as U+202E (which make a line read differently from what it
// says), line and paragraph separators, non-characters and invalid UTF-8
// each become '?'. Every view shows run text through it.
func Clean(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if unsafeRune(r, n) {
			b.WriteByte('?')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune, n int) bool {
	return r == utf8.RuneError && n <= 1 ||
		unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) ||
		r == '\u2028' || r == '\u2029' || r == 0xfffe || r == 0xffff
}
