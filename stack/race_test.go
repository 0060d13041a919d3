//go:build race

package stack_test

// raceEnabled says the race detector is on: timing-bound checks scale
// down to what an instrumented build can keep up with.
const raceEnabled = true
