// Command unseal-hotp unseals the HOTP secret (the TOTP secret), prints the
// HOTP code for the counter in /boot/kexec_hotp_counter and advances the
// counter, as Heads' unseal-hotp. With -check it also sends the code to the
// USB security token and reports its verdict (exit codes as Heads'
// hotp_verification: 0 valid, 4 wrong code, 6 slot not programmed, ...).
//
//	unseal-hotp [-counter-file /boot/kexec_hotp_counter] [-check]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/hotpkey"
)

func main() {
	fs := flag.NewFlagSet("unseal-hotp", flag.ExitOnError)
	file := fs.String("counter-file", attest.HOTPCounterFile, "HOTP counter file")
	check := fs.Bool("check", false, "verify the code with the USB token")
	fs.Parse(os.Args[1:])
	if err := run(context.Background(), os.Stdout, *file, *check); err != nil {
		fmt.Fprintf(os.Stderr, "unseal-hotp: %v\n", err)
		code := hotpkey.ExitCode(err)
		if code == 0 {
			code = 1
		}
		os.Exit(code)
	}
}
