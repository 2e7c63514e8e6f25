// Command reboot syncs and restarts the machine.
package main

import (
	"fmt"
	"os"

	"github.com/goheads/goheads/pkg/sysinit"
)

func main() {
	if err := sysinit.Reboot(); err != nil {
		fmt.Fprintf(os.Stderr, "reboot: %v\n", err)
		os.Exit(1)
	}
}
