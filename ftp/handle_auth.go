package ftp

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
	"time"
)

// maxLoginFailures is how many failed PASS commands end a session.
const maxLoginFailures = 3

func handleUSER(s *session, arg string) {
	if s.loggedIn {
		s.reply(503, "Already logged in.")
		return
	}
	s.user = arg
	if s.cfg.Anonymous && isAnonymousUser(arg) {
		s.reply(331, "Anonymous login ok, send your e-mail address as password.")
		return
	}
	// The same reply for every other name: whether an account exists is
	// not the client's business until the password is right.
	s.reply(331, "Please specify the password.")
}

func handlePASS(s *session, arg string) {
	switch {
	case s.loggedIn:
		s.reply(503, "Already logged in.")
		return
	case s.user == "":
		s.reply(503, "Login with USER first.")
		return
	}
	user := s.user
	s.user = ""
	if s.checkLogin(user, arg) {
		s.loggedIn = true
		s.user = user
		s.slot.markLoggedIn()
		s.reply(230, "Login successful.")
		return
	}

	// RFC 2577 section 5: slow down password guessing, and end the
	// session after a few tries.
	s.failures++
	if d := failDelay(s.cfg.FailDelay, s.failures); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
	}
	if s.failures >= maxLoginFailures {
		s.reply(421, "Too many failed logins.")
		s.quit = true
		return
	}
	s.reply(530, "Login incorrect.")
}

// failDelay is the wait before answering the n-th failed login: none for
// the first, then base, doubling, up to eight times base.
func failDelay(base time.Duration, n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return base << min(n-2, 3)
}

// checkLogin reports whether user and password name an account. The named
// account's name and password are compared in constant time, as digests so
// that not even their lengths leak through timing.
func (s *session) checkLogin(user, password string) bool {
	if s.cfg.Anonymous && isAnonymousUser(user) {
		return true
	}
	if s.cfg.User == "" {
		return false
	}
	u, wantU := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(s.cfg.User))
	p, wantP := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(s.cfg.Password))
	return subtle.ConstantTimeCompare(u[:], wantU[:])&subtle.ConstantTimeCompare(p[:], wantP[:]) == 1
}

func isAnonymousUser(name string) bool {
	return strings.EqualFold(name, "anonymous") || strings.EqualFold(name, "ftp")
}

func handleQUIT(s *session, _ string) {
	s.reply(221, "Goodbye.")
	s.quit = true
}

func handleNOOP(s *session, _ string) { s.reply(200, "NOOP ok.") }

func handleSYST(s *session, _ string) { s.reply(215, "UNIX Type: L8") }

// handleAUTH refuses TLS (RFC 4217) until the server speaks it; 502 tells a
// client asking for optional TLS to go on without.

// handleFEAT lists the RFC 2389 features, each line starting with a
// space: MLST with the facts this session's MLSD and MLST send starred (RFC
// 3659 section 7.8), and MFMT and MFF only where files may be changed.
func handleFEAT(s *session, _ string) {
	lines := []string{"Features:", " EPRT", " EPSV", " MDTM"}
	if s.cfg.Write {
		lines = append(lines, " MFMT")
	}
	lines = append(lines, " MLST "+s.factsOff.feature(), " PASV", " REST STREAM", " SIZE", " UTF8")
	if s.srv.tls != nil {
		lines = append(lines, " AUTH TLS", " PBSZ", " PROT")
	}
	s.reply(211, append(lines, "End")...)
}

func handleHELP(s *session, _ string) {
	verbs := make([]string, 0, len(s.srv.commands))
	for v := range s.srv.commands {
		verbs = append(verbs, v)
	}
	slices.Sort(verbs)
	lines := []string{"The following commands are recognized:"}
	for c := range slices.Chunk(verbs, 10) {
		lines = append(lines, " "+strings.Join(c, " "))
	}
	s.reply(214, append(lines, "Help OK.")...)
}

func handleOPTS(s *session, arg string) {
	opt, val, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(opt) {
	case "UTF8":
		// Names go on the wire as the file system has them; on Unix that
		// is UTF-8 in practice, so there is nothing to switch.
		if strings.EqualFold(strings.TrimSpace(val), "ON") {
			s.reply(200, "Always in UTF8 mode.")
			return
		}
		s.reply(504, "UTF8 cannot be turned off.")
	case "MLST":
		// The facts MLSD and MLST send from now on: those named that the
		// server knows; none if none (RFC 3659 section 7.9).
		s.factsOff = parseFacts(val)
		s.reply(200, strings.TrimRight("MLST OPTS "+s.factsOff.list(), " "))
	default:
		s.reply(501, "Option not understood.")
	}
}

// handleTYPE accepts ASCII and image types. Data is always sent as it is
// stored, so TYPE A is accepted (clients insist on it for listings) but does
// not convert line ends, and the reply says so.
func handleTYPE(s *session, arg string) {
	switch strings.Join(strings.Fields(strings.ToUpper(arg)), " ") {
	case "A", "A N":
		s.asciiType = true
		s.reply(200, "Switching to ASCII mode; data is sent unconverted, as in binary.")
	case "I", "L 8":
		s.asciiType = false
		s.reply(200, "Switching to Binary mode.")
	default:
		s.reply(504, "Type not supported.")
	}
}

func handleMODE(s *session, arg string) {
	if strings.EqualFold(arg, "S") {
		s.reply(200, "Mode set to S.")
		return
	}
	s.reply(504, "Only stream mode is supported.")
}

func handleSTRU(s *session, arg string) {
	if strings.EqualFold(arg, "F") {
		s.reply(200, "Structure set to F.")
		return
	}
	s.reply(504, "Only file structure is supported.")
}

func handleALLO(s *session, _ string) { s.reply(202, "No storage allocation necessary.") }

// handleSTAT answers with the session's status, or with a listing of the
// path given (RFC 959 section 4.1.3). During a transfer, the transfer's
// progress is answered instead (see session.transfer).
func handleSTAT(s *session, arg string) {
	if arg != "" {
		statPath(s, arg)
		return
	}
	user := s.user
	if isAnonymousUser(user) {
		user = "anonymous"
	}
	typ := "BINARY"
	if s.asciiType {
		typ = "ASCII, sent unconverted"
	}
	data := "No data connection"
	if s.plan != nil {
		data = "Data connection ready (" + s.plan.mode + ")"
	}
	s.reply(211,
		"nsftp status:",
		" Connected from "+s.remote.Addr().String(),
		" Logged in as "+user,
		" TYPE: "+typ+"; MODE: Stream; STRU: File",
		" "+data,
		"End of status")
}
