// Command nsftp is an FTP client and server that runs its TCP/IP on its own
// embedded netstack, so every socket call can be traced, stepped through
// and drawn. Run "nsftp help" for usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsftp/nsftp/cmd/nsftp/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, cli.ErrorLine(err))
	}
	os.Exit(cli.ExitCode(err))
}
