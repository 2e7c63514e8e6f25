package pcrpredict

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/testenv"
	"github.com/goheads/goheads/pkg/tpm"
)

// romWithCbfstool builds a 256 KiB FMAP image with coreboot-utils'
// fmaptool and cbfstool holding files under the names coreboot loads (one
// LZMA-compressed, as ramstage is) and an owner's keyring.
func romWithCbfstool(t *testing.T) (rom string, dir string) {
	t.Helper()
	cbfstool := testenv.NeedTool(t, "cbfstool", "coreboot-utils")
	fmaptool := testenv.NeedTool(t, "fmaptool", "coreboot-utils")
	dir = t.TempDir()
	fmd := filepath.Join(dir, "layout.fmd")
	os.WriteFile(fmd, []byte("FLASH 0x40000 {\n\tFMAP@0 0x200\n\tCOREBOOT(CBFS)\n}\n"), 0o644)
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(fmaptool, fmd, filepath.Join(dir, "layout.fmap"))
	rom = filepath.Join(dir, "coreboot.rom")
	run(cbfstool, rom, "create", "-M", filepath.Join(dir, "layout.fmap"))
	for i, name := range append([]string{"config"}, DefaultFiles...) {
		data := bytes.Repeat([]byte(fmt.Sprintf("%s contents %d\n", name, i)), 200)
		src := filepath.Join(dir, fmt.Sprintf("f%d", i))
		os.WriteFile(src, data, 0o644)
		args := []string{rom, "add", "-t", "raw", "-n", name, "-f", src}
		if name == "fallback/ramstage" {
			args = append(args, "-c", "lzma")
		}
		run(cbfstool, args...)
	}
	kbx := filepath.Join(dir, "pubring.kbx")
	os.WriteFile(kbx, []byte("a keyring"), 0o644)
	run(cbfstool, rom, "add", "-t", "raw", "-n", "heads/initrd/.gnupg/pubring.kbx", "-f", kbx)
	return rom, dir
}

// chain replays digests from zero with SHA-256 or SHA-1.
func chain(sha1bank bool, data ...[]byte) string {
	size := sha256.Size
	if sha1bank {
		size = sha1.Size
	}
	pcr := make([]byte, size)
	for _, d := range data {
		if sha1bank {
			s := sha1.Sum(d)
			n := sha1.Sum(append(append([]byte{}, pcr...), s[:]...))
			pcr = n[:]
		} else {
			s := sha256.Sum256(d)
			n := sha256.Sum256(append(append([]byte{}, pcr...), s[:]...))
			pcr = n[:]
		}
	}
	return hex.EncodeToString(pcr)
}

// TestPredictAgainstCbfstool: PCR 2 is the FMAP area and each loaded file
// as stored (what cbfstool extract -U gives: compressed stays compressed),
// PCR 7 the keyring's path then content.
func TestPredictAgainstCbfstool(t *testing.T) {
	rom, dir := romWithCbfstool(t)
	cbfstool := testenv.NeedTool(t, "cbfstool", "coreboot-utils")
	read := func(args ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, "extracted")
		os.Remove(out)
		if b, err := exec.Command(cbfstool, append([]string{rom}, append(args, "-f", out)...)...).CombinedOutput(); err != nil {
			t.Fatalf("cbfstool %v: %v\n%s", args, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	srtm := [][]byte{read("read", "-r", "FMAP")}
	for _, name := range DefaultFiles {
		srtm = append(srtm, read("extract", "-n", name, "-U"))
	}
	if bytes.Equal(srtm[4], read("extract", "-n", "fallback/ramstage")) {
		t.Fatal("test setup: ramstage is not stored compressed")
	}
	user := [][]byte{[]byte("/.gnupg/pubring.kbx"), []byte("a keyring")}

	b, _ := os.ReadFile(rom)
	p, err := Predict(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		bank string
		pcr  int
		want string
	}{
		{"sha256", 2, chain(false, srtm...)},
		{"sha1", 2, chain(true, srtm...)},
		{"sha256", 7, chain(false, user...)},
		{"sha1", 7, chain(true, user...)},
	} {
		if got := p.PCRs[c.bank][fmt.Sprint(c.pcr)]; got != c.want {
			t.Errorf("%s PCR %d = %s, want %s", c.bank, c.pcr, got, c.want)
		}
	}
	if len(p.Events) != 1+len(DefaultFiles)+2 || p.Events[0].Name != "FMAP: FMAP" || p.Events[5].Name != "CBFS: fallback/payload" {
		t.Errorf("events: %+v", p.Events)
	}

	// The owner's files kept by flash replace the ROM's own in PCR 7.
	kept := []measure.UserFile{{Name: "heads/initrd/etc/config.user", Data: []byte("CONFIG_X=y\n")}}
	p2, err := Predict(b, Options{UserFiles: kept})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p2.PCRs["sha256"]["7"], chain(false, []byte("/etc/config.user"), []byte("CONFIG_X=y\n")); got != want {
		t.Errorf("PCR 7 with kept files = %s, want %s", got, want)
	}
	if p2.PCRs["sha256"]["2"] != p.PCRs["sha256"]["2"] {
		t.Error("user files changed PCR 2")
	}

	// Round trip through expected-pcrs.json.
	js := filepath.Join(dir, "expected-pcrs.json")
	if err := p.WriteFile(js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	v, err := back.PCR("sha256", 2)
	if err != nil || hex.EncodeToString(v) != p.PCRs["sha256"]["2"] {
		t.Errorf("read back PCR 2 = %x, %v", v, err)
	}
}

func TestPredictRejects(t *testing.T) {
	rom, _ := romWithCbfstool(t)
	b, _ := os.ReadFile(rom)
	for _, c := range []struct {
		name string
		rom  []byte
		opts Options
		want error
	}{
		{"missing stage", b, Options{Files: []string{"fallback/verstage"}}, ErrNotCoreboot},
		{"garbage", bytes.Repeat([]byte{0xff}, 4096), Options{}, nil},
	} {
		_, err := Predict(c.rom, c.opts)
		if err == nil {
			t.Errorf("%s: no error", c.name)
		} else if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// FuzzPredict: a ROM read from a USB stick is untrusted input.
func FuzzPredict(f *testing.F) {
	f.Add([]byte("__FMAP__"))
	f.Add(bytes.Repeat([]byte{0xff}, 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		Predict(b, Options{})
	})
}

func TestForUpdate(t *testing.T) {
	rom, _ := romWithCbfstool(t)
	b, _ := os.ReadFile(rom)
	img, err := cbfs.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Add(cbfs.BoardFile, []byte("qemu-coreboot-tpm2\n"), cbfs.TypeRaw); err != nil {
		t.Fatal(err)
	}
	withBoard, _ := img.Bytes()
	cfg := func(board string, coreboot bool) *config.Config {
		c := config.New()
		c.Set("CONFIG_BOARD_NAME", board)
		if coreboot {
			c.Set("CONFIG_COREBOOT", "y")
		}
		return c
	}
	kept := []measure.UserFile{{Name: "heads/initrd/etc/config.user", Data: []byte("CONFIG_X=y\n")}}
	for _, c := range []struct {
		name    string
		rom     []byte
		cfg     *config.Config
		fam     tpm.Family
		wantErr string
	}{
		{"ok tpm2", withBoard, cfg("qemu-coreboot-tpm2", true), tpm.Family20, ""},
		{"ok tpm1", withBoard, cfg("qemu-coreboot-tpm2", true), tpm.Family12, ""},
		{"other board", withBoard, cfg("x230", true), tpm.Family20, "ROM is for another board: built for qemu-coreboot-tpm2, this is x230"},
		{"no board file", b, cfg("qemu-coreboot-tpm2", true), tpm.Family20, "none recorded"},
		{"no coreboot", withBoard, cfg("qemu-coreboot-tpm2", false), tpm.Family20, "boots without coreboot"},
	} {
		running, _ := Predict(b, Options{})
		bank := "sha256"
		if c.fam == tpm.Family12 {
			bank = "sha1"
		}
		pcr2, _ := running.PCR(bank, 2)
		u, err := ForUpdate("new.rom", c.rom, UpdateOptions{Config: c.cfg, Family: c.fam, Kept: kept, Running: b, RunningPCR2: pcr2})
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, pcr := range []int{2, 7} {
			if hex.EncodeToString(u.PCRs[pcr]) != u.Prediction.PCRs[bank][fmt.Sprint(pcr)] {
				t.Errorf("%s: PCR %d = %x, want the %s prediction", c.name, pcr, u.PCRs[pcr], bank)
			}
		}
		if got, want := hex.EncodeToString(u.PCRs[7]), chain(c.fam == tpm.Family12, []byte("/etc/config.user"), []byte("CONFIG_X=y\n")); got != want {
			t.Errorf("%s: PCR 7 %s, want the kept files' %s", c.name, got, want)
		}
	}
}

// TestForUpdateUnverified: no prediction when the method does not
// reproduce the running firmware's PCR 2.
func TestForUpdateUnverified(t *testing.T) {
	rom, _ := romWithCbfstool(t)
	b, _ := os.ReadFile(rom)
	img, _ := cbfs.Open(b)
	img.Add(cbfs.BoardFile, []byte("q\n"), cbfs.TypeRaw)
	nb, _ := img.Bytes()
	cfg := config.New()
	cfg.Set("CONFIG_BOARD_NAME", "q")
	cfg.Set("CONFIG_COREBOOT", "y")
	good, _ := Predict(b, Options{})
	pcr2, _ := good.PCR("sha256", 2)
	for _, c := range []struct {
		name    string
		running []byte
		pcr2    []byte
	}{
		{"no running image", nil, pcr2},
		{"other PCR 2", b, make([]byte, 32)},
		{"running is not coreboot", bytes.Repeat([]byte{0xff}, 4096), pcr2},
	} {
		_, err := ForUpdate("new.rom", nb, UpdateOptions{Config: cfg, Family: tpm.Family20, Running: c.running, RunningPCR2: c.pcr2})
		if !errors.Is(err, ErrUnverified) {
			t.Errorf("%s: %v, want ErrUnverified", c.name, err)
		}
	}
	// The board's list decides: one file less and PCR 2 no longer matches.
	cfg.Set("CONFIG_COREBOOT_MEASURED", "bootblock fallback/romstage fallback/ramstage fallback/payload")
	if _, err := ForUpdate("new.rom", nb, UpdateOptions{Config: cfg, Family: tpm.Family20, Running: b, RunningPCR2: pcr2}); !errors.Is(err, ErrUnverified) {
		t.Errorf("wrong measured list: %v, want ErrUnverified", err)
	}
}
