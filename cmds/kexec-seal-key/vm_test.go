package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/vmtest"
	"github.com/goheads/goheads/pkg/vmtest/scenario"
)

const (
	marker = "GOHEADS-TESTOS-MARKER"
	duk    = "disk unlock passphrase"
)

// TestVMDiskKey is the TPM Disk Unlock Key end to end, on a disk made by
// cryptsetup: kexec-seal-key seals a key in the VM (the owner's key from a
// USB stick signs /boot); the menu's default boot asks the passphrase and
// kexecs into an OS whose initrd opens the LUKS volume with /secret.key
// (checked by an independent LUKS reader); three wrong passphrases lead to
// the Disk Recovery Key; a keyslot added on the host stops the boot with
// "Encrypted disk keys have changed" before any passphrase is asked.
func TestVMDiskKey(t *testing.T) {
	for _, tc := range []struct {
		board      string
		luks       scenario.LUKSOptions
		name, slot string
	}{
		// Debian-shaped OS initrd with its own crypttab: the key opens it
		// under the OS's name (crypttab overrides).
		{"qemu-tpm2", scenario.LUKSOptions{Type: "luks2", PBKDF: "argon2id", OSCrypttab: true}, "vdb_crypt", "31"},
		// No crypttab in the OS initrd: Heads' generic luks-<UUID> entry.
		{"qemu-tpm1", scenario.LUKSOptions{Type: "luks1", PBKDF: "pbkdf2"}, "luks-" + scenario.LUKSTestUUID, "7"},
	} {
		t.Run(tc.board+"-"+tc.luks.Type, func(t *testing.T) {
			m := scenario.New(t, scenario.Options{Board: tc.board, Sign: true, LUKS: &tc.luks, KeyDisk: true, Persistent: true})

			// Boot 1: seal from the shell.
			vm := vmtest.StartT(t, m.Config("goheads.shell"))
			vm.MustExpect(t, "> ", 2*time.Minute)
			script := fmt.Sprintf(`mkdir -p /media
mount -r -t ext4 %s /media
printf '%%s\n' '%s' '%s' '%s' '%s' '%s' | kexec-seal-key -k /media/%s
echo EXIT=$?`, m.KeyDev, m.Owner.Passphrase, m.DRK, duk, duk, m.OwnerPass, m.KeyFile)
			out := vm.Shell(t, script, 5*time.Minute)
			t.Logf("kexec-seal-key:\n%s", out)
			if !strings.Contains(out, "EXIT=0") || !strings.Contains(out, "Disk unlock key added to "+m.LUKSDev+" (LUKS UUID "+m.LUKSUUID+")") {
				t.Fatalf("sealing failed:\n%s", out)
			}
			if tc.luks.OSCrypttab && !strings.Contains(out, "OS crypttab entry opened with the key: /cryptroot/crypttab: vdb_crypt UUID="+m.LUKSUUID+" /secret.key luks,discard") {
				t.Errorf("the OS crypttab override is missing:\n%s", out)
			}
			vm.MustSend(t, "poweroff\r")
			if err := vm.Wait(time.Minute); err != nil {
				t.Fatal(err)
			}
			// On the host: cryptsetup sees the new slot, and the recovery
			// key still opens the volume.
			dump, err := exec.Command("cryptsetup", "luksDump", m.LUKS).CombinedOutput()
			if err != nil || !strings.Contains(string(dump), slotLine(tc.luks.Type, tc.slot)) {
				t.Errorf("luksDump does not show slot %s: %v\n%s", tc.slot, err, dump)
			}
			drk := exec.Command("cryptsetup", "open", "--test-passphrase", "--key-file", "-", m.LUKS)
			drk.Stdin = strings.NewReader(m.DRK)
			if out, err := drk.CombinedOutput(); err != nil {
				t.Errorf("the recovery key no longer opens the volume: %v %s", err, out)
			}

			// Boot 2: the menu asks the passphrase; the OS opens the disk.
			vm = vmtest.StartT(t, m.Config(""))
			vm.MustScreen(t, "TOTP Generation Failed", 2*time.Minute)
			vm.MustSend(t, "i")
			vm.MustScreen(t, "Default boot", time.Minute)
			vm.MustSend(t, "d")
			vm.MustScreen(t, `Disk unlock key passphrase \(try 1 of 3\)`, 2*time.Minute)
			vm.MustSend(t, duk+"\r")
			vm.MustExpect(t, marker, 3*time.Minute)
			opened := vm.MustExpectRE(t, `GOHEADS-TESTOS-LUKS-(OPENED|FAILED|ASKS-PASSPHRASE)[^\r\n]*\r?\n`, time.Minute)[0]
			want := fmt.Sprintf("GOHEADS-TESTOS-LUKS-OPENED name=%s uuid=%s slot=%s", tc.name, m.LUKSUUID, tc.slot)
			if !strings.HasPrefix(opened, want) {
				t.Fatalf("the OS printed %q, want %q", opened, want)
			}
			vm.Wait(time.Minute)

			// Boot 3: three wrong passphrases, then the recovery key.
			vm = vmtest.StartT(t, m.Config(""))
			vm.MustScreen(t, "TOTP Generation Failed", 2*time.Minute)
			vm.MustSend(t, "i")
			vm.MustScreen(t, "Default boot", time.Minute)
			vm.MustSend(t, "d")
			for try := 1; try <= 3; try++ {
				vm.MustScreen(t, fmt.Sprintf(`\(try %d of 3\)`, try), 2*time.Minute)
				vm.MustSend(t, fmt.Sprintf("wrong passphrase %d\r", try))
			}
			vm.MustScreen(t, "Disk unlock key did not unseal", 2*time.Minute)
			vm.MustScreen(t, "Boot without the disk key", time.Minute)
			vm.MustSend(t, "r")
			vm.MustExpect(t, marker, 3*time.Minute)
			got := vm.MustExpectRE(t, `GOHEADS-TESTOS-(LUKS-OPENED|LUKS-FAILED|LUKS-ASKS-PASSPHRASE|NO-CRYPTTAB)[^\r\n]*\r?\n`, time.Minute)[0]
			if strings.Contains(got, "OPENED") {
				t.Fatalf("the OS opened the disk without the key: %q", got)
			}
			vm.Wait(time.Minute)

			// Boot 4: a keyslot added on the host.
			m.AddKeyslotOnHost(t, "a passphrase added on the host")
			vm = vmtest.StartT(t, m.Config(""))
			vm.MustScreen(t, "TOTP Generation Failed", 2*time.Minute)
			vm.MustSend(t, "i")
			vm.MustScreen(t, "Default boot", time.Minute)
			vm.MustSend(t, "d")
			vm.MustScreen(t, "Encrypted disk keys have changed", 2*time.Minute)
			if strings.Contains(vm.Console(), "Disk unlock key passphrase") {
				t.Error("the passphrase was asked for before the changed headers were reported")
			}
			vm.MustSend(t, "q")
			vm.MustScreen(t, "Power Off", time.Minute)
			vm.MustSend(t, "p")
			if err := vm.Wait(time.Minute); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// slotLine is how luksDump lists an active keyslot.
func slotLine(typ, slot string) string {
	if typ == "luks1" {
		return "Key Slot " + slot + ": ENABLED"
	}
	return "  " + slot + ": luks2"
}
