package stack

// The default buffer ranges, for the benchmarks that build bare netstacks
// with the settings nsftp's hosts use.
var (
	DefaultSendBuffer    = defaultSendBuffer
	DefaultReceiveBuffer = defaultReceiveBuffer
)
