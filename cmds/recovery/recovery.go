package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/sysinit"
	"github.com/goheads/goheads/pkg/tpm"
)

const shell = "/bbin/gosh"

func run(ctx context.Context, out io.Writer) error {
	cfg := config.Runtime()
	if cfg.Bool("CONFIG_RESTRICTED_BOOT") {
		fmt.Fprintln(out, "Restricted Boot is enabled: no recovery shell. Rebooting in 5 seconds.")
		time.Sleep(5 * time.Second)
		return sysinit.Reboot()
	}
	if err := sysinit.WipeSecrets(); err != nil {
		fmt.Fprintf(out, "warning: wiping %s: %v\n", sysinit.SecretDir, err)
	}
	t, err := tpm.Open()
	switch {
	case err == nil:
		defer t.Close()
		// Fail closed: no shell unless PCR 4 is poisoned first.
		if err := measure.BootMode(t, measure.ModeRecovery); err != nil {
			return fmt.Errorf("%w; refusing to start a shell with secrets still unsealable", err)
		}
		fmt.Fprintln(out, "PCR 4 extended with \"recovery\": sealed secrets stay locked until you reboot.")
		if v, err := t.ReadPCRs(0, 1, 2, 3, 4, 5, 6, 7); err == nil {
			for i := 0; i < 8; i++ {
				fmt.Fprintf(out, "  PCR %d: %x\n", i, v[i])
			}
		}
		t.Close()
	case errors.Is(err, tpm.ErrNoTPM):
		fmt.Fprintln(out, "No TPM: nothing to lock.")
	default:
		return fmt.Errorf("open TPM to lock PCR 4: %w; refusing to start a shell", err)
	}
	fmt.Fprintln(out, "goheads recovery shell. Type `reboot` or `poweroff` when done.")
	return syscall.Exec(shell, []string{shell}, os.Environ())
}
