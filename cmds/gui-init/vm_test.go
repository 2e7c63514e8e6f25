package main

import (
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/vmtest"
	"github.com/goheads/goheads/pkg/vmtest/scenario"
)

const marker = "GOHEADS-TESTOS-MARKER"

// codeMatches reports whether code is the TOTP for secret within a step of now.
func codeMatches(secret []byte, code string, now time.Time) bool {
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		if c, _ := otp.TOTP(secret, now.Add(d)); c == code {
			return true
		}
	}
	return false
}

// TestVMMenu drives the boot menu over the serial console with keystrokes,
// as an owner would: first boot leads to generating a TOTP secret with a QR
// code, the next boot shows the code in the header and Default boot kexecs
// the signed /boot, a tampered /boot shows the hash mismatch naming the
// file, and Power Off ends QEMU.
func TestVMMenu(t *testing.T) {
	for _, board := range []string{"qemu-tpm2", "qemu-tpm1"} {
		t.Run(board, func(t *testing.T) {
			m := scenario.New(t, scenario.Options{Board: board, Sign: true})

			// Boot 1: the TPM was reset, no secret sealed yet.
			vm := vmtest.StartT(t, m.Config(""))
			vm.MustScreen(t, "TOTP Generation Failed", 2*time.Minute)
			vm.MustScreen(t, "Generate new TOTP/HOTP secret", time.Minute)
			vm.MustSend(t, "g")
			// The integrity gate: /boot verified, the owner confirms.
			vm.MustScreen(t, "allow sealing a new secret", time.Minute)
			vm.MustSend(t, "c")
			vm.MustScreen(t, "TPM owner passphrase:", time.Minute)
			vm.MustSend(t, string(m.OwnerPass)+"\r")
			b32 := vm.MustScreen(t, `Secret: ([A-Z2-7]{32})`, time.Minute)[1]
			secret, err := otp.DecodeSecret(b32)
			if err != nil {
				t.Fatal(err)
			}
			vm.MustSend(t, "\r")
			code := vm.MustScreen(t, `TOTP: (\d{6}) `, time.Minute)[1]
			if !codeMatches(secret, code, time.Now()) {
				t.Errorf("menu shows TOTP %s; the host computes another code for secret %s", code, b32)
			}
			vm.MustScreen(t, "Power Off", time.Minute)
			vm.MustSend(t, "p")
			if err := vm.Wait(time.Minute); err != nil {
				t.Fatalf("Power Off did not end QEMU: %v", err)
			}

			// Boot 2: the code is in the header; Default boot kexecs the signed /boot.
			vm = vmtest.StartT(t, m.Config(""))
			code = vm.MustScreen(t, `TOTP: (\d{6}) `, 2*time.Minute)[1]
			if !codeMatches(secret, code, time.Now()) {
				t.Errorf("boot 2 shows TOTP %s, not the sealed secret's code", code)
			}
			vm.MustScreen(t, "Default boot", time.Minute)
			vm.MustSend(t, "d")
			vm.MustExpect(t, marker, 2*time.Minute)
			vm.Wait(time.Minute)

			// Boot 3: /boot tampered.
			m.Tamper(t, "initrd.img-6.1.0-goheads")
			vm = vmtest.StartT(t, m.Config(""))
			vm.MustScreen(t, "Default boot", 2*time.Minute)
			vm.MustSend(t, "d")
			vm.MustScreen(t, "Boot Hash Mismatch", time.Minute)
			vm.MustScreen(t, "changed: ./initrd.img-6.1.0-goheads", time.Minute)
			if strings.Contains(vm.Console(), marker) {
				t.Fatal("the tampered /boot booted")
			}
			vm.MustSend(t, "q")
			vm.MustScreen(t, "Power Off", time.Minute)
			vm.MustSend(t, "p")
			if err := vm.Wait(time.Minute); err != nil {
				t.Fatalf("Power Off did not end QEMU: %v", err)
			}
		})
	}
}

// TestVMUSBBoot boots a USB disk's OS from the menu: unverified, after the
// warning, with the OS's own command line.
func TestVMUSBBoot(t *testing.T) {
	m := scenario.New(t, scenario.Options{Board: "qemu-tpm2", Sign: true, USBBoot: true})
	vm := vmtest.StartT(t, m.Config(""))
	vm.MustScreen(t, "TOTP Generation Failed", 2*time.Minute)
	vm.MustSend(t, "i")
	vm.MustScreen(t, "Options -->", time.Minute)
	vm.MustSend(t, "o")
	vm.MustScreen(t, "Boot options -->", time.Minute)
	vm.MustSend(t, "b")
	vm.MustScreen(t, "USB boot", time.Minute)
	vm.MustSend(t, "u")
	vm.MustScreen(t, "USB boot: "+m.USBDev, time.Minute)
	vm.MustScreen(t, "Nothing on this disk is verified", time.Minute)
	vm.MustSend(t, "1")
	got := vm.MustExpectRE(t, marker+` cmdline="([^"]*)"`, 3*time.Minute)
	if !strings.Contains(got[1], scenario.USBOSArg) {
		t.Fatalf("booted an OS with command line %q, want the USB disk's", got[1])
	}
	vm.Wait(time.Minute)
}
