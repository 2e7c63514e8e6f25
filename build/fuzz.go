package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)`)

// fuzzTargets finds every FuzzXxx in the tree, by package directory.
func fuzzTargets(root string) (map[string][]string, error) {
	targets := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "out" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range fuzzFunc.FindAllSubmatch(b, -1) {
			dir := "./" + filepath.ToSlash(filepath.Dir(mustRel(root, p)))
			targets[dir] = append(targets[dir], string(m[1]))
		}
		return nil
	})
	return targets, err
}

func mustRel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return r
}

// Fuzz runs every fuzz target for a short time: parsers of untrusted input
// must not panic on what a few seconds of mutation finds.
func Fuzz(ctx context.Context, root, per string, w io.Writer) error {
	targets, err := fuzzTargets(root)
	if err != nil {
		return err
	}
	dirs := make([]string, 0, len(targets))
	for d := range targets {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	n := 0
	for _, d := range dirs {
		for _, fn := range targets[d] {
			n++
			cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-fuzz", "^"+fn+"$", "-fuzztime", per, "-fuzzminimizetime", "2s", d)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("fuzz %s %s: %v\n%s", d, fn, err, out)
			}
			fmt.Fprintf(w, "build: fuzz %s %s: ok (%s)\n", d, fn, per)
		}
	}
	if n == 0 {
		return fmt.Errorf("no fuzz targets found")
	}
	return nil
}
