package ftp_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// An FTP server and client on two netstack hosts joined by a virtual
// wire, in active mode as the 2005 article's client works: the client
// listens, sends PORT, and the server connects back from port 20.
func Example_pair() {
	root, _ := os.MkdirTemp("", "ftp-example-")
	defer os.RemoveAll(root)
	os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello over a virtual wire\n"), 0o644)

	p, err := stack.NewPair(stack.PairConfig{})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ctx := context.Background()

	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: p.Server})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	l, err := p.Server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", net.JoinHostPort(stack.ServerIPv4, "21"))
	if err != nil {
		panic(err)
	}
	go srv.Serve(ctx, l)

	c, err := ftp.Dial(ctx, l.Addr().String(), ftp.ClientConfig{Network: p.Client, Active: true})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "anonymous", ""); err != nil {
		panic(err)
	}
	var file bytes.Buffer
	n, err := c.Retrieve(ctx, "hello.txt", 0, &file)
	fmt.Print(n, " bytes: ", file.String())
	fmt.Println(err, c.Quit(ctx))
	// Output:
	// 26 bytes: hello over a virtual wire
	// <nil> <nil>
}
