package bootsign

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The default boot entry (Heads: kexec-save-default.sh). The entry line is
// pkg/bootentry's business; here it is an opaque string.
//
//	kexec_default.<N>.txt     the entry line + "\n" (`echo "$entry"`), N the
//	                          1-based index of the entry in the parsed menu
//	kexec_default_hashes.txt  sha256sum lines "./<path>" of the files the
//	                          entry loads, in entry order (kernel, then
//	                          initrds), symlinks followed (`xargs sha256sum`)

// DefaultEntryPattern matches the default entry files, for SignOptions.Remove.
const DefaultEntryPattern = "kexec_default.*.txt"

// DefaultEntryName is the file holding entry number index (1-based).
func DefaultEntryName(index int) string {
	return "kexec_default." + strconv.Itoa(index) + ".txt"
}

// DefaultEntryContent is the content of kexec_default.<N>.txt.
func DefaultEntryContent(entry string) ([]byte, error) {
	if entry == "" || strings.ContainsAny(entry, "\n\x00") {
		return nil, fmt.Errorf("default entry %q: must be one non-empty line", entry)
	}
	return []byte(entry + "\n"), nil
}

// DefaultEntry finds the saved default in a verified file set: its index
// and entry line. Like Heads (`find kexec_default.*.txt | head -1`), the
// first name in glob order wins if there are several. ok is false when no
// default is saved.
func DefaultEntry(files map[string][]byte) (index int, entry string, ok bool, err error) {
	var names []string
	for n := range files {
		if strings.HasPrefix(n, "kexec_default.") && strings.HasSuffix(n, ".txt") && n != DefaultHashesFile {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return 0, "", false, nil
	}
	sort.Strings(names)
	n := names[0]
	idx, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(n, "kexec_default."), ".txt"))
	if err != nil || idx < 1 {
		return 0, "", false, fmt.Errorf("%s: %w: index is not a positive number", n, ErrMalformedManifest)
	}
	// $(cat file) drops trailing newlines.
	return idx, strings.TrimRight(string(files[n]), "\n"), true, nil
}

// DefaultHashes writes kexec_default_hashes.txt for the files an entry
// loads (paths as the entry names them: "/vmlinuz-6.1"), in that order. Like
// `xargs sha256sum` it follows symlinks, but only inside bootDir.
func DefaultHashes(bootDir string, paths []string) ([]byte, error) {
	root, err := os.OpenRoot(bootDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var b bytes.Buffer
	for _, p := range paths {
		rel, err := bootRel(p)
		if err != nil {
			return nil, err
		}
		if err := checkName(rel); err != nil {
			return nil, err
		}
		sum, err := hashInRoot(root, rel)
		if err != nil {
			return nil, fmt.Errorf("hash %s for %s: %w", rel, DefaultHashesFile, err)
		}
		writeSumLine(&b, sum, rel)
	}
	return b.Bytes(), nil
}

func hashInRoot(root *os.Root, rel string) ([32]byte, error) {
	var sum [32]byte
	f, err := root.Open(strings.TrimPrefix(rel, "./"))
	if err != nil {
		return sum, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sum, err
	}
	if !fi.Mode().IsRegular() {
		return sum, errNotRegular
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, readerOnly{f}, make([]byte, hashBufSize)); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// CheckDefaultHashes is `cd /boot; sha256sum -c kexec_default_hashes.txt`
// (symlinks followed inside /boot): nil or a *HashError.
func CheckDefaultHashes(bootDir string, m *Manifest) error {
	root, err := os.OpenRoot(bootDir)
	if err != nil {
		return err
	}
	defer root.Close()
	he := &HashError{}
	for _, e := range m.Entries {
		rel, err := bootRel(e.Path)
		if err != nil {
			return fmt.Errorf("%s: %w: %v", DefaultHashesFile, ErrMalformedManifest, err)
		}
		sum, err := hashInRoot(root, rel)
		switch {
		case os.IsNotExist(err):
			he.Missing = append(he.Missing, rel)
		case err != nil:
			he.Changed = append(he.Changed, rel)
		case sum != e.Sum:
			he.Changed = append(he.Changed, rel)
		}
	}
	if he.Empty() {
		return nil
	}
	return he
}

// DefaultFiles returns what to pass to Sign (Files and Remove) to save
// entry number index as the default: the entry file and the hashes of the
// files it loads; older defaults are removed.
func DefaultFiles(bootDir string, index int, entry string, paths []string) (map[string][]byte, []string, error) {
	if index < 1 {
		return nil, nil, fmt.Errorf("default entry index %d: must be 1 or more", index)
	}
	content, err := DefaultEntryContent(entry)
	if err != nil {
		return nil, nil, err
	}
	hashes, err := DefaultHashes(bootDir, paths)
	if err != nil {
		return nil, nil, err
	}
	return map[string][]byte{DefaultEntryName(index): content, DefaultHashesFile: hashes}, []string{DefaultEntryPattern}, nil
}
