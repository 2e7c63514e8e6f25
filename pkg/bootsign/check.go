package bootsign

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"syscall"
)

// Manifests are the two files that cover everything in /boot but the kexec
// files themselves.
type Manifests struct {
	// Hashes is kexec_hashes.txt: a sha256sum line "<hex>  ./<path>" for
	// every regular file (find -type f: symlinks are not followed), sorted
	// by path byte-wise. Heads writes them in directory order (find
	// order), which differs between file systems and runs; sorting makes
	// goheads' output reproducible, and verification accepts any order.
	Hashes []byte
	// Tree is kexec_tree.txt: every path (files, directories, symlinks,
	// "./" itself) NUL-terminated and byte-sorted, exactly `find ./ ! -path
	// './kexec*' -print0 | sort -z` in the C locale.
	Tree []byte
	// Files is the number of files hashed.
	Files int
}

// GenerateOptions tune Generate.
type GenerateOptions struct {
	Workers int // hashing goroutines; 0: one per CPU
}

// Generate computes kexec_hashes.txt and kexec_tree.txt for bootDir, as
// kexec-sign-config.sh -u does, hashing every file once, in parallel. Names
// Heads refuses to sign are refused here too (*UnsignableError): they would
// make sha256sum's output ambiguous.
func Generate(bootDir string, opts GenerateOptions) (*Manifests, error) {
	var tree []string
	var jobs []hashJob
	err := walk(bootDir, func(n node) error {
		if excluded(n.rel) {
			return nil
		}
		if err := checkName(n.rel); err != nil {
			return err
		}
		tree = append(tree, n.rel)
		if n.regular() {
			jobs = append(jobs, hashJob{n.rel, n.size})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generate manifests for %s: %w", bootDir, err)
	}
	res := hashFiles(bootDir, jobs, opts.Workers)
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].rel < jobs[j].rel })
	var b bytes.Buffer
	for _, j := range jobs {
		r := res[j.rel]
		if r.err != nil {
			return nil, fmt.Errorf("generate manifests for %s: hash %s: %w", bootDir, j.rel, r.err)
		}
		writeSumLine(&b, r.sum, j.rel)
	}
	return &Manifests{Hashes: b.Bytes(), Tree: MarshalTree(tree), Files: len(jobs)}, nil
}

// HashOptions tune CheckHashes.
type HashOptions struct {
	Workers int
}

// CheckHashes compares bootDir with a kexec_hashes.txt and kexec_tree.txt
// (Heads: verify_checksums, `sha256sum -c` plus a tree comparison). It
// returns nil, a *HashError listing every changed, added and missing path,
// or another error (malformed manifest, unreadable /boot).
//
// It is stricter than Heads where Heads misses changes: every regular file
// present must be listed in kexec_hashes.txt (Heads only notices names
// that are new to the tree, so a symlink replaced by a file with the same
// name passes), and a listed file must still be a regular file (sha256sum
// -c follows a symlink put in its place).
//
// Call it only with manifests whose signature verified (Verify does), or to
// show an unsigned /boot's state; it says nothing about authenticity.
func CheckHashes(bootDir string, hashes, tree []byte, opts HashOptions) (int, error) {
	m, err := ParseManifest(hashes)
	if err != nil {
		return 0, fmt.Errorf("kexec_hashes.txt: %w", err)
	}
	signedTree, err := ParseTree(tree)
	if err != nil {
		return 0, fmt.Errorf("kexec_tree.txt: %w", err)
	}
	want := make(map[string][32]byte, len(m.Entries))
	var order []string
	for i, e := range m.Entries {
		rel, err := bootRel(e.Path)
		if err != nil || rel != e.Path {
			return 0, fmt.Errorf("kexec_hashes.txt: %w: line %d: path %q is not of the form ./<path> inside /boot", ErrMalformedManifest, i+1, e.Path)
		}
		if _, dup := want[rel]; !dup {
			order = append(order, rel)
		}
		want[rel] = e.Sum
	}
	inTree := make(map[string]bool, len(signedTree))
	for _, p := range signedTree {
		inTree[p] = true
	}

	present := map[string]node{}
	err = walk(bootDir, func(n node) error {
		if !excluded(n.rel) {
			present[n.rel] = n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("check %s: %w", bootDir, err)
	}

	he := &HashError{}
	seen := map[string]bool{}
	note := func(list *[]string, p string) {
		if !seen[p] {
			seen[p] = true
			*list = append(*list, p)
		}
	}
	var jobs []hashJob
	for _, rel := range order {
		n, ok := present[rel]
		switch {
		case !ok:
			note(&he.Missing, rel)
		case !n.regular():
			note(&he.Changed, rel)
		default:
			jobs = append(jobs, hashJob{rel, n.size})
		}
	}
	res := hashFiles(bootDir, jobs, opts.Workers)
	for _, j := range jobs {
		r := res[j.rel]
		switch {
		case r.err != nil && errors.Is(r.err, fs.ErrNotExist):
			note(&he.Missing, j.rel)
		case r.err != nil && errors.Is(r.err, errNotRegular):
			note(&he.Changed, j.rel)
		case r.err != nil:
			return 0, fmt.Errorf("check %s: %w", bootDir, r.err)
		case r.sum != want[j.rel]:
			note(&he.Changed, j.rel)
		}
	}
	for p, n := range present {
		if !inTree[p] {
			note(&he.Added, p)
		} else if _, listed := want[p]; n.regular() && !listed {
			// In the signed tree as something that was not a regular file.
			note(&he.Changed, p)
		}
	}
	for _, p := range signedTree {
		if _, ok := present[p]; !ok {
			note(&he.Missing, p)
		}
	}
	if he.Empty() {
		return len(jobs), nil
	}
	sort.Strings(he.Changed)
	sort.Strings(he.Added)
	sort.Strings(he.Missing)
	return len(jobs), he
}

// loadLimited reads a whole regular file, refusing more than limit bytes
// and symlinks (a kexec file must be the file that was signed, not a link
// to somewhere else).
func loadLimited(p string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &os.PathError{Op: "open", Path: p, Err: errNotRegular}
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: p, Err: errNotRegular}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than the %d-byte limit", p, limit)
	}
	return data, nil
}
