package flash

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/eventlog"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/testenv"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
)

// The dummy programmer emulates an 8 MiB Macronix SPI chip over a file.
const (
	chipSize = 8 << 20
	chipName = "MX25L6436E/MX25L6445E/MX25L6465E/MX25L6473E/MX25L6473F"
)

// rom makes an 8 MiB FMAP image for board with a "stage" of content and
// the given owner files.
func rom(t *testing.T, board, stage string, user map[string]string) []byte {
	t.Helper()
	img, err := cbfs.Create(chipSize, cbfs.CreateOptions{Layout: cbfs.LayoutFMAP})
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Add("fallback/ramstage", bytes.Repeat([]byte(stage), 1000), cbfs.TypeRaw); err != nil {
		t.Fatal(err)
	}
	if board != "" {
		if err := img.Add(cbfs.BoardFile, []byte(board+"\n"), cbfs.TypeRaw); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(user)) {
		if err := img.Add(name, []byte(user[name]), cbfs.TypeRaw); err != nil {
			t.Fatal(err)
		}
	}
	b, err := img.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeZip(t *testing.T, p string, files map[string][]byte) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, name := range []string{"goheads-x.rom", "other.rom", "sha256sum.txt"} {
		data, ok := files[name]
		if !ok {
			continue
		}
		w, _ := zw.Create(name)
		w.Write(data)
	}
	zw.Close()
	f.Close()
}

func TestLoadUpdate(t *testing.T) {
	dir := t.TempDir()
	r := rom(t, "x", "a", nil)
	sum := sha256.Sum256(r)
	good := []byte(hex.EncodeToString(sum[:]) + "  goheads-x.rom\n")
	bad := []byte(strings.Repeat("0", 64) + "  goheads-x.rom\n")
	plain := filepath.Join(dir, "plain.rom")
	os.WriteFile(plain, r, 0o644)
	for _, c := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"good zip", map[string][]byte{"goheads-x.rom": r, "sha256sum.txt": good}, ""},
		{"wrong checksum", map[string][]byte{"goheads-x.rom": r, "sha256sum.txt": bad}, "sha256sum.txt says 0000"},
		{"no checksum list", map[string][]byte{"goheads-x.rom": r}, "holds one .rom and sha256sum.txt"},
		{"no line for the rom", map[string][]byte{"goheads-x.rom": r, "sha256sum.txt": []byte("abc  other\n")}, "no line for goheads-x.rom"},
		{"two roms", map[string][]byte{"goheads-x.rom": r, "other.rom": r, "sha256sum.txt": good}, "more than one .rom"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".zip")
		writeZip(t, p, c.files)
		got, err := LoadUpdate(p)
		if c.want == "" {
			if err != nil || !bytes.Equal(got, r) {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrBadUpdate) {
			t.Errorf("%s: %v, want ErrBadUpdate with %q", c.name, err, c.want)
		}
	}
	if got, err := LoadUpdate(plain); err != nil || !bytes.Equal(got, r) {
		t.Errorf("plain ROM: %v", err)
	}
	if _, err := LoadUpdate(filepath.Join(dir, "missing.rom")); err == nil || !strings.Contains(err.Error(), "missing.rom") {
		t.Errorf("missing file: %v", err)
	}
}

func TestPrepare(t *testing.T) {
	owner := map[string]string{cbfs.ConfigUserName: "CONFIG_OWNER=y\n", cbfs.UserPrefix + ".gnupg/pubring.gpg": "owner key"}
	current := rom(t, "x230", "old", owner)
	update := rom(t, "x230", "new", map[string]string{cbfs.ConfigUserName: "CONFIG_VENDOR=y\n"})

	p, err := Prepare(update, current, "x230", false)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := cbfs.Open(p.Image)
	for name, want := range owner {
		if got, err := img.Read(name); err != nil || string(got) != want {
			t.Errorf("kept %s = %q, %v; want %q", name, got, err, want)
		}
	}
	if got, _ := img.Read("fallback/ramstage"); !bytes.HasPrefix(got, []byte("new")) {
		t.Error("the update's stage was not kept")
	}
	if len(p.Kept) != 2 || len(p.KeptMeasured()) != 2 {
		t.Errorf("kept %d files", len(p.Kept))
	}

	p, err = Prepare(update, current, "x230", true)
	if err != nil {
		t.Fatal(err)
	}
	img, _ = cbfs.Open(p.Image)
	if got, _ := img.Read(cbfs.ConfigUserName); string(got) != "CONFIG_VENDOR=y\n" || len(p.Kept) != 0 {
		t.Errorf("clean flash: config.user %q, kept %d", got, len(p.Kept))
	}

	for _, c := range []struct {
		name            string
		update, current []byte
		want            error
		msg             string
	}{
		{"other board", rom(t, "t430", "new", nil), current, cbfs.ErrWrongBoard, "built for t430, this is x230"},
		{"not goheads", rom(t, "", "new", nil), current, cbfs.ErrWrongBoard, "none recorded"},
		{"size", update[:chipSize/2], current, ErrSizeMismatch, "ROM 4194304 bytes, flash 8388608 bytes"},
	} {
		_, err := Prepare(c.update, c.current, "x230", false)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v with %q", c.name, err, c.want, c.msg)
		}
	}
}

// dummy is flashrom's dummy programmer emulating the chip in file, with
// extra dummy parameters (e.g. spi_blacklist to make writes fail).
func dummy(t *testing.T, file, extra string) *Flashrom {
	path := testenv.NeedTool(t, "flashrom", "flashrom")
	p := "dummy:emulate=MX25L6436,image=" + file
	if extra != "" {
		p += "," + extra
	}
	return &Flashrom{Path: path, Args: []string{"-p", p, "-c", chipName}, Dir: t.TempDir()}
}

// TestUpdateWithFlashrom writes through real flashrom: the chip ends up
// holding the update with the owner's files, the backup holds the old
// flash; a write that fails is reported as such, with the way back.
func TestUpdateWithFlashrom(t *testing.T) {
	dir := t.TempDir()
	owner := map[string]string{cbfs.ConfigUserName: "CONFIG_OWNER=y\n"}
	old := rom(t, "qemu-coreboot-tpm2", "old", owner)
	chip := filepath.Join(dir, "chip.bin")
	os.WriteFile(chip, old, 0o600)
	upd := filepath.Join(dir, "update.rom")
	os.WriteFile(upd, rom(t, "qemu-coreboot-tpm2", "new", nil), 0o644)

	var log bytes.Buffer
	usb := filepath.Join(dir, "usb")
	os.Mkdir(usb, 0o755)
	copyPath := filepath.Join(usb, "backup.rom")
	res, err := Update(context.Background(), Options{Update: upd, Board: "qemu-coreboot-tpm2", Flash: dummy(t, chip, ""), Out: &log, BackupCopy: copyPath})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	got, _ := os.ReadFile(chip)
	img, err := cbfs.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := img.Read("fallback/ramstage"); !bytes.HasPrefix(s, []byte("new")) {
		t.Error("chip does not hold the update")
	}
	if c, _ := img.Read(cbfs.ConfigUserName); string(c) != "CONFIG_OWNER=y\n" {
		t.Errorf("owner's config.user on the chip: %q", c)
	}
	if b, _ := os.ReadFile(res.Backup); !bytes.Equal(b, old) || res.Kept != 1 {
		t.Errorf("backup differs from the old flash (kept %d)", res.Kept)
	}
	if b, _ := os.ReadFile(copyPath); !bytes.Equal(b, old) || res.BackupCopy != copyPath {
		t.Errorf("backup copy %q differs from the old flash", res.BackupCopy)
	}
	// A backup copy that cannot be written stops the update before the flash.
	os.WriteFile(chip, old, 0o600)
	if _, err := Update(context.Background(), Options{Update: upd, Board: "qemu-coreboot-tpm2", Flash: dummy(t, chip, ""), BackupCopy: filepath.Join(dir, "missing", "b.rom")}); err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("unwritable backup copy: %v", err)
	}
	if b, _ := os.ReadFile(chip); !bytes.Equal(b, old) {
		t.Error("chip changed although the backup copy failed")
	}

	// Refused before anything is written: another board's ROM.
	os.WriteFile(chip, old, 0o600)
	other := filepath.Join(dir, "other.rom")
	os.WriteFile(other, rom(t, "x230", "new", nil), 0o644)
	if _, err := Update(context.Background(), Options{Update: other, Board: "qemu-coreboot-tpm2", Flash: dummy(t, chip, "")}); !errors.Is(err, cbfs.ErrWrongBoard) {
		t.Errorf("other board's ROM: %v", err)
	}
	if b, _ := os.ReadFile(chip); !bytes.Equal(b, old) {
		t.Error("chip changed by a refused update")
	}

	// A chip that refuses page programs: erased, then not written.
	_, err = Update(context.Background(), Options{Update: upd, Board: "qemu-coreboot-tpm2", Flash: dummy(t, chip, "spi_blacklist=0x02")})
	if !errors.Is(err, ErrFlashUnknownState) || !strings.Contains(err.Error(), "Do NOT power off") || !strings.Contains(err.Error(), "flash-backup.rom") {
		t.Errorf("failed write: %v, want ErrFlashUnknownState with the way back", err)
	}
	// No chip at all: nothing read, nothing written.
	bad := &Flashrom{Path: dummy(t, chip, "").Path, Args: []string{"-p", "dummy:emulate=NOSUCHCHIP,image=" + chip}}
	if _, err := Update(context.Background(), Options{Update: upd, Board: "qemu-coreboot-tpm2", Flash: bad}); err == nil || !strings.Contains(err.Error(), "read the flash") {
		t.Errorf("no chip: %v", err)
	}
}

// TestUpdateReseal: with a TPM (swtpm, both families), a successful update
// leaves the secret sealed to the predicted PCRs (it stops unsealing on
// this firmware) and a failed one moves it back (the same code again).
func TestUpdateReseal(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			sim := tpmtest.Start(t, fam)
			ownerAuth := []byte("owner")
			if err := sim.TPM().Reset(ownerAuth); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			a := &attest.TOTP{TPM: sim.TPM(), Board: "qemu-coreboot-tpm2",
				Firmware:   attest.FirmwarePCRs{ReadLog: func() (*eventlog.Log, error) { return nil, eventlog.ErrNoLog }, RuntimeLog: filepath.Join(dir, "none.log")},
				SourceDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			s, err := a.Seal(ownerAuth)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			a.Now = func() time.Time { return at }
			want, _ := otp.TOTP(s.Raw, at)
			s.Wipe()

			var predicted []measure.UserFile
			predict := func(image, current []byte, kept []measure.UserFile) (map[int][]byte, error) {
				predicted = kept
				size := 32
				if fam == tpm.Family12 {
					size = 20
				}
				return map[int][]byte{2: bytes.Repeat([]byte{0xaa}, size), 7: bytes.Repeat([]byte{0xbb}, size)}, nil
			}
			old := rom(t, "qemu-coreboot-tpm2", "old", map[string]string{cbfs.ConfigUserName: "CONFIG_OWNER=y\n"})
			chip := filepath.Join(dir, "chip.bin")
			upd := filepath.Join(dir, "update.rom")
			os.WriteFile(upd, rom(t, "qemu-coreboot-tpm2", "new", nil), 0o644)

			// Failed write: the secret is back on this firmware.
			os.WriteFile(chip, old, 0o600)
			res, err := Update(context.Background(), Options{Update: upd, Board: "qemu-coreboot-tpm2", Flash: dummy(t, chip, "spi_blacklist=0x02"),
				Reseal: a, Predict: predict, OwnerAuth: ownerAuth})
			if err == nil || res == nil || res.Resealed {
				t.Fatalf("failed write: %v %+v", err, res)
			}
			if c, err := a.Code(); err != nil || c.Code != want {
				t.Fatalf("after a failed update: %v %v, want code %s", c, err, want)
			}
			if len(predicted) != 1 || predicted[0].Name != cbfs.ConfigUserName {
				t.Errorf("prediction saw kept files %+v", predicted)
			}

			// Successful write: sealed to the prediction, not to this firmware.
			os.WriteFile(chip, old, 0o600)
			res, err = Update(context.Background(), Options{Update: upd, Board: "qemu-coreboot-tpm2", Flash: dummy(t, chip, ""),
				Reseal: a, Predict: predict, OwnerAuth: ownerAuth})
			if err != nil || !res.Resealed {
				t.Fatalf("update: %v %+v", err, res)
			}
			var pe *tpm.PolicyError
			if _, err := a.Code(); !errors.As(err, &pe) || fmt.Sprint(pe.PCRs) != "[2 7]" {
				t.Errorf("after the update, on the old firmware: %v, want a policy error naming PCRs 2 and 7", err)
			}
		})
	}
}

// FuzzChecksumFor: sha256sum.txt comes from a downloaded update.
func FuzzChecksumFor(f *testing.F) {
	f.Add([]byte(strings.Repeat("a", 64)+"  x.rom\n"), "x.rom")
	f.Add([]byte("zz *x.rom\n\n"), "x.rom")
	f.Fuzz(func(t *testing.T, list []byte, name string) {
		sum, err := checksumFor(list, name)
		if err == nil && len(sum) != 64 {
			t.Fatalf("accepted %q", sum)
		}
	})
}
