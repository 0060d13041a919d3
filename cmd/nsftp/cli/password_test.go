package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/ftp"
)

func TestNetrcLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netrc")
	os.WriteFile(path, []byte(`machine ftp.example.org login alice password a1
machine 192.0.2.2
  login bob
  password "b2"
default login anonymous password guest@
macdef init
cd /pub
`), 0o600)
	t.Setenv("NETRC", path)
	for _, tc := range []struct {
		host, user      string
		login, password string
		ok              bool
	}{
		{"ftp.example.org", "", "alice", "a1", true},
		{"FTP.EXAMPLE.ORG", "alice", "alice", "a1", true},
		{"ftp.example.org", "carol", "", "", false},
		{"192.0.2.2", "", "bob", `"b2"`, true},
		{"other.example", "", "anonymous", "guest@", true},
	} {
		login, password, ok := netrcLookup(tc.host, tc.user)
		if login != tc.login || password != tc.password || ok != tc.ok {
			t.Errorf("netrcLookup(%q, %q) = %q, %q, %v; want %q, %q, %v", tc.host, tc.user, login, password, ok, tc.login, tc.password, tc.ok)
		}
	}
}

func TestCredentials(t *testing.T) {
	t.Setenv("NETRC", filepath.Join(t.TempDir(), "none"))
	e := &env{stdin: strings.NewReader(""), stderr: &strings.Builder{}}

	u, _ := ftp.ParseURL("ftp://alice@192.0.2.2/f")
	t.Setenv("NSFTP_PASSWORD", "from-env")
	if err := credentials(e, u); err != nil || u.Password != "from-env" {
		t.Errorf("NSFTP_PASSWORD: %v, %q", err, u.Password)
	}

	t.Setenv("NSFTP_PASSWORD", "")
	u, _ = ftp.ParseURL("ftp://alice@192.0.2.2/f")
	err := credentials(e, u)
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "no password for alice") {
		t.Errorf("no password and no terminal: %v", err)
	}

	u, _ = ftp.ParseURL("ftp://alice:in-url@192.0.2.2/f")
	t.Setenv("NSFTP_PASSWORD", "from-env")
	if err := credentials(e, u); err != nil || u.Password != "in-url" {
		t.Errorf("the URL's password must win: %v, %q", err, u.Password)
	}

	u, _ = ftp.ParseURL("ftp://192.0.2.2/f")
	if err := credentials(e, u); err != nil || u.User != "" || u.HasPassword {
		t.Errorf("anonymous: %v, %q", err, u.User)
	}
}
