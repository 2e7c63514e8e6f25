package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/vmtest"
)

// TestVMTPMFromGo boots each QEMU board with its swtpm and checks, inside
// the VM, that goheads' Go TPM code reaches the kernel device and that a
// PCR it extends holds what the host computes.
func TestVMTPMFromGo(t *testing.T) {
	for _, tc := range []struct {
		board  string
		tpm    vmtest.TPM
		banner string
		size   int
	}{
		{"qemu-tpm2", vmtest.TPM20, "TPM: TPM 2.0 at /dev/tpmrm0", 32},
		{"qemu-tpm1", vmtest.TPM12, "TPM: TPM 1.2 at /dev/tpm0", 20},
	} {
		t.Run(tc.board, func(t *testing.T) {
			a := vmtest.BoardArtifacts(t, tc.board)
			vm := vmtest.StartT(t, vmtest.Config{
				Kernel: a.Kernel, Initrd: a.Initrd,
				Append: a.Cmdline + " goheads.shell",
				TPM:    tc.tpm,
			})
			vm.MustExpect(t, tc.banner, 2*time.Minute)
			vm.MustExpect(t, "> ", time.Minute) // gosh prompt

			if got := vm.Shell(t, "tpmr pcrsize", 30*time.Second); got != map[int]string{32: "32", 20: "20"}[tc.size] {
				t.Errorf("tpmr pcrsize = %q", got)
			}
			before := vm.Shell(t, "tpmr pcrread 16", 30*time.Second)
			if before != strings.Repeat("00", tc.size) {
				t.Fatalf("debug PCR 16 at boot = %q, want zero", before)
			}
			after := vm.Shell(t, "tpmr extend -ix 16 -ic goheads-vmtest && tpmr pcrread 16", 30*time.Second)

			want := hostExtend(tc.size, []byte("goheads-vmtest"))
			if after != want {
				t.Errorf("PCR 16 after extend: VM says %q, host computes %q", after, want)
			}
			// The runtime measurement log names what was extended.
			if log := vm.Shell(t, "cat /tmp/measurements.log", 30*time.Second); !strings.Contains(log, `16 `) || !strings.Contains(log, `string "goheads-vmtest"`) {
				t.Errorf("measurement log lacks the extend:\n%s", log)
			}

			vm.MustSend(t, "poweroff\r")
			if err := vm.Wait(time.Minute); err != nil {
				t.Fatalf("QEMU did not exit cleanly after poweroff: %v", err)
			}
		})
	}
}

// hostExtend is PCR = H(zero || H(data)) in the family's bank.
func hostExtend(size int, data []byte) string {
	if size == 20 {
		d := sha1.Sum(data)
		v := sha1.Sum(append(make([]byte, 20), d[:]...))
		return hex.EncodeToString(v[:])
	}
	d := sha256.Sum256(data)
	v := sha256.Sum256(append(make([]byte, 32), d[:]...))
	return hex.EncodeToString(v[:])
}

// TestVMSealAcrossReboot: tpmr in the initramfs takes ownership, seals to
// PCRs 0-7, and after a reboot of the VM (same swtpm state) unseals; after
// a PCR 7 extend it refuses, naming PCR 7.
func TestVMSealAcrossReboot(t *testing.T) {
	for _, tc := range []struct {
		board string
		tpm   vmtest.TPM
	}{
		{"qemu-tpm2", vmtest.TPM20},
		{"qemu-tpm1", vmtest.TPM12},
	} {
		t.Run(tc.board, func(t *testing.T) {
			a := vmtest.BoardArtifacts(t, tc.board)
			state := t.TempDir()
			cfg := vmtest.Config{Kernel: a.Kernel, Initrd: a.Initrd, Append: a.Cmdline + " goheads.shell", TPM: tc.tpm, TPMState: state}

			vm := vmtest.StartT(t, cfg)
			vm.MustExpect(t, "> ", 2*time.Minute)
			vm.Shell(t, "tpmr reset ownerpass && echo RESET-OK", time.Minute)
			out := vm.Shell(t, "echo -n vmtest-secret-0123456 > /tmp/secret.txt && "+
				"tpmr pcrread 0 /tmp/pcrs && for i in 1 2 3 4 5 6 7; do tpmr pcrread -a $i /tmp/pcrs; done && "+
				"tpmr seal /tmp/secret.txt 4d47 0,1,2,3,4,5,6,7 /tmp/pcrs 312 '' ownerpass && echo SEAL-OK", time.Minute)
			if !strings.Contains(out, "SEAL-OK") {
				t.Fatalf("seal in the VM failed:\n%s", out)
			}
			vm.MustSend(t, "poweroff\r")
			if err := vm.Wait(time.Minute); err != nil {
				t.Fatal(err)
			}

			vm = vmtest.StartT(t, cfg) // reboot: new QEMU and swtpm, same TPM state
			vm.MustExpect(t, "> ", 2*time.Minute)
			if out := vm.Shell(t, "tpmr unseal 4d47 0,1,2,3,4,5,6,7 312 /tmp/out && cat /tmp/out", time.Minute); !strings.Contains(out, "vmtest-secret-0123456") {
				t.Fatalf("unseal after reboot:\n%s", out)
			}
			out = vm.Shell(t, "tpmr extend -ix 7 -ic changed-config; tpmr unseal 4d47 0,1,2,3,4,5,6,7 312 /tmp/out2 || echo UNSEAL-REFUSED", time.Minute)
			if !strings.Contains(out, "UNSEAL-REFUSED") || !strings.Contains(out, "PCR 7 changed") {
				t.Fatalf("unseal after a PCR 7 change should fail naming PCR 7:\n%s", out)
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)
		})
	}
}
