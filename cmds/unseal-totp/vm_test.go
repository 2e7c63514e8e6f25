package main

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/vmtest"
	"github.com/goheads/goheads/pkg/vmtest/scenario"
)

var boards = []struct {
	name string
	tpm  vmtest.TPM
	fam  tpm.Family
}{
	{"qemu-tpm2", vmtest.TPM20, tpm.Family20},
	{"qemu-tpm1", vmtest.TPM12, tpm.Family12},
}

// TestVMTOTP: boot 1 seals a TOTP secret (the test reads its base32 from
// the console); boot 2 shows the code the host computes for the VM's clock;
// after the recovery shell poisons PCR 4 the unseal fails naming PCR 4;
// boot 3 enters the recovery shell with 'r' in init's key window.
func TestVMTOTP(t *testing.T) {
	for _, b := range boards {
		t.Run(b.name, func(t *testing.T) {
			a := vmtest.BoardArtifacts(t, b.name)
			cfg := vmtest.Config{Kernel: a.Kernel, Initrd: a.Initrd, Append: a.Cmdline + " goheads.shell", TPM: b.tpm, TPMState: t.TempDir()}

			vm := vmtest.StartT(t, cfg)
			vm.MustExpect(t, "TPM: ", 2*time.Minute)
			vm.MustExpect(t, "> ", time.Minute)
			vm.Shell(t, "tpmr reset ownerpass", time.Minute)
			out := vm.Shell(t, "echo ownerpass | seal-totp", time.Minute)
			i := strings.Index(out, "TOTP secret (base32): ")
			if i < 0 {
				t.Fatalf("seal-totp printed no secret:\n%s", out)
			}
			b32 := strings.Fields(out[i+len("TOTP secret (base32): "):])[0]
			secret, err := otp.DecodeSecret(b32)
			if err != nil || len(secret) != 20 {
				t.Fatalf("secret %q: %v", b32, err)
			}
			if !strings.Contains(out, "▀") && !strings.Contains(out, "▄") {
				t.Errorf("no QR code on the console:\n%s", out)
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)

			vm = vmtest.StartT(t, cfg)
			vm.MustExpect(t, "TPM: ", 2*time.Minute)
			vm.MustExpect(t, "> ", time.Minute)
			out = vm.Shell(t, "unseal-totp -v", time.Minute)
			f := strings.Fields(out)
			if len(f) < 3 || f[1] != "at" {
				t.Fatalf("unseal-totp -v: %q", out)
			}
			at, err := time.Parse(time.RFC3339, f[2])
			if err != nil {
				t.Fatal(err)
			}
			want, _ := otp.TOTP(secret, at)
			if f[0] != want {
				t.Errorf("VM shows %s at %s; the host computes %s", f[0], at, want)
			}
			if d := time.Since(at); d < -time.Minute || d > 5*time.Minute {
				t.Errorf("VM clock %s is off from the host's by %s", at, d)
			}

			vm.MustSend(t, "recovery\r")
			vm.MustExpect(t, "sealed secrets stay locked", time.Minute)
			vm.MustExpect(t, "> ", time.Minute)
			out = vm.Shell(t, "unseal-totp || echo REFUSED", time.Minute)
			if !strings.Contains(out, "REFUSED") || !strings.Contains(out, "PCR 4 changed") {
				t.Fatalf("unseal after the recovery shell should fail naming PCR 4:\n%s", out)
			}
			// PCR 4 equals the host's replay of what goheads says it measured.
			logText := vm.Shell(t, "cat /tmp/measurements.log", time.Minute)
			pcr4 := vm.Shell(t, "tpmr pcrread 4", time.Minute)
			if got := replay(t, b.fam, logText, 4); got != pcr4 {
				t.Errorf("PCR 4 = %s; host replay of the runtime log = %s\nlog:\n%s", pcr4, got, logText)
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)

			// Boot 3, the board as shipped (gui-init as the boot script):
			// 'r' in init's key window, which opens with the banner, gives
			// the recovery shell with PCR 4 poisoned before the menu ever
			// runs.
			cfg.Append = a.Cmdline
			vm = vmtest.StartT(t, cfg)
			vm.MustExpectRE(t, `kernel uptime [0-9.]+ s`, 2*time.Minute)
			vm.MustSend(t, "r")
			vm.MustExpect(t, "Recovery shell requested.", time.Minute)
			vm.MustExpect(t, "sealed secrets stay locked", time.Minute)
			vm.MustExpect(t, "> ", time.Minute)
			out = vm.Shell(t, "unseal-totp || echo REFUSED", time.Minute)
			if !strings.Contains(out, "REFUSED") || !strings.Contains(out, "PCR 4 changed") {
				t.Fatalf("unseal after 'r' in the key window should fail naming PCR 4:\n%s", out)
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)
		})
	}
}

// replay folds the runtime measurement log for one PCR from zero (the
// QEMU boards' firmware measures nothing).
func replay(t *testing.T, fam tpm.Family, logText string, pcr int) string {
	t.Helper()
	ms, err := tpm.ReadMeasurementLog(strings.NewReader(logText))
	if err != nil {
		t.Fatal(err)
	}
	bank := "sha256"
	if fam == tpm.Family12 {
		bank = "sha1"
	}
	v := make([]byte, fam.PCRSize())
	n := 0
	for _, m := range ms {
		if m.PCR != pcr {
			continue
		}
		n++
		if fam == tpm.Family12 {
			s := sha1.Sum(append(append([]byte(nil), v...), m.Digests[bank]...))
			v = s[:]
		} else {
			s := sha256.Sum256(append(append([]byte(nil), v...), m.Digests[bank]...))
			v = s[:]
		}
	}
	if n == 0 || bytes.Equal(v, make([]byte, len(v))) {
		t.Fatalf("runtime log has no PCR %d measurement:\n%s", pcr, logText)
	}
	return hex.EncodeToString(v)
}

// TestVMTOTPConfigChange: the owner's settings in CBFS are measured into
// PCR 7; a secret sealed under one config.user does not unseal under
// another, and the refusal names PCR 7. PCR 7 equals the host's replay of
// what init says it measured.
func TestVMTOTPConfigChange(t *testing.T) {
	for _, b := range boards {
		t.Run(b.name, func(t *testing.T) {
			m := scenario.New(t, scenario.Options{Board: b.name, ConfigUser: "export CONFIG_AUTO_BOOT_TIMEOUT=\"5\"\n"})
			vm := vmtest.StartT(t, m.Config("goheads.shell"))
			vm.MustExpect(t, "Loaded /etc/config.user", 2*time.Minute)
			vm.MustExpect(t, "> ", time.Minute)
			out := vm.Shell(t, "echo '"+string(m.OwnerPass)+"' | seal-totp >/dev/null && echo SEALED", time.Minute)
			if !strings.Contains(out, "SEALED") {
				t.Fatalf("seal-totp:\n%s", out)
			}
			logText := vm.Shell(t, "cat /tmp/measurements.log", time.Minute)
			pcr7 := vm.Shell(t, "tpmr pcrread 7", time.Minute)
			if got := replay(t, b.fam, logText, 7); got != pcr7 {
				t.Errorf("PCR 7 = %s; host replay of the runtime log = %s\nlog:\n%s", pcr7, got, logText)
			}
			// Two CBFS files (keyring, config.user), each measured as name then content.
			if c := strings.Count("\n"+logText, "\n7 "); c != 4 {
				t.Errorf("want 4 PCR 7 measurements, got %d:\n%s", c, logText)
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)

			m.SetCBFS(t, "export CONFIG_AUTO_BOOT_TIMEOUT=\"0\"\n")
			vm = vmtest.StartT(t, m.Config("goheads.shell"))
			vm.MustExpect(t, "> ", 2*time.Minute)
			out = vm.Shell(t, "unseal-totp || echo REFUSED", time.Minute)
			if !strings.Contains(out, "REFUSED") || !strings.Contains(out, "PCR 7 changed") {
				t.Fatalf("unseal under a different config.user should fail naming PCR 7:\n%s", out)
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)
		})
	}
}
