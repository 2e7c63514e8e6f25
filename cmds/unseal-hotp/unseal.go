package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/hotpkey"
	"github.com/goheads/goheads/pkg/tpm"
)

func run(ctx context.Context, stdout io.Writer, file string, check bool) error {
	t, err := tpm.Open()
	if err != nil {
		return err
	}
	defer t.Close()
	a := &attest.TOTP{TPM: t}
	code, counter, err := a.HOTPCode(attest.FileCounter{Path: file})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "HOTP code %s (counter %d)\n", code, counter)
	if !check {
		return nil
	}
	tok, err := hotpkey.OpenFirst(hotpkey.FindOptions{}, hotpkey.Options{})
	if err != nil {
		return err
	}
	defer tok.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tok.Check(ctx, code); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: code valid\n", tok.Model())
	return nil
}
