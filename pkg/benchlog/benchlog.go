// Package benchlog writes timing marks for `make bench` into the kernel
// log: they carry the kernel's timestamps (comparable across init, the
// menu and kexec, which are different processes) and reach the serial
// console even with "quiet". Marks are written only when the kernel
// command line has goheads.bench, which the bench adds; they hold counts,
// never secrets.
package benchlog

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// Prefix starts every mark on the console.
const Prefix = "goheads-bench: "

var enabled = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/cmdline")
	return err == nil && slices.Contains(strings.Fields(string(b)), "goheads.bench")
})

// Enabled reports whether marks are written.
func Enabled() bool { return enabled() }

// Mark writes one mark, e.g. Mark("totp-unsealed tpm-commands=%d", n).
func Mark(format string, args ...any) {
	if !enabled() {
		return
	}
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	// Level 3 (err): printed on the console under "quiet" (loglevel 4).
	fmt.Fprintf(f, "<3>"+Prefix+format+"\n", args...)
}
