// Command unseal-totp unseals the TOTP secret and prints the current
// 6-digit code (RFC 6238: 30 s steps, SHA-1). With -v it also prints the
// time the code is for. It refuses, saying so, when the clock is obviously
// wrong, and names the PCRs that changed when the firmware's measurements
// differ from what the secret was sealed to.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	fs := flag.NewFlagSet("unseal-totp", flag.ExitOnError)
	verbose := fs.Bool("v", false, "also print the time the code is for")
	fs.Parse(os.Args[1:])
	if err := run(context.Background(), os.Stdout, *verbose); err != nil {
		fmt.Fprintf(os.Stderr, "unseal-totp: %v\n", err)
		os.Exit(1)
	}
}

var _ io.Writer = os.Stdout
