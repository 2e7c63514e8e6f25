// Command sign-boot signs /boot from the running OS, for a package hook
// after a kernel update: it regenerates kexec_hashes.txt and kexec_tree.txt,
// optionally advances the TPM rollback counter through the OS's TPM device,
// and signs with your key, writing the same bytes goheads' kexec-sign-config
// writes in the firmware.
//
//	sign-boot -boot /boot -key key.asc [-passphrase-file f] [-keyring pubring.kbx] [-tpm /dev/tpmrm0 | -tpm-socket path]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "sign-boot: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdin *os.File, out io.Writer) error {
	fs := flag.NewFlagSet("sign-boot", flag.ContinueOnError)
	boot := fs.String("boot", "/boot", "the /boot directory")
	keyFile := fs.String("key", "", "exported secret key (gpg --export-secret-subkeys --armor)")
	passFile := fs.String("passphrase-file", "", "read the key's passphrase from this file instead of asking")
	pubring := fs.String("keyring", "", "check the signature against this public keyring (the ROM's)")
	dev := fs.String("tpm", "", "advance the rollback counter through this TPM device (e.g. /dev/tpmrm0)")
	sock := fs.String("tpm-socket", "", "advance the rollback counter through swtpm's socket (tests)")
	family := fs.Int("tpm-family", 2, "TPM family for -tpm-socket: 1 (1.2) or 2 (2.0)")
	counterID := fs.String("counter", "", "rollback counter id (default: the one kexec_rollback.txt names)")
	now := fs.String("time", "", "signature time (RFC 3339), for reproducible test signatures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("-key is required")
	}
	keyData, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	var pass []byte
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return err
		}
		pass = []byte(strings.TrimRight(string(b), "\r\n"))
	} else if pass, err = ui.ReadSecret(stdin, out, "Passphrase of the signing key: "); err != nil {
		return err
	}
	at := time.Now()
	if *now != "" {
		if at, err = time.Parse(time.RFC3339, *now); err != nil {
			return err
		}
	}
	key, err := keyring.LoadSigningKey(keyData, pass, at)
	ui.Wipe(pass)
	if err != nil {
		return err
	}
	opts := bootsign.SignOptions{BootDir: *boot, Key: key, UpdateHashes: true, CounterID: *counterID, Now: at}
	if *pubring != "" {
		if opts.Keyring, err = keyring.LoadFile(*pubring); err != nil {
			return err
		}
	}
	var t *tpm.TPM
	switch {
	case *dev != "":
		c, tr, err := tpm.OpenDevice(*dev)
		if err != nil {
			return err
		}
		fam := tpm.Family20
		if !strings.Contains(*dev, "rm") {
			fam, _, _ = tpm.Detect()
		}
		t = tpm.New(tr, fam, c)
	case *sock != "":
		c, tr, err := tpm.DialSocket("unix", *sock)
		if err != nil {
			return err
		}
		t = tpm.New(tr, tpm.Family(*family), c)
	}
	if t != nil {
		defer t.Close()
		opts.Counter = bootsign.TPMCounter{T: t}
	}
	r, err := bootsign.Sign(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "signed %s", *boot)
	if r != nil {
		fmt.Fprintf(out, ": %d files, rollback %s", r.FilesChecked, r.Rollback)
	}
	fmt.Fprintln(out)
	return nil
}
