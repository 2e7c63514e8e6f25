// Command kexec-sign-config updates /boot's signed manifests and signs them
// with your OpenPGP key, as Heads' kexec-sign-config:
//
//	-p <dir>    /boot (default: find and mount it)
//	-u          regenerate kexec_hashes.txt and kexec_tree.txt from /boot
//	-r          increment the TPM rollback counter and bind /boot to it
//	-c          create a new rollback counter first (asks the TPM owner passphrase)
//	-k <file>   the secret key (an exported, passphrase-protected key file,
//	            e.g. on a USB stick); its passphrase is asked for
//
// Files are written to a staging directory first and moved into /boot only
// after the signature is made: a failure or power cut leaves the old signed
// state.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func main() {
	o := options{}
	fs := flag.NewFlagSet("kexec-sign-config", flag.ExitOnError)
	fs.StringVar(&o.bootDir, "p", "", "mounted /boot (default: find and mount it)")
	fs.BoolVar(&o.update, "u", false, "regenerate kexec_hashes.txt and kexec_tree.txt")
	fs.BoolVar(&o.rollback, "r", false, "increment the TPM rollback counter")
	fs.BoolVar(&o.create, "c", false, "create a new rollback counter")
	fs.StringVar(&o.keyFile, "k", "", "secret key file")
	fs.Parse(os.Args[1:])
	if err := run(context.Background(), os.Stdin, os.Stdout, o); err != nil {
		fmt.Fprintf(os.Stderr, "kexec-sign-config: %v\n", err)
		os.Exit(1)
	}
}
