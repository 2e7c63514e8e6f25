// Command testos is the /init of the test "operating system" that VM tests
// put on a disk's /boot: goheads verifies and kexecs into it, and it proves
// it ran by printing a marker and its command line, then powers off.
//
// Like a distribution's initramfs, it then opens the LUKS volumes its
// crypttab lists with the key file named there (goheads' /secret.key),
// using an independent LUKS implementation (github.com/anatol/luks.go),
// and prints what it opened. It opens the keyslot and checks the volume
// key's digest; the test kernel has no dm-crypt to map the volume.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/anatol/luks.go"
	"golang.org/x/sys/unix"
)

// Marker is what VM tests wait for.
const Marker = "GOHEADS-TESTOS-MARKER"

func main() {
	for _, m := range []struct{ dir, fs string }{{"/proc", "proc"}, {"/sys", "sysfs"}, {"/dev", "devtmpfs"}} {
		os.MkdirAll(m.dir, 0o755)
		unix.Mount(m.fs, m.dir, m.fs, 0, "")
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	fmt.Printf("\n%s cmdline=%q\n", Marker, strings.TrimSpace(string(cmdline)))
	openVolumes()
	if strings.Contains(string(cmdline), "testos.stay") {
		select {}
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// openVolumes reads the crypttab the initramfs carries (the last archive's
// copy wins, as the kernel unpacked it) and opens each entry.
func openVolumes() {
	var tab []byte
	var tabPath string
	for _, p := range []string{"/cryptroot/crypttab", "/etc/crypttab"} {
		if b, err := os.ReadFile(p); err == nil {
			tab, tabPath = b, p
			break
		}
	}
	if tab == nil {
		fmt.Println("GOHEADS-TESTOS-NO-CRYPTTAB")
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(tab))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		name, dev, keyFile := f[0], f[1], "none"
		if len(f) > 2 {
			keyFile = f[2]
		}
		fmt.Printf("GOHEADS-TESTOS-CRYPTTAB %s name=%s source=%s key=%s\n", tabPath, name, dev, keyFile)
		if keyFile == "none" || keyFile == "-" {
			fmt.Printf("GOHEADS-TESTOS-LUKS-ASKS-PASSPHRASE name=%s\n", name)
			continue
		}
		open(name, dev, keyFile)
	}
}

func open(name, source, keyFile string) {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		fmt.Printf("GOHEADS-TESTOS-LUKS-FAILED name=%s: key file: %v\n", name, err)
		return
	}
	defer func() {
		for i := range key {
			key[i] = 0
		}
	}()
	if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Printf("GOHEADS-TESTOS-LUKS-FAILED name=%s: %s is readable by others (%v)\n", name, keyFile, st.Mode())
		return
	}
	dev, err := find(source)
	if err != nil {
		fmt.Printf("GOHEADS-TESTOS-LUKS-FAILED name=%s: %v\n", name, err)
		return
	}
	defer dev.Close()
	for _, slot := range dev.Slots() {
		if _, err := dev.UnsealVolume(slot, key); err == nil {
			fmt.Printf("GOHEADS-TESTOS-LUKS-OPENED name=%s uuid=%s slot=%d device=%s\n", name, dev.UUID(), slot, dev.Path())
			return
		}
	}
	fmt.Printf("GOHEADS-TESTOS-LUKS-FAILED name=%s: %s opens no keyslot of %s\n", name, keyFile, dev.Path())
}

// find resolves a crypttab source (UUID=..., or a device path).
func find(source string) (luks.Device, error) {
	if !strings.HasPrefix(source, "UUID=") {
		return luks.Open(source)
	}
	uuid := strings.TrimPrefix(source, "UUID=")
	ents, _ := os.ReadDir("/sys/class/block")
	for _, e := range ents {
		d, err := luks.Open(filepath.Join("/dev", e.Name()))
		if err != nil {
			continue
		}
		if strings.EqualFold(d.UUID(), uuid) {
			return d, nil
		}
		d.Close()
	}
	return nil, fmt.Errorf("no LUKS volume with UUID %s", uuid)
}
