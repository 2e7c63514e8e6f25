// Command kexec-insert-key unseals the TPM Disk Unlock Key and writes the
// OS initrd with the key appended, as Heads' kexec-insert-key:
//
//	kexec-insert-key [-p /boot] [-o /tmp/secret/initrd.cpio] <initrd>
//
// <initrd> is relative to /boot. The LUKS headers are measured into PCR 6
// and compared with the signed kexec_lukshdr_hash.txt first; the
// passphrase gets three tries. The output goes to tmpfs only, mode 0600:
// it holds the key. kexec-select-boot and the menu do all this in memory
// and never write the key anywhere; this command is for scripts that
// load the kernel themselves.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func main() {
	o := options{}
	fs := flag.NewFlagSet("kexec-insert-key", flag.ExitOnError)
	fs.StringVar(&o.bootDir, "p", "", "mounted /boot (default: find and mount it)")
	fs.StringVar(&o.output, "o", "/tmp/secret/initrd.cpio", "where to write the initrd with the key (tmpfs only)")
	fs.Parse(os.Args[1:])
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kexec-insert-key [-p /boot] [-o out] <initrd relative to /boot>")
		os.Exit(2)
	}
	o.initrd = fs.Arg(0)
	if err := run(context.Background(), os.Stdin, os.Stdout, o); err != nil {
		fmt.Fprintf(os.Stderr, "kexec-insert-key: %v\n", err)
		os.Exit(1)
	}
}
