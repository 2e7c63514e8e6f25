// Command insmod measures a kernel module into PCR 5 and loads it, as
// Heads' insmod wrapper: the module file, then its parameters if any.
//
//	insmod <module.ko> [param=value ...]
package main

import (
	"fmt"
	"os"

	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/tpm"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: insmod <module.ko> [param=value ...]")
		os.Exit(1)
	}
	var ext measure.Extender
	if t, err := tpm.Open(); err == nil {
		defer t.Close()
		ext = t
	}
	err := measure.LoadModule(ext, os.Args[1], os.Args[2:], func(img []byte, params string) error {
		return unix.InitModule(img, params)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "insmod: %v\n", err)
		os.Exit(1)
	}
}
