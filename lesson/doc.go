// Package lesson puts a run in front of a class: one web page, with its
// HTML, CSS and JavaScript embedded in the program, that steps through a
// recorded or live run forward and back, with the event list, a ladder
// diagram that grows with the cursor, the selected event by layer, the
// socket's TCB in RFC 793's names, RFC 793's state diagram with every
// socket's state marked, and the time-sequence graph.
//
// The page reads the run's events as every other view does: the JSON
// lines of --record, embedded as they are. What the page needs beyond the
// events, it is given by a Builder, a pure function of the events written
// in Go: which events are rows of the list (each frame once, as its sender
// sent it), bulk data grouped in bands as the text view groups it, each
// row's one-line summary, each socket's states and TCB samples. The page
// only draws; it infers nothing about the run.
//
// A page is self-contained: it opens from file:// with no network, no
// script or font from elsewhere. A live run streams the same model to the
// page as deltas (Builder.Delta).
package lesson
