package cli

import (
	"context"
	"path"
	"time"

	"github.com/nsftp/nsftp/ftp"
)

func runGet(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("get", "nsftp get [flags] URL [DEST]\n\nDEST defaults to the remote file's name; - writes to standard output.", e.stdout)
	var cf clientFlags
	var force, resume bool
	fs.group("Local file")
	fs.boolVar(&force, "force", false, "write into DEST even if it is a device or other non-regular file")
	fs.boolVar(&resume, "continue", false, "resume: append to the partial file DEST, restarting the download where it ends (REST)")
	fs.alias("C", "continue")
	cf.register(fs)
	pos, err := fs.parse(args, 1, 2, "get takes a URL and an optional DEST")
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
	if u.IsDir() {
		return usagef("%s names a directory, not a file (list it with 'nsftp ls')", u.Redacted())
	}
	dest := path.Base(u.Path)
	if len(pos) == 2 {
		dest = pos[1]
	}

	// Prepare the local side first: a destination we cannot write must
	// fail before anything goes over the network.
	var d *ftp.Dest
	w := e.stdout
	if dest != "-" {
		d, err = ftp.CreateDest(dest, u.Path, ftp.DestOptions{Force: force, Resume: resume})
		if err != nil {
			return err
		}
		defer d.Abort()
		w = d
	} else if resume {
		return usagef("--continue needs a file to continue, not standard output")
	}

	s, err := cf.connect(ctx, e, u, "nsftp get "+u.Redacted())
	if err != nil {
		return err
	}
	var offset int64
	if d != nil {
		offset = d.Offset()
	}
	start := time.Now()
	bar := startProgress(e, cf.quiet || dest == "-" && cf.see.trace.format != "", path.Base(u.Path), -1)
	n, err := s.c.Retrieve(ctx, u.Path, offset, bar.writer(w))
	bar.finish()
	if err != nil {
		s.end(ctx)
		return err
	}
	if d != nil {
		if err := d.Commit(); err != nil {
			s.end(ctx)
			return err
		}
	}
	if err := s.end(ctx); err != nil {
		return err
	}
	if !cf.quiet {
		name := "-"
		if d != nil {
			name = d.Path()
		}
		report(e.stderr, "downloaded", name, n, time.Since(start))
	}
	return nil
}
