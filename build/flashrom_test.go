package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/cpio"
	"github.com/goheads/goheads/pkg/testdisk"
	"github.com/goheads/goheads/pkg/testenv"
	"github.com/goheads/goheads/pkg/vmtest"
	"github.com/goheads/goheads/pkg/vmtest/scenario"
)

// TestElfDeps checks the library walk on Debian's flashrom (dynamic) and on
// a static Go binary (nothing to add).
func TestElfDeps(t *testing.T) {
	p := testenv.NeedTool(t, "flashrom", "flashrom")
	interp, libs, err := elfDeps(p)
	if err != nil {
		t.Fatal(err)
	}
	if interp != "/lib64/ld-linux-x86-64.so.2" {
		t.Errorf("interpreter %q", interp)
	}
	for _, want := range []string{"libc.so.6", "libpci.so.3", "libusb-1.0.so.0", "libudev.so.1"} {
		found := false
		for _, l := range libs {
			found = found || filepath.Base(l) == want
		}
		if !found {
			t.Errorf("libraries %v lack %s", libs, want)
		}
	}
	static := filepath.Join(t.TempDir(), "static")
	cmd := exec.Command("go", "build", "-o", static, "./testdata/static")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if interp, libs, err := elfDeps(static); err != nil || interp != "" || len(libs) != 0 {
		t.Errorf("static binary: %q %v %v", interp, libs, err)
	}
	fr, err := flashromFrom(static, "test")
	if err != nil {
		t.Fatalf("static flashrom: %v", err)
	}
	if len(fr.Entries) != 1 {
		t.Errorf("static flashrom: %d initramfs entries, want the binary alone", len(fr.Entries))
	}
}

// chipSize is the emulated MX25L6436 (8 MiB).
const (
	chipSize = 8 << 20
	chipName = "MX25L6436E/MX25L6445E/MX25L6465E/MX25L6473E/MX25L6473F"
)

func testROM(t *testing.T, board, stage string, user map[string]string) []byte {
	t.Helper()
	img, err := cbfs.Create(chipSize, cbfs.CreateOptions{Layout: cbfs.LayoutFMAP})
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, data []byte) {
		if err := img.Add(name, data, cbfs.TypeRaw); err != nil {
			t.Fatal(err)
		}
	}
	add("fallback/ramstage", bytes.Repeat([]byte(stage), 1000))
	add(cbfs.BoardFile, []byte(board+"\n"))
	for name, data := range user {
		add(name, []byte(data))
	}
	b, err := img.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVMFlashUpdate flashes from the menu, as an owner would: Options ->
// Flash/Update the firmware, the update on a USB disk, keep the settings.
// flashrom (the builder's CONFIG_FLASHROM packing, in the VM) writes through
// its dummy programmer to an emulated chip whose image is a file on the same
// USB disk (QEMU has no SPI flash flashrom's internal programmer drives).
// Afterwards the chip holds the update with the owner's config.user carried
// over, and the old firmware is saved on the USB disk.
func TestVMFlashUpdate(t *testing.T) {
	root, err := vmtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	testenv.NeedTool(t, "flashrom", "flashrom")
	testenv.NeedTool(t, "debugfs", "e2fsprogs")
	fr, err := BuildFlashrom(root)
	if err != nil {
		t.Fatal(err)
	}
	opts := "flashrom -p dummy:emulate=MX25L6436,image=/media/chip.bin -c " + chipName
	m := scenario.New(t, scenario.Options{Board: "qemu-tpm2", Sign: true, ConfigUser: "export CONFIG_FLASH_OPTIONS=\"" + opts + "\"\n"})

	// The board's initramfs plus flashrom, as a second archive: the
	// kernel unpacks both.
	var raw bytes.Buffer
	if err := cpio.WriteAll(&raw, fr.Entries); err != nil {
		t.Fatal(err)
	}
	frXZ, err := compressInitrd(context.Background(), raw.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(m.Artifacts.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd-flashrom.cpio.zst")
	if err := os.WriteFile(initrd, append(base, frXZ...), 0o644); err != nil {
		t.Fatal(err)
	}

	usb := filepath.Join(dir, "usb")
	os.Mkdir(usb, 0o755)
	old := testROM(t, "qemu-tpm2", "old", map[string]string{cbfs.ConfigUserName: "CONFIG_OWNER=y\n"})
	update := testROM(t, "qemu-tpm2", "new", nil)
	os.WriteFile(filepath.Join(usb, "chip.bin"), old, 0o644)
	os.WriteFile(filepath.Join(usb, "goheads-qemu-tpm2.rom"), update, 0o644)
	usbImg := filepath.Join(dir, "usb.img")
	if err := testdisk.MakeFromDir(usbImg, usb, testdisk.Options{Label: "UPDATE", BootSizeMB: 48}); err != nil {
		t.Fatal(err)
	}

	cfg := m.Config("")
	cfg.Initrd = initrd
	cfg.Disks = append(cfg.Disks, vmtest.Disk{Path: usbImg})
	vm := vmtest.StartT(t, cfg)
	vm.MustScreen(t, "TOTP Generation Failed", 2*time.Minute)
	vm.MustSend(t, "i")
	vm.MustScreen(t, "Options -->", time.Minute)
	vm.MustSend(t, "o")
	vm.MustScreen(t, "Flash/Update the firmware", time.Minute)
	vm.MustSend(t, "f")
	vm.MustScreen(t, `Firmware updates on /dev/vd\w1`, time.Minute)
	vm.MustScreen(t, "goheads-qemu-tpm2.rom", time.Minute)
	vm.MustSend(t, "1")
	vm.MustScreen(t, "Flash it, keep my settings", time.Minute)
	vm.MustSend(t, "y")
	backup := vm.MustExpectRE(t, `Saved the current firmware to /media/(goheads-backup-qemu-tpm2-\d{8}-\d{6}\.rom)`, 5*time.Minute)[1]
	vm.MustScreen(t, "Firmware updated and verified", 5*time.Minute)
	vm.MustScreen(t, "previous firmware is saved as", time.Minute)
	vm.MustSend(t, "q")
	vm.MustScreen(t, "Power Off", time.Minute)
	vm.MustSend(t, "p")
	if err := vm.Wait(time.Minute); err != nil {
		t.Fatalf("Power Off did not end QEMU: %v", err)
	}

	chip := dumpFromDisk(t, usbImg, "chip.bin")
	img, err := cbfs.Open(chip)
	if err != nil {
		t.Fatalf("chip after the update: %v", err)
	}
	if s, _ := img.Read("fallback/ramstage"); !bytes.HasPrefix(s, []byte("new")) {
		t.Error("the chip does not hold the update")
	}
	if c, _ := img.Read(cbfs.ConfigUserName); string(c) != "CONFIG_OWNER=y\n" {
		t.Errorf("owner's config.user on the chip: %q, want it kept", c)
	}
	if b := dumpFromDisk(t, usbImg, backup); !bytes.Equal(b, old) {
		t.Errorf("%s on the USB disk is not the old firmware", backup)
	}
	if !regexp.MustCompile(`Writing the new firmware \(8388608 bytes, 1 owner files kept\)`).MatchString(vm.Console()) {
		t.Errorf("console lacks the write progress line")
	}
}

// dumpFromDisk reads file from the first partition of disk image img with
// debugfs (the host does not mount it).
func dumpFromDisk(t *testing.T, img, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "part.ext4")
	if err := os.WriteFile(part, raw[2048*512:], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "dump")
	if b, err := exec.Command("debugfs", "-R", "dump /"+file+" "+out, part).CombinedOutput(); err != nil || strings.Contains(string(b), "not found") {
		t.Fatalf("debugfs dump %s: %v %s", file, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("%s not on the USB disk: %v", file, err)
	}
	return b
}

// TestStaticFlashrom builds the static flashrom from FLASHROM_SRC and
// PCIUTILS_SRC twice, in two caches: the same bytes, no shared libraries,
// the pinned version, and it reads and writes an emulated chip.
func TestStaticFlashrom(t *testing.T) {
	if os.Getenv("FLASHROM_SRC") == "" || os.Getenv("PCIUTILS_SRC") == "" {
		t.Skip("static flashrom build skipped: FLASHROM_SRC and PCIUTILS_SRC are not set (" + flashromSrcFixes + ")")
	}
	var bins [][]byte
	var path string
	for i := 0; i < 2; i++ {
		t.Setenv("GOHEADS_CACHE", t.TempDir())
		p, _, err := buildStaticFlashrom()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bins, path = append(bins, b), p
	}
	if !bytes.Equal(bins[0], bins[1]) {
		t.Fatal("two static flashrom builds differ")
	}
	if interp, libs, err := elfDeps(path); err != nil || interp != "" || len(libs) != 0 {
		t.Fatalf("static flashrom is dynamic: %q %v %v", interp, libs, err)
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "flashrom "+flashromVersion) {
		t.Fatalf("flashrom --version: %v %s", err, out)
	}
	dir := t.TempDir()
	chip, img := filepath.Join(dir, "chip.bin"), filepath.Join(dir, "new.bin")
	os.WriteFile(chip, bytes.Repeat([]byte{0xa5}, chipSize), 0o644)
	os.WriteFile(img, testROM(t, "x230", "new", nil), 0o644)
	prog := "dummy:emulate=MX25L6436,image=" + chip
	if out, err := exec.Command(path, "-p", prog, "-c", chipName, "-w", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "VERIFIED") {
		t.Fatalf("flashrom -w: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(chip)
	want, _ := os.ReadFile(img)
	if !bytes.Equal(got, want) {
		t.Fatal("the emulated chip does not hold the written image")
	}
	t.Logf("static flashrom: %d bytes", len(bins[0]))
}
