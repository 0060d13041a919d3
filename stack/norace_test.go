//go:build !race

package stack_test

// raceEnabled says the race detector is on; see race_test.go.
const raceEnabled = false
