// Command poweroff syncs and powers the machine off.
package main

import (
	"fmt"
	"os"

	"github.com/goheads/goheads/pkg/sysinit"
)

func main() {
	if err := sysinit.PowerOff(); err != nil {
		fmt.Fprintf(os.Stderr, "poweroff: %v\n", err)
		os.Exit(1)
	}
}
