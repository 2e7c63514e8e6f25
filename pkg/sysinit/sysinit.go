// Package sysinit is what PID 1 needs before any boot policy runs: the
// virtual filesystems, the environment, the console, and a supervisor that
// keeps the boot script (or a shell) alive and reaps orphans.
package sysinit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one filesystem init mounts.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	// Optional mounts may fail (the kernel may lack the filesystem).
	Optional bool
}

// Mounts are Heads' virtual filesystems (initrd/init and etc/fstab).
var Mounts = []Mount{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "gid=5,mode=620", Optional: true},
	// Secrets live under /tmp/secret: tmpfs, never on disk.
	{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777"},
	{Source: "securityfs", Target: "/sys/kernel/security", FSType: "securityfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Optional: true},
}

// MountAll mounts ms in order. A filesystem already mounted there (EBUSY, as
// devtmpfs can be) counts as done. Optional mounts only warn.
func MountAll(ms []Mount, warn io.Writer) error {
	for _, m := range ms {
		if err := os.MkdirAll(m.Target, 0o755); err != nil && !m.Optional {
			return fmt.Errorf("mkdir %s: %w", m.Target, err)
		}
		err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data)
		if err == nil || errors.Is(err, unix.EBUSY) {
			continue
		}
		if m.Optional {
			fmt.Fprintf(warn, "init: mount %s on %s: %v (continuing)\n", m.FSType, m.Target, err)
			continue
		}
		return fmt.Errorf("mount %s on %s: %w", m.FSType, m.Target, err)
	}
	return nil
}

// Env is the environment init gives its children.
func Env(term string) []string {
	return []string{
		"PATH=/bin:/bbin:/sbin",
		"HOME=/",
		"TERM=" + term,
		"PWD=/",
	}
}

// ConsoleTerm picks a TERM the menu can draw with. There is no terminfo
// database in the initramfs; tcell knows "linux", "vt100"/"vt102" and
// "xterm*" built in, so a known TERM is kept and anything else (missing,
// "dumb", unknown) becomes "linux": ANSI colours that the Linux console and
// the terminal programs people use on a serial line all understand.
func ConsoleTerm(kernelTerm string, serial bool) string {
	switch {
	case kernelTerm == "linux" || kernelTerm == "vt100" || kernelTerm == "vt102" || strings.HasPrefix(kernelTerm, "xterm"):
		return kernelTerm
	}
	return "linux"
}

// SerialSize is the terminal size assumed on a serial console, which cannot
// report one: the size the menu is laid out for.
const SerialCols, SerialLines = 80, 24

// SerialConsole reports whether the kernel's last console= argument (the one
// /dev/console follows) is a serial port.
func SerialConsole(cmdline string) bool {
	serial := false
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "console="); ok {
			serial = strings.HasPrefix(v, "ttyS") || strings.HasPrefix(v, "ttyAMA") || strings.HasPrefix(v, "hvc")
		}
	}
	return serial
}

// Child is a program init keeps running.
type Child struct {
	Path string
	Args []string
	Env  []string
	// Console is the terminal the child owns (its controlling TTY).
	Console string
}

func (c Child) start() (int, error) {
	tty, err := os.OpenFile(c.Console, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open console %s: %w", c.Console, err)
	}
	defer tty.Close()
	attr := &os.ProcAttr{
		Dir:   "/",
		Env:   c.Env,
		Files: []*os.File{tty, tty, tty},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	}
	p, err := os.StartProcess(c.Path, append([]string{c.Path}, c.Args...), attr)
	if err != nil {
		return 0, err
	}
	return p.Pid, nil
}

// Supervise starts child and restarts it whenever it exits, reaping every
// other process that dies on the way (PID 1 inherits orphans). It never
// returns. A child that dies within a second of starting is restarted after
// a pause, so a broken boot script does not spin the CPU.
func Supervise(child Child, log io.Writer) {
	for {
		started := time.Now()
		pid, err := child.start()
		if err != nil {
			fmt.Fprintf(log, "init: start %s: %v\n", child.Path, err)
			time.Sleep(2 * time.Second)
			continue
		}
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(-1, &ws, 0, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || got == pid {
				break
			}
		}
		if time.Since(started) < time.Second {
			fmt.Fprintf(log, "init: %s exited at once; restarting in 2 s\n", child.Path)
			time.Sleep(2 * time.Second)
		}
	}
}

// PowerOff syncs and powers the machine off.
func PowerOff() error {
	ShutdownTPM()
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// Reboot syncs and restarts the machine.
func Reboot() error {
	ShutdownTPM()
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// ShutdownTPM is called by PowerOff and Reboot before power goes away; the
// TPM layer sets it (sysinit does not import it) so TPM 2.0 sees an orderly
// shutdown and does not count a dictionary-attack failure at the next boot.
var ShutdownTPM = func() {}

// SecretDir is where secrets may live during a boot (tmpfs).
const SecretDir = "/tmp/secret"

// WipeSecrets overwrites and removes everything under SecretDir, as Heads
// shreds tmp/secret before a recovery shell.
func WipeSecrets() error {
	var errs []error
	filepath.WalkDir(SecretDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			if st, err := f.Stat(); err == nil {
				f.Write(make([]byte, st.Size()))
				f.Sync()
			}
			f.Close()
		}
		return nil
	})
	if err := os.RemoveAll(SecretDir); err != nil {
		errs = append(errs, err)
	}
	if err := os.MkdirAll(SecretDir, 0o700); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// KeyWindow waits for one key on the terminal tty (no Enter needed), as
// Heads' init offers 'r' (recovery) and 'o' (OEM reset) for 0.1 s. The
// window stays open at least min and until busy is closed (nil: min only):
// init measures the ROM's files meanwhile, so the owner gets at least
// Heads' 0.1 s without it being added to every boot. Only echo and line
// buffering are turned off, not output processing, so init's own lines
// print normally meanwhile. It returns 0 when no key came.
func KeyWindow(tty string, min time.Duration, busy <-chan struct{}) (byte, error) {
	fd, err := unix.Open(tty, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return 0, err
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return 0, err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(min)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			if busy == nil {
				return 0, nil
			}
			select {
			case <-busy:
				return 0, nil
			default:
			}
			// Poll in short slices: a channel cannot be polled with the tty.
			wait = 5 * time.Millisecond
		}
		n, err := unix.Poll(fds, int(wait.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			continue
		}
		b := make([]byte, 1)
		if n, _ := unix.Read(fd, b); n == 1 {
			return b[0], nil
		}
		if fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			return 0, nil
		}
	}
}
