// Command flash updates the boot flash with a goheads ROM, as Heads'
// flash.sh: it saves the current firmware to /tmp/flash-backup.rom, keeps
// the owner's settings and keys (CBFS heads/*) unless -c, refuses a ROM
// for another board, and writes and verifies with flashrom
// (CONFIG_FLASH_OPTIONS, default -p internal).
//
//	flash [-c] [-reseal] <update.rom|update.zip>
//	flash -r <backup.rom>
//
// -c keeps nothing of the owner's (a clean flash). -reseal first moves the
// TOTP/HOTP secret to the PCRs the new ROM will produce (it asks the TPM
// owner passphrase), so the new firmware's first boot shows the code the
// owner's app already knows; if the write fails the secret moves back.
// -r only reads the flash into a file.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Stdin, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "flash: %v\n", err)
		os.Exit(1)
	}
}
