// Command kexec-seal-key creates a TPM Disk Unlock Key, as Heads'
// kexec-seal-key (with the signing kexec-save-default does after it):
//
//	-p <dir>     /boot (default: find and mount it)
//	-d <devices> LUKS volumes, comma-separated (default: those in
//	             kexec_key_devices.txt, else every LUKS volume found)
//	-k <file>    the secret key that signs /boot (exported, on a USB stick)
//	-e <n>       also save boot entry n as the default
//
// It asks, in order: the signing key's passphrase (checked first, before
// anything changes), the Disk Recovery Key, the new disk unlock key
// passphrase twice, and the TPM owner passphrase. 128 random bytes are
// added to each volume (LUKS1 slot 7, LUKS2 slot 31), sealed in the TPM to
// PCRs 0-7 with the passphrase, and kexec_key_devices.txt,
// kexec_lukshdr_hash.txt and the OS initrd's crypttab overrides are signed
// into /boot.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func main() {
	o := options{}
	fs := flag.NewFlagSet("kexec-seal-key", flag.ExitOnError)
	fs.StringVar(&o.bootDir, "p", "", "mounted /boot (default: find and mount it)")
	fs.StringVar(&o.devices, "d", "", "LUKS volumes, comma-separated")
	fs.StringVar(&o.keyFile, "k", "", "secret key file that signs /boot")
	fs.IntVar(&o.saveDefault, "e", 0, "also save boot entry `n` as the default")
	fs.Parse(os.Args[1:])
	if err := run(context.Background(), os.Stdin, os.Stdout, o); err != nil {
		fmt.Fprintf(os.Stderr, "kexec-seal-key: %v\n", err)
		os.Exit(1)
	}
}
