package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goheads/goheads/pkg/bootdisk"
	"github.com/goheads/goheads/pkg/flash"
	"golang.org/x/sys/unix"
)

// ---- firmware update (Heads' "Flash/Update the BIOS") ----

// ErrNoFlash means this firmware cannot update its own flash.
var ErrNoFlash = errors.New("this firmware cannot update the flash")

// UpdateMedia is a disk other than /boot holding firmware updates (.rom or
// Heads' .zip), mounted read-only except while an update runs.
type UpdateMedia struct {
	Dev, Dir string
	// Files are the updates, relative to Dir, sorted.
	Files   []string
	mounted *bootdisk.Mounted
}

// UpdateMountDir is where update media are mounted.
var UpdateMountDir = "/media"

// maxUpdateFiles bounds the list (a menu screen); updateDepth how deep the
// search goes (Heads lists the whole stick; release folders are shallow).
const (
	maxUpdateFiles = 30
	updateDepth    = 3
)

// CanFlash says whether this firmware can write its flash: flashrom is in
// the initramfs and the board has a flash chip flashrom can reach.
func (s *Session) CanFlash() error {
	if !s.Config.Bool("CONFIG_COREBOOT") && s.Config.Value("CONFIG_FLASH_OPTIONS") == "" {
		return fmt.Errorf("%w: %s boots without coreboot, so it has no boot flash to update (set CONFIG_FLASH_OPTIONS to flash another way)", ErrNoFlash, s.Board())
	}
	fr := s.flashrom()
	if _, err := exec.LookPath(fr.Path); err != nil {
		return fmt.Errorf("%w: %s is not in this firmware (built without CONFIG_FLASHROM); flash the ROM with an external programmer or a build that has it", ErrNoFlash, fr.Path)
	}
	return nil
}

// CanReseal says whether an update can carry the TOTP/HOTP secret over:
// only coreboot measures the firmware into PCR 2, which pcrpredict
// predicts for the new ROM.
func (s *Session) CanReseal() bool {
	return s.TPM != nil && s.Config.Bool("CONFIG_COREBOOT")
}

func (s *Session) flashrom() *flash.Flashrom {
	fr := &flash.Flashrom{Args: flash.ArgsFromConfig(s.Config.Value("CONFIG_FLASH_OPTIONS")), Dir: "/tmp", Log: io.Discard}
	if fr.Path == "" {
		fr.Path = "flashrom"
	}
	return fr
}

// FindUpdates mounts the first disk other than /boot that holds a .rom or
// .zip file and lists them.
func (s *Session) FindUpdates() (*UpdateMedia, error) {
	var exclude []string
	if s.Boot != nil && s.Boot.Dev != "" {
		exclude = append(exclude, s.Boot.Dev)
	}
	unix.Unmount(UpdateMountDir, 0) // a previous scan's
	var files []string
	m, err := bootdisk.Find(bootdisk.Options{Dir: UpdateMountDir, Exclude: exclude, What: "USB disk with a firmware update (.rom or .zip)",
		Accept: func(dir string) (bool, string) {
			files = listUpdates(dir)
			return len(files) > 0, "no .rom or .zip file"
		}})
	if err != nil {
		return nil, err
	}
	return &UpdateMedia{Dev: m.Dev, Dir: m.Dir, Files: files, mounted: m}, nil
}

// listUpdates returns the .rom and .zip files under dir, relative to it,
// skipping hidden directories.
func listUpdates(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || len(out) >= maxUpdateFiles {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || strings.Count(rel, "/") >= updateDepth-1) {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := strings.ToLower(filepath.Ext(p)); (ext == ".rom" || ext == ".zip") && d.Type().IsRegular() {
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// FlashOptions describe one update from the menu.
type FlashOptions struct {
	// Clean erases the owner's settings and keys (CBFS heads/*).
	Clean bool
	// Owner is the TPM owner passphrase: with it (and CanReseal) the
	// TOTP/HOTP secret moves to the new ROM's predicted PCRs.
	Owner []byte
	Out   io.Writer
}

// FlashFirmware writes update file (one of m.Files) to the flash with
// flash.Update. The current firmware is first saved beside the update, on
// the USB disk (remounted read-write for the update), so a machine that
// does not boot afterwards can be recovered with an external programmer.
func (s *Session) FlashFirmware(ctx context.Context, m *UpdateMedia, file string, o FlashOptions) (*flash.Result, error) {
	if err := s.CanFlash(); err != nil {
		return nil, err
	}
	if !slices.Contains(m.Files, file) {
		return nil, fmt.Errorf("%s: not an update listed on %s", file, m.Dev)
	}
	board := s.Board()
	fo := flash.Options{
		Update:     filepath.Join(m.Dir, file),
		Board:      board,
		Clean:      o.Clean,
		Flash:      s.flashrom(),
		Out:        o.Out,
		BackupCopy: filepath.Join(m.Dir, fmt.Sprintf("goheads-backup-%s-%s.rom", board, s.Now().UTC().Format("20060102-150405"))),
	}
	if o.Owner != nil && s.CanReseal() {
		fo.ResealWith(s.TPM, s.Config, o.Owner)
	}
	var res *flash.Result
	err := m.mounted.Writable(func() error {
		var err error
		res, err = flash.Update(ctx, fo)
		return err
	})
	return res, err
}
