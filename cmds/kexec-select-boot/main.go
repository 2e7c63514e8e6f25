// Command kexec-select-boot verifies /boot against the ROM's keyring and the
// TPM rollback counter, then boots the saved default entry, or lets you pick
// one from the OS's boot menu, with kexec. Heads' flags:
//
//	-b <dir>   /boot (default: find and mount it)
//	-m         always show the menu, even with a usable default
//	-a <word>  add to the kernel command line (repeatable)
//	-r <word>  remove from the kernel command line (repeatable)
//	-f         force: boot without verification (red console; nothing sealed unseals)
//	-n         verify and load, but do not jump (for checking)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
)

type words []string

func (w *words) String() string     { return strings.Join(*w, " ") }
func (w *words) Set(s string) error { *w = append(*w, strings.Fields(s)...); return nil }

func main() {
	o := options{}
	fs := flag.NewFlagSet("kexec-select-boot", flag.ExitOnError)
	fs.StringVar(&o.bootDir, "b", "", "mounted /boot (default: find and mount it)")
	fs.BoolVar(&o.menu, "m", false, "show the menu even with a usable default")
	fs.Var(&o.add, "a", "add to the kernel command line")
	fs.Var(&o.remove, "r", "remove from the kernel command line")
	fs.BoolVar(&o.force, "f", false, "boot without verification")
	fs.BoolVar(&o.noExec, "n", false, "load but do not jump")
	fs.Parse(os.Args[1:])
	if err := run(context.Background(), os.Stdin, os.Stdout, o); err != nil {
		fmt.Fprintf(os.Stderr, "kexec-select-boot: %v\n", err)
		os.Exit(1)
	}
}
