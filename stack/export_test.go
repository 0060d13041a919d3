package stack

// JumpsOf reports how many jumps a jumping clock made (tests).
func JumpsOf(c *Clock) uint64 { return c.j.jumps.Load() }
