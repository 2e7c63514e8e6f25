package bootsign

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// node is one entry under /boot, named as `cd /boot; find ./` prints it:
// "./" for the top, "./grub", "./grub/grub.cfg".
type node struct {
	rel  string
	mode fs.FileMode // type bits only (Lstat: symlinks are not followed)
	size int64       // regular files only
}

func (n node) regular() bool { return n.mode&fs.ModeType == 0 }

// excluded reports whether Heads leaves a path out of kexec_hashes.txt and
// kexec_tree.txt: `find ./ ! -path './kexec*'`. -path matches the whole
// path and '*' also matches '/', so this is a plain prefix test; it covers
// the kexec files, kexec.sig and goheads' kexec.staging directory.
func excluded(rel string) bool { return strings.HasPrefix(rel, "./kexec") }

// walk calls fn for every entry under root, the root first, like find -P
// (symlinks are listed, not followed). Directory entries are visited in
// name order; callers that need an order sort themselves. Any unreadable
// directory is an error: a manifest must not silently skip content.
func walk(root string, fn func(node) error) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", root)
	}
	if err := fn(node{rel: "./", mode: fs.ModeDir}); err != nil {
		return err
	}
	return walkDir(root, "./", fn)
}

func walkDir(root, rel string, fn func(node) error) error {
	dir := filepath.Join(root, rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		child := rel + e.Name()
		n := node{rel: child, mode: e.Type()}
		if n.regular() {
			info, err := e.Info()
			if err != nil {
				return fmt.Errorf("stat %s: %w", filepath.Join(root, child), err)
			}
			n.mode = info.Mode().Type()
			n.size = info.Size()
		}
		if err := fn(n); err != nil {
			return err
		}
		if n.mode&fs.ModeDir != 0 {
			if err := walkDir(root, child+"/", fn); err != nil {
				return err
			}
		}
	}
	return nil
}
