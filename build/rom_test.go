package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/pcrpredict"
	"github.com/goheads/goheads/pkg/testdisk"
	"github.com/goheads/goheads/pkg/vmtest"
	"github.com/goheads/goheads/pkg/vmtest/scenario"
)

// needCoreboot skips ROM tests when no coreboot tree is given: coreboot's
// source is on no registry this project's CI can reach. `make test` prints
// the same reason once, without -v.
func needCoreboot(t *testing.T) {
	t.Helper()
	if _, err := CorebootSource(); err != nil {
		t.Skipf("coreboot ROM build tests skipped: %v", err)
	}
}

// buildTestROM builds board's ROM into out with extra kernel arguments and
// the owner's CBFS files from the scenario's fw_cfg image, and returns its
// path and prediction.
func buildTestROM(t *testing.T, board, out, extraArgs, userCBFS string) (string, *pcrpredict.Prediction) {
	t.Helper()
	root, err := vmtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadBoard(root, board)
	if err != nil {
		t.Fatal(err)
	}
	if extraArgs != "" {
		b.Config.Set("CONFIG_LINUX_COMMAND_LINE", b.Cmdline()+" "+extraArgs)
	}
	o := &Options{Board: board, Out: out, Root: root}
	var log bytes.Buffer
	r, err := BuildROM(context.Background(), o, b, &log)
	if err != nil {
		t.Fatalf("build ROM %s: %v\n%s", board, err, log.String())
	}
	if userCBFS == "" {
		return r.Path, r.Prediction
	}
	user, err := cbfs.OpenFile(userCBFS)
	if err != nil {
		t.Fatal(err)
	}
	files, err := cbfs.UserFiles(user)
	user.Close()
	if err != nil {
		t.Fatal(err)
	}
	rom, err := cbfs.OpenFile(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer rom.Close()
	for _, f := range files {
		if err := rom.Replace(f.Name, f.Data, cbfs.TypeRaw); err != nil {
			t.Fatal(err)
		}
	}
	r, err = writeROM(o, b, rom)
	if err != nil {
		t.Fatal(err)
	}
	return r.Path, r.Prediction
}

// TestROM builds the coreboot ROMs of a QEMU board from COREBOOT_SRC and
// shows, on the real ROM in QEMU with swtpm:
//   - two builds in two directories are byte-identical;
//   - PCR 2 and PCR 7 in the VM equal expected-pcrs.json;
//   - a TOTP sealed under ROM A fails under ROM B, and after
//     `seal-totp -reseal B` under ROM A, ROM B's menu shows the same code;
//   - from ROM B's menu, Flash/Update the firmware with ROM A (flashrom's
//     dummy programmer, the chip image on the USB disk) reseals to A's
//     prediction, and the flashed image unseals the secret at its first boot.
func TestROM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coreboot and boots it")
	}
	needCoreboot(t)
	for _, fam := range []string{"tpm2", "tpm1"} {
		t.Run(fam, func(t *testing.T) {
			board := "qemu-coreboot-" + fam
			bank := "sha256"
			if fam == "tpm1" {
				bank = "sha1"
			}
			// The owner's config.user points flashrom at an emulated chip
			// on the USB disk: QEMU has no SPI flash.
			flashOpts := "export CONFIG_FLASH_OPTIONS=\"flashrom -p dummy:emulate=MX25L6436,image=/media/chip.bin -c " + chipName + "\"\n"
			m := scenario.New(t, scenario.Options{Board: "qemu-" + fam, Sign: true, ConfigUser: flashOpts})
			dir := t.TempDir()
			// ROM A: a shell on the console (goheads.shell) to look inside.
			romA, predA := buildTestROM(t, board, filepath.Join(dir, "a"), "goheads.shell", m.CBFS)
			// ROM B: the board as shipped, booting to the menu.
			romB, predB := buildTestROM(t, board, filepath.Join(dir, "b"), "", m.CBFS)
			if predA.PCRs[bank]["2"] == predB.PCRs[bank]["2"] {
				t.Fatal("ROM A and B predict the same PCR 2")
			}
			if fam == "tpm2" {
				again, _ := buildTestROM(t, board, filepath.Join(dir, "a2"), "goheads.shell", m.CBFS)
				x, _ := os.ReadFile(romA)
				y, _ := os.ReadFile(again)
				if !bytes.Equal(x, y) {
					t.Errorf("two builds of %s differ: %s and %s", board, romA, again)
				}
			}

			// The USB disk for the menu's update: ROM A as the update, the
			// emulated chip holding ROM B.
			usb := filepath.Join(dir, "usb")
			os.Mkdir(usb, 0o755)
			for src, dst := range map[string]string{romA: "goheads-update.rom", romB: "chip.bin"} {
				if err := copyFile(src, filepath.Join(usb, dst)); err != nil {
					t.Fatal(err)
				}
			}
			usbImg := filepath.Join(dir, "usb.img")
			if err := testdisk.MakeFromDir(usbImg, usb, testdisk.Options{Label: "UPDATE", BootSizeMB: 48}); err != nil {
				t.Fatal(err)
			}
			boot := func(rom string) *vmtest.VM {
				cfg := m.Config("")
				cfg.Kernel, cfg.Initrd, cfg.Append, cfg.FwCfg = "", "", "", nil
				cfg.BIOS = rom
				// ROM B as a disk (/dev/vdb), for seal-totp -reseal.
				cfg.Disks = append(cfg.Disks, vmtest.Disk{Path: romB, Snapshot: true}, vmtest.Disk{Path: usbImg})
				return vmtest.StartT(t, cfg)
			}
			shell := func(vm *vmtest.VM, cmd string) string {
				t.Helper()
				out := vm.Shell(t, cmd+"; echo EXIT=$?", 3*time.Minute)
				if !strings.Contains(out, "EXIT=0") {
					t.Fatalf("%s:\n%s", cmd, out)
				}
				return out
			}

			// ROM A: the PCRs are what the builder predicted.
			vm := boot(romA)
			vm.MustExpect(t, "> ", 3*time.Minute)
			for _, pcr := range []string{"2", "7"} {
				out := shell(vm, "tpmr pcrread "+pcr)
				if want := predA.PCRs[bank][pcr]; !strings.Contains(out, want) {
					t.Errorf("PCR %s in the VM:\n%s\nwant %s (expected-pcrs.json)", pcr, out, want)
				}
			}
			shell(vm, fmt.Sprintf("echo '%s' | seal-totp", m.OwnerPass))
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)

			// ROM B without a reseal: the secret does not unseal.
			vm = boot(romB)
			vm.MustScreen(t, "did not unseal", 3*time.Minute)
			vm.Kill()

			// ROM A again: the code still works there; reseal to B.
			vm = boot(romA)
			vm.MustExpect(t, "> ", 3*time.Minute)
			out := shell(vm, fmt.Sprintf("echo '%s' | seal-totp -reseal /dev/vdb", m.OwnerPass))
			if !strings.Contains(out, predB.PCRs[bank]["2"]) {
				t.Errorf("reseal output does not name B's PCR 2 %s:\n%s", predB.PCRs[bank]["2"], out)
			}
			vm.MustSend(t, "poweroff\r")
			vm.Wait(time.Minute)

			// ROM B after the reseal: the menu shows a TOTP code.
			vm = boot(romB)
			vm.MustScreen(t, `TOTP: \d{6}`, 3*time.Minute)

			// ROM B's menu flashes ROM A, resealing to A's prediction.
			vm.MustScreen(t, "Options -->", time.Minute)
			vm.MustSend(t, "o")
			vm.MustScreen(t, "Flash/Update the firmware", time.Minute)
			vm.MustSend(t, "f")
			vm.MustScreen(t, "goheads-update.rom", time.Minute)
			vm.MustSend(t, "1")
			vm.MustScreen(t, "TOTP/HOTP secret moves", time.Minute)
			vm.MustSend(t, "y")
			vm.MustScreen(t, "TPM owner passphrase:", time.Minute)
			vm.MustSend(t, string(m.OwnerPass)+"\r")
			vm.MustScreen(t, "sealed to the new firmware", 5*time.Minute)
			vm.MustSend(t, "q")
			vm.MustScreen(t, "Power Off", time.Minute)
			vm.MustSend(t, "p")
			vm.Wait(time.Minute)

			// The flashed image's first boot unseals the secret.
			flashed := filepath.Join(dir, "flashed.rom")
			if err := os.WriteFile(flashed, dumpFromDisk(t, usbImg, "chip.bin"), 0o644); err != nil {
				t.Fatal(err)
			}
			vm = boot(flashed)
			vm.MustExpect(t, "> ", 3*time.Minute)
			out = shell(vm, "unseal-totp")
			if !regexp.MustCompile(`\b\d{6}\b`).MatchString(out) {
				t.Errorf("unseal-totp on the flashed ROM A:\n%s", out)
			}
			vm.Kill()
		})
	}
}

// TestROMBlobsMissing: a board with blobs refuses to build without them,
// naming each file and how to get it, before needing a coreboot tree.
func TestROMBlobsMissing(t *testing.T) {
	root, err := vmtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadBoard(root, "x230")
	if err != nil {
		t.Fatal(err)
	}
	blobs := t.TempDir()
	b.Config.Set("CONFIG_COREBOOT_BLOBS_DIR", blobs)
	os.WriteFile(filepath.Join(blobs, "ifd.bin"), []byte("descriptor"), 0o644)
	o := &Options{Board: "x230", Out: t.TempDir(), Root: root}
	_, err = BuildROM(context.Background(), o, b, io.Discard)
	var fix *fixError
	if !errors.As(err, &fix) || !strings.Contains(err.Error(), filepath.Join(blobs, "me.bin")) ||
		!strings.Contains(err.Error(), filepath.Join(blobs, "gbe.bin")) || strings.Contains(err.Error(), "ifd.bin,") || !strings.Contains(err.Error(), "ifdtool -x") {
		t.Fatalf("x230 without me.bin and gbe.bin: %v", err)
	}
	// With all three, the blob lines point coreboot at them.
	os.WriteFile(filepath.Join(blobs, "me.bin"), []byte("me"), 0o644)
	os.WriteFile(filepath.Join(blobs, "gbe.bin"), []byte("gbe"), 0o644)
	lines, err := corebootBlobs(o, b)
	if err != nil || !strings.Contains(lines, `CONFIG_ME_BIN_PATH="`+filepath.Join(blobs, "me.bin")+`"`) || strings.Count(lines, "\n") != 3 {
		t.Fatalf("blob lines %q, %v", lines, err)
	}
}

// TestCorebootToolchain: real boards need coreboot's crossgcc, QEMU boards
// take the host's gcc. Without one, the builder tries to build it and,
// when that cannot work (here: no coreboot tree), says how.
func TestCorebootToolchain(t *testing.T) {
	src := t.TempDir()
	err := ensureCorebootToolchain(context.Background(), src, "x230", "CONFIG_VENDOR_LENOVO=y\n", filepath.Join(t.TempDir(), "crossgcc.log"), io.Discard)
	var fix *fixError
	if !errors.As(err, &fix) || !strings.Contains(err.Error(), "x230") || !(strings.Contains(err.Error(), "crossgcc-i386") || strings.Contains(err.Error(), "apt-get install gnat")) {
		t.Fatalf("no crossgcc: %v", err)
	}
	if err := ensureCorebootToolchain(context.Background(), src, "qemu-coreboot-tpm2", "CONFIG_BOARD_EMULATION_QEMU_X86_Q35=y\nCONFIG_ANY_TOOLCHAIN=y\n", "", io.Discard); err != nil {
		t.Fatalf("host toolchain allowed: %v", err)
	}
	os.MkdirAll(filepath.Join(src, filepath.Dir(crossgcc)), 0o755)
	os.WriteFile(filepath.Join(src, crossgcc), []byte("#!/bin/sh\n"), 0o755)
	if err := ensureCorebootToolchain(context.Background(), src, "x230", "CONFIG_VENDOR_LENOVO=y\n", filepath.Join(t.TempDir(), "crossgcc.log"), io.Discard); err != nil {
		t.Fatalf("with crossgcc: %v", err)
	}
}
