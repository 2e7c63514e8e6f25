// Command gui-init is the boot menu Heads' init keeps running
// (CONFIG_BOOTSCRIPT): it checks /boot and the keyring, unseals the TOTP
// code (and checks HOTP with a USB token), then shows the main menu: Default
// boot, Refresh TOTP/HOTP, Options, System Info, Power Off.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "gui-init: %v\n", err)
		os.Exit(1)
	}
}
