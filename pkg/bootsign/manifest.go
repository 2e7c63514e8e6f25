package bootsign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Entry is one line of a sha256sum listing.
type Entry struct {
	Path string // as written: "./vmlinuz", "/tmp/counter-1a2b3c4", "kexec_hashes.txt"
	Sum  [32]byte
}

// Manifest is a parsed `sha256sum` listing: kexec_hashes.txt,
// kexec_default_hashes.txt, kexec_rollback.txt, COMMIT. Order is kept as
// read; lookups do not depend on it.
type Manifest struct {
	Entries []Entry
}

// MaxManifestSize bounds a manifest file (a /boot with a few thousand files
// makes a few hundred KiB).
const MaxManifestSize = 64 << 20

// ParseManifest reads sha256sum output: "<64 hex><space><space or *><path>\n"
// per line, the format both busybox and GNU sha256sum print for names Heads
// allows. Lines GNU sha256sum escapes (leading backslash) never occur for
// signable names and are refused, as are empty and malformed lines: a
// manifest is parsed after its signature verified, so anything odd fails
// closed. A missing final newline is accepted. Errors wrap
// ErrMalformedManifest and name the line.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d-byte limit", ErrMalformedManifest, len(data), MaxManifestSize)
	}
	m := &Manifest{}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) < 67 || (line[65] != ' ' && line[65] != '*') || line[64] != ' ' {
			return nil, fmt.Errorf("%w: line %d: not \"<sha256>  <path>\": %q", ErrMalformedManifest, lineNo, truncate(line, 80))
		}
		var e Entry
		if _, err := hex.Decode(e.Sum[:], line[:64]); err != nil {
			return nil, fmt.Errorf("%w: line %d: bad hex digest: %v", ErrMalformedManifest, lineNo, err)
		}
		e.Path = string(line[66:])
		if strings.ContainsRune(e.Path, 0) {
			return nil, fmt.Errorf("%w: line %d: NUL in path", ErrMalformedManifest, lineNo)
		}
		m.Entries = append(m.Entries, e)
	}
	return m, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// Marshal writes the manifest exactly as sha256sum prints it.
func (m *Manifest) Marshal() []byte {
	var b bytes.Buffer
	for _, e := range m.Entries {
		writeSumLine(&b, e.Sum, e.Path)
	}
	return b.Bytes()
}

func writeSumLine(b *bytes.Buffer, sum [32]byte, p string) {
	var hx [64]byte
	hex.Encode(hx[:], sum[:])
	b.Write(hx[:])
	b.WriteString("  ")
	b.WriteString(p)
	b.WriteByte('\n')
}

// bootRel normalises a path under /boot to the "./a/b" form the manifests
// use. It accepts "./a", "/a" (kexec entry lines name files from the /boot
// root) and "a", and refuses paths that leave /boot.
func bootRel(p string) (string, error) {
	if p == "" || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q: empty or NUL", p)
	}
	clean := path.Clean("/" + strings.TrimPrefix(p, "./"))
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("path %q: leaves /boot", p)
		}
	}
	if clean == "/" {
		return "./", nil
	}
	return "." + clean, nil
}

// Lookup finds the digest for a path under /boot ("./vmlinuz", "/vmlinuz"
// or "vmlinuz" all name the same file). If the manifest lists a path twice,
// the last entry wins, as `sha256sum -c` would fail on the other.
func (m *Manifest) Lookup(p string) ([32]byte, bool) {
	want, err := bootRel(p)
	if err != nil {
		return [32]byte{}, false
	}
	var sum [32]byte
	found := false
	for _, e := range m.Entries {
		if r, err := bootRel(e.Path); err == nil && r == want {
			sum, found = e.Sum, true
		}
	}
	return sum, found
}

// ParseTree reads kexec_tree.txt: `find ./ ! -path './kexec*' -print0 |
// sort -z`, i.e. NUL-terminated paths. Order is not checked (Heads compares
// byte for byte, but a set comparison accepts a tree sorted under another
// collation and loses nothing). Empty records are malformed.
func ParseTree(data []byte) ([]string, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: tree of %d bytes exceeds the %d-byte limit", ErrMalformedManifest, len(data), MaxManifestSize)
	}
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != 0 {
		return nil, fmt.Errorf("%w: tree does not end with a NUL (want `find -print0 | sort -z` output)", ErrMalformedManifest)
	}
	recs := strings.Split(string(data[:len(data)-1]), "\x00")
	for i, r := range recs {
		if r == "" {
			return nil, fmt.Errorf("%w: tree record %d is empty", ErrMalformedManifest, i+1)
		}
	}
	return recs, nil
}

// MarshalTree writes paths NUL-terminated in byte order, as `sort -z` does
// in the C locale (Heads' initramfs has no other).
func MarshalTree(paths []string) []byte {
	s := append([]string(nil), paths...)
	sort.Strings(s)
	var b bytes.Buffer
	for _, p := range s {
		b.WriteString(p)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// SignedMessage is the text kexec.sig signs: what `sha256sum` prints for
// the bare names of the kexec*.txt files, in glob (byte-wise) order. Both
// signing (kexec-sign-config.sh, cd into the staging dir) and verification
// (check_config, cd into /boot) use bare names.
func SignedMessage(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		writeSumLine(&b, sha256.Sum256(files[n]), n)
	}
	return b.Bytes()
}

// legacySignedMessage is the message Heads signed before it moved to a
// staging directory: `sha256sum $(find /boot/kexec*.txt)`, absolute paths.
// Heads' integrity report still accepts it; so does goheads, for /boot
// partitions signed by older releases.
func legacySignedMessage(files map[string][]byte) []byte {
	prefixed := make(map[string][]byte, len(files))
	for n, c := range files {
		prefixed["/boot/"+n] = c
	}
	return SignedMessage(prefixed)
}
