package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/nsftp/nsftp/ftp"
)

// credentials fills in the URL's user and password when the URL does not
// give them: NSFTP_PASSWORD, then ~/.netrc (or $NETRC), then a prompt
// that does not echo. With no user anywhere the login is anonymous.
// Passwords are never echoed, logged or traced.
func credentials(e *env, u *ftp.URL) error {
	if u.HasPassword {
		return nil
	}
	if env := os.Getenv("NSFTP_PASSWORD"); env != "" && u.User != "" {
		u.Password, u.HasPassword = env, true
		return nil
	}
	if login, password, ok := netrcLookup(u.Host, u.User); ok {
		if u.User == "" {
			u.User = login
		}
		u.Password, u.HasPassword = password, true
		return nil
	}
	if u.User == "" || u.User == "anonymous" || u.User == "ftp" {
		return nil
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usagef("no password for %s: put it in the URL, in NSFTP_PASSWORD or in ~/.netrc", u.User)
	}
	fmt.Fprintf(e.stderr, "Password for %s@%s: ", u.User, u.Host)
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return fmt.Errorf("reading the password: %w", err)
	}
	u.Password, u.HasPassword = string(pw), true
	return nil
}

// netrcLookup finds the login and password for host in the netrc file: the
// entry for the machine (and, if user is set, that login), else "default".
func netrcLookup(host, user string) (login, password string, ok bool) {
	path := os.Getenv("NETRC")
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", false
		}
		path = filepath.Join(home, ".netrc")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", false
	}
	type entry struct{ machine, login, password string }
	var entries []entry
	var cur *entry
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Split(bufio.ScanWords)
	var macdef bool
	for sc.Scan() {
		tok := sc.Text()
		if macdef {
			continue // macros run to the end of the file here; nothing after them is read
		}
		switch tok {
		case "machine", "default":
			entries = append(entries, entry{})
			cur = &entries[len(entries)-1]
			if tok == "machine" && sc.Scan() {
				cur.machine = sc.Text()
			} else {
				cur.machine = "" // default
			}
		case "login", "password", "account":
			if cur == nil || !sc.Scan() {
				continue
			}
			switch tok {
			case "login":
				cur.login = sc.Text()
			case "password":
				cur.password = sc.Text()
			}
		case "macdef":
			macdef = true
		}
	}
	var fallback *entry
	for i := range entries {
		en := &entries[i]
		if en.machine == "" {
			if fallback == nil {
				fallback = en
			}
			continue
		}
		if strings.EqualFold(en.machine, host) && (user == "" || en.login == user) {
			return en.login, en.password, en.password != ""
		}
	}
	if fallback != nil && (user == "" || fallback.login == user) {
		return fallback.login, fallback.password, fallback.password != ""
	}
	return "", "", false
}
