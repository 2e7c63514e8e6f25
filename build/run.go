package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goheads/goheads/pkg/testdisk"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/vmtest"
)

// vmConfig is how a board boots in QEMU: the board's kernel and initramfs
// under qboot, its TPM family through swtpm with state in
// out/<board>/vtpm (so sealed secrets survive like a real TPM), and a disk.
func vmConfig(o *Options, b *Board, disk string) vmtest.Config {
	dir := o.OutDir(b)
	cfg := vmtest.Config{
		Kernel:   filepath.Join(dir, "bzImage"),
		Initrd:   filepath.Join(dir, RawInitrdName), // see RawInitrdName
		Append:   b.Cmdline(),
		MemoryMB: 1024,
		TPMState: filepath.Join(dir, "vtpm"),
	}
	switch b.TPMFamily() {
	case tpm.Family20:
		cfg.TPM = vmtest.TPM20
	case tpm.Family12:
		cfg.TPM = vmtest.TPM12
	}
	if disk != "" {
		cfg.Disks = []vmtest.Disk{{Path: disk}}
	}
	if b.Config.Bool("CONFIG_COREBOOT") {
		// coreboot loads the kernel and initramfs from its own CBFS.
		cfg.Kernel, cfg.Initrd, cfg.Append = "", "", ""
		cfg.BIOS = o.romPath(b)
	} else {
		cfg.FwCfg = []vmtest.FwCfg{{Name: FwCfgCBFS, File: o.userCBFSPath(b)}}
	}
	return cfg
}

// Run builds the board and boots it on this terminal.
func Run(ctx context.Context, o *Options, b *Board) error {
	if err := vmtest.CheckTools(b.TPMFamily() != 0); err != nil {
		return &fixError{what: err.Error(), fix: "apt-get install qemu-system-x86 swtpm swtpm-tools"}
	}
	bd, err := BuildAll(ctx, o, b)
	if err != nil {
		return err
	}
	if b.Config.Bool("CONFIG_COREBOOT") {
		if _, err := BuildROM(ctx, o, b, os.Stderr); err != nil {
			return err
		}
	}
	disk := filepath.Join(bd.Dir, "disk.img")
	if _, err := os.Stat(disk); err != nil {
		fmt.Fprintf(os.Stderr, "build: making %s (a /boot with a test OS)\n", disk)
		if err := testdisk.Standard(o.Root, bd.Kernel.BzImage, disk, "console=ttyS0 quiet"); err != nil {
			return err
		}
	}
	cfg := vmConfig(o, b, disk)
	cfg.Interactive = true
	fmt.Fprintf(os.Stderr, "build: booting %s in QEMU (%s TPM state in %s); quit with Ctrl-A X or `poweroff`\n", b.Name, b.TPMFamily(), cfg.TPMState)
	vm, err := vmtest.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-vm.Done()
	return nil
}
