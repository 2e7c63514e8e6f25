// Command seal-totp generates a new TOTP/HOTP secret, seals it in the TPM to
// this firmware's measurements (PCRs 0-3 and 7 as they are, PCR 4 as the
// firmware left it), and shows it once as a QR code and in base32 for an
// authenticator app. It asks for the TPM owner passphrase.
//
//	seal-totp [label]
//	seal-totp -reseal <new.rom>
//
// The label names the secret in the app (default: the board name).
// -reseal keeps the current secret and seals it to the PCRs the coreboot
// ROM new.rom will produce (PCR 2 and 7 predicted), before flashing it.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Stdin, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "seal-totp: %v\n", err)
		os.Exit(1)
	}
}
