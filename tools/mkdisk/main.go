// Command mkdisk makes a test disk image without root or loop devices: an
// MBR disk whose first partition is an ext4 /boot holding the given kernel,
// an initrd whose /init prints GOHEADS-TESTOS-MARKER, and a Debian-style
// grub.cfg.
//
//	go run ./tools/mkdisk -kernel out/qemu-tpm2/bzImage -o disk.img
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/goheads/goheads/pkg/testdisk"
)

func main() {
	kernel := flag.String("kernel", "out/qemu-tpm2/bzImage", "kernel to put in /boot")
	out := flag.String("o", "disk.img", "output image")
	cmdline := flag.String("cmdline", "console=ttyS0 quiet", "kernel command line in grub.cfg")
	root := flag.String("root", ".", "goheads source tree (to build tools/testos)")
	flag.Parse()
	if err := testdisk.Standard(*root, *kernel, *out, *cmdline); err != nil {
		fmt.Fprintf(os.Stderr, "mkdisk: %v\n", err)
		os.Exit(1)
	}
}
