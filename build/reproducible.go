package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func tempDir() (string, func(), error) {
	d, err := os.MkdirTemp("", "goheads-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// Reproducible clones the committed tree twice into different directories,
// builds the board's initramfs in each with separate empty caches (so the
// busybox binary is really compiled twice) and compares the outputs.
func Reproducible(ctx context.Context, o *Options, b *Board, w io.Writer) error {
	if out, _ := exec.Command("git", "-C", o.Root, "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		fmt.Fprintln(w, "build: note: the tree has uncommitted changes; this checks the committed HEAD")
	}
	tmp, cleanup, err := tempDir()
	if err != nil {
		return err
	}
	defer cleanup()
	var sums [2]map[string]string
	for i, name := range []string{"first-clone", "second/nested/clone"} {
		dir := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, "git", "clone", "-q", "--no-hardlinks", o.Root, dir).CombinedOutput(); err != nil {
			return fmt.Errorf("git clone: %v: %s", err, out)
		}
		cmd := exec.CommandContext(ctx, "go", "run", "./build", "initramfs", "-board", b.Name)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOHEADS_CACHE="+filepath.Join(tmp, fmt.Sprintf("cache%d", i)))
		cmd.Stdout, cmd.Stderr = w, w
		fmt.Fprintf(w, "build: reproducible: building in %s\n", dir)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build in %s: %w", dir, err)
		}
		sums[i] = map[string]string{}
		for _, f := range []string{"bb", RawInitrdName, InitrdName} {
			s, err := fileSHA256(filepath.Join(dir, "out", b.Name, f))
			if err != nil {
				return err
			}
			sums[i][f] = s
		}
	}
	var diff []string
	for _, f := range []string{"bb", RawInitrdName, InitrdName} {
		fmt.Fprintf(w, "%s  %s\n", sums[0][f], f)
		if sums[0][f] != sums[1][f] {
			diff = append(diff, fmt.Sprintf("%s: %s vs %s", f, sums[0][f], sums[1][f]))
		}
	}
	if len(diff) > 0 {
		return fmt.Errorf("not reproducible:\n  %s", strings.Join(diff, "\n  "))
	}
	fmt.Fprintf(w, "build: reproducible: two builds in two directories are byte-identical\n")
	return nil
}
