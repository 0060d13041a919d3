package stack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nsftp/nsftp/stack"
)

// An HTTP server on one host and Go's own http.Client on the other, across
// a wire that loses 2% of frames each way and delays each by 5 ms: real
// TCP recovers every loss, in the process, with no root.
func Example_httpOverLossyWire() {
	p, err := stack.NewPair(stack.PairConfig{Wire: stack.WireConfig{
		Path: stack.Path{Loss: 2, Delay: 5 * time.Millisecond},
	}})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	body := bytes.Repeat([]byte("nsftp "), 1<<18) // 1.5 MiB
	l, err := p.Server.Listen(context.Background(), "tcp", ":80")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })}
	go srv.Serve(l)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{DialContext: p.Client.DialContext}}
	resp, err := client.Get("http://" + stack.ServerIPv4 + "/")
	if err != nil {
		panic(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, len(got), "bytes, identical:", sha256.Sum256(got) == sha256.Sum256(body), err)
	fmt.Println("frames lost on the wire:", p.Wire.Stats().Lost > 0)
	// Output:
	// 200 OK 1572864 bytes, identical: true <nil>
	// frames lost on the wire: true
}

// A UDP echo server on ListenPacket and a client on DialContext("udp"):
// each Write is one datagram, each Read one datagram.
func Example_udpEcho() {
	p, err := stack.NewPair(stack.PairConfig{})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ctx := context.Background()

	pc, err := p.Server.ListenPacket(ctx, "udp", ":7")
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()

	c, err := p.Client.DialContext(ctx, "udp", net.JoinHostPort(stack.ServerIPv4, "7"))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	fmt.Printf("%s from %s %v\n", buf[:n], c.RemoteAddr(), err)
	// Output:
	// ping from 192.0.2.2:7 <nil>
}

// The link is down: a connection cannot be made, and the dial gives up
// when its context's deadline passes, with the error Go's net.Dialer
// gives, a timeout.
func Example_timeoutUnderOutage() {
	p, err := stack.NewPair(stack.PairConfig{Wire: stack.WireConfig{
		Path: stack.Path{Down: []stack.Outage{{At: 0, For: time.Hour}}},
	}})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = p.Client.DialContext(ctx, "tcp", net.JoinHostPort(stack.ServerIPv4, "7"))
	var ne net.Error
	fmt.Println(err)
	fmt.Println("timeout:", errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded))
	fmt.Println("frames lost to the outage:", p.Wire.Stats().Down > 0)
	// Output:
	// dial tcp 192.0.2.2:7: i/o timeout
	// timeout: true true
	// frames lost to the outage: true
}
