package ui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/bootentry"
	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/diskkey"
	"github.com/goheads/goheads/pkg/flash"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/session"
	"github.com/goheads/goheads/pkg/tpm"
)

var update = flag.Bool("update", false, "rewrite golden screen captures")

// script is a Backend whose answers the test sets. The menu's real backend
// (session.Session) is exercised by the VM tests; this one checks layout
// and navigation only.
type script struct {
	mu        sync.Mutex
	totpErr   error
	state     *selectboot.State
	booted    *selectboot.Image
	sealed    bool
	gateArmed bool
	// diskKey: /boot asks for the disk unlock key for these volumes.
	diskKey    []diskkey.Device
	unsealErr  error
	headersErr error
	tries      []string
	usb        *session.USBMedia
	usbBooted  string
	// Firmware update: flashErr is CanFlash's answer, updates the USB
	// disk, reseal whether the board carries the secret over.
	flashErr error
	updates  *session.UpdateMedia
	reseal   bool
	flashed  []string // file, clean, owner passphrase
}

var testNow = time.Date(2026, 11, 25, 17, 4, 12, 0, time.UTC)

func (s *script) Board() string { return "qemu-tpm2" }
func (s *script) HasTPM() bool  { return true }
func (s *script) TOTP() (*attest.Code, error) {
	if s.totpErr != nil {
		return nil, s.totpErr
	}
	return &attest.Code{Code: "123456", At: testNow, Until: testNow.Add(18 * time.Second)}, nil
}
func (s *script) HOTPEnabled() bool { return false }
func (s *script) HOTP(context.Context) (session.HOTPStatus, error) {
	return session.HOTPNotConfigured, nil
}
func (s *script) Gate() (bool, string) {
	if s.gateArmed {
		return true, "TOTP unseal failed"
	}
	return false, ""
}
func (s *script) CheckIntegrity() *session.Integrity {
	return &session.Integrity{Boot: s.state, PCRs: map[int][]byte{7: make([]byte, 32)}}
}
func (s *script) ReleaseGate(*session.Integrity) error { s.gateArmed = false; return nil }
func (s *script) NewTOTPSecret([]byte) (*attest.NewSecret, error) {
	s.sealed = true
	return &attest.NewSecret{Raw: make([]byte, 20), Base32: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", URI: "otpauth://totp/qemu-tpm2?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}, nil
}
func (s *script) OwnerPassphrase() []byte    { return nil }
func (s *script) ResetTPM([]byte) error      { return nil }
func (s *script) Inspect() *selectboot.State { return s.state }
func (s *script) Prepare(st *selectboot.State, i int) (*selectboot.Image, error) {
	return &selectboot.Image{Entry: st.Entries[i], Cmdline: "root=/dev/vda2 ro console=ttyS0"}, nil
}
func (s *script) PrepareForced(st *selectboot.State, i int) (*selectboot.Image, error) {
	return s.Prepare(st, i)
}
func (s *script) BootImage(img *selectboot.Image) error {
	s.mu.Lock()
	s.booted = img
	s.mu.Unlock()
	return fmt.Errorf("test: not booting")
}
func (s *script) SignBoot(session.SignOptions) error { return nil }
func (s *script) Keys() []keyring.KeyInfo            { return nil }
func (s *script) KeyringEmpty() bool                 { return false }
func (s *script) BootProblem() error                 { return nil }
func (s *script) ConfigValue(string) string          { return "" }
func (s *script) SetConfig(string, string) error     { return nil }
func (s *script) SystemInfo() []string               { return []string{"Board: qemu-tpm2"} }
func (s *script) LoadSigningKey(string, []byte) (*keyring.SigningKey, error) {
	return nil, fmt.Errorf("test: no key")
}
func (s *script) DiskKeyDevices(*selectboot.State) ([]diskkey.Device, error) { return s.diskKey, nil }
func (s *script) CheckDiskKeyHeaders(*selectboot.State) ([]string, error) {
	return nil, s.headersErr
}
func (s *script) UnsealDiskKey(st *selectboot.State, img *selectboot.Image, pass []byte) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries = append(s.tries, string(pass))
	if s.unsealErr != nil {
		return nil, s.unsealErr
	}
	if string(pass) != "disk unlock passphrase" {
		return nil, fmt.Errorf("%w: %w", diskkey.ErrNotUnsealed, tpm.ErrBadAuth)
	}
	img.HasSecret = true
	return nil, nil
}
func (s *script) FindUSB() (*session.USBMedia, error) {
	if s.usb == nil {
		return nil, fmt.Errorf("no bootable USB disk: nothing found")
	}
	return s.usb, nil
}
func (s *script) BootUSB(m *session.USBMedia, i int) error {
	s.mu.Lock()
	s.usbBooted = m.Entries[i].Name
	s.mu.Unlock()
	return fmt.Errorf("test: not booting")
}
func (s *script) CanFlash() error { return s.flashErr }
func (s *script) CanReseal() bool { return s.reseal }
func (s *script) FindUpdates() (*session.UpdateMedia, error) {
	if s.updates == nil {
		return nil, fmt.Errorf("no USB disk with a firmware update (.rom or .zip) found")
	}
	return s.updates, nil
}
func (s *script) FlashFirmware(_ context.Context, m *session.UpdateMedia, file string, o session.FlashOptions) (*flash.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flashed = append(s.flashed, file, fmt.Sprint(o.Clean), string(o.Owner))
	if string(o.Owner) == "wrong" {
		return nil, fmt.Errorf("reseal: %w", tpm.ErrBadAuth)
	}
	return &flash.Result{Backup: "/tmp/flash-backup.rom", BackupCopy: m.Dir + "/goheads-backup.rom", Resealed: o.Owner != nil}, nil
}
func (s *script) LUKSDevices() ([]string, error) { return []string{"/dev/vdb"}, nil }
func (s *script) SealDiskKey(session.DiskKeyOptions) (*session.DiskKeyResult, error) {
	return nil, fmt.Errorf("test: not sealing")
}

var entries = []bootentry.Entry{
	{Name: "Debian GNU/Linux", Kind: bootentry.KindELF, Kernel: "/vmlinuz-6.1.0-goheads", Initrds: []string{"/initrd.img-6.1.0-goheads"}, Append: "root=/dev/vda2 ro"},
	{Name: "Debian GNU/Linux, with Linux 6.1.0-goheads (recovery mode)", Kind: bootentry.KindELF, Kernel: "/vmlinuz-6.1.0-goheads"},
}

// term runs the menu on an 80x24 simulated terminal.
type screenTerm struct {
	t   *testing.T
	sim tcell.SimulationScreen
	app *App
}

func start(t *testing.T, b Backend) *screenTerm {
	t.Helper()
	sim := tcell.NewSimulationScreen("UTF-8")
	if err := sim.Init(); err != nil {
		t.Fatal(err)
	}
	sim.SetSize(80, 24)
	a := New(b, Options{Screen: sim, Hooks: Hooks{Now: func() time.Time { return testNow }}})
	done := make(chan struct{})
	go func() { a.Run(); close(done) }()
	t.Cleanup(func() { a.Stop(); <-done })
	return &screenTerm{t: t, sim: sim, app: a}
}

func (tm *screenTerm) text() string {
	var b strings.Builder
	cells, w, h := tm.sim.GetContents()
	for y := 0; y < h; y++ {
		var line strings.Builder
		for x := 0; x < w; x++ {
			r := cells[y*w+x].Runes
			if len(r) == 0 {
				line.WriteRune(' ')
			} else {
				line.WriteRune(r[0])
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return b.String()
}

// wait polls the screen until it shows want.
func (tm *screenTerm) wait(want string) string {
	tm.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tm.app.Application().QueueUpdateDraw(func() {})
		if s := tm.text(); strings.Contains(s, want) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	tm.t.Fatalf("screen never showed %q:\n%s", want, tm.text())
	return ""
}

func (tm *screenTerm) key(r rune) {
	tm.sim.InjectKey(tcell.KeyRune, r, tcell.ModNone)
	time.Sleep(30 * time.Millisecond)
}

// typ types text; "\r" is Enter.
func (tm *screenTerm) typ(s string) {
	for _, r := range s {
		if r == '\r' {
			tm.sim.InjectKey(tcell.KeyEnter, 0, tcell.ModNone)
		} else {
			tm.sim.InjectKey(tcell.KeyRune, r, tcell.ModNone)
		}
	}
	time.Sleep(50 * time.Millisecond)
}

func golden(t *testing.T, name, screen string) {
	t.Helper()
	p := filepath.Join("testdata", name+".txt")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(p, []byte(screen), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/ui -update)", err)
	}
	if string(want) != screen {
		t.Errorf("%s differs from %s (rerun with -update if intended):\n%s", name, p, screen)
	}
}

// checkFits verifies every line a screen needs is whole within 80x24.
func checkFits(t *testing.T, screen string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(screen, w) {
			t.Errorf("screen lacks %q (cut off at 80x24?):\n%s", w, screen)
		}
	}
}

func TestMainMenuAndDefaultBoot(t *testing.T) {
	st := &selectboot.State{Report: &bootsign.Report{}, Entries: entries,
		Default: &selectboot.Default{N: 1, Line: entries[0].String(), Entry: &entries[0]}}
	b := &script{state: st}
	tm := start(t, b)
	s := tm.wait("Power Off")
	checkFits(t, s, "TOTP: 123456 (18 s)", "2026-11-25 17:04:12 UTC", "Default boot", "Refresh TOTP/HOTP", "Options -->", "System Info", "goheads - qemu-tpm2")
	golden(t, "main", s)

	tm.key('d')
	s = tm.wait("Boot failed")
	b.mu.Lock()
	booted := b.booted
	b.mu.Unlock()
	if booted == nil || booted.Entry.Name != "Debian GNU/Linux" {
		t.Fatalf("default boot did not boot the default entry: %+v", booted)
	}
	tm.key('o')
	s = tm.wait("Update checksums and sign /boot")
	checkFits(t, s, "Boot options -->", "TPM/TOTP/HOTP options -->", "Integrity report", "Exit to recovery shell")
}

func TestHashMismatchScreen(t *testing.T) {
	he := &bootsign.HashError{Changed: []string{"./initrd.img-6.1.0-goheads"}, Added: []string{"./evil"}}
	st := &selectboot.State{VerifyErr: fmt.Errorf("verify /boot: %w", he), Entries: entries}
	tm := start(t, &script{state: st})
	tm.wait("Power Off")
	tm.key('d')
	s := tm.wait("Boot Hash Mismatch")
	checkFits(t, s, "changed: ./initrd.img-6.1.0-goheads", "added:   ./evil", "Update checksums and sign /boot", "Integrity report")
	golden(t, "hash-mismatch", s)
}

func TestTOTPFailureAndGate(t *testing.T) {
	b := &script{totpErr: fmt.Errorf("unseal: %w", &tpm.PolicyError{PCRs: []int{7}}), gateArmed: true,
		state: &selectboot.State{Report: &bootsign.Report{}, Entries: entries}}
	tm := start(t, b)
	s := tm.wait("TOTP Generation Failed")
	checkFits(t, s, "PCR 7", "Generate new TOTP/HOTP secret", "Reset the TPM", "Exit to recovery shell")
	golden(t, "totp-failed", s)
	// The gate puts the integrity report and a confirmation before sealing.
	tm.key('g')
	tm.wait("allow sealing a new secret")
	if b.sealed {
		t.Fatal("a secret was sealed with the gate armed")
	}
	tm.key('c')
	tm.wait("TPM owner passphrase:")
	tm.typ("ownerpass\r")
	s = tm.wait("Secret: JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	if b.gateArmed {
		t.Error("sealed while the gate was armed")
	}
	if !b.sealed || (!strings.Contains(s, "▀") && !strings.Contains(s, "█")) {
		t.Errorf("no QR code shown:\n%s", s)
	}
	golden(t, "new-secret", s)
}

// TestDiskKeyBoot: a /boot with a disk unlock key asks its passphrase before
// booting, three times at most, then offers the Disk Recovery Key; changed
// LUKS headers stop with Heads' message.
func TestDiskKeyBoot(t *testing.T) {
	state := func() *selectboot.State {
		return &selectboot.State{Report: &bootsign.Report{}, Entries: entries,
			Default: &selectboot.Default{N: 1, Line: entries[0].String(), Entry: &entries[0]}}
	}
	devs := []diskkey.Device{{Path: "/dev/vdb", UUID: "0b5e5c0e-1111-4222-8333-944444444444"}}
	booted := func(b *script) *selectboot.Image {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.booted
	}

	t.Run("second try", func(t *testing.T) {
		b := &script{state: state(), diskKey: devs}
		tm := start(t, b)
		tm.wait("Power Off")
		tm.key('d')
		s := tm.wait("Disk unlock key passphrase (try 1 of 3):")
		golden(t, "disk-key", s)
		tm.typ("typo\r")
		tm.wait("(try 2 of 3)")
		if booted(b) != nil {
			t.Fatal("booted after a wrong passphrase")
		}
		tm.typ("disk unlock passphrase\r")
		tm.wait("Boot failed")
		if img := booted(b); img == nil || !img.HasSecret {
			t.Fatalf("booted %+v, want the image with the key", img)
		}
		if strings.Contains(tm.text(), "disk unlock passphrase") {
			t.Error("the passphrase was shown on screen")
		}
	})
	t.Run("three wrong", func(t *testing.T) {
		b := &script{state: state(), diskKey: devs}
		tm := start(t, b)
		tm.wait("Power Off")
		tm.key('d')
		for i := 1; i <= 3; i++ {
			tm.wait(fmt.Sprintf("(try %d of 3)", i))
			tm.typ("wrong\r")
		}
		s := tm.wait("Disk unlock key did not unseal")
		checkFits(t, s, "wrong 3 times", "Boot without the disk key (type the Disk Recovery Key in the OS)")
		if booted(b) != nil || len(b.tries) != 3 {
			t.Fatalf("tries %q, booted %v", b.tries, booted(b))
		}
		tm.key('r')
		tm.wait("Boot failed")
		if img := booted(b); img == nil || img.HasSecret {
			t.Fatalf("recovery boot: %+v, want the image without the key", img)
		}
	})
	t.Run("headers changed", func(t *testing.T) {
		b := &script{state: state(), diskKey: devs, headersErr: fmt.Errorf("check: %w", diskkey.ErrHeadersChanged)}
		tm := start(t, b)
		tm.wait("Power Off")
		tm.key('d')
		// Refused before any passphrase is asked.
		s := tm.wait("Encrypted disk keys have changed")
		if len(b.tries) != 0 {
			t.Fatal("a passphrase was asked for with changed disk keys")
		}
		checkFits(t, s, "kexec_lukshdr_hash.txt", "Back to the main menu")
		golden(t, "disk-keys-changed", s)
		if booted(b) != nil {
			t.Fatal("booted with changed disk keys without the owner choosing to")
		}
	})
}

// TestUSBBoot: Boot options -> USB boot warns that nothing is verified and
// PCR 4 gets "usb", lists the stick's entries and boots the chosen one.
func TestUSBBoot(t *testing.T) {
	st := &selectboot.State{Report: &bootsign.Report{}, Entries: entries}
	b := &script{state: st}
	tm := start(t, b)
	tm.wait("Power Off")
	tm.key('o')
	tm.wait("Boot options -->")
	tm.key('b')
	tm.wait("USB boot (not verified)")
	tm.key('u')
	tm.wait("no bootable USB disk")
	tm.key('x')
	b.usb = &session.USBMedia{Dev: "/dev/sdb1", Entries: []bootentry.Entry{{Name: "Debian installer", Kind: bootentry.KindELF, Kernel: "/vmlinuz"}}}
	tm.wait("USB boot (not verified)")
	tm.key('u')
	s := tm.wait("USB boot: /dev/sdb1")
	checkFits(t, s, "Nothing on this disk is verified", "PCR 4", "(1) Debian installer")
	tm.key('1')
	tm.wait("USB boot failed")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.usbBooted != "Debian installer" {
		t.Fatalf("booted %q", b.usbBooted)
	}
}

func TestUpdateFirmware(t *testing.T) {
	st := &selectboot.State{Report: &bootsign.Report{}, Entries: entries}
	b := &script{state: st, flashErr: fmt.Errorf("%w: flashrom is not in this firmware", session.ErrNoFlash)}
	tm := start(t, b)
	tm.wait("Power Off")
	tm.key('o')
	tm.wait("Flash/Update the firmware")
	tm.key('f')
	tm.wait("Firmware update not possible here")
	tm.key('q')

	b.flashErr = nil
	tm.wait("Flash/Update the firmware")
	tm.key('f')
	tm.wait("no USB disk with a firmware update")
	tm.key('x')

	b.updates = &session.UpdateMedia{Dev: "/dev/sdb1", Dir: "/media", Files: []string{"heads-x230-v1.zip", "x230.rom"}}
	b.reseal = true
	tm.wait("Flash/Update the firmware")
	tm.key('f')
	s := tm.wait("Firmware updates on /dev/sdb1")
	checkFits(t, s, "(1) heads-x230-v1.zip", "(2) x230.rom")
	tm.key('2')
	s = tm.wait("Flash it, keep my settings")
	checkFits(t, s, "Flash x230.rom", "saved to /dev/sdb1 first", "TOTP/HOTP secret moves")
	tm.key('y')
	tm.wait("TPM owner passphrase:")
	tm.typ("wrong\r")
	tm.wait("Wrong passphrase")
	tm.key('q')
	tm.wait("Power Off")
	tm.key('o')
	tm.wait("Flash/Update the firmware")
	tm.key('f')
	tm.wait("Firmware updates on /dev/sdb1")
	tm.key('1')
	tm.wait("Flash it clean")
	tm.key('c')
	tm.wait("TPM owner passphrase:")
	tm.typ("owner\r")
	s = tm.wait("Firmware updated and verified")
	checkFits(t, s, "saved as /media/goheads-backup.rom", "sealed to the new firmware", "Reboot now")
	b.mu.Lock()
	defer b.mu.Unlock()
	want := []string{"x230.rom", "false", "wrong", "heads-x230-v1.zip", "true", "owner"}
	if fmt.Sprint(b.flashed) != fmt.Sprint(want) {
		t.Fatalf("flashed %q, want %q", b.flashed, want)
	}
}

// With no secret to carry over (the code did not unseal in this boot), the
// update does not ask for the owner passphrase and says to generate a new
// secret afterwards.
func TestUpdateFirmwareNoSecret(t *testing.T) {
	st := &selectboot.State{Report: &bootsign.Report{}, Entries: entries}
	b := &script{state: st, reseal: true, totpErr: fmt.Errorf("unseal: %w", tpm.ErrNotProvisioned),
		updates: &session.UpdateMedia{Dev: "/dev/sdb1", Dir: "/media", Files: []string{"x230.rom"}}}
	tm := start(t, b)
	tm.wait("TOTP Generation Failed")
	tm.key('i')
	tm.wait("Power Off")
	tm.key('o')
	tm.wait("Flash/Update the firmware")
	tm.key('f')
	tm.wait("Firmware updates on /dev/sdb1")
	tm.key('1')
	s := tm.wait("Flash it, keep my settings")
	checkFits(t, s, "generate a new TOTP/HOTP secret")
	tm.key('y')
	s = tm.wait("Firmware updated and verified")
	checkFits(t, s, "After the reboot, generate a new TOTP/HOTP secret")
	b.mu.Lock()
	defer b.mu.Unlock()
	if fmt.Sprint(b.flashed) != fmt.Sprint([]string{"x230.rom", "false", ""}) {
		t.Fatalf("flashed %q", b.flashed)
	}
}
