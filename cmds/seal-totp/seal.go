package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/pcrpredict"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

func run(ctx context.Context, stdin *os.File, stdout io.Writer, args []string) error {
	cfg := config.Runtime()
	if len(args) == 2 && (args[0] == "-reseal" || args[0] == "--reseal") {
		return reseal(stdin, stdout, cfg, args[1])
	}
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

// reseal moves the current secret to the PCRs the ROM at path will produce
// (see pcrpredict), before that ROM is flashed: the first boot after the
// update then shows the code the owner's app already knows.
func reseal(stdin *os.File, stdout io.Writer, cfg *config.Config, path string) error {
	rom, err := cbfs.ReadImageFile(path)
	if err != nil {
		return err
	}
	t, err := tpm.Open()
	if err != nil {
		return err
	}
	defer t.Close()
	// The running ROM, through the memory-mapped flash: the owner's files
	// stay in the flash (flash keeps heads/*), so PCR 7 is predicted from
	// them, and its own PCR 2 checks the prediction method first.
	img, err := cbfs.OpenRunning(cbfs.Options{FwCfg: cbfs.Skip})
	if err != nil {
		return fmt.Errorf("read the running ROM (for the owner's files the update keeps): %w", err)
	}
	files, err := cbfs.UserFiles(img)
	if err != nil {
		img.Close()
		return fmt.Errorf("running ROM: %w", err)
	}
	running, err := img.Bytes()
	img.Close()
	if err != nil {
		return fmt.Errorf("running ROM: %w", err)
	}
	var kept []measure.UserFile
	for _, f := range files {
		kept = append(kept, measure.UserFile{Name: f.Name, Data: f.Data})
	}
	pcr2, err := t.ReadPCR(2)
	if err != nil {
		return err
	}
	u, err := pcrpredict.ForUpdate(path, rom, pcrpredict.UpdateOptions{Config: cfg, Family: t.Family(), Kept: kept, Running: running, RunningPCR2: pcr2})
	if err != nil {
		return err
	}
	owner, err := ui.ReadSecret(stdin, stdout, "TPM owner passphrase: ")
	if err != nil {
		return err
	}
	defer ui.Wipe(owner)
	a := &attest.TOTP{TPM: t, Firmware: attest.FirmwarePCRs{}}
	if err := a.Reseal(owner, u.PCRs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "TOTP/HOTP secret resealed to %s: PCR 2 %x, PCR 7 %x.\n", path, u.PCRs[2], u.PCRs[7])
	fmt.Fprintf(stdout, "Flash that ROM now; until it runs, this firmware shows no code (if you do not flash it, run seal-totp for a new secret).\n")
	return nil
}
