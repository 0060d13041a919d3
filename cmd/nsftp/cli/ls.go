package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nsftp/nsftp/ftp"
)

func runLs(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("ls", "nsftp ls [flags] URL\n\nUses MLSD (RFC 3659) where the server offers it, LIST otherwise.", e.stdout)
	var cf clientFlags
	var names bool
	fs.group("Listing")
	fs.boolVar(&names, "names", false, "names only (NLST)")
	cf.register(fs)
	pos, err := fs.parse(args, 1, 1, "ls takes one URL")
	if err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	u, err := parseURL(pos[0])
	if err != nil {
		return err
	}
	s, err := cf.connect(ctx, e, u, "nsftp ls "+u.Redacted())
	if err != nil {
		return err
	}
	out := bufio.NewWriter(e.stdout)
	err = list(ctx, s.c, u.Path, names, out)
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = &fileError{ferr}
	}
	if err != nil {
		s.end(ctx)
		return err
	}
	return s.end(ctx)
}

func list(ctx context.Context, c *ftp.Client, path string, names bool, w io.Writer) error {
	if names {
		return c.NameList(ctx, path, func(name string) error {
			_, err := fmt.Fprintln(w, ftp.Sanitize(name))
			return err
		})
	}
	feats, err := c.Features(ctx)
	if err != nil {
		return err
	}
	if _, ok := feats["MLST"]; ok {
		now := time.Now()
		return c.MLSD(ctx, path, func(e ftp.Entry) error {
			if e.Type == "cdir" || e.Type == "pdir" {
				return nil
			}
			e.Name = ftp.Sanitize(e.Name)
			_, err := fmt.Fprintln(w, ftp.FormatListLine(e, now))
			return err
		})
	}
	// LIST output is for humans and has no fixed format: pass it through,
	// with control characters made harmless.
	return c.List(ctx, path, sanitizingWriter{w})
}

// sanitizingWriter replaces control characters other than line ends.
type sanitizingWriter struct{ w io.Writer }

func (s sanitizingWriter) Write(b []byte) (int, error) {
	out := make([]byte, len(b))
	for i, c := range b {
		if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f {
			c = '?'
		}
		out[i] = c
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
