// Command nsftp is an FTP client and server that runs its TCP/IP on its own
// embedded netstack, so every socket call can be traced, stepped through
// and drawn. Run "nsftp help" for usage.
package main

import (
	"os"

	"github.com/nsftp/nsftp/cmd/nsftp/cli"
)

func main() {
	os.Exit(cli.Main())
}
