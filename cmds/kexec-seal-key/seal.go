package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/diskkey"
	"github.com/goheads/goheads/pkg/luks"
	"github.com/goheads/goheads/pkg/session"
	"github.com/goheads/goheads/pkg/ui"
)

type options struct {
	bootDir, devices, keyFile string
	saveDefault               int
}

func run(ctx context.Context, stdin *os.File, out io.Writer, o options) error {
	if o.keyFile == "" {
		return errors.New("-k <secret key file> is required: the new disk key files are signed into /boot")
	}
	s := session.OpenWith(config.Runtime(), session.OpenOptions{BootDir: o.bootDir})
	defer s.Close()
	if s.TPM == nil {
		return fmt.Errorf("a disk unlock key needs the TPM: %w", s.TPMErr)
	}
	if s.Boot == nil {
		return fmt.Errorf("/boot: %w", s.BootErr)
	}
	devs, err := devices(s, o.devices)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "LUKS volumes: %s\n", strings.Join(devs, " "))

	pass, err := ui.ReadSecret(stdin, out, "Passphrase of the signing key: ")
	if err != nil {
		return err
	}
	key, err := s.LoadSigningKey(o.keyFile, pass)
	ui.Wipe(pass)
	if err != nil {
		return err
	}
	drk, err := ui.ReadSecret(stdin, out, "Disk Recovery Key (the volumes' current passphrase): ")
	if err != nil {
		return err
	}
	defer ui.Wipe(drk)
	duk, err := ui.ReadSecret(stdin, out, fmt.Sprintf("New disk unlock key passphrase (at least %d characters): ", diskkey.MinPassphrase))
	if err != nil {
		return err
	}
	defer ui.Wipe(duk)
	again, err := ui.ReadSecret(stdin, out, "Repeat the disk unlock key passphrase: ")
	if err != nil {
		return err
	}
	same := string(again) == string(duk)
	ui.Wipe(again)
	if !same {
		return fmt.Errorf("%w: the two entries differ", diskkey.ErrPassphrase)
	}
	if len(duk) < diskkey.MinPassphrase {
		return fmt.Errorf("%w: %d characters, at least %d", diskkey.ErrPassphrase, len(duk), diskkey.MinPassphrase)
	}
	owner, err := ui.ReadSecret(stdin, out, "TPM owner passphrase: ")
	if err != nil {
		return err
	}
	defer ui.Wipe(owner)

	res, err := s.SealDiskKey(session.DiskKeyOptions{
		Devices: devs, RecoveryKey: drk, Passphrase: duk, Owner: owner, Key: key, SaveDefault: o.saveDefault,
		Confirm: func(dev string, e *luks.SlotInUseError) bool {
			fmt.Fprintf(out, "%s: %v\n", dev, e)
			line, _ := ui.ReadLine(stdin, out, "Overwrite that keyslot? Its passphrase stops working. [y/N]: ")
			return strings.EqualFold(strings.TrimSpace(line), "y")
		},
	})
	if err != nil {
		return err
	}
	for _, d := range res.Devices {
		fmt.Fprintf(out, "Disk unlock key added to %s (LUKS UUID %s)\n", d.Path, d.UUID)
	}
	for _, c := range res.Overrides {
		fmt.Fprintf(out, "OS crypttab entry opened with the key: %s\n", c)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
	fmt.Fprintln(out, "Disk unlock key sealed in the TPM; /boot signed.")
	return nil
}

// devices: -d, else the signed kexec_key_devices.txt, else every LUKS
// volume found.
func devices(s *session.Session, flag string) ([]string, error) {
	if flag != "" {
		return strings.Split(flag, ","), nil
	}
	if st := s.Inspect(); st.Verified() {
		if ds, err := st.DiskKeyDevices(); err == nil && len(ds) > 0 {
			var out []string
			for _, d := range ds {
				out = append(out, d.Path)
			}
			return out, nil
		}
	}
	found, err := s.LUKSDevices()
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, errors.New("no LUKS volume found on this machine's disks; name them with -d")
	}
	return found, nil
}
