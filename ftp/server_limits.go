package ftp

import "net/netip"

// Admission: which accepted connections become sessions. Three limits
// apply, counted together under Server.mu when a connection arrives:
//
//	MaxPerAddr          sessions from one address (addrKey)
//	MaxSessions         sessions in all
//	MaxUnauthenticated  sessions that have not logged in yet
//
// A connection over any of them gets one 421 line naming the limit and is
// closed: it never becomes a session and runs no command. The per-address
// limit is what keeps a flood from one address from locking out the
// others; the unauthenticated limit keeps slots for sessions that have
// logged in, and LoginTimeout bounds how long a silent connection holds
// one of its slots.

// Refusals, one per limit, as the 421 reply says them.
const (
	refusedPerAddr = "Too many connections from your address"
	refusedFull    = "Too many connections"
	refusedUnauth  = "Too many connections not logged in"
)

// slot is one session's share of the counts, taken by admit and given back
// by release exactly once, when the session's goroutine returns. That
// goroutine never blocks on the file system (see bounded), so a session
// whose file system call hangs still ends, and gives its slot back, on
// time.
type slot struct {
	srv      *Server
	key      netip.Prefix
	loggedIn bool // no longer counted in Server.unauth
	released bool
}

// addrKey is what MaxPerAddr counts by: the IPv4 address itself, or the
// /64 of an IPv6 one, since an IPv6 subscriber is usually given a whole
// /64 and can use any address in it. A connection whose address is
// unknown (nsftp's stack forgets it once the peer resets) counts under the
// zero Prefix.
func addrKey(ap netip.AddrPort) netip.Prefix {
	a := ap.Addr().Unmap().WithZone("")
	if !a.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// admit takes a slot for a session from remote, or returns nil and the
// text of the 421 that refuses it.
func (s *Server) admit(remote netip.AddrPort) (*slot, string) {
	key := addrKey(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.sessions >= s.cfg.MaxSessions:
		return nil, refusedFull
	case s.perAddr[key] >= s.cfg.MaxPerAddr:
		return nil, refusedPerAddr
	case s.unauth >= s.cfg.MaxUnauthenticated:
		return nil, refusedUnauth
	}
	s.perAddr[key]++
	s.sessions++
	s.unauth++
	return &slot{srv: s, key: key}, ""
}

// markLoggedIn moves the slot out of the unauthenticated count.
func (sl *slot) markLoggedIn() {
	s := sl.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl.loggedIn || sl.released {
		return
	}
	sl.loggedIn = true
	s.unauth--
}

// release gives the slot back; calls after the first do nothing.
func (sl *slot) release() {
	s := sl.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl.released {
		return
	}
	sl.released = true
	s.sessions--
	if !sl.loggedIn {
		s.unauth--
	}
	if s.perAddr[sl.key]--; s.perAddr[sl.key] == 0 {
		delete(s.perAddr, sl.key)
	}
}

// slotCounts returns the sessions running, those not logged in, and the
// number of addresses they come from, for tests and logs.
func (s *Server) slotCounts() (sessions, unauth, addrs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions, s.unauth, len(s.perAddr)
}
