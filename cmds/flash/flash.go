package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/flash"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

func run(ctx context.Context, stdin *os.File, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("flash", flag.ContinueOnError)
	clean := fs.Bool("c", false, "do not keep the owner's settings and keys (CBFS heads/*)")
	reseal := fs.Bool("reseal", false, "reseal the TOTP/HOTP secret to the new ROM before writing")
	read := fs.String("r", "", "read the flash into this file and stop")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := config.Runtime()
	fr := &flash.Flashrom{Args: flash.ArgsFromConfig(cfg.Value("CONFIG_FLASH_OPTIONS")), Dir: "/tmp", Log: io.Discard}
	if *read != "" {
		b, err := fr.Read(ctx)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*read, b, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Read %d bytes of flash into %s\n", len(b), *read)
		return nil
	}
	if fs.NArg() != 1 {
		return errors.New("usage: flash [-c] [-reseal] <update.rom|update.zip> | flash -r <file>")
	}
	o := flash.Options{Update: fs.Arg(0), Board: cfg.Value("CONFIG_BOARD_NAME"), Clean: *clean, Flash: fr, Out: stdout}
	if *reseal {
		t, err := tpm.Open()
		if err != nil {
			return err
		}
		defer t.Close()
		owner, err := ui.ReadSecret(stdin, stdout, "TPM owner passphrase: ")
		if err != nil {
			return err
		}
		defer ui.Wipe(owner)
		o.ResealWith(t, cfg, owner)
	}
	res, err := flash.Update(ctx, o)
	if res != nil {
		fmt.Fprintf(stdout, "Backup of the previous firmware: %s (RAM: copy it to a USB stick to keep it)\n", res.Backup)
	}
	return err
}
