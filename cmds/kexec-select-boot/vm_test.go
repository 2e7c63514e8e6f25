package main

import (
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/vmtest"
	"github.com/goheads/goheads/pkg/vmtest/scenario"
)

const marker = "GOHEADS-TESTOS-MARKER"

// TestVMVerifiedBoot: a /boot signed by the owner (goheads' signer, bound
// to the TPM rollback counter) verifies against the ROM keyring from CBFS,
// and kexec-select-boot kexecs into the disk's kernel, whose initrd prints
// a marker. The same disk with a tampered initrd is refused, naming the
// file, and nothing boots.
func TestVMVerifiedBoot(t *testing.T) {
	for _, board := range []string{"qemu-tpm2", "qemu-tpm1"} {
		t.Run(board, func(t *testing.T) {
			m := scenario.New(t, scenario.Options{Board: board, Sign: true, KernelCmdline: "console=ttyS0 quiet goheads-testos-arg"})

			vm := vmtest.StartT(t, m.Config("goheads.shell"))
			vm.MustExpect(t, "Loaded /.gnupg/pubring.gpg", 2*time.Minute)
			vm.MustExpect(t, "> ", time.Minute)
			vm.MustSend(t, "kexec-select-boot\r")
			vm.MustExpect(t, "/boot verified: signed by goheads Test Owner", time.Minute)
			vm.MustExpect(t, "Booting the default entry: Debian GNU/Linux", time.Minute)
			m1 := vm.MustExpectRE(t, marker+` cmdline="([^"]*)"`, 2*time.Minute)
			// The board's CONFIG_BOOT_KERNEL_ADD (console=ttyS0) is not repeated.
			if m1[1] != "console=ttyS0 quiet goheads-testos-arg" {
				t.Errorf("the OS got command line %q", m1[1])
			}
			if err := vm.Wait(time.Minute); err != nil {
				t.Fatalf("the test OS did not power off: %v", err)
			}

			m.Tamper(t, "initrd.img-6.1.0-goheads")
			vm = vmtest.StartT(t, m.Config("goheads.shell"))
			vm.MustExpect(t, "> ", 2*time.Minute)
			out := vm.Shell(t, "kexec-select-boot; echo EXIT=$?", 2*time.Minute)
			if !strings.Contains(out, "refusing to boot") || !strings.Contains(out, "initrd.img-6.1.0-goheads") || !strings.Contains(out, "EXIT=1") {
				t.Fatalf("tampered /boot was not refused naming the file:\n%s", out)
			}
			if strings.Contains(vm.Console(), marker) {
				t.Fatal("the tampered OS booted")
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)
		})
	}
}
