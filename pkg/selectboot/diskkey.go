package selectboot

import (
	"errors"
	"fmt"

	"github.com/goheads/goheads/pkg/diskkey"
)

// DiskKeyDevices lists the LUKS devices the verified /boot asks the disk
// unlock key for (kexec_key_devices.txt); none when no key is set up.
func (s *State) DiskKeyDevices() ([]diskkey.Device, error) {
	if s.Report == nil {
		return nil, nil
	}
	b, ok := s.Report.Files[diskkey.KeyDevicesFile]
	if !ok {
		return nil, nil
	}
	return diskkey.ParseKeyDevices(b)
}

// DiskKeyPrompts ask the owner during a boot with the disk unlock key.
type DiskKeyPrompts struct {
	// Passphrase returns the DUK passphrase for a try.
	Passphrase func(try int) ([]byte, error)
	// Tries per call (default diskkey.Tries).
	Tries int
	// UseRecovery asks "boot and type the Disk Recovery Key in the OS?"
	// after the key did not unseal; nil means no.
	UseRecovery func(err error) bool
	Warn        func(string)
}

// CheckDiskKeyHeaders measures the key's LUKS headers and compares them
// with the signed listing, before any passphrase is asked.
func (s *State) CheckDiskKeyHeaders(env *Env, warn func(string)) error {
	devs, err := s.DiskKeyDevices()
	if err != nil || len(devs) == 0 {
		return err
	}
	if env.TPM == nil {
		return errors.New("the disk unlock key needs the TPM, and there is none")
	}
	return diskkey.CheckHeaders(diskkey.UnsealOptions{TPM: env.TPM, Devices: devs, SignedDump: s.Report.Files[diskkey.HeaderHashFile], Warn: warn})
}

// ErrBootAborted: the owner chose not to boot without the disk key.
var ErrBootAborted = errors.New("boot aborted: the disk unlock key was not unsealed")

// InsertDiskKey unseals the disk unlock key and appends it to the image's
// initrd (Heads' kexec-insert-key). Changed LUKS headers abort the boot; a
// key that does not unseal leaves the choice to boot with the recovery key.
// Boot's PCR 4 "generic" extend comes after this, as in Heads.
func (s *State) InsertDiskKey(env *Env, img *Image, p DiskKeyPrompts) error {
	devs, err := s.DiskKeyDevices()
	if err != nil || len(devs) == 0 {
		return err
	}
	if env.TPM == nil {
		return errors.New("the disk unlock key needs the TPM, and there is none")
	}
	key, err := diskkey.Unseal(diskkey.UnsealOptions{
		TPM: env.TPM, Devices: devs, SignedDump: s.Report.Files[diskkey.HeaderHashFile],
		Ask: p.Passphrase, Warn: p.Warn, Tries: p.Tries,
	})
	switch {
	case errors.Is(err, diskkey.ErrHeadersChanged):
		return err
	case err != nil:
		if p.UseRecovery != nil && p.UseRecovery(err) {
			return nil
		}
		return fmt.Errorf("%w (%w)", ErrBootAborted, err)
	}
	defer wipe(key)
	initrd, err := diskkey.KeyInitrd(img.Initrd, key, devs, s.Report.Files[diskkey.OverridesFile])
	if err != nil {
		return err
	}
	img.Initrd = initrd
	img.HasSecret = true
	return nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
