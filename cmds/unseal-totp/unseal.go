package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/tpm"
)

func run(ctx context.Context, stdout io.Writer, verbose bool) error {
	t, err := tpm.Open()
	if err != nil {
		return err
	}
	defer t.Close()
	a := &attest.TOTP{TPM: t, SourceDate: SourceDate(config.Runtime())}
	c, err := a.Code()
	if err != nil {
		return err
	}
	if verbose {
		_, err = fmt.Fprintf(stdout, "%s at %s (valid until %s)\n", c.Code, c.At.UTC().Format(time.RFC3339), c.Until.UTC().Format("15:04:05"))
		return err
	}
	_, err = fmt.Fprintln(stdout, c.Code)
	return err
}

// SourceDate is when this goheads was built from source (the commit date
// the builder records); a clock before it is certainly wrong.
func SourceDate(cfg *config.Config) time.Time {
	var sec int64
	if _, err := fmt.Sscan(cfg.Value("CONFIG_GOHEADS_SOURCE_DATE"), &sec); err != nil {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}
