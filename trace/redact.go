package trace

import "strings"

// RedactCommand returns an FTP command line as nsftp shows it anywhere: in
// a trace, a JSON line, a diagram, a log line or an error, on the client
// and on the server alike. The argument of PASS and of ACCT (RFC 959
// section 4.1.1: a password, and an account, which a server may use as a
// second secret) becomes "****": whatever the verb's case, with no
// argument at all (that a password is empty is worth hiding too), and on
// a malformed line that merely starts with the verb (after blanks), so a
// line a server could not parse shows no more in its error than a good
// one. Other lines come back as they are. It is the one place that
// decides: written four times, the rules had drifted apart, and a
// server's trace showed an ACCT argument in clear.
func RedactCommand(line string) string {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	if len(line)-i < 4 {
		return line
	}
	if verb := line[i : i+4]; !strings.EqualFold(verb, "PASS") && !strings.EqualFold(verb, "ACCT") {
		return line
	}
	return line[:i+4] + " ****"
}
