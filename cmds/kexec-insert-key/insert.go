package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/session"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

type options struct {
	bootDir, output, initrd string
}

func run(ctx context.Context, stdin *os.File, out io.Writer, o options) error {
	if err := onTmpfs(filepath.Dir(o.output)); err != nil {
		return err
	}
	s := session.OpenWith(config.Runtime(), session.OpenOptions{BootDir: o.bootDir})
	defer s.Close()
	if s.Boot == nil {
		return fmt.Errorf("/boot: %w", s.BootErr)
	}
	st := s.Inspect()
	if !st.Verified() {
		return fmt.Errorf("refusing to unseal the disk key for an unverified /boot: %w", st.VerifyErr)
	}
	devs, err := st.DiskKeyDevices()
	if err != nil {
		return err
	}
	if len(devs) == 0 {
		return errors.New("/boot has no kexec_key_devices.txt: no disk unlock key is set up (kexec-seal-key)")
	}
	path := filepath.Join(s.Boot.Dir, filepath.Clean("/"+o.initrd))
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// The headers first: no passphrase is typed for changed disk keys.
	warns, err := s.CheckDiskKeyHeaders(st)
	if err != nil {
		return err
	}
	img := &selectboot.Image{Initrd: data}
	for try := 1; ; try++ {
		pass, err := ui.ReadSecret(stdin, out, fmt.Sprintf("Disk unlock key passphrase (try %d of 3): ", try))
		if err != nil {
			return err
		}
		_, err = s.UnsealDiskKey(st, img, pass)
		ui.Wipe(pass)
		if err == nil {
			break
		}
		if try >= 3 || !isBadAuth(err) {
			return err
		}
		fmt.Fprintln(out, "Wrong passphrase.")
	}
	defer ui.Wipe(img.Initrd)
	for _, w := range warns {
		fmt.Fprintln(out, "warning:", w)
	}
	if err := os.MkdirAll(filepath.Dir(o.output), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(o.output, img.Initrd, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s written (%d bytes): the initrd with the disk unlock key; delete it after loading.\n", o.output, len(img.Initrd))
	return nil
}

// onTmpfs refuses to write the key to anything that persists.
func onTmpfs(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			if st.Type != unix.TMPFS_MAGIC && st.Type != unix.RAMFS_MAGIC {
				return fmt.Errorf("%s is not on tmpfs: the disk unlock key must not reach a disk", dir)
			}
			return nil
		}
		if d == "/" || d == "." {
			return fmt.Errorf("%s: cannot tell its filesystem", dir)
		}
	}
}

func isBadAuth(err error) bool { return errors.Is(err, tpm.ErrBadAuth) }
