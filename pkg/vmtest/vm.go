// Package vmtest boots goheads in QEMU with a software TPM (swtpm) and
// drives it over the serial console: the harness behind the VM tests,
// `make run` and `make bench`.
//
// Each VM gets its own swtpm on its own state directory; pass the same
// directory to a later VM to "reboot" with the TPM's NV and keys kept, as a
// real machine would. Start always stops what it started (Stop, or the
// test's cleanup for StartT), and StartT keeps the console log of a failed
// test under out/vmtest-logs/.
//
// QEMU runs with TCG (software emulation) unless QEMU_ACCEL says otherwise
// (e.g. QEMU_ACCEL=kvm where KVM works): KVM hangs on the project's CI
// machines.
package vmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TPM selects the software TPM attached to the VM.
type TPM int

const (
	NoTPM TPM = 0
	TPM12 TPM = 1
	TPM20 TPM = 2
)

// Disk is a drive attached to the VM.
type Disk struct {
	Path string
	// Snapshot discards the VM's writes (the image is not modified).
	Snapshot bool
	// Interface is "virtio" (default, /dev/vda...) or "ide" (AHCI on q35, /dev/sda...).
	Interface string
}

// FwCfg passes a host file to the guest through QEMU's fw_cfg
// (/sys/firmware/qemu_fw_cfg/by_name/<Name>/raw). Names must start "opt/".
type FwCfg struct {
	Name, File string
}

// Config describes one VM.
type Config struct {
	Kernel string // bzImage for -kernel; empty when BIOS boots a payload itself
	Initrd string
	Append string
	// BIOS is the firmware: a coreboot ROM, SeaBIOS ("seabios"), or empty
	// for the default. With Kernel set the default is qboot: it loads the
	// kernel and leaves the TPM alone, as coreboot does (Linux starts the
	// TPM itself). SeaBIOS instead locks the TPM 2.0 platform hierarchy and
	// TPM 1.2 physical presence, which makes Heads' "Reset the TPM"
	// impossible from the OS.
	BIOS string
	// Machine is the QEMU machine type (default q35).
	Machine  string
	MemoryMB int
	CPUs     int
	TPM      TPM
	// TPMState is swtpm's state directory (created if missing). Reuse it
	// across VMs to keep sealed secrets, like a real TPM across reboots.
	TPMState string
	Disks    []Disk
	FwCfg    []FwCfg
	// AllowReboot lets a guest reboot restart the VM in place (same QEMU and
	// swtpm: PCRs reset, state kept). By default a reboot ends QEMU.
	AllowReboot bool
	// Interactive connects the serial console and QEMU's monitor mux to this
	// process's terminal (make run): Ctrl-A X quits.
	Interactive bool
	// Log, if set, receives a copy of the console output as it arrives.
	Log       io.Writer
	ExtraArgs []string
}

// VM is a running QEMU (and its swtpm).
type VM struct {
	cfg     Config
	qemu    *exec.Cmd
	swtpm   *exec.Cmd
	stdin   io.WriteCloser
	Started time.Time

	mu      sync.Mutex
	cond    *sync.Cond
	console bytes.Buffer
	pos     int // Expect consumes output up to here
	screen  *screen
	exited  bool
	exitErr error
	done    chan struct{}
	ioDone  chan struct{}
}

// ErrMissingTool is returned when qemu or swtpm is not installed.
var ErrMissingTool = errors.New("missing host tool")

// QBoot is QEMU's minimal -kernel firmware (Debian: qemu-system-data).
const QBoot = "/usr/share/qemu/qboot.rom"

// QEMUBinary is the emulator used.
const QEMUBinary = "qemu-system-x86_64"

// CheckTools reports a missing emulator or TPM simulator with the package to install.
func CheckTools(needTPM bool) error {
	if _, err := exec.LookPath(QEMUBinary); err != nil {
		return fmt.Errorf("%w: %s not found; install it: apt-get install qemu-system-x86", ErrMissingTool, QEMUBinary)
	}
	if needTPM {
		if _, err := exec.LookPath("swtpm"); err != nil {
			return fmt.Errorf("%w: swtpm not found; install it: apt-get install swtpm swtpm-tools", ErrMissingTool)
		}
	}
	return nil
}

// Start boots a VM.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	if err := CheckTools(cfg.TPM != NoTPM); err != nil {
		return nil, err
	}
	vm := &VM{cfg: cfg, done: make(chan struct{}), ioDone: make(chan struct{}), screen: newScreen(80, 24)}
	vm.cond = sync.NewCond(&vm.mu)
	var tpmArgs []string
	if cfg.TPM != NoTPM {
		sock, err := vm.startSwtpm()
		if err != nil {
			return nil, err
		}
		tpmArgs = []string{
			"-chardev", "socket,id=chrtpm,path=" + sock,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
			"-device", "tpm-tis,tpmdev=tpm0",
		}
	}
	args, err := vm.qemuArgs(tpmArgs)
	if err != nil {
		vm.stopSwtpm()
		return nil, err
	}
	vm.qemu = exec.Command(QEMUBinary, args...)
	if cfg.Interactive {
		vm.qemu.Stdin, vm.qemu.Stdout, vm.qemu.Stderr = os.Stdin, os.Stdout, os.Stderr
		close(vm.ioDone)
	} else {
		vm.stdin, err = vm.qemu.StdinPipe()
		if err != nil {
			vm.stopSwtpm()
			return nil, err
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			vm.stopSwtpm()
			return nil, err
		}
		vm.qemu.Stdout, vm.qemu.Stderr = pw, pw
		go vm.readConsole(pr)
		defer pw.Close()
	}
	vm.Started = time.Now()
	if err := vm.qemu.Start(); err != nil {
		vm.stopSwtpm()
		return nil, fmt.Errorf("start %s: %w", QEMUBinary, err)
	}
	go func() {
		err := vm.qemu.Wait()
		<-vm.ioDone
		vm.mu.Lock()
		vm.exited, vm.exitErr = true, err
		vm.cond.Broadcast()
		vm.mu.Unlock()
		vm.stopSwtpm()
		close(vm.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			vm.Kill()
		case <-vm.done:
		}
	}()
	return vm, nil
}

// Accel is the QEMU accelerator VMs use: QEMU_ACCEL, else "tcg".
func Accel() string {
	if a := os.Getenv("QEMU_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

func (vm *VM) qemuArgs(tpmArgs []string) ([]string, error) {
	c := vm.cfg
	machine := c.Machine
	if machine == "" {
		machine = "q35"
		// q35's built-in AHCI controller has six empty ports whose link
		// probing holds the kernel ~0.4 s before it may start /init (it waits
		// for all async probes). The QEMU boards' disks are virtio, so boots
		// through qboot drop it unless a disk asks for the IDE/SATA bus.
		// coreboot ROM boots keep it: coreboot's q35 port expects the device.
		if c.Kernel != "" && c.BIOS == "" && !usesIDE(c.Disks) {
			machine += ",sata=off"
		}
	}
	mem := c.MemoryMB
	if mem == 0 {
		mem = 1024
	}
	cpus := c.CPUs
	if cpus == 0 {
		cpus = 1
	}
	cpu := "max"
	args := []string{
		"-machine", machine + ",accel=" + Accel(),
		"-cpu", cpu,
		"-m", fmt.Sprint(mem),
		"-smp", fmt.Sprint(cpus),
		"-rtc", "base=utc",
		"-nodefaults", "-no-user-config",
		"-device", "virtio-rng-pci",
	}
	if c.Interactive {
		// Serial console and monitor multiplexed on the terminal: Ctrl-A X
		// quits, Ctrl-A C switches to the monitor; Ctrl-C goes to the guest.
		args = append(args, "-display", "none",
			"-chardev", "stdio,id=con0,mux=on,signal=off",
			"-serial", "chardev:con0", "-mon", "chardev=con0")
	} else {
		args = append(args, "-display", "none", "-serial", "stdio", "-monitor", "none")
	}
	if !c.AllowReboot {
		args = append(args, "-no-reboot")
	}
	switch bios := c.BIOS; {
	case bios == "seabios":
	case bios != "":
		args = append(args, "-bios", bios)
	case c.Kernel != "":
		if _, err := os.Stat(QBoot); err != nil {
			return nil, fmt.Errorf("%w: %s not found; install it: apt-get install qemu-system-data", ErrMissingTool, QBoot)
		}
		args = append(args, "-bios", QBoot)
	}
	if c.Kernel != "" {
		args = append(args, "-kernel", c.Kernel)
		if c.Initrd != "" {
			args = append(args, "-initrd", c.Initrd)
		}
		if c.Append != "" {
			args = append(args, "-append", c.Append)
		}
	}
	for i, d := range c.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return nil, fmt.Errorf("disk %d: %w", i, err)
		}
		opt := fmt.Sprintf("file=%s,format=raw,if=none,id=disk%d", d.Path, i)
		if d.Snapshot {
			opt += ",snapshot=on"
		}
		args = append(args, "-drive", opt)
		switch d.Interface {
		case "", "virtio":
			args = append(args, "-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d", i))
		case "ide":
			args = append(args, "-device", fmt.Sprintf("ide-hd,drive=disk%d,bus=ide.%d", i, i))
		default:
			return nil, fmt.Errorf("disk %d: unknown interface %q", i, d.Interface)
		}
	}
	for _, f := range c.FwCfg {
		if !strings.HasPrefix(f.Name, "opt/") {
			return nil, fmt.Errorf("fw_cfg name %q must start with opt/", f.Name)
		}
		args = append(args, "-fw_cfg", "name="+f.Name+",file="+f.File)
	}
	args = append(args, tpmArgs...)
	return append(args, c.ExtraArgs...), nil
}

func usesIDE(disks []Disk) bool {
	for _, d := range disks {
		if d.Interface == "ide" {
			return true
		}
	}
	return false
}

func (vm *VM) startSwtpm() (string, error) {
	dir := vm.cfg.TPMState
	if dir == "" {
		return "", errors.New("vmtest: TPM requested without a TPMState directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sock := filepath.Join(dir, "swtpm.sock")
	os.Remove(sock)
	args := []string{"socket",
		"--tpmstate", "dir=" + dir,
		"--ctrl", "type=unixio,path=" + sock,
		"--log", "file=" + filepath.Join(dir, "swtpm.log") + ",level=1",
		// Exit when QEMU closes the control channel.
		"--terminate",
	}
	if vm.cfg.TPM == TPM20 {
		args = append(args, "--tpm2")
	}
	vm.swtpm = exec.Command("swtpm", args...)
	vm.swtpm.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := vm.swtpm.Start(); err != nil {
		return "", fmt.Errorf("start swtpm: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock, nil
		}
	}
	vm.stopSwtpm()
	return "", fmt.Errorf("swtpm did not create %s within 10 s", sock)
}

func (vm *VM) stopSwtpm() {
	if vm.swtpm == nil || vm.swtpm.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { vm.swtpm.Wait(); close(done) }()
	select {
	case <-done: // --terminate: it exits on its own when QEMU goes
	case <-time.After(3 * time.Second):
		vm.swtpm.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			vm.swtpm.Process.Kill()
			<-done
		}
	}
}

func (vm *VM) readConsole(r io.ReadCloser) {
	defer close(vm.ioDone)
	defer r.Close()
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			vm.mu.Lock()
			vm.console.Write(buf[:n])
			vm.screen.Write(buf[:n])
			if vm.cfg.Log != nil {
				vm.cfg.Log.Write(buf[:n])
			}
			vm.cond.Broadcast()
			vm.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// Console returns everything the VM printed so far.
func (vm *VM) Console() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.console.String()
}

// Expect waits until s appears in the console output after the previous
// match, and consumes the output up to the end of s.
func (vm *VM) Expect(s string, timeout time.Duration) error {
	_, err := vm.expect(timeout, fmt.Sprintf("%q", s), func(b []byte) ([]int, []string) {
		i := bytes.Index(b, []byte(s))
		if i < 0 {
			return nil, nil
		}
		return []int{i, i + len(s)}, []string{s}
	})
	return err
}

// ExpectRE waits for a regular expression and returns its submatches.
func (vm *VM) ExpectRE(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	return vm.expect(timeout, "/"+re.String()+"/", func(b []byte) ([]int, []string) {
		m := re.FindSubmatchIndex(b)
		if m == nil {
			return nil, nil
		}
		var subs []string
		for i := 0; i+1 < len(m); i += 2 {
			if m[i] < 0 {
				subs = append(subs, "")
				continue
			}
			subs = append(subs, string(b[m[i]:m[i+1]]))
		}
		return m[:2], subs
	})
}

// ErrTimeout and ErrExited are what Expect fails with.
var (
	ErrTimeout = errors.New("timed out waiting for console output")
	ErrExited  = errors.New("VM exited before the expected output")
)

func (vm *VM) expect(timeout time.Duration, what string, match func([]byte) ([]int, []string)) ([]string, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		vm.mu.Lock()
		vm.cond.Broadcast()
		vm.mu.Unlock()
	})
	defer timer.Stop()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for {
		rest := vm.console.Bytes()[vm.pos:]
		if loc, subs := match(rest); loc != nil {
			vm.pos += loc[1]
			return subs, nil
		}
		if vm.exited {
			return nil, fmt.Errorf("waiting for %s: %w (%v)", what, ErrExited, vm.exitErr)
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("waiting %s for %s: %w", timeout, what, ErrTimeout)
		}
		vm.cond.Wait()
	}
}

// Screen is what an 80x24 terminal on the serial console shows now.
func (vm *VM) Screen() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.screen.Text()
}

// ExpectScreen waits until the terminal screen matches re and returns the
// submatches. Use it for the menu, which draws with cursor addressing.
func (vm *VM) ExpectScreen(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		vm.mu.Lock()
		vm.cond.Broadcast()
		vm.mu.Unlock()
	})
	defer timer.Stop()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for {
		if m := re.FindStringSubmatch(vm.screen.Text()); m != nil {
			return m, nil
		}
		if vm.exited {
			return nil, fmt.Errorf("waiting for /%s/ on screen: %w (%v)\n%s", re, ErrExited, vm.exitErr, vm.screen.Text())
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("waiting %s for /%s/ on screen: %w; screen:\n%s", timeout, re, ErrTimeout, vm.screen.Text())
		}
		vm.cond.Wait()
	}
}

// Send types s on the serial console. Use "\r" for Enter, as a terminal does.
func (vm *VM) Send(s string) error {
	if vm.stdin == nil {
		return errors.New("vmtest: Send on an interactive VM")
	}
	_, err := io.WriteString(vm.stdin, s)
	return err
}

// Wait waits for QEMU to exit, at most timeout, and returns its exit error.
func (vm *VM) Wait(timeout time.Duration) error {
	select {
	case <-vm.done:
		vm.mu.Lock()
		defer vm.mu.Unlock()
		return vm.exitErr
	case <-time.After(timeout):
		return fmt.Errorf("VM still running after %s: %w", timeout, ErrTimeout)
	}
}

// Done is closed when QEMU and swtpm have exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Kill stops QEMU (and with it swtpm) at once and waits for both.
func (vm *VM) Kill() {
	if vm.qemu != nil && vm.qemu.Process != nil {
		vm.qemu.Process.Kill()
	}
	<-vm.done
}
