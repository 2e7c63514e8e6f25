package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/hotpkey"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/ui"
)

func run(ctx context.Context, stdin *os.File, stdout io.Writer, file string) error {
	t, err := tpm.Open()
	if err != nil {
		return err
	}
	defer t.Close()
	a := &attest.TOTP{TPM: t}
	secret, err := a.Secret()
	if err != nil {
		return err
	}
	defer ui.Wipe(secret)
	tok, err := hotpkey.OpenFirst(hotpkey.FindOptions{}, hotpkey.Options{})
	if err != nil {
		return err
	}
	defer tok.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := tok.Status(ctx)
	if err != nil {
		return err
	}
	pin, err := ui.ReadSecret(stdin, stdout, fmt.Sprintf("%s %s (%d tries left): ", tok.Model(), tok.Model().PINName(), st.PINRetries))
	if err != nil {
		return err
	}
	defer ui.Wipe(pin)
	// Heads programs counter 1 and checks it, so the token next expects 2.
	if err := tok.Program(ctx, secret, 1, pin); err != nil {
		return err
	}
	if err := (attest.FileCounter{Path: file}).Store(2); err != nil {
		return fmt.Errorf("token programmed, but the HOTP counter could not be saved: %w", err)
	}
	fmt.Fprintf(stdout, "%s programmed with the TPM-sealed HOTP secret.\n", tok.Model())
	return nil
}
