package trace

import (
	"fmt"
	"strconv"
	"time"
)

// Bytes writes n for people: "274 bytes", "1.2 MB".
func Bytes(n int64) string {
	switch {
	case n == 1:
		return "1 byte"
	case n < 10000:
		return strconv.FormatInt(n, 10) + " bytes"
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// Duration writes d for people: "830 µs", "12.3 ms", "1.50 s".
func Duration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// thousands writes n with separators: 12,345.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
