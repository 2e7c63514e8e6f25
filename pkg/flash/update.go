package flash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/goheads/goheads/pkg/atomicfile"
	"github.com/goheads/goheads/pkg/measure"
)

// Resealer moves the TOTP/HOTP secret to other PCR values
// (attest.TOTP implements it).
type Resealer interface {
	Secret() ([]byte, error)
	SealSecret(secret, ownerAuth []byte, pcrs map[int][]byte) error
}

// Predictor gives the PCR values image will produce with the kept owner
// files, after checking its method against current, the firmware running
// now (pcrpredict.ForUpdate, bound to this board and TPM family).
type Predictor func(image, current []byte, kept []measure.UserFile) (map[int][]byte, error)

// Options describe one update.
type Options struct {
	Update string // .rom or .zip
	Board  string // CONFIG_BOARD_NAME
	Clean  bool   // do not carry the owner's heads/* files over
	Flash  *Flashrom
	Out    io.Writer
	Backup string // where the old flash is saved (tmpfs); default <Flash.Dir>/flash-backup.rom
	// BackupCopy, when set, is a second copy of the old flash on
	// persistent media (the update's USB stick), written and synced
	// before the flash is touched: with a dead flash it is what an
	// external programmer needs, and RAM is gone after power off.
	BackupCopy string
	Reseal     Resealer
	Predict    Predictor
	// OwnerAuth is the TPM owner passphrase, needed to reseal.
	OwnerAuth []byte
}

// Result says what an update did.
type Result struct {
	Backup     string
	BackupCopy string // "" when none was asked for
	Kept       int    // owner files carried over
	Resealed   bool   // the secret now matches the new ROM
}

// Update flashes a new ROM. With Reseal and Predict it first moves the
// TOTP/HOTP secret to the new ROM's predicted PCRs, and moves it back if the
// write fails, so the owner's code is valid on whichever firmware runs next.
func Update(ctx context.Context, o Options) (*Result, error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	update, err := LoadUpdate(o.Update)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Reading the current firmware (backup)...\n")
	current, err := o.Flash.Read(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Backup: o.Backup}
	if res.Backup == "" {
		res.Backup = filepath.Join(o.Flash.dir(), "flash-backup.rom")
	}
	if err := os.WriteFile(res.Backup, current, 0o600); err != nil {
		return nil, fmt.Errorf("save the backup: %w", err)
	}
	if o.BackupCopy != "" {
		// Staged: after a power cut the copy is absent, old or whole.
		if err := atomicfile.Write(o.BackupCopy, current, 0o600); err != nil {
			return nil, fmt.Errorf("save the backup: %w; nothing was written to the flash", err)
		}
		res.BackupCopy = o.BackupCopy
		fmt.Fprintf(out, "Saved the current firmware to %s.\n", o.BackupCopy)
	}
	prep, err := Prepare(update, current, o.Board, o.Clean)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Update, err)
	}
	res.Kept = len(prep.Kept)

	var secret []byte
	defer func() {
		for i := range secret {
			secret[i] = 0
		}
	}()
	if o.Reseal != nil && o.Predict != nil {
		pcrs, err := o.Predict(prep.Image, current, prep.KeptMeasured())
		if err != nil {
			return nil, fmt.Errorf("predict the new ROM's PCRs: %w", err)
		}
		if secret, err = o.Reseal.Secret(); err != nil {
			return nil, fmt.Errorf("the TOTP/HOTP secret does not unseal now, so it cannot move to the new ROM (%w); fix: flash without resealing and generate a new secret after the update", err)
		}
		if err := o.Reseal.SealSecret(secret, o.OwnerAuth, pcrs); err != nil {
			return nil, err
		}
		res.Resealed = true
		fmt.Fprintf(out, "TOTP/HOTP secret resealed to the new ROM's PCR 2 %x and PCR 7 %x.\n", pcrs[2], pcrs[7])
	}

	fmt.Fprintf(out, "Writing the new firmware (%d bytes, %d owner files kept); do not power off...\n", len(prep.Image), res.Kept)
	werr := o.Flash.Write(ctx, prep.Image, res.Backup)
	if werr != nil && res.Resealed {
		// The advice for every failure is to keep or restore the old
		// firmware: the secret goes back to it.
		if err := o.Reseal.SealSecret(secret, o.OwnerAuth, nil); err != nil {
			return res, errors.Join(werr, fmt.Errorf("move the secret back to the current firmware: %w; generate a new TOTP/HOTP secret after rebooting", err))
		}
		res.Resealed = false
		fmt.Fprintf(out, "The TOTP/HOTP secret is sealed to the current firmware again.\n")
	}
	if werr != nil {
		return res, werr
	}
	fmt.Fprintf(out, "Firmware updated and verified. Reboot to run it.\n")
	return res, nil
}
