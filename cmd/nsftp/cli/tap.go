package cli

import (
	"context"
	"errors"
)

// openTAP puts a netstack host on the TAP device the flags name.
func openTAP(ctx context.Context, n *netFlags, tr *tracer) (*network, error) {
	return nil, &setupError{errors.New("--tap: TAP devices are not supported yet (use --net os, or 'nsftp demo')")}
}
