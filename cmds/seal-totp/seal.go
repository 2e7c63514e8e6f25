package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

func run(ctx context.Context, stdin *os.File, stdout io.Writer, args []string) error {
	cfg := config.Runtime()
	label := cfg.Value("CONFIG_BOARD_NAME")
	if len(args) > 0 {
		label = args[0]
	}
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
	a := &attest.TOTP{TPM: t, Firmware: attest.FirmwarePCRs{}, Board: label}
	s, err := a.Seal(owner)
	if err != nil {
		return err
	}
	defer s.Wipe()
	qr, err := otp.TerminalQR(s.URI, otp.QROptions{})
	if err != nil {
		// The base32 text below still lets the owner set up the app.
		fmt.Fprintf(stdout, "(no QR code: %v)\n", err)
	} else {
		fmt.Fprint(stdout, qr)
	}
	fmt.Fprintf(stdout, "TOTP secret (base32): %s\n", s.Base32)
	fmt.Fprintf(stdout, "Scan the QR code or type the secret into your authenticator app; it is shown only now.\n")
	return nil
}
