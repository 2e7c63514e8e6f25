// Package flash updates the boot flash with a new goheads ROM, as Heads'
// flash.sh and flash-gui.sh do: it reads the current flash first (a backup,
// and the source of the owner's settings), checks the update is a ROM for
// this board, carries the owner's heads/* CBFS files over unless asked not
// to, and writes and verifies with flashrom.
//
// An update is a plain .rom or Heads' update .zip: one .rom and a
// sha256sum.txt whose line for it must match.
package flash

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/measure"
)

// Outcomes the menu tells apart.
var (
	// ErrBadUpdate: the update file is malformed (zip layout, checksum).
	ErrBadUpdate = errors.New("update file rejected")
	// ErrSizeMismatch: the ROM and the flash chip differ in size.
	ErrSizeMismatch = errors.New("ROM size differs from the flash chip")
	// ErrFlashUnknownState: flashrom failed after changing the chip. The
	// machine may not boot again: do not power off, write the backup.
	ErrFlashUnknownState = errors.New("flash chip is in an unknown state")
	// ErrFlashUnchanged: flashrom failed and reports the chip unchanged.
	ErrFlashUnchanged = errors.New("flash write failed, chip unchanged")
)

// maxUpdate bounds an update file (a zip holds one ROM and a checksum list).
const maxUpdate = 64 << 20

// LoadUpdate reads an update: a .zip (Heads' format) or a ROM image.
func LoadUpdate(p string) ([]byte, error) {
	if strings.HasSuffix(strings.ToLower(p), ".zip") {
		return loadZip(p)
	}
	b, err := cbfs.ReadImageFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

func loadZip(p string) ([]byte, error) {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", p, ErrBadUpdate, err)
	}
	defer zr.Close()
	var rom, sums *zip.File
	for _, f := range zr.File {
		switch base := path.Base(f.Name); {
		case base == "sha256sum.txt":
			sums = f
		case strings.HasSuffix(base, ".rom"):
			if rom != nil {
				return nil, fmt.Errorf("%s: %w: more than one .rom (%s, %s)", p, ErrBadUpdate, rom.Name, f.Name)
			}
			rom = f
		}
	}
	if rom == nil || sums == nil {
		return nil, fmt.Errorf("%s: %w: a Heads update zip holds one .rom and sha256sum.txt", p, ErrBadUpdate)
	}
	read := func(f *zip.File, limit int64) ([]byte, error) {
		if f.UncompressedSize64 > uint64(limit) {
			return nil, fmt.Errorf("%s: %w: %s is %d bytes", p, ErrBadUpdate, f.Name, f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p, f.Name, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, limit+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p, f.Name, err)
		}
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("%s: %w: %s larger than %d bytes", p, ErrBadUpdate, f.Name, limit)
		}
		return b, nil
	}
	list, err := read(sums, 1<<20)
	if err != nil {
		return nil, err
	}
	data, err := read(rom, maxUpdate)
	if err != nil {
		return nil, err
	}
	want, err := checksumFor(list, path.Base(rom.Name))
	if err != nil {
		return nil, fmt.Errorf("%s: sha256sum.txt: %w", p, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("%s: %w: %s hashes to %s, sha256sum.txt says %s (a damaged download?)", p, ErrBadUpdate, rom.Name, got, want)
	}
	return data, nil
}

// checksumFor finds name's line in sha256sum output ("<hex>  name" or
// "<hex> *name").
func checksumFor(list []byte, name string) (string, error) {
	for i, l := range strings.Split(string(list), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		if path.Base(strings.TrimPrefix(f[1], "*")) != name {
			continue
		}
		if len(f[0]) != 64 {
			return "", fmt.Errorf("%w: line %d: not a SHA-256", ErrBadUpdate, i+1)
		}
		if _, err := hex.DecodeString(f[0]); err != nil {
			return "", fmt.Errorf("%w: line %d: not a SHA-256", ErrBadUpdate, i+1)
		}
		return strings.ToLower(f[0]), nil
	}
	return "", fmt.Errorf("%w: no line for %s", ErrBadUpdate, name)
}

// Prepared is the image to write and what it carries over.
type Prepared struct {
	Image []byte
	// Kept are the owner's heads/* files carried over from the flash
	// (empty with Clean).
	Kept []cbfs.UserFile
}

// Prepare checks that update is a goheads ROM for board and as large as
// the flash, and unless clean, copies the owner's heads/* files from
// current (the flash as read) into it, replacing the update's own.
func Prepare(update, current []byte, board string, clean bool) (*Prepared, error) {
	if len(update) != len(current) {
		return nil, fmt.Errorf("%w: ROM %d bytes, flash %d bytes; fix: use the ROM built for this board", ErrSizeMismatch, len(update), len(current))
	}
	img, err := cbfs.Open(update)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	defer img.Close()
	if err := cbfs.CheckBoard(img, board); err != nil {
		return nil, err
	}
	p := &Prepared{}
	if !clean {
		cur, err := cbfs.Open(current)
		if err != nil {
			return nil, fmt.Errorf("current flash: %w; fix: flash with -c to start without the owner's settings", err)
		}
		p.Kept, err = cbfs.UserFiles(cur)
		cur.Close()
		if err != nil {
			return nil, fmt.Errorf("current flash: %w", err)
		}
		// The update's own owner files give way to the owner's.
		for _, f := range img.Files() {
			if strings.HasPrefix(f.Name, cbfs.UserPrefix) {
				if err := img.Remove(f.Name); err != nil {
					return nil, fmt.Errorf("update: remove %s: %w", f.Name, err)
				}
			}
		}
		for _, f := range p.Kept {
			if err := img.Add(f.Name, f.Data, cbfs.TypeRaw); err != nil {
				return nil, fmt.Errorf("update: keep %s: %w", f.Name, err)
			}
		}
	}
	if p.Image, err = img.Bytes(); err != nil {
		return nil, err
	}
	return p, nil
}

// KeptMeasured returns the kept files as the initramfs measures them.
func (p *Prepared) KeptMeasured() []measure.UserFile {
	out := make([]measure.UserFile, 0, len(p.Kept))
	for _, f := range p.Kept {
		out = append(out, measure.UserFile{Name: f.Name, Data: f.Data})
	}
	return out
}

// Flashrom runs flashrom against one programmer.
type Flashrom struct {
	Path string // default: "flashrom" from PATH
	// Args select the programmer and chip, e.g. Heads' CONFIG_FLASH_OPTIONS
	// without the leading "flashrom" (["-p", "internal", "--ifd", "-i",
	// "bios"]). Default: -p internal.
	Args []string
	Dir  string // where images are staged (tmpfs); default os.TempDir()
	Log  io.Writer
}

// ArgsFromConfig turns Heads' CONFIG_FLASH_OPTIONS ("flashrom --progress
// --programmer internal") into Flashrom.Args.
func ArgsFromConfig(opts string) []string {
	f := strings.Fields(opts)
	if len(f) > 0 && path.Base(f[0]) == "flashrom" {
		f = f[1:]
	}
	if len(f) == 0 {
		return nil
	}
	return f
}

func (f *Flashrom) run(ctx context.Context, args ...string) (string, error) {
	bin := f.Path
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("flashrom"); err != nil {
			return "", fmt.Errorf("flashrom not found: this initramfs cannot write the flash; fix: flash from the OS (flashrom -p internal -w ROM) or with an external programmer")
		}
	}
	all := f.Args
	if len(all) == 0 {
		all = []string{"-p", "internal"}
	}
	all = append(append([]string{}, all...), args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if f.Log != nil {
		cmd.Stdout = io.MultiWriter(&out, f.Log)
		cmd.Stderr = cmd.Stdout
	}
	err := cmd.Run()
	return out.String(), err
}

func (f *Flashrom) dir() string {
	if f.Dir != "" {
		return f.Dir
	}
	return os.TempDir()
}

// Read reads the whole flash.
func (f *Flashrom) Read(ctx context.Context) ([]byte, error) {
	tmp, err := os.CreateTemp(f.dir(), "flash-read-*.rom")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if out, err := f.run(ctx, "-r", tmp.Name()); err != nil {
		return nil, fmt.Errorf("read the flash: %v\n%s", err, lastLines(out, 8))
	}
	return os.ReadFile(tmp.Name())
}

// Write writes img and lets flashrom verify it. backup names the saved
// copy of the old flash for the recovery advice.
func (f *Flashrom) Write(ctx context.Context, img []byte, backup string) error {
	p := filepath.Join(f.dir(), "flash-write.rom")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		return err
	}
	defer os.Remove(p)
	out, err := f.run(ctx, "-w", p)
	if err == nil {
		return nil
	}
	writeBack := fmt.Sprintf("flashrom %s -w %s", strings.Join(f.argsOrDefault(), " "), backup)
	switch {
	case strings.Contains(out, "unknown state") || strings.Contains(out, "some data has changed"):
		return fmt.Errorf("%w: %v\n%s\nDo NOT power off or reboot. Write the old firmware back now: %s\n(copy %s to a USB stick first: it is in RAM; with a dead flash, an external SPI programmer and that file recover the machine)",
			ErrFlashUnknownState, err, lastLines(out, 6), writeBack, backup)
	case strings.Contains(out, "didn't do anything") || !strings.Contains(out, "Erasing and writing"):
		return fmt.Errorf("%w: %v\n%s\nThe old firmware is intact; it is safe to reboot", ErrFlashUnchanged, err, lastLines(out, 6))
	}
	return fmt.Errorf("%w: %v\n%s\nDo NOT power off. Write the old firmware back now: %s", ErrFlashUnknownState, err, lastLines(out, 8), writeBack)
}

func (f *Flashrom) argsOrDefault() []string {
	if len(f.Args) == 0 {
		return []string{"-p", "internal"}
	}
	return f.Args
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
