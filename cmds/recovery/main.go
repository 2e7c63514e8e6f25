// Command recovery opens the recovery shell, as Heads' recovery(): it first
// extends PCR 4 with "recovery" and wipes /tmp/secret, so nothing sealed to
// the firmware (TOTP/HOTP secret, disk key) can be unsealed until a reboot.
// Boards with CONFIG_RESTRICTED_BOOT=y refuse and reboot instead.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "recovery: %v\n", err)
		os.Exit(1)
	}
}
