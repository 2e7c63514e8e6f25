package session

import (
	"errors"
	"fmt"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/bootdisk"
	"github.com/goheads/goheads/pkg/diskkey"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/luks"
	"github.com/goheads/goheads/pkg/selectboot"
)

// DiskKeyDevices lists the volumes the verified /boot's disk unlock key
// opens; none when no key is set up (or /boot did not verify).
func (s *Session) DiskKeyDevices(st *selectboot.State) ([]diskkey.Device, error) {
	return st.DiskKeyDevices()
}

// CheckDiskKeyHeaders measures the disk key's LUKS headers into PCR 6
// and refuses (diskkey.ErrHeadersChanged) when they differ from the
// signed ones; the menu calls it before asking for the passphrase.
func (s *Session) CheckDiskKeyHeaders(st *selectboot.State) (warnings []string, err error) {
	err = st.CheckDiskKeyHeaders(s.env(), func(w string) { warnings = append(warnings, w) })
	return warnings, err
}

// UnsealDiskKey tries one disk unlock key passphrase; on success img's
// initrd carries the key (wiped once kexec has loaded it). Warnings are
// remarks to show. The menu asks up to diskkey.Tries times while the
// error is tpm.ErrBadAuth.
func (s *Session) UnsealDiskKey(st *selectboot.State, img *selectboot.Image, pass []byte) (warnings []string, err error) {
	err = st.InsertDiskKey(s.env(), img, selectboot.DiskKeyPrompts{
		Passphrase: func(int) ([]byte, error) { return append([]byte(nil), pass...), nil },
		Tries:      1,
		Warn:       func(w string) { warnings = append(warnings, w) },
	})
	return warnings, err
}

// LUKSDevices lists the LUKS volumes on the machine's disks.
func (s *Session) LUKSDevices() ([]string, error) {
	parts, err := bootdisk.Partitions()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range parts {
		if p.FS == bootdisk.FSLUKS {
			out = append(out, p.Dev)
		}
	}
	return out, nil
}

// DiskKeyOptions are the owner's inputs to sealing a disk unlock key.
type DiskKeyOptions struct {
	Devices     []string
	RecoveryKey []byte // the volumes' existing passphrase (DRK)
	Passphrase  []byte // the new DUK passphrase
	Owner       []byte // TPM owner passphrase
	Key         *keyring.SigningKey
	// SaveDefault, when > 0, also saves that entry as the default; its
	// initrd (or the current default's) gives the crypttab overrides.
	SaveDefault int
	// Confirm is asked before another active keyslot is overwritten.
	Confirm func(dev string, e *luks.SlotInUseError) bool
}

// DiskKeyResult says what sealing did.
type DiskKeyResult struct {
	Devices   []diskkey.Device
	Overrides []string // crypttab entries now opened with /secret.key
	Warnings  []string
}

// SealDiskKey adds a new disk unlock key to the volumes, seals it in the
// TPM and signs /boot with kexec_key_devices.txt, kexec_lukshdr_hash.txt
// and the crypttab overrides (Heads: kexec-save-default with "add a disk
// key", kexec-seal-key, kexec-sign-config).
//
// Order, for power cuts: keyslots, then the TPM, then /boot. A cut before
// /boot is signed leaves the volumes openable with the recovery key and
// the old signed files; a boot then reports the changed disk keys (fail
// closed) and the owner reseals.
func (s *Session) SealDiskKey(o DiskKeyOptions) (*DiskKeyResult, error) {
	if err := s.needTPM(); err != nil {
		return nil, err
	}
	if o.Key == nil {
		return nil, errors.New("no signing key: the new disk key files must be signed")
	}
	st := s.Inspect()
	if !st.Verified() {
		return nil, fmt.Errorf("/boot must verify before a disk unlock key is sealed for it: %w", st.VerifyErr)
	}
	osInitrd, err := s.defaultInitrd(st, o.SaveDefault)
	if err != nil {
		return nil, err
	}
	sealed, err := diskkey.Seal(diskkey.SealOptions{
		TPM: s.TPM, Devices: o.Devices, RecoveryKey: o.RecoveryKey, Passphrase: o.Passphrase,
		OwnerAuth: o.Owner, Firmware: attest.FirmwarePCRs{}, Confirm: o.Confirm, OSInitrd: osInitrd,
	})
	if err != nil {
		return nil, err
	}
	s.remember(o.Owner)
	if err := s.SignBoot(SignOptions{Key: o.Key, SaveDefault: o.SaveDefault, Files: sealed.Files}); err != nil {
		return nil, fmt.Errorf("the disk unlock key is sealed, but signing /boot failed (boot with the recovery key until it is signed): %w", err)
	}
	return &DiskKeyResult{Devices: sealed.Devices, Overrides: sealed.Overrides, Warnings: sealed.Warnings}, nil
}

// defaultInitrd reads the initrd of the entry that will be the default
// boot (nil when there is none).
func (s *Session) defaultInitrd(st *selectboot.State, saveDefault int) ([]byte, error) {
	var img *selectboot.Image
	var err error
	switch {
	case saveDefault > 0 && saveDefault <= len(st.Entries):
		img, err = st.Prepare(s.env(), st.Entries[saveDefault-1], selectboot.PrepareOptions{})
	case st.Default != nil && st.Default.Problem == nil:
		img, err = st.Prepare(s.env(), *st.Default.Entry, selectboot.PrepareOptions{})
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return img.Initrd, nil
}
