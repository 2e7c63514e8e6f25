// Command testos is the /init of the test "operating system" that VM tests
// put on a disk's /boot: goheads verifies and kexecs into it, and it proves
// it ran by printing a marker and its command line, then powers off.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Marker is what VM tests wait for.
const Marker = "GOHEADS-TESTOS-MARKER"

func main() {
	os.MkdirAll("/proc", 0o755)
	unix.Mount("proc", "/proc", "proc", 0, "")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	fmt.Printf("\n%s cmdline=%q\n", Marker, strings.TrimSpace(string(cmdline)))
	if strings.Contains(string(cmdline), "testos.stay") {
		select {}
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
