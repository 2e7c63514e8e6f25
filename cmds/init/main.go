// Command init is goheads' PID 1: it mounts the virtual filesystems, loads
// the board configuration, reports the TPM it found, and keeps the boot
// script (CONFIG_BOOTSCRIPT) or, without one, a shell alive on the console.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		// PID 1 must not exit: the kernel would panic. run only returns on
		// errors before the supervisor starts; fall back to a shell.
		fmt.Fprintf(os.Stdout, "init: %v\n", err)
		rescue(os.Stdout)
	}
}
