package ftp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// hostileCase is one misbehaving (or merely unusual) server, and what the
// client must make of it.
type hostileCase struct {
	name string
	rfc  string // the section that says what the server should have done
	// op is what the client does after logging in: "get" (the default),
	// "put", "list", "nlst", "feat", or "login" (nothing more).
	op          string
	path        string // remote path; "file.bin" by default
	active      bool
	disableEPSV bool
	sc          script
	file        []byte // the served (or uploaded) file; 64 KiB by default

	// ok: the case is legal and must succeed with the exact bytes.
	ok bool
	// Otherwise the error must match every sentinel in is, be of class
	// class (which the command maps to its exit code), and mention msg
	// (case-insensitively).
	is    []error
	class ftp.Class
	msg   string
	// fast: the client must end well within its timeouts, because the
	// server told it (or hung up) in time.
	fast bool
	// usable: after the failure the session is still in step, and a NOOP
	// gets its own 200.
	usable bool
	// check, if set, looks at anything else.
	check func(t *testing.T, srv *scriptServer, r *hostileResult)
}

// hostileResult is what a case's client run produced.
type hostileResult struct {
	err     error
	events  []trace.Event
	listing string
	feats   map[string]string
	noop    error         // the NOOP after a failure, for usable cases
	opTime  time.Duration // from connecting to the end of the operation, QUIT left out
}

// The client's timeouts in these tests: short, so that "never comes" ends
// quickly, but far enough above the "fast" bound that a loaded machine
// (CI runs every package at once on two cores) does not blur the two.
const (
	hostileReplyTimeout = 2 * time.Second
	hostileDataTimeout  = 2 * time.Second
	hostileBound        = 12 * time.Second // no case may take longer
	hostileFast         = 1200 * time.Millisecond
)

func reply(raw string) func(*sess, string) { return func(s *sess, _ string) { s.send(raw) } }

// blockUntilEnd keeps a handler (and whatever it has open) alive until the
// test ends.
func blockUntilEnd(s *sess) { <-s.srv.ctx.Done() }

// retrWith answers RETR with a 150 that announces size bytes (or none if
// size < 0), sends data, and ends with final (nothing if "").
func retrWith(size int, data []byte, final string) func(*sess, string) {
	return func(s *sess, arg string) {
		if size >= 0 {
			s.send(fmt.Sprintf("150 Opening BINARY mode data connection for %s (%d bytes).\r\n", arg, size))
		} else {
			s.send("150 Opening BINARY mode data connection.\r\n")
		}
		s.sendData(data)
		if final != "" {
			s.send(final)
		}
	}
}

func hostileCases() []hostileCase {
	file := randomData(64<<10, 42)
	n := len(file)
	halfOpen := func(final string) func(*sess, string) {
		// Half the file, then final on the control connection, with the
		// data connection left open as a broken server would.
		return func(s *sess, arg string) {
			s.send(fmt.Sprintf("150 Opening BINARY mode data connection for %s (%d bytes).\r\n", arg, n))
			if c := s.openData(); c != nil {
				c.Write(file[:n/2])
			}
			s.send(final)
			blockUntilEnd(s)
		}
	}
	cases := []hostileCase{
		// The greeting (RFC 959 section 5.4: 120 and then 220, or 421).
		{name: "greeting is an HTTP response", rfc: "RFC 959 4.2",
			sc: script{greet: func(s *sess) { s.send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") }},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "three-digit code", fast: true},
		{name: "greeting 421", rfc: "RFC 959 5.4",
			sc: script{greet: func(s *sess) { s.send("421 Too many users, try later.\r\n") }},
			is: []error{ftp.ErrServiceClosing}, class: ftp.ClassServer, msg: "refused the session: 421 Too many users", fast: true},
		{name: "greeting 200", rfc: "RFC 959 5.4",
			sc: script{greet: func(s *sess) { s.send("200 Hello.\r\n") }},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "greeted with 200 Hello. (expected 220)", fast: true},
		{name: "greeting 120 and 220 in one segment", rfc: "RFC 959 5.4", ok: true,
			sc: script{greet: func(s *sess) { s.send("120 Ready in 1 minute.\r\n220 Ready.\r\n") }}},
		{name: "greeting never comes", rfc: "RFC 959 5.4",
			sc: script{greet: func(s *sess) {}},
			is: []error{os.ErrDeadlineExceeded}, class: ftp.ClassTimeout, msg: "greeting"},
		{name: "NUL in the greeting", rfc: "RFC 959 4.2",
			sc: script{greet: func(s *sess) { s.send("220 Hello\x00world\r\n") }},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "NUL", fast: true},
		{name: "reply line of 100 KB", rfc: "RFC 959 4.2",
			sc: script{greet: func(s *sess) { s.send("220 " + strings.Repeat("A", 100<<10) + "\r\n") }},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "longer than 8192 bytes", fast: true},
		{name: "endless multi-line reply", rfc: "RFC 959 4.2",
			sc: script{greet: func(s *sess) { s.sendForever("220-Welcome\r\n", " and there is more\r\n", 64<<20) }},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "longer than 65536 bytes", fast: true},
		{name: "inner lines starting with digits", rfc: "RFC 959 4.2", ok: true,
			sc: script{
				greet: func(s *sess) {
					s.send("220-Welcome\r\n220-not the end yet\r\n230 not the end either\r\n 220 indented\r\n220\r\n")
				},
				on: map[string]func(*sess, string){
					"USER": reply("331-Password\r\n123 still going\r\n331-and on\r\n331 please.\r\n"),
				},
			}},
		{name: "every reply one byte at a time", rfc: "RFC 959 4.2", ok: true, sc: script{slow: true}},
		{name: "every reply one byte at a time, active", rfc: "RFC 959 4.2", ok: true, active: true, sc: script{slow: true}},
		{name: "every reply one byte at a time, upload", rfc: "RFC 959 4.2", ok: true, op: "put", sc: script{slow: true}},

		// Login (RFC 959 section 4.2, 5.4: USER 230/331/332, PASS 230/202/332).
		{name: "USER answered 200", rfc: "RFC 959 5.4",
			sc: script{on: map[string]func(*sess, string){"USER": reply("200 Sure.\r\n")}},
			is: []error{ftp.ErrLoginRefused, ftp.ErrProtocol}, class: ftp.ClassLogin, msg: "expected 230 or 331", fast: true},
		{name: "USER answered 600", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"USER": reply("600 What?\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "three-digit code", fast: true},
		{name: "530 on login", rfc: "RFC 959 5.4",
			sc: script{on: map[string]func(*sess, string){"PASS": reply("530 Login incorrect.\r\n")}},
			is: []error{ftp.ErrLoginRefused}, class: ftp.ClassLogin, msg: "refused PASS ****: 530 Login incorrect.", fast: true},
		{name: "PASS answered 332", rfc: "RFC 959 5.4",
			sc: script{on: map[string]func(*sess, string){"PASS": reply("332 Need account for login.\r\n")}},
			is: []error{ftp.ErrLoginRefused}, class: ftp.ClassLogin, msg: "ACCT", fast: true},
		{name: "PASS answered 150", rfc: "RFC 959 5.4",
			sc: script{on: map[string]func(*sess, string){"PASS": reply("150 Here you go.\r\n")}},
			is: []error{ftp.ErrLoginRefused}, class: ftp.ClassLogin, msg: "expected 230", fast: true},
		{name: "TYPE answered 504", rfc: "RFC 959 5.4",
			sc:    script{on: map[string]func(*sess, string){"TYPE": reply("504 Not in binary.\r\n")}},
			class: ftp.ClassServer, msg: "refused TYPE I: 504", fast: true},
		{name: "TYPE answered 331", rfc: "RFC 959 5.4",
			sc: script{on: map[string]func(*sess, string){"TYPE": reply("331 Password?\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "expected 200", fast: true},
		// A server that hangs up without a 421 breaks RFC 959 section
		// 4.2; it is a failure of the network, with nothing more to say.
		{name: "control connection closed during login", rfc: "RFC 959 4.2",
			sc:    script{on: map[string]func(*sess, string){"PASS": func(s *sess, _ string) { s.hangup() }}},
			class: ftp.ClassNetwork, msg: "server closed the control connection", fast: true},
		{name: "NUL in the PASS reply", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"PASS": reply("230 Wel\x00come\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "NUL", fast: true},

		// Passive mode (RFC 959 4.1.2 PASV, RFC 2428 section 3 EPSV).
		{name: "227 with an octet over 255", rfc: "RFC 959 4.1.2", disableEPSV: true,
			sc: script{on: map[string]func(*sess, string){"PASV": reply("227 Entering Passive Mode (10,0,0,256,4,1).\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "227 reply", fast: true},
		{name: "227 with a field missing", rfc: "RFC 959 4.1.2", disableEPSV: true,
			sc: script{on: map[string]func(*sess, string){"PASV": reply("227 Entering Passive Mode (10,0,0,1,4).\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "227 reply", fast: true},
		{name: "227 with non-numeric fields", rfc: "RFC 959 4.1.2", disableEPSV: true,
			sc: script{on: map[string]func(*sess, string){"PASV": reply("227 Entering Passive Mode (a,b,c,d,e,f).\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "227 reply", fast: true},
		{name: "227 with port 0", rfc: "RFC 959 4.1.2", disableEPSV: true,
			sc: script{on: map[string]func(*sess, string){"PASV": reply("227 Entering Passive Mode (10,0,0,1,0,0).\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "port 0", fast: true},
		{name: "229 with a port over 65535", rfc: "RFC 2428 3",
			sc: script{on: map[string]func(*sess, string){"EPSV": reply("229 Entering Extended Passive Mode (|||70000|)\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "229 reply", fast: true},
		{name: "EPSV and PASV both refused", rfc: "RFC 2428 3",
			sc: script{on: map[string]func(*sess, string){
				"EPSV": reply("500 EPSV not understood.\r\n"),
				"PASV": reply("502 PASV not implemented.\r\n"),
			}},
			class: ftp.ClassServer, msg: "refused PASV: 502", fast: true},
		{name: "EPSV refused, PASV works", rfc: "RFC 2428 3", ok: true,
			sc: script{on: map[string]func(*sess, string){"EPSV": reply("502 EPSV not implemented.\r\n")}}},
		{name: "229 names a port nothing listens on", rfc: "RFC 2428 3",
			sc:    script{on: map[string]func(*sess, string){"EPSV": reply("229 Entering Extended Passive Mode (|||9|)\r\n")}},
			class: ftp.ClassNetwork, msg: "opening the data connection", fast: true},
		{name: "227 names a third host", rfc: "RFC 2577 3", ok: true, disableEPSV: true,
			sc:    script{on: map[string]func(*sess, string){"PASV": pasvToThirdHost}},
			check: checkThirdHostIgnored},

		// RETR (RFC 959 4.2: 125/150, then 226/250; 425, 426, 451, 550).
		{name: "550 on RETR", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){
				"SIZE": reply("550 No such file.\r\n"),
				"RETR": reply("550 No such file.\r\n"),
			}},
			class: ftp.ClassServer, msg: "refused RETR file.bin: 550 No such file.", fast: true, usable: true},
		{name: "RETR answered 200", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"RETR": reply("200 Fine.\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "expected 150", fast: true},
		{name: "RETR answered 226 without 150", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"RETR": reply("226 Done.\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "expected 150", fast: true},
		{name: "fewer bytes than SIZE announced", rfc: "RFC 3659 4",
			sc: script{on: map[string]func(*sess, string){"SIZE": reply(fmt.Sprintf("213 %d\r\n", n+10))}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: fmt.Sprintf("received %d of %d bytes", n, n+10), fast: true, usable: true},
		{name: "more bytes than SIZE announced", rfc: "RFC 3659 4",
			sc: script{on: map[string]func(*sess, string){"SIZE": reply(fmt.Sprintf("213 %d\r\n", n-10))}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: fmt.Sprintf("more than the %d bytes", n-10), fast: true, usable: true},
		{name: "more bytes than the 150 announced", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){
				"SIZE": reply("502 No SIZE here.\r\n"),
				"RETR": retrWith(n-10, file, "226 Done.\r\n"),
			}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "more than", fast: true},
		{name: "fewer bytes than the 150 announced", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){
				"SIZE": reply("502 No SIZE here.\r\n"),
				"RETR": retrWith(n+1, file, "226 Done.\r\n"),
			}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "received", fast: true},
		{name: "SIZE is not a number", rfc: "RFC 3659 4", ok: true,
			sc: script{on: map[string]func(*sess, string){"SIZE": reply("213 lots\r\n")}}},
		{name: "SIZE is negative", rfc: "RFC 3659 4", ok: true,
			sc: script{on: map[string]func(*sess, string){"SIZE": reply("213 -5\r\n")}}},
		{name: "SIZE overflows int64", rfc: "RFC 3659 4", ok: true,
			sc: script{on: map[string]func(*sess, string){"SIZE": reply("213 99999999999999999999\r\n")}}},
		{name: "SIZE is the largest int64", rfc: "RFC 3659 4",
			sc: script{on: map[string]func(*sess, string){"SIZE": reply("213 9223372036854775807\r\n")}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "received", fast: true},
		{name: "150 echoes a name that looks like a size", rfc: "RFC 959 4.2", ok: true, path: "a (3 bytes).bin",
			sc: script{on: map[string]func(*sess, string){"SIZE": reply("502 No SIZE here.\r\n")}}},
		{name: "150 disagrees with a right SIZE", rfc: "RFC 3659 4", ok: true,
			sc:    script{on: map[string]func(*sess, string){"RETR": retrWith(n+100, file, "226 Done.\r\n")}},
			check: checkNote("SIZE said")},
		{name: "150 right, SIZE wrong", rfc: "RFC 3659 4",
			sc: script{on: map[string]func(*sess, string){"SIZE": reply(fmt.Sprintf("213 %d\r\n", n+100))}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "received", fast: true},
		{name: "control connection closed right after 150", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"RETR": func(s *sess, arg string) {
				s.send("150 Opening data connection.\r\n")
				if c := s.openData(); c != nil {
					c.Write(file[:n/2])
				}
				s.conn.Close()
				blockUntilEnd(s)
			}}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "closed the control connection", fast: true},
		{name: "data connection closed, 226 never comes", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"RETR": retrWith(n, file, "")}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "no reply after the data"},
		{name: "data never ends, 226 never comes", rfc: "RFC 959 3.4.1",
			sc: script{on: map[string]func(*sess, string){"RETR": func(s *sess, arg string) {
				s.send("150 Opening data connection.\r\n")
				if c := s.openData(); c != nil {
					c.Write(file)
				}
			}}},
			is: []error{ftp.ErrIncomplete, os.ErrDeadlineExceeded}, class: ftp.ClassTimeout, msg: "no data for 2s"},
		{name: "226 comes but the data never ends", rfc: "RFC 959 3.4.1",
			sc: script{on: map[string]func(*sess, string){"RETR": func(s *sess, arg string) {
				s.send("150 Opening data connection.\r\n")
				if c := s.openData(); c != nil {
					c.Write(file)
				}
				s.send("226 Done.\r\n")
			}}},
			is: []error{ftp.ErrIncomplete, os.ErrDeadlineExceeded}, class: ftp.ClassTimeout, msg: "no data for 2s"},
		{name: "226 before the data", rfc: "RFC 959 4.2", ok: true,
			sc: script{on: map[string]func(*sess, string){"RETR": func(s *sess, arg string) {
				s.send("150 Opening data connection.\r\n226 Done.\r\n")
				time.Sleep(20 * time.Millisecond)
				s.sendData(file)
			}}}},
		{name: "data, then 150 and 226 in one segment", rfc: "RFC 959 4.2", ok: true,
			sc: script{on: map[string]func(*sess, string){"RETR": func(s *sess, arg string) {
				s.sendData(file)
				s.send(fmt.Sprintf("150 Here (%d bytes).\r\n226 Done.\r\n", n))
			}}}},
		{name: "426 half-way, data left open", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"RETR": halfOpen("426 Connection closed; transfer aborted.\r\n")}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "426 Connection closed", fast: true},
		{name: "421 half-way, data left open", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"RETR": halfOpen("421 Shutting down.\r\n")}},
			is: []error{ftp.ErrIncomplete, ftp.ErrServiceClosing}, class: ftp.ClassIncomplete, msg: "421 Shutting down", fast: true},
		{name: "NUL in the final reply", rfc: "RFC 959 4.2",
			sc: script{on: map[string]func(*sess, string){"RETR": retrWith(n, file, "226 Transfer\x00complete.\r\n")}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "NUL", fast: true},

		// Active mode (RFC 959 4.1.2 PORT, RFC 2428 section 2 EPRT, RFC
		// 2577 section 8 port theft).
		{name: "active: the server never connects", rfc: "RFC 959 4.1.2", active: true,
			sc: script{on: map[string]func(*sess, string){"RETR": reply("150 Opening data connection.\r\n")}},
			is: []error{os.ErrDeadlineExceeded}, class: ftp.ClassTimeout, msg: "did not open the data connection within 2s"},
		{name: "active: 425 after 150", rfc: "RFC 959 4.2", active: true,
			sc: script{on: map[string]func(*sess, string){"RETR": reply("150 Opening data connection.\r\n425 Can't open data connection.\r\n")}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "425 Can't open data connection.", fast: true},
		{name: "active: 425 instead of 150", rfc: "RFC 959 4.2", active: true,
			sc:    script{on: map[string]func(*sess, string){"RETR": reply("425 Can't open data connection.\r\n")}},
			class: ftp.ClassServer, msg: "refused RETR file.bin: 425", fast: true, usable: true},
		{name: "active: PORT refused", rfc: "RFC 959 4.1.2", active: true,
			sc:    script{on: map[string]func(*sess, string){"PORT": reply("500 Illegal PORT command.\r\n")}},
			class: ftp.ClassServer, msg: "refused PORT", fast: true},
		{name: "active: a third address connects first", rfc: "RFC 2577 8", ok: true, active: true,
			sc: script{on: map[string]func(*sess, string){"RETR": func(s *sess, arg string) {
				s.send(fmt.Sprintf("150 Opening data connection (%d bytes).\r\n", n))
				thirdConnects(s)
				s.sendData(file)
				s.send("226 Done.\r\n")
			}}},
			check: checkNote("refused a data connection")},
		{name: "active: only a third address connects", rfc: "RFC 2577 8", active: true,
			sc: script{on: map[string]func(*sess, string){"RETR": func(s *sess, arg string) {
				s.send("150 Opening data connection.\r\n")
				thirdConnects(s)
			}}},
			is: []error{ftp.ErrDataPeer, os.ErrDeadlineExceeded}, class: ftp.ClassTimeout, msg: "was refused"},

		// STOR (RFC 959 4.2: 552 exceeded storage allocation).
		{name: "STOR answered 552 after the data", rfc: "RFC 959 4.2", op: "put",
			sc: script{on: map[string]func(*sess, string){"STOR": func(s *sess, _ string) {
				s.send("150 Ok to send data.\r\n")
				s.receiveData()
				s.send("552 Exceeded storage allocation.\r\n")
			}}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "refused STOR file.bin: 552", fast: true, usable: true},
		{name: "STOR answered 552 half-way", rfc: "RFC 959 4.2", op: "put", file: randomData(4<<20, 7),
			sc: script{on: map[string]func(*sess, string){"STOR": func(s *sess, _ string) {
				s.send("150 Ok to send data.\r\n")
				if c := s.openData(); c != nil {
					c.Read(make([]byte, 32<<10))
				}
				s.send("552 Exceeded storage allocation.\r\n")
				s.closeData()
			}}},
			is: []error{ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "552 Exceeded storage allocation", fast: true},
		{name: "STOR answered 200", rfc: "RFC 959 4.2", op: "put",
			sc: script{on: map[string]func(*sess, string){"STOR": reply("200 Whatever.\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "expected 150", fast: true},
		{name: "STOR answered 553", rfc: "RFC 959 4.2", op: "put",
			sc:    script{on: map[string]func(*sess, string){"STOR": reply("553 File name not allowed.\r\n")}},
			class: ftp.ClassServer, msg: "refused STOR file.bin: 553", fast: true},

		// Listings and FEAT.
		{name: "FEAT answered on one line", rfc: "RFC 2389 3.2", op: "feat", ok: true,
			sc: script{on: map[string]func(*sess, string){"FEAT": reply("211 No features.\r\n")}}},
		{name: "FEAT endless", rfc: "RFC 2389 3.2", op: "feat",
			sc: script{on: map[string]func(*sess, string){"FEAT": func(s *sess, _ string) {
				s.sendForever("211-Features:\r\n", " MDTM\r\n", 64<<20)
			}}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "longer than 65536", fast: true},
		{name: "LIST answered 226 without data", rfc: "RFC 959 4.2", op: "list", ok: true,
			sc: script{on: map[string]func(*sess, string){"LIST": reply("226 Nothing to list.\r\n")}}},
		{name: "NLST line of 100 KB", rfc: "RFC 959 4.1.3", op: "nlst",
			sc: script{on: map[string]func(*sess, string){"NLST": retrWith(-1, bytes.Repeat([]byte("x"), 100<<10), "226 Done.\r\n")}},
			is: []error{ftp.ErrProtocol}, class: ftp.ClassProtocol, msg: "longer than 8192", fast: true},

		// Injection: a name from a URL such as ftp://h/x%0d%0aDELE%20y.
		{name: "CR LF in the path", rfc: "RFC 959 4.1", path: "x\r\nDELE y",
			is: []error{ftp.ErrBadArgument}, class: ftp.ClassBadArgument, msg: "CR, LF or NUL", fast: true, check: checkNoInjection},
	}

	// 421 may answer any command (RFC 959 4.2): the session ends, with
	// the server's reason.
	for _, step := range []struct {
		verb   string
		active bool
		class  ftp.Class
	}{
		{"USER", false, ftp.ClassServer}, {"PASS", false, ftp.ClassServer}, {"TYPE", false, ftp.ClassServer}, {"SIZE", false, ftp.ClassServer},
		{"EPSV", false, ftp.ClassServer}, {"PORT", true, ftp.ClassServer}, {"RETR", false, ftp.ClassServer}, {"RETR", true, ftp.ClassServer},
	} {
		name := "421 to " + step.verb
		if step.active {
			name += ", active"
		}
		cases = append(cases, hostileCase{name: name, rfc: "RFC 959 4.2", active: step.active,
			sc: script{on: map[string]func(*sess, string){step.verb: func(s *sess, _ string) {
				s.send("421 Service not available, closing control connection.\r\n")
				s.hangup()
			}}},
			is: []error{ftp.ErrServiceClosing}, class: step.class, msg: "421 Service not available", fast: true})
	}
	cases = append(cases, hostileCase{name: "421 after the data", rfc: "RFC 959 4.2",
		sc: script{on: map[string]func(*sess, string){"RETR": retrWith(n, file, "421 Timeout.\r\n")}},
		is: []error{ftp.ErrServiceClosing, ftp.ErrIncomplete}, class: ftp.ClassIncomplete, msg: "421 Timeout", fast: true})
	return cases
}

// pasvToThirdHost listens on the server as usual, but names the third
// host's address in the 227, where a trap listens on the same port.
func pasvToThirdHost(s *sess, _ string) {
	p := s.listen()
	if p == 0 {
		return
	}
	trap, err := s.srv.n.third.Listen(trace.WithBacklog(trace.WithLabel(s.srv.ctx, "data"), 1), "tcp", netip.AddrPortFrom(s.srv.n.thirdIP, p).String())
	if err != nil {
		s.srv.t.Errorf("trap listener: %v", err)
	} else {
		s.srv.trap(trap)
	}
	s.send(pasvReply(s.srv.n.thirdIP, p))
}

// thirdConnects connects to the client's active-mode port from the third
// address first, as a thief would, sends bytes that must not reach the
// file, and waits until the client hangs up on it.
func thirdConnects(s *sess) {
	ctx, cancel := context.WithTimeout(s.srv.ctx, 5*time.Second)
	defer cancel()
	c, err := s.srv.n.third.DialContext(trace.WithLabel(ctx, "data"), "tcp", s.port.String())
	if err != nil {
		s.srv.t.Errorf("third party cannot connect to %s: %v", s.port, err)
		return
	}
	defer c.Close()
	c.Write([]byte("EVIL BYTES THAT MUST NOT REACH THE FILE"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 1)) // returns when the client closes it
}

// checkThirdHostIgnored: the client connected to the control peer, never
// to the host a 227 named, and said so.
func checkThirdHostIgnored(t *testing.T, srv *scriptServer, r *hostileResult) {
	if n := srv.trapped(); n != 0 {
		t.Errorf("the client connected %d times to the third host the 227 named", n)
	}
	checkNote("connecting to the control peer")(t, srv, r)
}

func checkNote(text string) func(*testing.T, *scriptServer, *hostileResult) {
	return func(t *testing.T, _ *scriptServer, r *hostileResult) {
		t.Helper()
		for _, e := range r.events {
			if e.Kind == trace.KindNote && strings.Contains(e.Text, text) {
				return
			}
		}
		t.Errorf("no note event saying %q", text)
	}
}

// checkNoInjection: no line the server received carries a second command.
func checkNoInjection(t *testing.T, srv *scriptServer, _ *hostileResult) {
	t.Helper()
	for _, l := range srv.received() {
		verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
		if !slices.Contains([]string{"USER", "PASS", "TYPE", "QUIT", "NOOP"}, verb) || strings.Count(l, "\n") != 1 {
			t.Errorf("the server received %q", l)
		}
	}
}

// TestHostileServers runs the real client against a scripted server for
// every case of hostileCases, on the virtual wire and on loopback. For each
// it checks the error (its sentinels, its class, that it is one line
// naming the problem), that a pre-existing destination is untouched with
// nothing left beside it, that no goroutine is left, and the time taken;
// legal cases must deliver the exact bytes.
func TestHostileServers(t *testing.T) {
	for _, n := range hostileNets(t) {
		t.Run(n.name, func(t *testing.T) {
			for _, tc := range hostileCases() {
				t.Run(tc.name, func(t *testing.T) { runHostile(t, n, tc) })
			}
		})
	}
}

func runHostile(t *testing.T, n hostileNet, tc hostileCase) {
	stacktest.CheckGoroutines(t)
	if tc.file == nil {
		tc.file = randomData(64<<10, 42)
	}
	if tc.path == "" {
		tc.path = "file.bin"
	}
	if tc.op == "" {
		tc.op = "get"
	}
	srv := startScript(t, n, tc.sc, tc.file)
	dir := t.TempDir()
	dest := filepath.Join(dir, "dest.bin")
	precious := []byte("precious old contents\n")
	if err := os.WriteFile(dest, precious, 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r := drive(t, n, srv.addr, tc, dest)
	elapsed := time.Since(start)
	srv.close() // before looking at what it received

	t.Logf("%s: %s: %v (%v, %v with QUIT)", tc.rfc, ftp.Classify(r.err), r.err, r.opTime.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	if elapsed > hostileBound {
		t.Errorf("took %v, want under %v", elapsed, hostileBound)
	}
	got, _ := os.ReadFile(dest)
	if tc.ok {
		if r.err != nil {
			t.Fatalf("legal case failed: %v", r.err)
		}
		switch tc.op {
		case "get":
			if !bytes.Equal(got, tc.file) {
				t.Errorf("downloaded %d bytes, not the %d served", len(got), len(tc.file))
			}
		case "put":
			srv.mu.Lock()
			stored := srv.stored
			srv.mu.Unlock()
			if !bytes.Equal(stored, tc.file) {
				t.Errorf("server received %d bytes, not the %d uploaded", len(stored), len(tc.file))
			}
		}
	} else {
		if r.err == nil {
			t.Fatalf("succeeded, want an error")
		}
		msg := r.err.Error()
		if strings.ContainsAny(msg, "\r\n") {
			t.Errorf("error is not one line: %q", msg)
		}
		if len(msg) > 600 {
			t.Errorf("error is %d bytes long: %.100q...", len(msg), msg)
		}
		if !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.msg)) {
			t.Errorf("error %q does not mention %q", msg, tc.msg)
		}
		for _, target := range tc.is {
			if !errors.Is(r.err, target) {
				t.Errorf("error %q is not %v", msg, target)
			}
		}
		if got := ftp.Classify(r.err); got != tc.class {
			t.Errorf("class %s, want %s, for %q", got, tc.class, msg)
		}
		if tc.fast && r.opTime > hostileFast {
			t.Errorf("took %v: the client waited for a timeout instead of hearing the server", r.opTime)
		}
		if !bytes.Equal(got, precious) {
			t.Errorf("destination changed: %d bytes, %.40q", len(got), got)
		}
		if tc.usable && r.noop != nil {
			t.Errorf("the session is out of step after the failure: NOOP: %v", r.noop)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("destination directory holds %q, want only dest.bin", names)
	}
	if tc.check != nil {
		tc.check(t, srv, r)
	}
}

// drive runs the client through tc.op as cmd/nsftp does: destination
// prepared first, then connect, log in, binary type, transfer, commit or
// abort. After a failure that left the session in step it sends NOOP, to
// show the session can go on.
func drive(t *testing.T, n hostileNet, addr string, tc hostileCase, dest string) *hostileResult {
	t.Helper()
	r := &hostileResult{}
	var mu sync.Mutex
	cfg := ftp.ClientConfig{
		Network:        n.client,
		Active:         tc.active,
		DisableEPSV:    tc.disableEPSV,
		ConnectTimeout: 2 * time.Second,
		ReplyTimeout:   hostileReplyTimeout,
		AcceptTimeout:  hostileDataTimeout,
		DataTimeout:    hostileDataTimeout,
		Observer: func(e trace.Event) {
			mu.Lock()
			r.events = append(r.events, e)
			mu.Unlock()
		},
	}
	ctx := context.Background()
	var d *ftp.Dest
	if tc.op == "get" {
		var err error
		if d, err = ftp.CreateDest(dest, tc.path, ftp.DestOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	c, err := ftp.Dial(ctx, addr, cfg)
	if err == nil {
		defer func() {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c.Quit(qctx)
			c.Close()
		}()
		err = c.Login(ctx, "alice", "secret")
		if err == nil && tc.op != "login" && tc.op != "feat" {
			err = c.Type(ctx, "I")
		}
		if err == nil {
			switch tc.op {
			case "get":
				_, err = c.Retrieve(ctx, tc.path, 0, d)
			case "put":
				_, err = c.Store(ctx, tc.path, bytes.NewReader(tc.file))
			case "list":
				var b strings.Builder
				err = c.List(ctx, tc.path, &b)
				r.listing = b.String()
			case "nlst":
				err = c.NameList(ctx, tc.path, func(string) error { return nil })
			case "feat":
				r.feats, err = c.Features(ctx)
			}
			r.opTime = time.Since(start)
			if err != nil && tc.usable {
				r.noop = c.Noop(ctx)
			}
		}
	}
	if r.opTime == 0 {
		r.opTime = time.Since(start)
	}
	if d != nil {
		if err == nil {
			err = d.Commit()
		} else {
			d.Abort()
		}
	}
	r.err = err
	mu.Lock()
	defer mu.Unlock()
	r.events = slices.Clone(r.events)
	return r
}
