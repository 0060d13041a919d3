package cli

import (
	"context"
)

// runCompare runs the demo's session on nsftp's stack and on the
// kernel's, and shows both side by side with what differs.
func runCompare(ctx context.Context, e *env, d *demoRun, quiet bool) error {
	return usagef("--compare: not yet")
}
