package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

func runPut(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("put", "nsftp put [flags] FILE URL\n\nFILE - reads standard input. A URL ending in / puts the file under its own name.", e.stdout)
	var cf clientFlags
	var appendMode bool
	fs.group("Remote file")
	fs.boolVar(&appendMode, "append", false, "append to the remote file (APPE) instead of replacing it")
	cf.register(fs)
	pos, err := fs.parse(args, 2, 2, "put takes a FILE and a URL")
	if err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	u, err := parseURL(pos[1])
	if err != nil {
		return err
	}
	remote := u.Path
	var src io.Reader = e.stdin
	name := "standard input"
	size := int64(-1)
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return &fileError{err}
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return &fileError{err}
		}
		if fi.IsDir() {
			return &fileError{fmt.Errorf("%s is a directory", pos[0])}
		}
		src, name, size = f, pos[0], fi.Size()
		if u.IsDir() {
			remote += filepath.Base(pos[0])
		}
	} else if u.IsDir() {
		return usagef("the URL must name the remote file when FILE is -")
	}

	s, err := cf.connect(ctx, e, u, "nsftp put "+name+" "+u.Redacted())
	if err != nil {
		return err
	}
	start := time.Now()
	bar := startProgress(e, cf.quiet, filepath.Base(name), size)
	var n int64
	if appendMode {
		n, err = s.c.Append(ctx, remote, bar.reader(src))
	} else {
		n, err = s.c.Store(ctx, remote, bar.reader(src))
	}
	bar.finish()
	if err != nil {
		s.end(ctx)
		return err
	}
	if err := s.end(ctx); err != nil {
		return err
	}
	if !cf.quiet {
		report(e.stderr, "uploaded", name, n, time.Since(start))
	}
	return nil
}
