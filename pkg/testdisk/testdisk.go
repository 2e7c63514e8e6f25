// Package testdisk makes disk images for tests and `make run` without root
// and without loop devices: an MBR partition table whose first partition is
// an ext4 /boot made with `mkfs.ext4 -d`, holding a kernel, an initrd whose
// /init prints a marker (tools/testos), and a grub.cfg as a distribution
// writes it.
package testdisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/goheads/goheads/pkg/cpio"
)

const sector = 512

// partStart is where the first partition begins (1 MiB, as fdisk aligns).
const partStart = 2048

// BootFile is one file under /boot.
type BootFile struct {
	Path string // relative to /boot, e.g. "grub/grub.cfg"
	Data []byte
	Mode os.FileMode
}

// Options describe a disk.
type Options struct {
	// Files populate /boot.
	Files []BootFile
	// BootSizeMB is the size of the /boot partition (default 64).
	BootSizeMB int
	// Label is the ext4 volume label.
	Label string
	// ExtraPartitions are raw images (e.g. a LUKS volume) appended as
	// partitions 2, 3, ...
	ExtraPartitions []string
}

// Make writes a disk image to path.
func Make(path string, o Options) error {
	tmp, err := os.MkdirTemp("", "testdisk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "boot")
	if err := WriteTree(root, o.Files); err != nil {
		return err
	}
	return MakeFromDir(path, root, o)
}

// WriteTree writes files under root.
func WriteTree(root string, files []BootFile) error {
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return err
		}
	}
	// mkfs.ext4 creates lost+found; having it in the tree from the start
	// makes the tree signed on the host equal the filesystem's.
	return os.MkdirAll(filepath.Join(root, "lost+found"), 0o700)
}

// MakeFromDir writes a disk image whose /boot partition holds the tree at
// root (o.Files is ignored).
func MakeFromDir(path, root string, o Options) error {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		return fmt.Errorf("mkfs.ext4 not found; install it: apt-get install e2fsprogs")
	}
	tmp, err := os.MkdirTemp("", "testdisk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	size := o.BootSizeMB
	if size == 0 {
		size = 64
	}
	label := o.Label
	if label == "" {
		label = "boot"
	}
	fsImg := filepath.Join(tmp, "boot.ext4")
	if err := os.WriteFile(fsImg, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(fsImg, int64(size)<<20); err != nil {
		return err
	}
	// Fixed UUID and hash seed: the same files give the same image layout.
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-L", label, "-U", "2e1dbc7e-6f1a-4d5e-9a51-0000000000b0",
		"-E", "hash_seed=2e1dbc7e-6f1a-4d5e-9a51-0000000000b1", "-d", root, fsImg)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 -d: %v: %s", err, out)
	}
	parts := append([]string{fsImg}, o.ExtraPartitions...)
	return assemble(path, parts)
}

// assemble writes an MBR disk with one primary partition per image.
func assemble(path string, parts []string) error {
	if len(parts) > 4 {
		return fmt.Errorf("at most 4 partitions")
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	mbr := make([]byte, sector)
	binary.LittleEndian.PutUint32(mbr[440:], 0x60d5c0de) // disk signature
	start := int64(partStart)
	type span struct{ start, size int64 }
	var spans []span
	for _, p := range parts {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		n := (st.Size() + sector - 1) / sector
		spans = append(spans, span{start, n})
		start += (n + 2047) / 2048 * 2048
	}
	for i, s := range spans {
		e := mbr[446+16*i : 446+16*(i+1)]
		e[0] = 0x00
		copy(e[1:4], []byte{0xfe, 0xff, 0xff}) // CHS unused
		e[4] = 0x83                            // Linux
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], uint32(s.start))
		binary.LittleEndian.PutUint32(e[12:], uint32(s.size))
	}
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := out.Write(mbr); err != nil {
		return err
	}
	for i, p := range parts {
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		if _, err := out.Seek(spans[i].start*sector, io.SeekStart); err != nil {
			in.Close()
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	end := start * sector
	return out.Truncate(end)
}

// BuildTestOS compiles tools/testos (from the goheads tree at root) into a
// static binary.
func BuildTestOS(root, dst string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dst, "./tools/testos")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build tools/testos: %v: %s", err, out)
	}
	return nil
}

// TestOSInitrd is a newc archive whose /init is the testos binary at bin,
// plus any extra entries.
func TestOSInitrd(bin string, extra ...cpio.Entry) ([]byte, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	entries := append([]cpio.Entry{
		cpio.File("init", 0o755, b),
		cpio.Dir("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Dir("proc", 0o755),
	}, extra...)
	var buf bytes.Buffer
	if err := cpio.WriteAll(&buf, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DebianGrubCfg is a grub.cfg shaped like Debian 12's update-grub output
// for a separate /boot partition, with the given kernel command line.
func DebianGrubCfg(kernel, initrd, cmdline string) []byte {
	r := strings.NewReplacer("@K@", kernel, "@I@", initrd, "@C@", cmdline)
	return []byte(r.Replace(debianGrub))
}

const debianGrub = `#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
set default="0"
function load_video {
  insmod all_video
}
terminal_output gfxterm
set timeout=5
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
	set gfxpayload="${1}"
}
set linux_gfx_mode=
export linux_gfx_mode
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-2e1dbc7e' {
	load_video
	insmod gzio
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	search --no-floppy --fs-uuid --set=root 2e1dbc7e-6f1a-4d5e-9a51-0000000000b0
	echo	'Loading Linux 6.1.0-goheads ...'
	linux	/@K@ @C@
	echo	'Loading initial ramdisk ...'
	initrd	/@I@
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-2e1dbc7e' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-goheads' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-6.1.0-goheads-advanced-2e1dbc7e' {
		load_video
		insmod gzio
		insmod part_msdos
		insmod ext2
		set root='hd0,msdos1'
		search --no-floppy --fs-uuid --set=root 2e1dbc7e-6f1a-4d5e-9a51-0000000000b0
		echo	'Loading Linux 6.1.0-goheads ...'
		linux	/@K@ @C@
		echo	'Loading initial ramdisk ...'
		initrd	/@I@
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-goheads (recovery mode)' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-6.1.0-goheads-recovery-2e1dbc7e' {
		load_video
		insmod gzio
		insmod part_msdos
		insmod ext2
		set root='hd0,msdos1'
		search --no-floppy --fs-uuid --set=root 2e1dbc7e-6f1a-4d5e-9a51-0000000000b0
		echo	'Loading Linux 6.1.0-goheads ...'
		linux	/@K@ @C@ single
		echo	'Loading initial ramdisk ...'
		initrd	/@I@
	}
}
### END /etc/grub.d/10_linux ###
`

// StandardFiles are the default /boot: the given kernel as
// vmlinuz-6.1.0-goheads, a testos initrd, and a Debian-style grub.cfg.
func StandardFiles(root, kernel, cmdline string) ([]BootFile, error) {
	tmp, err := os.MkdirTemp("", "testos-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "testos")
	if err := BuildTestOS(root, bin); err != nil {
		return nil, err
	}
	initrd, err := TestOSInitrd(bin)
	if err != nil {
		return nil, err
	}
	k, err := os.ReadFile(kernel)
	if err != nil {
		return nil, err
	}
	return []BootFile{
		{Path: "vmlinuz-6.1.0-goheads", Data: k},
		{Path: "initrd.img-6.1.0-goheads", Data: initrd},
		{Path: "grub/grub.cfg", Data: DebianGrubCfg("vmlinuz-6.1.0-goheads", "initrd.img-6.1.0-goheads", cmdline)},
	}, nil
}

// Standard builds the default test disk from StandardFiles.
func Standard(root, kernel, path, cmdline string) error {
	files, err := StandardFiles(root, kernel, cmdline)
	if err != nil {
		return err
	}
	return Make(path, Options{Files: files})
}
