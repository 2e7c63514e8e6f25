package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/goheads/goheads/pkg/bootdisk"
	"github.com/goheads/goheads/pkg/bootentry"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

type options struct {
	bootDir     string
	menu        bool
	add, remove words
	force       bool
	noExec      bool
}

func run(ctx context.Context, stdin *os.File, out io.Writer, o options) error {
	cfg := config.Runtime()
	if o.bootDir == "" {
		m, err := bootdisk.Find(bootdisk.Options{Dev: cfg.Value("CONFIG_BOOT_DEV")})
		if err != nil {
			return err
		}
		o.bootDir = m.Dir
	}
	kr, err := keyring.LoadGnuPGHome("/.gnupg")
	if err != nil {
		return fmt.Errorf("ROM keyring /.gnupg: %w", err)
	}
	env := &selectboot.Env{BootDir: o.bootDir, Keyring: kr, Config: cfg}
	if t, err := tpm.Open(); err == nil {
		env.TPM = t
		defer t.Close()
	} else if !errors.Is(err, tpm.ErrNoTPM) {
		return err
	}
	st := selectboot.Inspect(env)
	popts := selectboot.PrepareOptions{Add: o.add, Remove: o.remove}

	if !st.Verified() && !o.force {
		return fmt.Errorf("refusing to boot: %w", st.VerifyErr)
	}
	if st.Verified() {
		fmt.Fprintf(out, "/boot verified: signed by %s, %d files checked, rollback %s\n", signer(st), st.Report.FilesChecked, st.Report.Rollback)
	}
	var entry *bootentry.Entry
	if !o.menu && st.Default != nil {
		if st.Default.Problem != nil {
			fmt.Fprintf(out, "Default entry %d: %v\n", st.Default.N, st.Default.Problem)
		} else {
			entry = st.Default.Entry
			fmt.Fprintf(out, "Booting the default entry: %s\n", entry.Name)
		}
	}
	if entry == nil {
		e, err := choose(stdin, out, st.Entries)
		if err != nil {
			return err
		}
		entry = e
	}
	var img *selectboot.Image
	if o.force {
		img, err = selectboot.ForcedBoot(env, *entry, popts)
	} else {
		img, err = st.Prepare(env, *entry, popts)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "kernel %s, initrd %s\ncommand line: %s\n", entry.Kernel, strings.Join(entry.Initrds, " "), img.Cmdline)
	if !o.force {
		err := st.InsertDiskKey(env, img, selectboot.DiskKeyPrompts{
			Passphrase: func(try int) ([]byte, error) {
				return ui.ReadSecret(stdin, out, fmt.Sprintf("Disk unlock key passphrase (try %d of 3): ", try))
			},
			UseRecovery: func(err error) bool {
				fmt.Fprintf(out, "The disk unlock key did not unseal: %v\n", err)
				line, _ := ui.ReadLine(stdin, out, "Boot and type the Disk Recovery Key in the OS instead? [y/N]: ")
				return strings.HasPrefix(strings.ToLower(strings.TrimSpace(line)), "y")
			},
			Warn: func(s string) { fmt.Fprintln(out, "warning:", s) },
		})
		if err != nil {
			return err
		}
		if img.HasSecret {
			fmt.Fprintln(out, "Disk unlock key unsealed and added to the initrd.")
		}
	}
	return selectboot.Boot(env, img, selectboot.BootOptions{Exec: !o.noExec})
}

func signer(st *selectboot.State) string {
	if st.Report.Signer == nil {
		return "?"
	}
	s := st.Report.Signer
	return fmt.Sprintf("%s (%s)", s.UserID, s.Fingerprint)
}

func choose(in *os.File, out io.Writer, entries []bootentry.Entry) (*bootentry.Entry, error) {
	if len(entries) == 0 {
		return nil, errors.New("no boot entries found in /boot")
	}
	for i, e := range entries {
		fmt.Fprintf(out, "%2d. %s\n", i+1, e.Name)
	}
	for {
		line, err := ui.ReadLine(in, out, fmt.Sprintf("Choose an entry to boot (1-%d): ", len(entries)))
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err == nil && n >= 1 && n <= len(entries) {
			return &entries[n-1], nil
		}
	}
}
