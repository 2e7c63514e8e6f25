// Package scenario prepares complete machines for VM tests: an owner with a
// real GnuPG key, a TPM whose state was set up on the host through swtpm
// (reset, rollback counter), a /boot signed by goheads' signer and bound to
// that counter, the disk image, and the CBFS image carrying the owner's
// public key (the ROM keyring), as an owner would have after setup.
package scenario

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/bootentry"
	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/cpio"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/testdisk"
	"github.com/goheads/goheads/pkg/testenv"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
	"github.com/goheads/goheads/pkg/vmtest"
)

// Owner is the machine's owner: a GnuPG key made by the real gpg.
type Owner struct {
	Home       string // GNUPGHOME
	SecretKey  string // armored secret key export (passphrase-protected)
	Passphrase string
	Public     []byte // binary public key export
}

// NewOwner makes an ed25519 signing key with gpg.
func NewOwner(t testing.TB) *Owner {
	t.Helper()
	testenv.NeedTool(t, "gpg", "gnupg")
	dir := t.TempDir()
	o := &Owner{Home: filepath.Join(dir, "gnupg"), SecretKey: filepath.Join(dir, "owner-secret.asc"), Passphrase: "owner key passphrase"}
	os.MkdirAll(o.Home, 0o700)
	gpg := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", o.Home, "--batch", "--pinentry-mode", "loopback", "--passphrase", o.Passphrase}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	gpg("--quick-gen-key", "goheads Test Owner <owner@example.org>", "ed25519", "sign", "never")
	os.WriteFile(o.SecretKey, gpg("--armor", "--export-secret-keys"), 0o600)
	o.Public = gpg("--export")
	return o
}

// Machine is a prepared VM.
type Machine struct {
	Artifacts vmtest.Artifacts
	TPM       vmtest.TPM
	TPMState  string
	CBFS      string
	Disk      string
	// Boot is the host copy of the disk's /boot tree.
	Boot string
	// CounterID is the rollback counter /boot is bound to.
	CounterID string
	Owner     *Owner
	OwnerPass []byte
	// LUKS is the encrypted disk's image (a whole disk, LUKSDev in the
	// VM), with LUKSUUID, opened by the Disk Recovery Key DRK.
	LUKS, LUKSDev, LUKSUUID, DRK string
	// KeyDisk is a USB stick image whose partition KeyDev holds the
	// owner's exported secret key as KeyFile.
	KeyDisk, KeyDev, KeyFile string
	// USBDisk is the bootable USB disk, USBDev its partition in the VM.
	USBDisk, USBDev string
	persistent      bool
	dir             string
}

// LUKSOptions describe the encrypted disk.
type LUKSOptions struct {
	Type  string // "luks1" or "luks2"
	PBKDF string // "pbkdf2" or "argon2id"
	// OSCrypttab gives the OS initrd a crypttab for the disk (as
	// Debian's cryptroot has), in an initrd shaped like Debian's: an
	// early archive, then the zstd-compressed main one.
	OSCrypttab bool
}

// Options describe a machine.
type Options struct {
	Board string
	// Sign signs /boot (with the first entry saved as default).
	Sign bool
	// ConfigUser, when set, goes into CBFS as heads/initrd/etc/config.user.
	ConfigUser string
	// KernelCmdline is the test OS's grub.cfg command line.
	KernelCmdline string
	// LUKS, when set, adds an encrypted disk made by cryptsetup.
	LUKS *LUKSOptions
	// KeyDisk adds a USB stick with the owner's secret key.
	KeyDisk bool
	// Persistent keeps the VM's writes to the disks across boots.
	Persistent bool
	// USBBoot adds a bootable USB disk: a test OS whose command line has
	// USBOSArg, unsigned.
	USBBoot bool
}

// USBOSArg marks the USB disk's test OS on its command line.
const USBOSArg = "goheads-usb-os"

// LUKSTestUUID is the encrypted disk's UUID (fixed, so the OS crypttab
// can name it).
const LUKSTestUUID = "9c3b7f1e-5a2d-4c8b-8e6f-0123456789ab"

// New prepares a machine.
func New(t testing.TB, o Options) *Machine {
	t.Helper()
	a := vmtest.BoardArtifacts(t, o.Board)
	fam := tpm.Family20
	m := &Machine{Artifacts: a, TPM: vmtest.TPM20, dir: t.TempDir(), OwnerPass: []byte("owner passphrase")}
	if strings.HasSuffix(o.Board, "tpm1") {
		fam, m.TPM = tpm.Family12, vmtest.TPM12
	}
	m.TPMState = filepath.Join(m.dir, "vtpm")
	m.Boot = filepath.Join(m.dir, "boot")
	m.CBFS = filepath.Join(m.dir, "cbfs.img")
	m.Disk = filepath.Join(m.dir, "disk.img")
	m.Owner = NewOwner(t)

	// The TPM as "Reset the TPM" leaves it, with a rollback counter.
	os.MkdirAll(m.TPMState, 0o700)
	sim := tpmtest.StartWithState(t, fam, m.TPMState)
	tp := sim.TPM()
	if err := tp.Reset(m.OwnerPass); err != nil {
		t.Fatal(err)
	}
	id, err := tp.CounterCreate(m.OwnerPass)
	if err != nil {
		t.Fatal(err)
	}
	m.CounterID = id

	root, err := vmtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmdline := o.KernelCmdline
	if cmdline == "" {
		cmdline = "console=ttyS0 quiet"
	}
	files, err := testdisk.StandardFiles(root, a.Kernel, cmdline)
	if err != nil {
		t.Fatal(err)
	}
	m.persistent = o.Persistent
	next := 'b'
	if o.LUKS != nil {
		m.makeLUKS(t, *o.LUKS)
		m.LUKSDev = "/dev/vd" + string(next)
		next++
		if o.LUKS.OSCrypttab {
			tab := "vdb_crypt UUID=" + m.LUKSUUID + " none luks,discard\n"
			files[1].Data = debianInitrd(t, files[1].Data, cpio.Dir("cryptroot", 0o755), cpio.File("cryptroot/crypttab", 0o644, []byte(tab)))
		}
	}
	if o.KeyDisk {
		m.makeKeyDisk(t)
		m.KeyDev = "/dev/vd" + string(next) + "1"
		next++
	}
	if o.USBBoot {
		usbFiles, err := testdisk.StandardFiles(root, a.Kernel, "console=ttyS0 quiet "+USBOSArg)
		if err != nil {
			t.Fatal(err)
		}
		m.USBDisk = filepath.Join(m.dir, "usb-boot.img")
		if err := testdisk.Make(m.USBDisk, testdisk.Options{Files: usbFiles, Label: "LIVE"}); err != nil {
			t.Fatal(err)
		}
		m.USBDev = "/dev/vd" + string(next) + "1"
	}
	if err := testdisk.WriteTree(m.Boot, files); err != nil {
		t.Fatal(err)
	}
	if o.Sign {
		m.sign(t, tp, 1)
	}
	sim.Stop()

	m.SetCBFS(t, o.ConfigUser)
	m.WriteDisk(t)
	return m
}

// sign signs the /boot tree as kexec-sign-config would, saving entry def.
func (m *Machine) sign(t testing.TB, tp *tpm.TPM, def int) {
	t.Helper()
	data, err := os.ReadFile(m.Owner.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyring.LoadSigningKey(data, []byte(m.Owner.Passphrase), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Load(m.Owner.Public)
	if err != nil {
		t.Fatal(err)
	}
	opts := bootsign.SignOptions{BootDir: m.Boot, Key: key, Keyring: kr, UpdateHashes: true,
		Counter: bootsign.TPMCounter{T: tp}, CounterID: m.CounterID}
	if def > 0 {
		res, err := bootentry.Scan(m.Boot, nil)
		if err != nil || len(res.Entries) < def {
			t.Fatalf("boot entries: %v %+v", err, res)
		}
		e := res.Entries[def-1]
		opts.Files, opts.Remove, err = bootsign.DefaultFiles(m.Boot, def, e.String(), e.Files())
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bootsign.Sign(opts); err != nil {
		t.Fatalf("sign /boot: %v", err)
	}
}

// WriteDisk (re)builds the disk image from the /boot tree.
func (m *Machine) WriteDisk(t testing.TB) {
	t.Helper()
	if err := testdisk.MakeFromDir(m.Disk, m.Boot, testdisk.Options{}); err != nil {
		t.Fatal(err)
	}
}

// Tamper appends a byte to a /boot file and rebuilds the disk: the
// signature and manifests stay, the file no longer matches.
func (m *Machine) Tamper(t testing.TB, rel string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(m.Boot, rel), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	m.WriteDisk(t)
}

// Config is the VM configuration for this machine.
func (m *Machine) Config(appendArgs string) vmtest.Config {
	return vmtest.Config{
		Kernel: m.Artifacts.Kernel, Initrd: m.Artifacts.Initrd,
		Append:   m.Artifacts.Cmdline + " " + appendArgs,
		TPM:      m.TPM,
		TPMState: m.TPMState,
		Disks:    m.disks(),
		FwCfg:    []vmtest.FwCfg{{Name: "opt/goheads/cbfs", File: m.CBFS}},
	}
}

func (m *Machine) disks() []vmtest.Disk {
	d := []vmtest.Disk{{Path: m.Disk, Snapshot: !m.persistent}}
	if m.LUKS != "" {
		d = append(d, vmtest.Disk{Path: m.LUKS, Snapshot: !m.persistent})
	}
	if m.KeyDisk != "" {
		d = append(d, vmtest.Disk{Path: m.KeyDisk, Snapshot: true})
	}
	if m.USBDisk != "" {
		d = append(d, vmtest.Disk{Path: m.USBDisk, Snapshot: true})
	}
	return d
}

// makeLUKS formats the encrypted disk with cryptsetup, the DRK as its
// passphrase in slot 0. KDF costs are cryptsetup's minimums where allowed:
// the VM runs without KVM.
func (m *Machine) makeLUKS(t testing.TB, o LUKSOptions) {
	t.Helper()
	testenv.NeedTool(t, "cryptsetup", "cryptsetup-bin")
	m.LUKS = filepath.Join(m.dir, "luks.img")
	m.LUKSUUID = LUKSTestUUID
	m.DRK = "disk recovery key"
	if err := os.WriteFile(m.LUKS, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(m.LUKS, 32<<20); err != nil {
		t.Fatal(err)
	}
	args := []string{"luksFormat", "--batch-mode", "--type", o.Type, "--uuid", m.LUKSUUID, "--key-file", "-", "--pbkdf", o.PBKDF}
	if o.PBKDF == "pbkdf2" {
		args = append(args, "--pbkdf-force-iterations", "1000", "--hash", "sha256")
	} else {
		args = append(args, "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1")
	}
	if o.Type == "luks2" {
		args = append(args, "--luks2-metadata-size", "16k", "--luks2-keyslots-size", "4m")
	}
	cmd := exec.Command("cryptsetup", append(args, m.LUKS)...)
	cmd.Stdin = strings.NewReader(m.DRK)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// AddKeyslotOnHost adds a passphrase to the encrypted disk with the host's
// cryptsetup, as an owner (or an attacker) changing the disk's keys would.
func (m *Machine) AddKeyslotOnHost(t testing.TB, newPass string) {
	t.Helper()
	keyFile := filepath.Join(m.dir, "new-key")
	if err := os.WriteFile(keyFile, []byte(newPass), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cryptsetup", "luksAddKey", "--batch-mode", "--key-file", "-", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", m.LUKS, keyFile)
	cmd.Stdin = strings.NewReader(m.DRK)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup luksAddKey: %v: %s", err, out)
	}
}

// makeKeyDisk writes a USB stick holding the owner's secret key export.
func (m *Machine) makeKeyDisk(t testing.TB) {
	t.Helper()
	dir := filepath.Join(m.dir, "usb")
	os.MkdirAll(dir, 0o700)
	data, err := os.ReadFile(m.Owner.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	m.KeyFile = "owner-secret.asc"
	if err := os.WriteFile(filepath.Join(dir, m.KeyFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	m.KeyDisk = filepath.Join(m.dir, "usb.img")
	if err := testdisk.MakeFromDir(m.KeyDisk, dir, testdisk.Options{Label: "USBKEY", BootSizeMB: 8}); err != nil {
		t.Fatal(err)
	}
}

// debianInitrd reshapes a testos initrd the way initramfs-tools builds
// one: an uncompressed early archive (microcode), then the main archive
// compressed by the real zstd, with extra entries in a second archive
// inside the compressed stream.
func debianInitrd(t testing.TB, testos []byte, extra ...cpio.Entry) []byte {
	t.Helper()
	testenv.NeedTool(t, "zstd", "zstd")
	var early, more bytes.Buffer
	if err := cpio.WriteAll(&early, []cpio.Entry{cpio.Dir("kernel", 0o755), cpio.Dir("kernel/x86", 0o755), cpio.Dir("kernel/x86/microcode", 0o755),
		cpio.File("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("not really microcode"))}); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteAll(&more, extra); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("zstd", "-q", "-c", "-19")
	cmd.Stdin = io.MultiReader(bytes.NewReader(testos), &more)
	z, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	return append(early.Bytes(), z...)
}

// SetCBFS rewrites the machine's CBFS image with the owner's key and
// configUser (empty: none), as flashing new settings would.
func (m *Machine) SetCBFS(t testing.TB, configUser string) {
	t.Helper()
	files := []cbfs.Content{{Name: cbfs.UserPrefix + ".gnupg/pubring.gpg", Data: m.Owner.Public, Type: cbfs.TypeRaw}}
	if configUser != "" {
		files = append(files, cbfs.Content{Name: cbfs.ConfigUserName, Data: []byte(configUser), Type: cbfs.TypeRaw})
	}
	img, err := cbfs.Fit(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.WriteFile(m.CBFS); err != nil {
		t.Fatal(err)
	}
}
