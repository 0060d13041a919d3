// Command testlog reads `go test -json` output (test2json events) and
// prints what CI needs to see: each package's result, everything a
// failing test printed, and every test that was skipped, with its reason.
// It exits 1 if a test or package failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

func main() {
	output := map[string][]string{} // package/test -> lines printed
	var skipped, failed []string
	bad := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // the build's own messages
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			output[key] = append(output[key], e.Output)
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, key+": "+reason(output[key]))
			}
			delete(output, key)
		case "pass":
			if e.Test == "" {
				fmt.Printf("ok  \t%s\t%.1fs\n", e.Package, e.Elapsed)
			}
			delete(output, key)
		case "fail":
			bad = true
			if e.Test == "" {
				fmt.Print(strings.Join(output[key], ""))
				fmt.Printf("FAIL\t%s\t%.1fs\n", e.Package, e.Elapsed)
			} else {
				failed = append(failed, key)
				fmt.Print(strings.Join(output[key], ""))
			}
			delete(output, key)
		}
	}
	sort.Strings(skipped)
	fmt.Printf("\n%d tests skipped\n", len(skipped))
	for _, s := range skipped {
		fmt.Println("  SKIP", s)
	}
	if len(failed) > 0 {
		fmt.Printf("\n%d tests failed\n", len(failed))
		for _, f := range failed {
			fmt.Println("  FAIL", f)
		}
	}
	if bad {
		os.Exit(1)
	}
}

// reason is what a skipped test said, without the "--- SKIP" line.
func reason(lines []string) string {
	var out []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, " / ")
}
