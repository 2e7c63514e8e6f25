// Package bootdisk finds the OS's /boot and mounts it, as Heads'
// detect_boot_device: a configured CONFIG_BOOT_DEV first, else every
// partition (and partitionless disk) big enough to hold a /boot, skipping
// LUKS containers and LVM physical volumes, and taking the first that
// mounts read-only and holds a boot loader configuration. /boot stays
// read-only; writers remount it read-write briefly.
package bootdisk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FS is a filesystem (or container) type found by its superblock.
type FS string

const (
	FSUnknown FS = ""
	FSExt     FS = "ext4" // ext2/3/4 all mount as ext4
	FSVFAT    FS = "vfat"
	FSISO     FS = "iso9660"
	FSLUKS    FS = "luks"
	FSLVM     FS = "lvm"
)

// Probe reads a block device's (or image file's) superblocks.
func Probe(r io.ReaderAt) FS {
	buf := make([]byte, 0x8800)
	n, _ := r.ReadAt(buf, 0)
	buf = buf[:n]
	at := func(off int, sig string) bool {
		return len(buf) >= off+len(sig) && string(buf[off:off+len(sig)]) == sig
	}
	switch {
	case at(0, "LUKS\xba\xbe") || at(0, "SKUL\xba\xbe"):
		return FSLUKS
	case at(0x218, "LVM2 001") || at(0x18, "LABELONE"):
		return FSLVM
	case len(buf) >= 1024+58 && binary.LittleEndian.Uint16(buf[1024+56:]) == 0xEF53:
		return FSExt
	case at(0x8001, "CD001"):
		return FSISO
	case len(buf) >= 512 && buf[510] == 0x55 && buf[511] == 0xAA && (at(0x36, "FAT") || at(0x52, "FAT32")):
		return FSVFAT
	}
	return FSUnknown
}

// Partition is a block device that may hold /boot.
type Partition struct {
	Dev     string // /dev/vda1
	Sectors int64  // size in 512-byte sectors
	FS      FS
}

// minSectors: Heads skips anything below 4096 sectors (2 MiB).
const minSectors = 4096

// SysBlock and DevDir are variables so tests can point at a fake tree.
var (
	SysBlock = "/sys/class/block"
	DevDir   = "/dev"
)

// Partitions lists the partitions of every disk, and disks without
// partitions (a filesystem on the whole disk), in name order.
func Partitions() ([]Partition, error) {
	ents, err := os.ReadDir(SysBlock)
	if err != nil {
		return nil, err
	}
	hasParts := map[string]bool{}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "zram") {
			continue
		}
		names = append(names, n)
		if _, err := os.Stat(filepath.Join(SysBlock, n, "partition")); err == nil {
			// The parent disk has partitions: do not probe it as a filesystem.
			if target, err := os.Readlink(filepath.Join(SysBlock, n)); err == nil {
				hasParts[filepath.Base(filepath.Dir(target))] = true
			}
		}
	}
	sort.Strings(names)
	var out []Partition
	for _, n := range names {
		if hasParts[n] {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(SysBlock, n, "size"))
		sectors, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		p := Partition{Dev: filepath.Join(DevDir, n), Sectors: sectors}
		if f, err := os.Open(p.Dev); err == nil {
			p.FS = Probe(f)
			f.Close()
		}
		out = append(out, p)
	}
	return out, nil
}

// Skipped is a device that was not taken as /boot, with the reason.
type Skipped struct {
	Dev, Reason string
}

// NotFoundError: no /boot. LUKS lists encrypted containers seen, so the
// menu can explain that Heads needs a separate unencrypted /boot.
type NotFoundError struct {
	What    string // what was looked for; "" is a /boot partition
	Skipped []Skipped
	LUKS    []string
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	if e.What != "" {
		b.WriteString("no " + e.What + " found")
	} else {
		b.WriteString("no /boot partition found")
	}
	if len(e.LUKS) > 0 && e.What == "" {
		fmt.Fprintf(&b, " (encrypted containers on %s: goheads needs a separate, unencrypted /boot)", strings.Join(e.LUKS, ", "))
	}
	for _, s := range e.Skipped {
		fmt.Fprintf(&b, "; %s: %s", s.Dev, s.Reason)
	}
	return b.String()
}

// ErrNotFound matches *NotFoundError.
var ErrNotFound = errors.New("no /boot partition found")

func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Mounted is a mounted /boot.
type Mounted struct {
	Dev string
	Dir string
	FS  FS
	rw  bool
}

// Options for Find.
type Options struct {
	// Dir is where /boot is mounted (default "/boot").
	Dir string
	// Dev is CONFIG_BOOT_DEV: tried first, alone when it works.
	Dev string
	// Exclude lists devices not to consider (USB boot skips /boot's).
	Exclude []string
	// Accept says whether a mounted filesystem is the one wanted, and if
	// not, why (default: a boot loader configuration, HasBootConfig).
	Accept func(dir string) (ok bool, why string)
	// What names what Accept looks for in the not-found error (default
	// "/boot partition").
	What string
}

// HasBootConfig reports whether dir looks like a /boot: a GRUB, SYSLINUX
// or BootLoaderSpec configuration at its root, or under boot/ for a
// single-partition system.
func HasBootConfig(dir string) bool {
	for _, pat := range []string{"grub*", "syslinux", "isolinux", "extlinux", "loader/entries", "boot/grub*", "boot/loader/entries", "boot/syslinux"} {
		if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
			return true
		}
	}
	return false
}

// Find locates and mounts /boot read-only.
func Find(o Options) (*Mounted, error) {
	if o.Dir == "" {
		o.Dir = "/boot"
	}
	if o.Accept == nil {
		o.Accept = func(dir string) (bool, string) { return HasBootConfig(dir), "no boot loader configuration" }
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	nf := &NotFoundError{What: o.What}
	try := func(p Partition) *Mounted {
		switch {
		case slices.Contains(o.Exclude, p.Dev):
			return nil
		case p.FS == FSLUKS:
			nf.LUKS = append(nf.LUKS, p.Dev)
			nf.Skipped = append(nf.Skipped, Skipped{p.Dev, "LUKS container"})
			return nil
		case p.FS == FSLVM:
			nf.Skipped = append(nf.Skipped, Skipped{p.Dev, "LVM physical volume"})
			return nil
		case p.FS == FSUnknown:
			nf.Skipped = append(nf.Skipped, Skipped{p.Dev, "no filesystem goheads can read"})
			return nil
		case p.Sectors > 0 && p.Sectors < minSectors:
			nf.Skipped = append(nf.Skipped, Skipped{p.Dev, "smaller than 2 MiB"})
			return nil
		}
		if err := unix.Mount(p.Dev, o.Dir, string(p.FS), unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			nf.Skipped = append(nf.Skipped, Skipped{p.Dev, fmt.Sprintf("mount %s: %v", p.FS, err)})
			return nil
		}
		if ok, why := o.Accept(o.Dir); !ok {
			unix.Unmount(o.Dir, 0)
			nf.Skipped = append(nf.Skipped, Skipped{p.Dev, why})
			return nil
		}
		return &Mounted{Dev: p.Dev, Dir: o.Dir, FS: p.FS}
	}
	if o.Dev != "" {
		p := Partition{Dev: o.Dev}
		if f, err := os.Open(o.Dev); err == nil {
			p.FS = Probe(f)
			f.Close()
		} else {
			nf.Skipped = append(nf.Skipped, Skipped{o.Dev, "CONFIG_BOOT_DEV: " + err.Error()})
		}
		if m := try(p); m != nil {
			return m, nil
		}
	}
	parts, err := Partitions()
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	for _, p := range parts {
		if p.Dev == o.Dev {
			continue
		}
		if m := try(p); m != nil {
			return m, nil
		}
	}
	return nil, nf
}

// Remount switches /boot between read-only and read-write.
func (m *Mounted) Remount(rw bool) error {
	flags := uintptr(unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if !rw {
		unix.Sync()
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(m.Dev, m.Dir, string(m.FS), flags, ""); err != nil {
		return fmt.Errorf("remount %s %s: %w", m.Dir, map[bool]string{true: "read-write", false: "read-only"}[rw], err)
	}
	m.rw = rw
	return nil
}

// Writable runs f with /boot mounted read-write and puts it back read-only.
// A Mounted without Dev is a directory its creator mounted: f just runs.
func (m *Mounted) Writable(f func() error) error {
	if m.Dev == "" {
		return f()
	}
	if err := m.Remount(true); err != nil {
		return err
	}
	ferr := f()
	if err := m.Remount(false); err != nil && ferr == nil {
		return err
	}
	return ferr
}

// Unmount unmounts /boot.
func (m *Mounted) Unmount() error { return unix.Unmount(m.Dir, 0) }
