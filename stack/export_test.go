package stack

// JumpsOf reports how many jumps a jumping clock made (tests).
func JumpsOf(c *Clock) uint64 { return c.j.jumps.Load() }

// The default buffer ranges, for the benchmarks that build bare netstacks
// with the settings nsftp's hosts use.
var (
	DefaultSendBuffer    = defaultSendBuffer
	DefaultReceiveBuffer = defaultReceiveBuffer
)
