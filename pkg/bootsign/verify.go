package bootsign

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/keyring"
)

// File names in /boot.
const (
	SigFile           = "kexec.sig"
	HashesFile        = "kexec_hashes.txt"
	TreeFile          = "kexec_tree.txt"
	DefaultHashesFile = "kexec_default_hashes.txt"
	// StagingDir holds a signing in progress (see Sign). Its name starts
	// with "kexec" so Heads and goheads leave it out of the hashes and the
	// tree, and it does not match kexec*.txt.
	StagingDir = "kexec.staging"
	// commitFile marks a complete staging directory; written last.
	commitFile = "COMMIT"
	// triggerPrefix names the OS package hooks' logs (PureBoot), which are
	// not authenticated and deleted after signing.
	triggerPrefix = "kexec_package_trigger"
)

// maxKexecFile bounds one kexec*.txt or kexec.sig.
const maxKexecFile = MaxManifestSize

// isKexecTxt reports whether name matches Heads' glob kexec*.txt.
func isKexecTxt(name string) bool {
	ok, _ := path.Match("kexec*.txt", name)
	return ok && !strings.Contains(name, "/")
}

// VerifyOptions say what to verify /boot against.
type VerifyOptions struct {
	BootDir string
	// Keyring is the ROM keyring (required).
	Keyring *keyring.Keyring
	// Counter is the TPM rollback counter. Nil skips the rollback check
	// (Heads: CONFIG_IGNORE_ROLLBACK=y or no TPM); the Report says so.
	// With a counter, a signed set without kexec_rollback.txt is refused
	// (Heads' preflight: "Boot integrity counter file missing").
	Counter Counter
	// Now is the current time for signature expiry; zero: time.Now().
	Now time.Time
	// SkipHashes verifies only the signature and the rollback counter
	// (Heads' check_config), not kexec_hashes.txt and kexec_tree.txt.
	SkipHashes bool
	// Workers for hashing; 0: one per CPU.
	Workers int
}

// Report is the outcome of a successful Verify.
type Report struct {
	// Set is "live" (the files in /boot) or "staged" (a committed signing
	// in /boot/kexec.staging that was interrupted before it replaced the
	// live files; Recover finishes it).
	Set string
	// BootDir is the /boot that was verified; Dir is where the verified
	// kexec files were read from (BootDir or its staging directory).
	BootDir, Dir string
	// Signer made kexec.sig.
	Signer *keyring.Signer
	// Files are the verified kexec*.txt contents, by name. Use these, not
	// the files on disk (no check-then-use race). Heads copies them to
	// /tmp/kexec for the same reason.
	Files map[string][]byte
	// LegacyPaths: kexec.sig signs "/boot/kexec_..." names (Heads releases
	// before the staging rewrite).
	LegacyPaths bool
	Rollback    RollbackStatus
	CounterID   string
	// Hashes and DefaultHashes are the parsed kexec_hashes.txt and
	// kexec_default_hashes.txt (nil when absent).
	Hashes, DefaultHashes *Manifest
	// FilesChecked is the number of files hashed (0 with SkipHashes).
	FilesChecked int
	// Notes are non-fatal remarks (key expired since signing, ignored
	// staging directory, ...).
	Notes []string
}

// kexecSet is one candidate set of signed files.
type kexecSet struct {
	name  string // "live" or "staged"
	dir   string
	files map[string][]byte // kexec*.txt
	sig   []byte            // nil: no kexec.sig
}

// readLiveSet reads /boot's kexec*.txt and kexec.sig. A kexec*.txt that is
// not a regular file is an error (Heads' sha256sum would follow a symlink).
func readLiveSet(dir string) (*kexecSet, error) {
	s := &kexecSet{name: "live", dir: dir, files: map[string][]byte{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case isKexecTxt(n):
			data, err := loadLimited(filepath.Join(dir, n), maxKexecFile)
			if errors.Is(err, errNotRegular) {
				// A symlink or directory where a signed file belongs:
				// Heads' sha256sum would follow or choke on it; refuse.
				return nil, fmt.Errorf("read %s: %w: not a regular file", filepath.Join(dir, n), ErrMalformedManifest)
			}
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, n), err)
			}
			s.files[n] = data
		case n == SigFile:
			data, err := loadLimited(filepath.Join(dir, n), keyring.MaxSignatureSize)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, n), err)
			}
			s.sig = data
		}
	}
	return s, nil
}

// ReadUnverified returns /boot's kexec*.txt files and kexec.sig (nil when
// absent) WITHOUT checking anything, for showing an unsigned or badly
// signed /boot's state (Heads' "check_config force"; pass the files to
// CheckHashes to list differences). Never boot from these.
func ReadUnverified(bootDir string) (files map[string][]byte, sig []byte, err error) {
	s, err := readLiveSet(bootDir)
	if err != nil {
		return nil, nil, err
	}
	return s.files, s.sig, nil
}

// readStagedSet reads a committed staging directory. It returns nil, nil
// when there is none or it is not committed; a COMMIT that does not match
// the staged files (a torn write) also counts as uncommitted.
//
// Nothing about the staging directory is an error: it can only add a
// candidate, and whatever is wrong with it just means it is ignored (the
// live set is then verified) and Recover removes it.
func readStagedSet(bootDir string) (*kexecSet, string, error) {
	dir := filepath.Join(bootDir, StagingDir)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil || !fi.IsDir() {
		return nil, "ignored " + StagingDir + ": not a directory", nil
	}
	commit, err := loadLimited(filepath.Join(dir, commitFile), MaxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "ignored an uncommitted " + StagingDir + " (an interrupted signing; Recover removes it)", nil
	}
	if err != nil {
		return nil, "ignored " + StagingDir + ": " + err.Error(), nil
	}
	files, err := readCommitted(dir, commit)
	if err != nil {
		return nil, "ignored " + StagingDir + ": " + err.Error(), nil
	}
	s := &kexecSet{name: "staged", dir: dir, files: map[string][]byte{}}
	for n, data := range files {
		if n == SigFile {
			s.sig = data
		} else {
			s.files[n] = data
		}
	}
	return s, "", nil
}

// readCommitted checks that the staging directory holds exactly the files
// COMMIT lists, with the listed hashes, and returns them.
func readCommitted(dir string, commit []byte) (map[string][]byte, error) {
	m, err := ParseManifest(commit)
	if err != nil {
		return nil, fmt.Errorf("COMMIT: %w", err)
	}
	files := map[string][]byte{}
	for _, e := range m.Entries {
		if !isKexecTxt(e.Path) && e.Path != SigFile {
			return nil, fmt.Errorf("COMMIT lists %q", e.Path)
		}
		data, err := loadLimited(filepath.Join(dir, e.Path), maxKexecFile)
		if err != nil {
			return nil, err
		}
		if sha256.Sum256(data) != e.Sum {
			return nil, fmt.Errorf("%s does not match COMMIT", e.Path)
		}
		files[e.Path] = data
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if _, listed := files[e.Name()]; !listed && e.Name() != commitFile {
			return nil, fmt.Errorf("unexpected %s", e.Name())
		}
	}
	if _, ok := files[SigFile]; !ok {
		return nil, errors.New("no kexec.sig staged")
	}
	return files, nil
}

// checkSet verifies a set's signature and rollback binding.
func (o *VerifyOptions) checkSet(s *kexecSet, now time.Time) (*Report, error) {
	sigPath := filepath.Join(s.dir, SigFile)
	if s.sig == nil {
		return nil, fmt.Errorf("verify %s: %w", sigPath, ErrUnsigned)
	}
	r := &Report{Set: s.name, BootDir: o.BootDir, Dir: s.dir, Files: s.files, Rollback: RollbackNotChecked}
	vopts := &keyring.VerifyOptions{Now: now}
	signer, err := o.Keyring.VerifyDetached(bytes.NewReader(SignedMessage(s.files)), bytes.NewReader(s.sig), vopts)
	if errors.Is(err, keyring.ErrBadSignature) {
		// Older Heads signed "/boot/kexec_*.txt" names; accept those too,
		// as Heads' own integrity report does.
		if ls, lerr := o.Keyring.VerifyDetached(bytes.NewReader(legacySignedMessage(s.files)), bytes.NewReader(s.sig), vopts); lerr == nil {
			signer, err = ls, nil
			r.LegacyPaths = true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", sigPath, err)
	}
	r.Signer = signer
	r.Notes = append(r.Notes, signer.Notes...)
	if o.Counter != nil {
		rb, ok := s.files[RollbackFile]
		if !ok {
			return nil, fmt.Errorf("verify %s: %w", filepath.Join(s.dir, RollbackFile),
				&RollbackError{Reason: "missing while rollback protection is on; /boot may have been restored or swapped"})
		}
		id, err := checkRollback(o.Counter, rb)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", filepath.Join(s.dir, RollbackFile), err)
		}
		r.Rollback, r.CounterID = RollbackVerified, id
	}
	return r, nil
}

// selectSet returns the verified set: a committed staged set if it passes
// the signature and rollback checks, else the live set. When neither
// passes, the live set's error is returned (it describes /boot as the user
// sees it).
func (o *VerifyOptions) selectSet() (*Report, error) {
	if o.Keyring == nil {
		return nil, errors.New("verify /boot: no keyring given")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	staged, note, err := readStagedSet(o.BootDir)
	if err != nil {
		return nil, err
	}
	var notes []string
	if note != "" {
		notes = append(notes, note)
	}
	if staged != nil {
		r, serr := o.checkSet(staged, now)
		if serr == nil {
			r.Notes = append(notes, r.Notes...)
			return r, nil
		}
		notes = append(notes, fmt.Sprintf("ignored %s: %v", StagingDir, serr))
	}
	live, err := readLiveSet(o.BootDir)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", o.BootDir, err)
	}
	r, err := o.checkSet(live, now)
	if err != nil {
		return nil, err
	}
	r.Notes = append(notes, r.Notes...)
	return r, nil
}

// Verify checks /boot the way Heads' default boot does (check_config, then
// verify_global_hashes, then verify_rollback_counter), failing closed:
//
//  1. kexec.sig over the kexec*.txt listing, against the ROM keyring:
//     ErrUnsigned when absent (never treated as verified), else the keyring
//     refusals (ErrMalformedSignature, ErrBadSignature, ErrUnknownKey,
//     ErrRevokedKey, ErrExpiredKey, ...). Any kexec*.txt added, removed or
//     changed breaks the signature.
//  2. kexec_rollback.txt against the TPM counter (when Counter is set):
//     ErrRollback, ErrCounter.
//  3. kexec_hashes.txt and kexec_tree.txt against the files
//     (ErrMissingManifest, *HashError).
//
// A committed /boot/kexec.staging (an interrupted Sign) is tried first; see
// Sign for why exactly one of the old and new states verifies after a
// crash. The Report carries the verified kexec file contents.
func Verify(opts VerifyOptions) (*Report, error) {
	r, err := opts.selectSet()
	if err != nil {
		return nil, err
	}
	if m, ok := r.Files[DefaultHashesFile]; ok {
		dm, err := ParseManifest(m)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", filepath.Join(r.Dir, DefaultHashesFile), err)
		}
		r.DefaultHashes = dm
	}
	hashes, hok := r.Files[HashesFile]
	if hok {
		m, err := ParseManifest(hashes)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", filepath.Join(r.Dir, HashesFile), err)
		}
		r.Hashes = m
	}
	if opts.SkipHashes {
		return r, nil
	}
	tree, tok := r.Files[TreeFile]
	if !hok || !tok {
		missing := HashesFile
		if hok {
			missing = TreeFile
		}
		return nil, fmt.Errorf("verify %s: %w: %s is not in the signed set; sign /boot to create it", opts.BootDir, ErrMissingManifest, missing)
	}
	n, err := CheckHashes(opts.BootDir, hashes, tree, HashOptions{Workers: opts.Workers})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", opts.BootDir, err)
	}
	r.FilesChecked = n
	return r, nil
}

// LoadVerified reads a file from the verified /boot into memory once,
// hashes those bytes and returns them only if they match the verified
// kexec_hashes.txt or, for a file only the default entry lists,
// kexec_default_hashes.txt. See the package function LoadVerified.
func (r *Report) LoadVerified(rel string, maxSize int64) ([]byte, error) {
	return LoadVerified(r.BootDir, rel, maxSize, r.Hashes, r.DefaultHashes)
}

// LoadVerified reads bootDir/rel into memory once, hashes those bytes and
// returns them only if they match the first of the manifests that lists the
// file. The bytes returned are the bytes checked: use them for kexec, do not
// reopen the file (no check-then-use race). rel is a path under /boot
// ("./vmlinuz", "/vmlinuz"). A symlink is resolved inside /boot: manifests
// list link targets (kexec_hashes.txt, find -type f) or the link itself
// (kexec_default_hashes.txt, made by sha256sum, which follows links); both
// are looked up. maxSize > 0 bounds the file size. Only pass manifests whose
// signature verified (a Report's).
func LoadVerified(bootDir, rel string, maxSize int64, manifests ...*Manifest) ([]byte, error) {
	want, err := bootRel(rel)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(bootDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	target, err := resolveInRoot(root, want)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(bootDir, want), err)
	}
	var sum [32]byte
	var found bool
	for _, m := range manifests {
		if m == nil {
			continue
		}
		for _, p := range []string{want, target} {
			if s, ok := m.Lookup(p); ok {
				sum, found = s, true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(bootDir, want), ErrNotInManifest)
	}
	f, err := root.Open(strings.TrimPrefix(target, "./"))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(bootDir, want), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(bootDir, want), errNotRegular)
	}
	if maxSize > 0 && fi.Size() > maxSize {
		return nil, fmt.Errorf("load %s: %d bytes exceeds the %d-byte limit", filepath.Join(bootDir, want), fi.Size(), maxSize)
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(bootDir, want), err)
	}
	if sha256.Sum256(data) != sum {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(bootDir, want), &HashError{Changed: []string{want}})
	}
	return data, nil
}

// resolveInRoot follows symlinks of a "./a/b" path inside root and returns
// the "./..." path of the final file. Links that leave /boot fail (os.Root
// refuses them when the file is opened, too).
func resolveInRoot(root *os.Root, rel string) (string, error) {
	cur := rel
	for hops := 0; hops < 40; hops++ {
		fi, err := root.Lstat(strings.TrimPrefix(cur, "./"))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return cur, nil
		}
		link, err := root.Readlink(strings.TrimPrefix(cur, "./"))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(link, "/") {
			return "", fmt.Errorf("%s is an absolute symlink (%s); goheads resolves links only inside /boot", cur, link)
		}
		j := path.Join(path.Dir(strings.TrimPrefix(cur, "./")), link)
		if j == ".." || strings.HasPrefix(j, "../") {
			return "", fmt.Errorf("%s -> %s leaves /boot", cur, link)
		}
		next, err := bootRel(j)
		if err != nil {
			return "", fmt.Errorf("%s -> %s: %w", cur, link, err)
		}
		cur = next
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", rel)
}

// sortedNames returns the keys of m in byte order.
func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
