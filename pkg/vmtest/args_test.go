package vmtest

import (
	"os"
	"path/filepath"
	"testing"
)

// The machine type decides which devices the guest kernel probes; sata=off
// must only go where no disk needs the SATA bus and no firmware expects it.
func TestMachineArgs(t *testing.T) {
	if _, err := os.Stat(QBoot); err != nil {
		t.Skipf("%s missing (apt-get install qemu-system-data)", QBoot)
	}
	disk := filepath.Join(t.TempDir(), "d.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"qboot kernel boot", Config{Kernel: "bzImage", Disks: []Disk{{Path: disk}}}, "q35,sata=off,accel=tcg"},
		{"ide disk keeps sata", Config{Kernel: "bzImage", Disks: []Disk{{Path: disk, Interface: "ide"}}}, "q35,accel=tcg"},
		{"coreboot rom keeps sata", Config{BIOS: "coreboot.rom"}, "q35,accel=tcg"},
		{"explicit machine", Config{Kernel: "bzImage", Machine: "pc"}, "pc,accel=tcg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("QEMU_ACCEL", "")
			args, err := (&VM{cfg: tc.cfg}).qemuArgs(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(args) < 2 || args[0] != "-machine" || args[1] != tc.want {
				t.Fatalf("qemu args start %q, want -machine %s", args[:2], tc.want)
			}
		})
	}
}
