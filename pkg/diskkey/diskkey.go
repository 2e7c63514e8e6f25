// Package diskkey is Heads' TPM Disk Unlock Key (DUK): 128 random bytes
// added to the LUKS volumes' keyslots, sealed in the TPM to the firmware's
// measurements, the LUKS headers (PCR 6) and the owner's DUK passphrase,
// and handed to the OS in an initrd appended in memory at boot. The Disk
// Recovery Key (the volume's existing passphrase) always keeps working.
//
// Formats follow linuxboot/heads (aedae4ff): kexec-seal-key.sh,
// kexec-insert-key.sh, qubes-measure-luks.sh.
package diskkey

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/cpio"
	"github.com/goheads/goheads/pkg/luks"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/tpm"
)

// Files in the signed /boot set.
const (
	KeyDevicesFile = "kexec_key_devices.txt"
	HeaderHashFile = "kexec_lukshdr_hash.txt"
	OverridesFile  = "kexec_initrd_crypttab_overrides.txt"
)

const (
	// KeySize is the size of the disk unlock key.
	KeySize = 128
	// MinPassphrase is Heads' minimum DUK passphrase length.
	MinPassphrase = 12
	// Tries is how many DUK passphrases are tried before offering the
	// recovery key, as Heads.
	Tries = 3
)

// DUKPCRs are the PCRs the disk key is sealed to.
var DUKPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

// Device is a LUKS volume the key unlocks: kexec_key_devices.txt lines
// "<block device> <LUKS UUID>".
type Device struct {
	Path, UUID string
}

// ParseKeyDevices reads kexec_key_devices.txt.
func ParseKeyDevices(b []byte) ([]Device, error) {
	var out []Device
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || !strings.HasPrefix(f[0], "/") {
			return nil, fmt.Errorf("%s:%d: want '<device path> <UUID>'", KeyDevicesFile, n)
		}
		out = append(out, Device{Path: f[0], UUID: f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no devices", KeyDevicesFile)
	}
	return out, nil
}

// FormatKeyDevices writes kexec_key_devices.txt.
func FormatKeyDevices(devs []Device) []byte {
	var b bytes.Buffer
	for _, d := range devs {
		fmt.Fprintf(&b, "%s %s\n", d.Path, d.UUID)
	}
	return b.Bytes()
}

// backupName is where Heads saves a device's header backup.
func backupName(dev string) string { return "/tmp/lukshdr-" + strings.ReplaceAll(dev, "/", "_") }

// HeaderDump is Heads' /tmp/luksDump.txt for the devices: `sha256sum
// /tmp/lukshdr-*` over each device's luksHeaderBackup bytes, in glob order.
// The file names hold the device paths, so renaming a device changes it too.
func HeaderDump(devs []string) ([]byte, error) {
	type line struct{ name, sum string }
	var lines []line
	for _, d := range devs {
		b, err := luks.HeaderBackup(d)
		if err != nil {
			return nil, fmt.Errorf("LUKS header of %s: %w", d, err)
		}
		s := sha256.Sum256(b)
		lines = append(lines, line{backupName(d), hex.EncodeToString(s[:])})
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].name < lines[j].name })
	var out bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&out, "%s  %s\n", l.sum, l.name)
	}
	return out.Bytes(), nil
}

// futurePCR6 is PCR 6 after one extend with H(dump) from zero: what it
// holds at boot after kexec-insert-key measured the headers.
func futurePCR6(fam tpm.Family, dump []byte) []byte {
	h := fam.NewHash()
	h.Write(dump)
	d := h.Sum(nil)
	h = fam.NewHash()
	h.Write(make([]byte, fam.PCRSize()))
	h.Write(d)
	return h.Sum(nil)
}

// ErrPassphrase: the DUK passphrase is unusable (too short, too long, or the
// two entries differ).
var ErrPassphrase = errors.New("disk unlock key passphrase not accepted")

// SealOptions describe a new disk unlock key.
type SealOptions struct {
	TPM *tpm.TPM
	// Devices are the LUKS volumes (block devices) to add the key to.
	Devices []string
	// RecoveryKey is the volumes' existing passphrase (the DRK).
	RecoveryKey []byte
	// Passphrase is the new DUK passphrase.
	Passphrase []byte
	OwnerAuth  []byte
	Firmware   attest.Firmware
	// Confirm is asked before overwriting another active keyslot; nil: refuse.
	Confirm func(dev string, e *luks.SlotInUseError) bool
	// Rand is the kernel RNG (default crypto/rand); the TPM's is mixed in.
	Rand io.Reader
	// OSInitrd is the default boot's initrd: its crypttab files give the
	// overrides file (nil: none, the generic crypttab is used at boot).
	OSInitrd []byte
}

// Sealed is what sealing produced: the files to add to the signed /boot.
type Sealed struct {
	// Files to sign into /boot; a nil value deletes a stale file.
	Files   map[string][]byte
	Devices []Device
	// Overrides are the crypttab entries the OS will open with the key.
	Overrides []string
	Warnings  []string
}

// Seal creates a disk unlock key, adds it to every device (Heads' slot: 7
// on LUKS1, 31 on LUKS2; never the recovery key's slot), measures the new
// headers and seals the key to PCRs 0-7 with the passphrase, at Heads'
// location (TPM 2.0 0x81000003, TPM 1.2 NV 3).
func Seal(o SealOptions) (*Sealed, error) {
	if n := len(o.Passphrase); n < MinPassphrase {
		return nil, fmt.Errorf("%w: %d characters, at least %d", ErrPassphrase, n, MinPassphrase)
	}
	if o.TPM.Family() == tpm.Family20 && len(o.Passphrase) > 32 {
		return nil, fmt.Errorf("%w: at most 32 characters on a TPM 2.0", ErrPassphrase)
	}
	if len(o.Devices) == 0 {
		return nil, errors.New("no LUKS devices to add the key to")
	}
	key, err := newKey(o.TPM, o.Rand)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	var devs []Device
	for _, p := range o.Devices {
		uuid, err := addKey(p, o.RecoveryKey, key, o.Confirm)
		if err != nil {
			return nil, err
		}
		devs = append(devs, Device{Path: p, UUID: uuid})
	}
	dump, err := HeaderDump(o.Devices)
	if err != nil {
		return nil, err
	}
	pcr4, err := o.Firmware.PCR(o.TPM, 4)
	if err != nil {
		return nil, err
	}
	// PCRs 0-3 (firmware), 5 (modules goheads loads at every boot) and 7
	// (owner files) as they are; 4 as the firmware left it; 6 as the
	// headers will measure at boot.
	pcrs := map[int][]byte{0: nil, 1: nil, 2: nil, 3: nil, 4: pcr4, 5: nil, 6: futurePCR6(o.TPM.Family(), dump), 7: nil}
	if err := o.TPM.Seal(tpm.SealOptions{Index: tpm.IndexDUK, Secret: key, PCRs: pcrs, Passphrase: o.Passphrase, OwnerAuth: o.OwnerAuth}); err != nil {
		return nil, fmt.Errorf("seal the disk unlock key: %w", err)
	}
	out := &Sealed{Devices: devs, Files: map[string][]byte{
		KeyDevicesFile: FormatKeyDevices(devs),
		HeaderHashFile: dump,
		OverridesFile:  nil,
	}}
	if o.OSInitrd != nil {
		ov, err := CrypttabOverrides(o.OSInitrd, devs)
		switch {
		case err != nil:
			out.Warnings = append(out.Warnings, fmt.Sprintf("%v; at boot a generic crypttab (luks-<UUID>) is given to the OS", err))
		case ov.File != nil:
			out.Files[OverridesFile] = ov.File
			out.Overrides = ov.Changed
			if len(ov.Changed) == 0 {
				out.Warnings = append(out.Warnings, "the OS initrd's crypttab has no entry without a key file for these volumes; the OS will not use the disk unlock key")
			}
		}
	}
	return out, nil
}

func newKey(t *tpm.TPM, r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	k := make([]byte, KeySize)
	if _, err := io.ReadFull(r, k); err != nil {
		return nil, err
	}
	tk, err := t.Random(KeySize)
	if err != nil {
		return nil, err
	}
	for i := range k {
		k[i] ^= tk[i]
	}
	wipe(tk)
	return k, nil
}

// addKey adds key to one LUKS device with the recovery key, in Heads' slot.
func addKey(path string, drk, key []byte, confirm func(string, *luks.SlotInUseError) bool) (string, error) {
	d, err := luks.Open(path, luks.Options{})
	if err != nil {
		return "", err
	}
	defer d.Close()
	u, err := d.Unlock(drk)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer u.Close()
	plan, err := d.PlanDUK(u.Slot())
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	opts := luks.AddOptions{Overwrite: plan.Replaces}
	for _, ask := range plan.Ask {
		ask := ask
		if confirm == nil || !confirm(path, &ask) {
			return "", fmt.Errorf("%s: %w", path, &ask)
		}
		opts.Overwrite = true
	}
	if err := u.AddKey(key, plan.Slot, opts); err != nil {
		return "", fmt.Errorf("%s: add the disk unlock key to slot %d: %w", path, plan.Slot, err)
	}
	return d.UUID(), nil
}

// ErrHeadersChanged: a LUKS header differs from when the key was sealed
// (a keyslot was added or changed). Heads: "Encrypted disk keys have
// changed since the TPM Disk Unlock Key was sealed".
var ErrHeadersChanged = errors.New("encrypted disk keys have changed since the disk unlock key was sealed; if you did not make this change, the disk may be compromised")

// ErrNotUnsealed: the key did not unseal (wrong passphrase three times,
// firmware changed, ...); the recovery key still opens the disk.
var ErrNotUnsealed = errors.New("the disk unlock key was not unsealed")

// UnsealOptions describe a boot with the disk unlock key.
type UnsealOptions struct {
	TPM     *tpm.TPM
	Devices []Device
	// SignedDump is the verified kexec_lukshdr_hash.txt (nil: missing; the
	// check is skipped with a warning, as Heads).
	SignedDump []byte
	// Ask returns the DUK passphrase for try 1..Tries.
	Ask func(try int) ([]byte, error)
	// Warn receives non-fatal remarks.
	Warn func(string)
	// Tries is how many passphrases to ask for (default Tries); a menu
	// asking one at a time calls Unseal again, PCR 6 is measured once.
	Tries int
}

// Unseal measures the LUKS headers into PCR 6 (once per boot), refuses if
// they changed since sealing, and unseals the key with the passphrase,
// giving the owner Tries attempts. The key must be wiped after use.
func Unseal(o UnsealOptions) ([]byte, error) {
	if err := CheckHeaders(o); err != nil {
		return nil, err
	}
	var last error
	tries := o.Tries
	if tries <= 0 {
		tries = Tries
	}
	for try := 1; try <= tries; try++ {
		pass, err := o.Ask(try)
		if err != nil {
			return nil, err
		}
		key, err := o.TPM.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: DUKPCRs, Passphrase: pass})
		wipe(pass)
		if err == nil {
			return key, nil
		}
		last = err
		if !errors.Is(err, tpm.ErrBadAuth) {
			break // not a typo: the firmware or headers changed, or lockout
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrNotUnsealed, last)
}

// CheckHeaders measures the LUKS headers into PCR 6 (once per boot) and
// compares them with the signed kexec_lukshdr_hash.txt, as Heads does
// before it asks for the passphrase: nobody should type it into a boot
// whose disk keys were changed.
func CheckHeaders(o UnsealOptions) error {
	var paths []string
	for _, d := range o.Devices {
		paths = append(paths, d.Path)
	}
	dump, err := HeaderDump(paths)
	if err != nil {
		return err
	}
	if err := measureOnce(o.TPM, dump); err != nil {
		return err
	}
	if o.SignedDump == nil {
		if o.Warn != nil {
			o.Warn("could not check the LUKS headers for tampering: kexec_lukshdr_hash.txt is missing; reseal the disk unlock key to enable the check")
		}
	} else if !bytes.Equal(o.SignedDump, dump) {
		return ErrHeadersChanged
	}
	return nil
}

// measureOnce extends PCR 6 with H(dump) unless this boot already did
// (retrying a boot must not extend it twice).
func measureOnce(t *tpm.TPM, dump []byte) error {
	const desc = "LUKS headers (kexec_lukshdr_hash)"
	logPath := tpm.RuntimeLogPath
	if t.Log != nil {
		logPath = t.Log.Path
	}
	if f, err := os.Open(logPath); err == nil {
		ms, _ := tpm.ReadMeasurementLog(f)
		f.Close()
		for _, m := range ms {
			if m.PCR == measure.PCRLUKS {
				return nil
			}
		}
	}
	return t.Measure(measure.PCRLUKS, dump, desc)
}

// KeyInitrd is the OS initrd with the key appended, as Heads builds it in
// RAM: the original padded with zeros to 512 bytes, then a newc archive
// holding /secret.key and crypttab lines that open each volume with it
// (the saved overrides, or "luks-<uuid> UUID=<uuid> /secret.key
// luks,discard" in etc/crypttab and cryptroot/crypttab).
func KeyInitrd(osInitrd, key []byte, devs []Device, overrides []byte) ([]byte, error) {
	tabs := map[string][]byte{}
	if len(overrides) > 0 {
		for n, line := range strings.Split(strings.TrimRight(string(overrides), "\n"), "\n") {
			// Split at the first colon. Heads takes the last field
			// (awk -F ':' '{print $NF}'), which cuts entries whose device
			// has a colon (/dev/disk/by-path/pci-0000:00:1f.2-...).
			file, entry, ok := strings.Cut(line, ":")
			file = strings.TrimPrefix(file, "/")
			if !ok || file == "" || !validInitrdPath(file) {
				return nil, fmt.Errorf("%s:%d: want '<crypttab path>:<entry>'", OverridesFile, n+1)
			}
			tabs[file] = append(tabs[file], entry+"\n"...)
		}
	} else {
		for _, f := range []string{"etc/crypttab", "cryptroot/crypttab"} {
			for _, d := range devs {
				tabs[f] = append(tabs[f], fmt.Sprintf("luks-%s UUID=%s /secret.key luks,discard\n", d.UUID, d.UUID)...)
			}
		}
	}
	out := make([]byte, len(osInitrd), len(osInitrd)+512+4096)
	copy(out, osInitrd)
	if r := len(out) % 512; r != 0 {
		out = append(out, make([]byte, 512-r)...)
	}
	entries := []cpio.Entry{cpio.File("secret.key", 0o400, key)}
	dirs := map[string]bool{}
	for f, data := range tabs {
		for d := dirOf(f); d != ""; d = dirOf(d) {
			dirs[d] = true
		}
		entries = append(entries, cpio.File(f, 0o644, data))
	}
	for d := range dirs {
		entries = append(entries, cpio.Dir(d, 0o755))
	}
	var b bytes.Buffer
	if err := cpio.WriteAll(&b, entries); err != nil {
		return nil, err
	}
	out = append(out, b.Bytes()...)
	wipe(b.Bytes())
	return out, nil
}

// validInitrdPath: a relative path of a crypttab inside the initrd.
func validInitrdPath(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return strings.Contains(p, "crypttab")
}

func dirOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return ""
	}
	return p[:i]
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
