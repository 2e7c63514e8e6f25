package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/goheads/goheads/pkg/bootdisk"
	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

type options struct {
	bootDir                  string
	update, rollback, create bool
	keyFile                  string
}

func run(ctx context.Context, stdin *os.File, out io.Writer, o options) error {
	if o.keyFile == "" {
		return errors.New("-k <secret key file> is required (export it with gpg --export-secret-subkeys --armor)")
	}
	keyData, err := os.ReadFile(o.keyFile)
	if err != nil {
		return err
	}
	pass, err := ui.ReadSecret(stdin, out, "Passphrase of the signing key: ")
	if err != nil {
		return err
	}
	key, err := keyring.LoadSigningKey(keyData, pass, time.Now())
	ui.Wipe(pass)
	if err != nil {
		return fmt.Errorf("%s: %w", o.keyFile, err)
	}
	cfg := config.Runtime()
	var mounted *bootdisk.Mounted
	if o.bootDir == "" {
		if mounted, err = bootdisk.Find(bootdisk.Options{Dev: cfg.Value("CONFIG_BOOT_DEV")}); err != nil {
			return err
		}
		o.bootDir = mounted.Dir
	}
	kr, err := keyring.LoadGnuPGHome("/.gnupg")
	if err != nil {
		return fmt.Errorf("ROM keyring /.gnupg: %w", err)
	}
	opts := bootsign.SignOptions{BootDir: o.bootDir, Key: key, Keyring: kr, UpdateHashes: o.update}
	if kr.Len() == 0 {
		// Nothing to check the key against yet (first signing before the
		// key is in the ROM): sign, and say it cannot be verified here.
		opts.Keyring = nil
		fmt.Fprintln(out, "warning: the ROM keyring is empty; this signature cannot be verified until the public key is added to the ROM")
	}
	if o.rollback || o.create {
		t, err := tpm.Open()
		if err != nil {
			return fmt.Errorf("rollback counter: %w", err)
		}
		defer t.Close()
		opts.Counter = bootsign.TPMCounter{T: t}
		if o.create {
			owner, err := ui.ReadSecret(stdin, out, "TPM owner passphrase: ")
			if err != nil {
				return err
			}
			id, err := t.CounterCreate(owner)
			ui.Wipe(owner)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Created TPM rollback counter %s\n", id)
			opts.CounterID = id
		}
	}
	sign := func() error {
		r, err := bootsign.Sign(opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "/boot signed")
		if r != nil {
			fmt.Fprintf(out, " (%d files hashed, rollback %s)", r.FilesChecked, r.Rollback)
		}
		fmt.Fprintln(out)
		return nil
	}
	if mounted != nil {
		return mounted.Writable(sign)
	}
	return sign()
}
