// Package kexec boots the OS kernel from the firmware: the final command
// line as Heads builds it, and kexec_file_load of bytes already in memory,
// so the kernel and initrd that were hashed are exactly the ones loaded
// (no time-of-check/time-of-use gap through the filesystem).
package kexec

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// CmdlineOptions are the inputs of the final kernel command line.
type CmdlineOptions struct {
	// Entry is the boot entry's append text (GRUB's `---` separators allowed).
	Entry string
	// Add are words the caller adds (Heads' -a: ISO parameters, forced-boot
	// colours); they go before the entry's words.
	Add []string
	// Remove are words removed from Add and Entry (the caller's -r plus
	// CONFIG_BOOT_KERNEL_REMOVE).
	Remove []string
	// BoardAdd is CONFIG_BOOT_KERNEL_ADD: appended last, each word only if
	// not already present.
	BoardAdd []string
}

// MaxCmdline is x86's COMMAND_LINE_SIZE minus the terminating NUL; Heads
// warns past it, the kernel truncates.
const MaxCmdline = 2047

// Cmdline builds the final command line as Heads' _build_final_cmdline:
// strip `---`, remove the Remove words from Add and Entry, Add then Entry,
// then each BoardAdd word not already there.
func Cmdline(o CmdlineOptions) string {
	remove := map[string]bool{}
	for _, w := range o.Remove {
		remove[w] = true
	}
	var words []string
	keep := func(ws []string) {
		for _, w := range ws {
			if w != "---" && !remove[w] {
				words = append(words, w)
			}
		}
	}
	keep(o.Add)
	keep(Words(o.Entry))
	present := map[string]bool{}
	for _, w := range words {
		present[w] = true
	}
	for _, w := range o.BoardAdd {
		if !present[w] {
			words = append(words, w)
			present[w] = true
		}
	}
	return strings.Join(words, " ")
}

// Words splits a command line on blanks, keeping double-quoted parts
// (`acpi_osi="Windows 2015"`) in one word, as the kernel parses it.
func Words(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			cur.WriteRune(r)
			have = true
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ErrCmdlineTooLong is returned for a command line the kernel would truncate.
var ErrCmdlineTooLong = errors.New("kernel command line too long")

// Load loads kernel and initrd for kexec with kexec_file_load. The bytes
// are passed through sealed memory files, never re-read from /boot.
func Load(kernel, initrd []byte, cmdline string) error {
	if len(cmdline) > MaxCmdline {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrCmdlineTooLong, len(cmdline), MaxCmdline)
	}
	kf, err := memfd("kernel", kernel)
	if err != nil {
		return err
	}
	defer kf.Close()
	flags := 0
	ifd := -1
	if len(initrd) > 0 {
		inf, err := memfd("initrd", initrd)
		if err != nil {
			return err
		}
		defer inf.Close()
		ifd = int(inf.Fd())
	} else {
		flags |= unix.KEXEC_FILE_NO_INITRAMFS
	}
	if err := unix.KexecFileLoad(int(kf.Fd()), ifd, cmdline, flags); err != nil {
		return fmt.Errorf("kexec_file_load: %w (the kernel must be a relocatable bzImage)", err)
	}
	return nil
}

// memfd puts data in an anonymous sealed file.
func memfd(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	// No writer can change the image between here and the kexec.
	unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
	return f, nil
}

// Unload drops a loaded kexec image.
func Unload() error {
	return unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD)
}

// Exec jumps into the loaded kernel. It returns only on failure.
func Exec() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
}
