// Package trace is nsftp's timeline: the typed events that the stack and
// the FTP client and server record at the moment things happen, a Recorder
// that puts them on one clock in the order they happened, and the views
// rendered from them (text, JSON lines, the SVG ladder diagram).
//
// Views are pure functions of events: the same renderer draws a live run
// and a recording read back from JSON lines, so a run recorded once can be
// shown anywhere. The package knows nothing of gVisor, flags or terminals
// beyond a width and a colour switch.
package trace
