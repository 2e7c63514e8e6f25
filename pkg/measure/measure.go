// Package measure performs Heads' runtime measurements: what goheads
// extends into PCRs 4, 5 and 7 while it boots, byte for byte as Heads does,
// so secrets sealed by Heads unseal under goheads and the reverse.
//
//	PCR 4  boot mode: "usb", "generic" or "recovery" (the string itself is hashed)
//	PCR 5  each kernel module goheads loads: H(parameters) if any, then H(module file)
//	PCR 7  each CBFS heads/initrd/* file: H("/<path>"), then H(content) (cbfs-init)
//
// (linuxboot/heads at aedae4ff, initrd/bin/cbfs-init.sh and initrd/sbin/insmod.sh;
// older Heads measured one H(path + "\n" + content) and module-then-parameters.)
//
// PCR 6 (the LUKS header listing) is measured by the disk-unlock code.
package measure

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/goheads/goheads/pkg/tpm"
)

// PCRs goheads extends.
const (
	PCRBootMode = 4
	PCRModules  = 5
	PCRLUKS     = 6
	PCRConfig   = 7 // Heads' CONFIG_PCR default
)

// Boot modes extended into PCR 4. Any of them makes the TOTP/HOTP secret
// and the disk key unsealable until the next boot: they are sealed to the
// firmware-only value of PCR 4.
const (
	ModeUSB      = "usb"
	ModeGeneric  = "generic"
	ModeRecovery = "recovery"
)

// Extender is the part of the TPM the measurements need.
type Extender interface {
	Measure(pcr int, data []byte, desc string) error
}

var _ Extender = (*tpm.TPM)(nil)

// BootMode extends PCR 4 with mode, as Heads' `tpmr extend -ix 4 -ic <mode>`.
func BootMode(t Extender, mode string) error {
	switch mode {
	case ModeUSB, ModeGeneric, ModeRecovery:
	default:
		return fmt.Errorf("boot mode %q: want usb, generic or recovery", mode)
	}
	if err := t.Measure(PCRBootMode, []byte(mode), "boot mode "+mode); err != nil {
		return fmt.Errorf("measure boot mode %q into PCR 4: %w", mode, err)
	}
	return nil
}

// UserFile is a CBFS file Heads copies into the initramfs.
type UserFile struct {
	// Name is the CBFS name, e.g. "heads/initrd/.gnupg/pubring.kbx".
	Name string
	Data []byte
}

// CBFSPrefix is the CBFS name prefix of files copied into the initramfs.
const CBFSPrefix = "heads/initrd"

// Path is where the file goes: the CBFS name without "heads/initrd"
// (Heads: ${cbfsname:12}), e.g. "/.gnupg/pubring.kbx".
func (f UserFile) Path() (string, error) {
	p := strings.TrimPrefix(f.Name, CBFSPrefix)
	if p == f.Name || !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("CBFS file %q: not under %s/", f.Name, CBFSPrefix)
	}
	clean := path.Clean(p)
	// A ROM is untrusted input: no escaping the initramfs root, no
	// overwriting the root itself.
	if clean != p || clean == "/" || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return "", fmt.Errorf("CBFS file %q: path %q is not a clean path", f.Name, p)
	}
	return p, nil
}

// Measurements are the data cbfs-init extends for f, in order: the path
// string ("/.gnupg/pubring.kbx", no newline; Heads: tpmr extend -ic
// "$filename"), then the content (tpmr extend -if "$filename"). Measuring the
// name too means renaming a file or swapping contents changes PCR 7.
func (f UserFile) Measurements() ([][]byte, error) {
	p, err := f.Path()
	if err != nil {
		return nil, err
	}
	return [][]byte{[]byte(p), f.Data}, nil
}

// CBFSInit is Heads' cbfs-init: for each file in CBFS order, write it under
// root (the initramfs root, "/" at boot) and extend pcr with its
// measurement. t may be nil on a board without a TPM. All files are
// measured before any error is returned for writing, so a file that
// cannot be written is still accounted for in PCR 7.
func CBFSInit(t Extender, files []UserFile, root string, pcr int) error {
	var errs []error
	for _, f := range files {
		p, err := f.Path()
		if err != nil {
			// Measure the raw name and content anyway: an unusable file
			// in the ROM must still change PCR 7.
			if t != nil {
				for _, m := range [][]byte{[]byte(f.Name), f.Data} {
					if err := t.Measure(pcr, m, "CBFS "+f.Name+" (skipped)"); err != nil {
						return err
					}
				}
			}
			errs = append(errs, err)
			continue
		}
		if t != nil {
			ms, _ := f.Measurements()
			for i, m := range ms {
				desc := "CBFS " + f.Name + " name"
				if i == 1 {
					desc = "CBFS " + f.Name
				}
				if err := t.Measure(pcr, m, desc); err != nil {
					return fmt.Errorf("measure CBFS %s into PCR %d: %w", f.Name, pcr, err)
				}
			}
		}
		dst := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			errs = append(errs, fmt.Errorf("CBFS %s: %w", f.Name, err))
			continue
		}
		if err := os.WriteFile(dst, f.Data, 0o600); err != nil {
			errs = append(errs, fmt.Errorf("CBFS %s: %w", f.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ModuleMeasurements are the data Heads' insmod wrapper extends into PCR 5
// for a module: when there are parameters, the parameter string ("$*": the
// words joined by spaces, no newline), then the module file.
func ModuleMeasurements(module []byte, params []string) [][]byte {
	var out [][]byte
	if p := strings.Join(params, " "); p != "" {
		out = append(out, []byte(p))
	}
	return append(out, module)
}

// LoadModule measures a kernel module into PCR 5 and then loads it with
// load (finit_module at boot), as Heads' insmod. The bytes measured are the
// bytes loaded: the file is read once.
func LoadModule(t Extender, file string, params []string, load func(image []byte, params string) error) error {
	img, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("load module %s: %w", file, err)
	}
	if t != nil {
		for i, m := range ModuleMeasurements(img, params) {
			desc := "module " + filepath.Base(file)
			if i == 0 && len(params) > 0 {
				desc += " parameters"
			}
			if err := t.Measure(PCRModules, m, desc); err != nil {
				return fmt.Errorf("measure module %s into PCR 5: %w", file, err)
			}
		}
	}
	if err := load(img, strings.Join(params, " ")); err != nil {
		return fmt.Errorf("load module %s: %w", file, err)
	}
	return nil
}
