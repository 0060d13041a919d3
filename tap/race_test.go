//go:build race

package tap

// raceEnabled says the race detector is on: allocation counts mean
// nothing then (sync.Pool drops a quarter of what it is given, at random).
const raceEnabled = true
