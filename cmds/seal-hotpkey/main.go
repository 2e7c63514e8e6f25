// Command seal-hotpkey programs the USB security token's HOTP slot with the
// TPM-sealed TOTP/HOTP secret (counter 1, as Heads' seal-hotpkey) and writes
// the next counter (2) to /boot/kexec_hotp_counter. It asks for the token's
// admin PIN (Nitrokey Pro/Storage, Librem Key) or Secrets app PIN (Nitrokey 3).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/goheads/goheads/pkg/attest"
)

func main() {
	fs := flag.NewFlagSet("seal-hotpkey", flag.ExitOnError)
	file := fs.String("counter-file", attest.HOTPCounterFile, "HOTP counter file")
	fs.Parse(os.Args[1:])
	if err := run(context.Background(), os.Stdin, os.Stdout, *file); err != nil {
		fmt.Fprintf(os.Stderr, "seal-hotpkey: %v\n", err)
		os.Exit(1)
	}
}
