package bootsign

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/keyring"
)

// SignOptions describe one signing of /boot (Heads: kexec-sign-config.sh).
// /boot must be mounted read-write; remounting is the caller's job.
type SignOptions struct {
	BootDir string
	// Key signs kexec.sig (keyring.LoadSigningKey).
	Key *keyring.SigningKey
	// Keyring is the ROM keyring. When set, Sign refuses a key that would
	// not verify under it before touching /boot, finishes an interrupted
	// signing first (Recover), and verifies the signature and rollback
	// binding afterwards like Heads' check_config, returning the Report. A host-side signer
	// without the ROM keyring leaves it nil.
	Keyring *keyring.Keyring
	// UpdateHashes regenerates kexec_hashes.txt and kexec_tree.txt
	// (Heads: -u). Without it the signed ones are kept as they are.
	UpdateHashes bool
	// Counter, when set, increments the TPM rollback counter and rewrites
	// kexec_rollback.txt (Heads: -r). Nil keeps kexec_rollback.txt as is.
	Counter Counter
	// CounterID is the counter to use; empty: the one kexec_rollback.txt
	// names. Creating a counter is pkg/tpm's job.
	CounterID string
	// Files adds or replaces kexec*.txt files (bare names); a nil value
	// deletes the file.
	Files map[string][]byte
	// Remove deletes kexec*.txt files matching these path.Match patterns
	// before Files apply (e.g. "kexec_default.*.txt", as
	// kexec-save-default.sh does).
	Remove []string
	// Now is the signature time; zero: time.Now().
	Now time.Time
	// Workers for hashing; 0: one per CPU.
	Workers int

	// crash is the fault-injection hook of the tests: called before each
	// step of the journal, a non-nil return aborts Sign on the spot, as a
	// power cut would.
	crash func(step string) error
}

func (o *SignOptions) hook(step string) error {
	if o.crash == nil {
		return nil
	}
	return o.crash(step)
}

func (o *SignOptions) verifyOptions(now time.Time) VerifyOptions {
	return VerifyOptions{BootDir: o.BootDir, Keyring: o.Keyring, Counter: o.Counter, Now: now, Workers: o.Workers}
}

// Sign regenerates what was asked, binds the rollback counter, signs, and
// writes /boot crash-safely. Heads' kexec-sign-config.sh stages in /tmp and
// moves files one by one after signing, so a power cut mid-move leaves
// /boot with neither the old nor the new signed set; it also increments the
// counter before gpg asks for the PIN, so a wrong PIN leaves the old set
// refused by the rollback check. goheads signs first, in memory, then
// journals:
//
//  1. Stage: write every new kexec*.txt and kexec.sig into
//     /boot/kexec.staging/ (excluded from the hashes and the tree by its
//     name), fsync each; write COMMIT (a sha256sum listing of the staged
//     files) last, via rename, and fsync the directory and /boot. The
//     staged kexec_rollback.txt already holds the counter value the
//     increment will produce (NextCounterFile of the current one).
//  2. Increment the TPM counter. Before this point only the old set passes
//     the rollback check; from here on only the staged set does.
//  3. Apply: for each staged file, write /boot/<name>.tmp, fsync, rename
//     over /boot/<name>; delete live kexec*.txt the new set does not have
//     (and kexec_package_trigger* logs); fsync /boot.
//  4. Unstage: remove COMMIT first (fsync), then the directory.
//
// Verify and Recover try a committed staged set before the live one and
// take whichever passes the signature and rollback checks, so after a
// crash at any point exactly one of the old and the new state verifies.
// (Without a counter both may verify between steps 1 and 4; the staged,
// newer one is taken.) One window remains: if the TPM's new counter value
// is not the predicted one, Sign re-signs with the real value, and a crash
// during that re-signing leaves neither set valid.
//
// Like Heads, kexec_package_trigger* files are deleted once signed; unlike
// Heads they are not signed first (Heads signs them, then deletes them,
// which breaks its own signature until the next signing).
func Sign(opts SignOptions) (*Report, error) {
	if opts.Key == nil {
		return nil, errors.New("sign /boot: no signing key")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	boot := opts.BootDir
	fail := func(err error) (*Report, error) { return nil, fmt.Errorf("sign %s: %w", boot, err) }

	if err := AssertSignable(boot); err != nil {
		return fail(err)
	}
	if err := opts.settlePreviousSigning(now); err != nil {
		return fail(err)
	}
	if err := removeTempFiles(boot); err != nil {
		return fail(err)
	}
	if opts.Keyring != nil {
		if err := probeKey(opts.Key, opts.Keyring, now); err != nil {
			return fail(err)
		}
	}

	files, err := opts.newSet()
	if err != nil {
		return fail(err)
	}
	if opts.UpdateHashes {
		m, err := Generate(boot, GenerateOptions{Workers: opts.Workers})
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		files[HashesFile], files[TreeFile] = m.Hashes, m.Tree
	}
	var id string
	var next []byte
	if opts.Counter != nil {
		if id, next, err = opts.predictCounter(files); err != nil {
			return fail(err)
		}
		files[RollbackFile] = RollbackContent(id, next)
	}
	if len(files) == 0 {
		return fail(errors.New("no kexec*.txt files to sign"))
	}

	staged, err := signSet(opts.Key, files, now)
	if err != nil {
		return fail(err)
	}
	if err := writeStaging(boot, staged, opts.hook); err != nil {
		return fail(err)
	}
	if opts.Counter != nil {
		if err := opts.hook("increment"); err != nil {
			return fail(err)
		}
		got, err := opts.Counter.Increment(id)
		if err != nil {
			return fail(fmt.Errorf("increment TPM counter %s: %w: %v (if the counter did not move, the old signed /boot stays valid and Recover discards %s)", id, ErrCounter, err, StagingDir))
		}
		if err := opts.hook("incremented"); err != nil {
			return fail(err)
		}
		if !bytes.Equal(got, next) {
			// The TPM did not do what NextCounterFile predicted: bind the
			// real value and stage again.
			if err := os.Remove(filepath.Join(boot, StagingDir, commitFile)); err != nil {
				return fail(err)
			}
			if err := syncDir(filepath.Join(boot, StagingDir)); err != nil {
				return fail(err)
			}
			files[RollbackFile] = RollbackContent(id, got)
			if staged, err = signSet(opts.Key, files, now); err != nil {
				return fail(err)
			}
			if err := writeStaging(boot, staged, opts.hook); err != nil {
				return fail(err)
			}
		}
	}
	if err := applyStaged(boot, staged, opts.hook); err != nil {
		return fail(err)
	}
	if opts.Keyring == nil {
		return nil, nil
	}
	// Heads' check_config after signing: signature and rollback only (the
	// file hashes are the next boot's business; they were just generated
	// if UpdateHashes was set).
	vopts := opts.verifyOptions(now)
	vopts.SkipHashes = true
	r, err := Verify(vopts)
	if err != nil {
		return nil, fmt.Errorf("sign %s: verification after signing failed: %w", boot, err)
	}
	return r, nil
}

// settlePreviousSigning deals with a staging directory left by an
// interrupted signing before a new one starts.
func (o *SignOptions) settlePreviousSigning(now time.Time) error {
	dir := filepath.Join(o.BootDir, StagingDir)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if o.Keyring != nil {
		if err := Recover(o.verifyOptions(now)); err == nil {
			return nil
		}
		// Neither the staged nor the live set verifies: there is no valid
		// state to keep, and this signing replaces both.
		if err := removeStaging(o.BootDir); err != nil {
			return err
		}
		return removeTempFiles(o.BootDir)
	}
	staged, _, err := readStagedSet(o.BootDir)
	if err != nil {
		return err
	}
	if staged != nil {
		return fmt.Errorf("%s holds a committed signing; run Recover with the ROM keyring first", dir)
	}
	return removeStaging(o.BootDir)
}

// probeKey checks, before /boot is touched, that a signature by key
// verifies under the ROM keyring (the key is there, not revoked or
// expired). Heads only checks that the keyring is not empty.
func probeKey(key *keyring.SigningKey, kr *keyring.Keyring, now time.Time) error {
	probe := []byte("goheads: signing key check\n")
	var sig bytes.Buffer
	if err := key.SignDetached(&sig, bytes.NewReader(probe), false, now); err != nil {
		return err
	}
	if _, err := kr.VerifyDetached(bytes.NewReader(probe), &sig, &keyring.VerifyOptions{Now: now}); err != nil {
		return fmt.Errorf("key %s (%s) would not verify with the ROM keyring: %w", key.Fingerprint(), key.UserID(), err)
	}
	return nil
}

// newSet is the live kexec*.txt set (without package-trigger logs) with
// Remove and Files applied.
func (o *SignOptions) newSet() (map[string][]byte, error) {
	live, err := readLiveSet(o.BootDir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for n, c := range live.files {
		if !strings.HasPrefix(n, triggerPrefix) {
			files[n] = c
		}
	}
	for _, pat := range o.Remove {
		if _, err := path.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("remove pattern %q: %w", pat, err)
		}
		for n := range files {
			if ok, _ := path.Match(pat, n); ok {
				delete(files, n)
			}
		}
	}
	for n, c := range o.Files {
		if !isKexecTxt(n) || strings.HasPrefix(n, triggerPrefix) {
			return nil, fmt.Errorf("file %q: only kexec*.txt names (no directories, no package triggers) can be signed", n)
		}
		if err := checkName("./" + n); err != nil {
			return nil, err
		}
		if c == nil {
			delete(files, n)
		} else {
			files[n] = c
		}
	}
	return files, nil
}

// predictCounter reads the counter and returns its id and the counter file
// the next increment will produce.
func (o *SignOptions) predictCounter(files map[string][]byte) (string, []byte, error) {
	id := o.CounterID
	if id == "" {
		rb, ok := files[RollbackFile]
		if !ok {
			return "", nil, fmt.Errorf("%w: no counter id given and no %s to take it from; create a counter first", ErrCounter, RollbackFile)
		}
		var err error
		if id, _, err = ParseRollback(rb); err != nil {
			return "", nil, err
		}
	}
	if !isHex(id) {
		return "", nil, fmt.Errorf("%w: counter id %q is not hex digits", ErrCounter, id)
	}
	cur, err := o.Counter.Read(id)
	if err != nil {
		// A new TPM 2.0 counter cannot be read before its first increment
		// (tpmr: "valid after an increment"). An extra increment is
		// harmless: the counter only has to grow.
		var ierr error
		if cur, ierr = o.Counter.Increment(id); ierr != nil {
			return "", nil, fmt.Errorf("read TPM counter %s: %w: %v; increment: %v", id, ErrCounter, err, ierr)
		}
	}
	next, err := NextCounterFile(cur)
	if err != nil {
		return "", nil, fmt.Errorf("TPM counter %s: %w: %v", id, ErrCounter, err)
	}
	return id, next, nil
}

// signSet returns the files plus kexec.sig.
func signSet(key *keyring.SigningKey, files map[string][]byte, now time.Time) (map[string][]byte, error) {
	var sig bytes.Buffer
	if err := key.SignDetached(&sig, bytes.NewReader(SignedMessage(files)), true, now); err != nil {
		return nil, err
	}
	staged := make(map[string][]byte, len(files)+1)
	for n, c := range files {
		staged[n] = c
	}
	staged[SigFile] = sig.Bytes()
	return staged, nil
}

// writeStaging is journal step 1.
func writeStaging(boot string, staged map[string][]byte, hook func(string) error) error {
	dir := filepath.Join(boot, StagingDir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	var commit bytes.Buffer
	for _, n := range sortedNames(staged) {
		if err := hook("stage:" + n); err != nil {
			return err
		}
		if err := writeFileSync(filepath.Join(dir, n), staged[n]); err != nil {
			return err
		}
		writeSumLine(&commit, sha256.Sum256(staged[n]), n)
	}
	if err := hook("commit"); err != nil {
		return err
	}
	tmp := filepath.Join(dir, commitFile+".tmp")
	if err := writeFileSync(tmp, commit.Bytes()); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, commitFile)); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(boot)
}

// applyStaged is journal steps 3 and 4; Recover reuses it.
func applyStaged(boot string, staged map[string][]byte, hook func(string) error) error {
	for _, n := range sortedNames(staged) {
		if err := hook("copy:" + n); err != nil {
			return err
		}
		tmp := filepath.Join(boot, n+".tmp")
		if err := writeFileSyncHook(tmp, staged[n], func() error { return hook("copy-partial:" + n) }); err != nil {
			return err
		}
		if err := hook("rename:" + n); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(boot, n)); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(boot)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		_, keep := staged[n]
		if (isKexecTxt(n) && !keep) || strings.HasPrefix(n, triggerPrefix) {
			if err := hook("delete:" + n); err != nil {
				return err
			}
			if err := os.RemoveAll(filepath.Join(boot, n)); err != nil {
				return err
			}
		}
	}
	if err := syncDir(boot); err != nil {
		return err
	}
	if err := hook("unstage"); err != nil {
		return err
	}
	return removeStaging(boot)
}

// removeStaging deletes the staging directory, COMMIT first so a crash
// halfway leaves an uncommitted (ignored) directory.
func removeStaging(boot string) error {
	dir := filepath.Join(boot, StagingDir)
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil && fi.IsDir() {
		if err := os.Remove(filepath.Join(dir, commitFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return syncDir(boot)
}

// removeTempFiles deletes /boot/<kexec file>.tmp left by an interrupted
// apply step.
func removeTempFiles(boot string) error {
	entries, err := os.ReadDir(boot)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if base, ok := strings.CutSuffix(n, ".tmp"); ok && (isKexecTxt(base) || base == SigFile) {
			if err := os.Remove(filepath.Join(boot, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Recover settles an interrupted signing when /boot is writable: a
// committed staged set that passes the signature and rollback checks is
// applied (journal steps 3-4); otherwise, if the live set passes, the
// staging directory is removed. An uncommitted staging directory and
// leftover /boot/kexec*.tmp files are removed. When neither set verifies
// nothing is touched and the error says why (it is the live set's).
// Recover needs the keyring and counter to decide, hence VerifyOptions.
func Recover(opts VerifyOptions) error {
	boot := opts.BootDir
	if _, err := os.Lstat(filepath.Join(boot, StagingDir)); err == nil {
		staged, _, err := readStagedSet(boot)
		if err != nil {
			return fmt.Errorf("recover %s: %w", boot, err)
		}
		if staged == nil {
			if err := removeStaging(boot); err != nil {
				return fmt.Errorf("recover %s: %w", boot, err)
			}
		} else {
			r, err := opts.selectSet()
			if err != nil {
				return fmt.Errorf("recover %s: %w", boot, err)
			}
			if r.Set == "staged" {
				all := map[string][]byte{SigFile: staged.sig}
				for n, c := range staged.files {
					all[n] = c
				}
				err = applyStaged(boot, all, func(string) error { return nil })
			} else {
				err = removeStaging(boot)
			}
			if err != nil {
				return fmt.Errorf("recover %s: %w", boot, err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recover %s: %w", boot, err)
	}
	if err := removeTempFiles(boot); err != nil {
		return fmt.Errorf("recover %s: %w", boot, err)
	}
	return syncDir(boot)
}

func writeFileSync(p string, data []byte) error {
	return writeFileSyncHook(p, data, nil)
}

// writeFileSyncHook writes, fsyncs and closes p; mid (tests) runs after the
// first half is written, to simulate a crash during the write.
func writeFileSyncHook(p string, data []byte, mid func() error) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	half := len(data) / 2
	if _, err := f.Write(data[:half]); err != nil {
		f.Close()
		return err
	}
	if mid != nil {
		if err := mid(); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(data[half:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
