package pcrpredict

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/tpm"
)

// ErrWrongBoard means a ROM was built for another board than this one.
var ErrWrongBoard = errors.New("ROM is for another board")

// Update is the prediction for flashing a new ROM on this machine.
type Update struct {
	Prediction *Prediction
	// PCRs are the predicted values in the TPM family's bank, for
	// attest.TOTP.Reseal: PCR 2 (the new coreboot and payload) and PCR 7
	// (the owner's files, which the flash keeps).
	PCRs map[int][]byte
}

// UpdateOptions describe the machine the ROM is for.
type UpdateOptions struct {
	Config *config.Config // the running board's configuration
	Family tpm.Family
	// Kept are the owner's heads/initrd/* files the flash will carry over
	// from the running ROM (nil: none).
	Kept []measure.UserFile
}

// ForUpdate checks that rom is a goheads ROM for this board and predicts
// the PCRs it will produce after flashing.
func ForUpdate(name string, rom []byte, o UpdateOptions) (*Update, error) {
	if !o.Config.Bool("CONFIG_COREBOOT") {
		return nil, fmt.Errorf("%s: this board (%s) boots without coreboot; only coreboot boards have PCR 2 to predict", name, o.Config.Value("CONFIG_BOARD_NAME"))
	}
	img, err := cbfs.Open(rom)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	got, want := cbfs.Board(img), o.Config.Value("CONFIG_BOARD_NAME")
	img.Close()
	if got != want {
		if got == "" {
			got = "none recorded (not a goheads ROM)"
		}
		return nil, fmt.Errorf("%s: %w: built for %s, this is %s; fix: use the ROM built with BOARD=%s", name, ErrWrongBoard, got, want, want)
	}
	var files []string
	if v := o.Config.Value("CONFIG_COREBOOT_MEASURED"); v != "" {
		files = strings.Fields(v)
	}
	p, err := Predict(rom, Options{Files: files, UserFiles: o.Kept, KeepUserFiles: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	bank := "sha256"
	if o.Family == tpm.Family12 {
		bank = "sha1"
	}
	u := &Update{Prediction: p, PCRs: map[int][]byte{}}
	for _, pcr := range []int{PCRSRTM, PCRConfig} {
		v, err := p.PCR(bank, pcr)
		if err != nil {
			return nil, err
		}
		u.PCRs[pcr] = v
	}
	return u, nil
}
