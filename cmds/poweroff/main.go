// Command poweroff tells the TPM an orderly shutdown is coming, syncs, and
// powers the machine off.
package main

import (
	"fmt"
	"os"

	"github.com/goheads/goheads/pkg/sysinit"
	"github.com/goheads/goheads/pkg/tpm"
)

func main() {
	sysinit.ShutdownTPM = func() {
		if t, err := tpm.Open(); err == nil {
			t.Shutdown()
			t.Close()
		}
	}
	if err := sysinit.PowerOff(); err != nil {
		fmt.Fprintf(os.Stderr, "poweroff: %v\n", err)
		os.Exit(1)
	}
}
