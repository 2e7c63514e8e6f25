// Command tpmr is goheads' TPM front-end with the verbs and arguments of
// Heads' tpmr, for both TPM families:
//
//	tpmr pcrread [-a] <index> [file]   PCR value: binary to file (-a appends), hex to stdout without one
//	tpmr pcrsize                       20 (TPM 1.2) or 32 (TPM 2.0)
//	tpmr extend -ix <index> -ic <string> | -if <file> | -ih <hex digest>
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Stdin, os.Stdout, os.Stderr, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "tpmr: %v\n", err)
		os.Exit(1)
	}
}
