// Package selectboot is Heads' kexec-select-boot: verify /boot in Heads'
// order, list the OS's boot entries, check the saved default entry, and
// boot the chosen entry with kexec, measuring and locking the TPM first.
//
// It decides; the menu only shows. Nothing unsigned is booted as if it were
// verified: an unsigned or failing /boot can only be booted through
// ForcedBoot, which the menu offers behind a warning.
package selectboot

import (
	"errors"
	"fmt"
	"github.com/goheads/goheads/pkg/benchlog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/bootentry"
	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/kexec"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/tpm"
)

// Env is what booting needs.
type Env struct {
	// BootDir is the mounted /boot.
	BootDir string
	// Keyring is the ROM keyring (/.gnupg from CBFS).
	Keyring *keyring.Keyring
	// TPM, when set, provides the rollback counter and is measured and
	// locked before kexec. Nil: no TPM (rollback not checked, said so).
	TPM *tpm.TPM
	// Config is the runtime configuration (CONFIG_BOOT_KERNEL_ADD/REMOVE,
	// CONFIG_IGNORE_ROLLBACK).
	Config *config.Config
	// Now is the clock for signature expiry (default time.Now).
	Now func() time.Time
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Env) counter() bootsign.Counter {
	if e.TPM == nil || (e.Config != nil && e.Config.Bool("CONFIG_IGNORE_ROLLBACK")) {
		return nil
	}
	return bootsign.TPMCounter{T: e.TPM}
}

// State is what the menu shows about /boot.
type State struct {
	// Report is set when /boot verified: signature, rollback, hashes.
	Report *bootsign.Report
	// VerifyErr is why it did not (bootsign's typed errors).
	VerifyErr error
	// Entries are the OS's boot entries, in menu order (1-based N in
	// kexec_default.N.txt indexes this list).
	Entries []bootentry.Entry
	Skipped []bootentry.Skipped
	// Default is the saved default entry, if any.
	Default *Default
}

// Default is the entry saved in kexec_default.N.txt.
type Default struct {
	N     int
	Line  string
	Entry *bootentry.Entry // the matching fresh entry, nil if it changed
	// Problem says why the default cannot be used (nil: usable).
	Problem error
}

// ErrDefaultChanged: the OS's boot configuration no longer has the saved
// default line (a kernel update rewrote grub.cfg).
var ErrDefaultChanged = errors.New("the default boot entry has changed; choose and save a new default")

// ErrNoDefault: no default was saved.
var ErrNoDefault = errors.New("no default boot entry has been saved")

// Inspect verifies /boot and parses its entries. It changes nothing.
func Inspect(env *Env) *State {
	st := &State{}
	st.Report, st.VerifyErr = bootsign.Verify(bootsign.VerifyOptions{
		BootDir: env.BootDir, Keyring: env.Keyring, Counter: env.counter(), Now: env.now(),
	})
	res, err := bootentry.Scan(env.BootDir, nil)
	if err == nil {
		st.Entries, st.Skipped = res.Entries, res.Skipped
	}
	if st.Report != nil {
		st.Default = defaultEntry(st.Report, st.Entries)
	}
	return st
}

func defaultEntry(r *bootsign.Report, entries []bootentry.Entry) *Default {
	n, line, ok, err := bootsign.DefaultEntry(r.Files)
	if err != nil {
		return &Default{Problem: err}
	}
	if !ok {
		return nil
	}
	d := &Default{N: n, Line: line}
	// Heads: honoured only if line N of the fresh parse equals the saved
	// line byte for byte.
	if n >= 1 && n <= len(entries) && entries[n-1].String() == line {
		e := entries[n-1]
		d.Entry = &e
		return d
	}
	d.Problem = ErrDefaultChanged
	return d
}

// Verified reports whether /boot verified.
func (s *State) Verified() bool { return s.Report != nil }

// Image is an entry ready to kexec: the verified bytes and the final
// command line.
type Image struct {
	Entry   bootentry.Entry
	Kernel  []byte
	Initrd  []byte
	Cmdline string
	// Verified: the bytes matched the signed hashes.
	Verified bool
	// HasSecret: the initrd carries the disk unlock key; wiped after loading.
	HasSecret bool
}

// maxImage bounds a kernel or initrd read into memory.
const maxImage = 512 << 20

// PrepareOptions adjust the command line (Heads' -a and -r).
type PrepareOptions struct {
	Add, Remove []string
}

// Prepare loads the entry's files from the verified /boot, each read once
// and checked against the signed hashes, and builds the command line.
func (s *State) Prepare(env *Env, e bootentry.Entry, o PrepareOptions) (*Image, error) {
	if s.Report == nil {
		return nil, fmt.Errorf("boot %q: /boot is not verified: %w", e.Name, s.VerifyErr)
	}
	if s.Default != nil && s.Default.Entry != nil && s.Default.Entry.String() == e.String() && s.Report.DefaultHashes != nil {
		// The default entry's own hashes must hold too (Heads checks
		// kexec_default_hashes.txt; it only warns, goheads refuses).
		if err := bootsign.CheckDefaultHashes(env.BootDir, s.Report.DefaultHashes); err != nil {
			return nil, fmt.Errorf("default entry %q: %w", e.Name, err)
		}
	}
	load := func(p string) ([]byte, error) { return s.Report.LoadVerified(p, maxImage) }
	img, err := build(env, e, o, load)
	if err != nil {
		return nil, err
	}
	img.Verified = true
	return img, nil
}

// ForcedBoot prepares an entry without any verification, as Heads'
// "Ignore tampering and force a boot": the console turns red and nothing
// sealed to a clean boot will unseal. The menu must have asked the owner.
func ForcedBoot(env *Env, e bootentry.Entry, o PrepareOptions) (*Image, error) {
	o.Add = append([]string{"vt.default_red=0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff"}, o.Add...)
	o.Remove = append(o.Remove, "quiet", "splash")
	return build(env, e, o, dirLoader(env.BootDir))
}

// USBBoot prepares an entry of a USB disk mounted at env.BootDir, as
// Heads' USB boot: nothing is verified (an installer or live system the
// owner chose); Boot must then run with SkipGeneric after PCR 4 got
// "usb", so nothing sealed to this firmware unseals in that OS.
func USBBoot(env *Env, e bootentry.Entry) (*Image, error) {
	return build(env, e, PrepareOptions{}, dirLoader(env.BootDir))
}

// dirLoader reads files of an unverified tree, never outside it.
func dirLoader(dir string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		return root.ReadFile(strings.TrimPrefix(filepath.Clean("/"+p), "/"))
	}
}

func build(env *Env, e bootentry.Entry, o PrepareOptions, load func(string) ([]byte, error)) (*Image, error) {
	if e.Kind != bootentry.KindELF {
		return nil, fmt.Errorf("boot %q: %s (multiboot) entries are not supported yet", e.Name, e.Kind)
	}
	kernel, err := load(e.Kernel)
	if err != nil {
		return nil, fmt.Errorf("boot %q: kernel %s: %w", e.Name, e.Kernel, err)
	}
	var initrd []byte
	for _, p := range e.Initrds {
		b, err := load(p)
		if err != nil {
			return nil, fmt.Errorf("boot %q: initrd %s: %w", e.Name, p, err)
		}
		// Several initrds are concatenated, as GRUB loads them; each is
		// padded to 4 bytes so the kernel finds the next cpio header.
		initrd = append(initrd, b...)
		for len(initrd)%4 != 0 {
			initrd = append(initrd, 0)
		}
	}
	var cfg *config.Config
	if cfg = env.Config; cfg == nil {
		cfg = config.New()
	}
	cmdline := kexec.Cmdline(kexec.CmdlineOptions{
		Entry:    e.Append,
		Add:      o.Add,
		Remove:   append(kexec.Words(cfg.Value("CONFIG_BOOT_KERNEL_REMOVE")), o.Remove...),
		BoardAdd: kexec.Words(cfg.Value("CONFIG_BOOT_KERNEL_ADD")),
	})
	if len(cmdline) > kexec.MaxCmdline {
		return nil, fmt.Errorf("boot %q: %w: %d bytes", e.Name, kexec.ErrCmdlineTooLong, len(cmdline))
	}
	return &Image{Entry: e, Kernel: kernel, Initrd: initrd, Cmdline: cmdline}, nil
}

// BootOptions control the last steps.
type BootOptions struct {
	// SkipGeneric leaves PCR 4 alone: the disk-unlock path extends
	// "generic" itself after unsealing the disk key.
	SkipGeneric bool
	// Exec jumps into the kernel; false only loads it (tests).
	Exec bool
}

// Boot measures PCR 4 "generic" (so nothing sealed to the firmware can be
// unsealed by the OS), loads the image, locks the TPM's platform hierarchy
// and jumps. It returns only on failure.
func Boot(env *Env, img *Image, o BootOptions) error {
	if env.TPM != nil && !o.SkipGeneric {
		if err := measure.BootMode(env.TPM, measure.ModeGeneric); err != nil {
			return err
		}
	}
	err := kexec.Load(img.Kernel, img.Initrd, img.Cmdline)
	if img.HasSecret {
		// The kernel holds its own copy now; no key stays in this process.
		wipe(img.Initrd)
	}
	if err != nil {
		return fmt.Errorf("boot %q: %w", img.Entry.Name, err)
	}
	if env.TPM != nil {
		if err := env.TPM.Finalize(); err != nil {
			// Fail closed: an OS able to clear the TPM must not be started
			// silently; the owner sees why.
			kexec.Unload()
			return fmt.Errorf("boot %q: %w", img.Entry.Name, err)
		}
		env.TPM.Close()
	}
	if !o.Exec {
		return nil
	}
	benchlog.Mark("kexec")
	return kexec.Exec()
}
