package trace

import "context"

// What a program asks of the sockets it makes, riding in the context it
// makes them with, so that the networks nsftp traces (its netstack, the
// kernel twin) keep the signatures of Go's net package:
//
//	ctx = trace.WithLabel(ctx, trace.Data)
//	conn, err := host.DialContext(ctx, "tcp", addr)
//
// A network that does not trace (the operating system's sockets through
// Go's net package) ignores them.

type labelKey struct{}

type backlogKey struct{}

// WithLabel returns a context whose sockets carry label in events: what
// the connection is for (Control, Data, DNS, DHCP). A socket made without
// one carries none.
func WithLabel(ctx context.Context, label Conn) context.Context {
	return context.WithValue(ctx, labelKey{}, label)
}

// LabelOf returns the label WithLabel put in ctx, or "".
func LabelOf(ctx context.Context) Conn {
	c, _ := ctx.Value(labelKey{}).(Conn)
	return c
}

// WithBacklog returns a context whose listening sockets queue at most n
// connections for accept, as listen(2)'s backlog does (the 2005
// article's data connection listens with 1). Without it a network uses
// its own default, as Go's net.Listen takes the kernel's somaxconn.
func WithBacklog(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, backlogKey{}, n)
}

// BacklogOf returns the backlog WithBacklog put in ctx, and whether
// there was one.
func BacklogOf(ctx context.Context) (int, bool) {
	n, ok := ctx.Value(backlogKey{}).(int)
	return n, ok
}
