// Command reboot tells the TPM an orderly shutdown is coming, syncs, and
// restarts the machine.
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
	if err := sysinit.Reboot(); err != nil {
		fmt.Fprintf(os.Stderr, "reboot: %v\n", err)
		os.Exit(1)
	}
}
