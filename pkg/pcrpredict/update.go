package pcrpredict

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/tpm"
)

// ErrUnverified means the prediction method does not reproduce the running
// firmware's own PCR 2, so a prediction for a new ROM cannot be trusted
// (the board loads other files than CONFIG_COREBOOT_MEASURED lists, or the
// flash was changed since boot).
var ErrUnverified = errors.New("PCR 2 prediction does not match the running firmware")

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
	// Running is the firmware image that booted (the flash as read, or the
	// memory-mapped ROM) and RunningPCR2 the TPM's PCR 2 now. The same
	// prediction applied to Running must give RunningPCR2, else nothing is
	// predicted: a wrong prediction would lock the owner's secret away
	// from both firmwares.
	Running     []byte
	RunningPCR2 []byte
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
	err = cbfs.CheckBoard(img, o.Config.Value("CONFIG_BOARD_NAME"))
	img.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var files []string
	if v := o.Config.Value("CONFIG_COREBOOT_MEASURED"); v != "" {
		files = strings.Fields(v)
	}
	bank := "sha256"
	if o.Family == tpm.Family12 {
		bank = "sha1"
	}
	if len(o.Running) == 0 || len(o.RunningPCR2) == 0 {
		return nil, fmt.Errorf("%w: the running firmware image or its PCR 2 is unknown", ErrUnverified)
	}
	cur, err := Predict(o.Running, Options{Files: files, KeepUserFiles: true})
	if err != nil {
		return nil, fmt.Errorf("running firmware: %w: %v", ErrUnverified, err)
	}
	if got, _ := cur.PCR(bank, PCRSRTM); !bytes.Equal(got, o.RunningPCR2) {
		return nil, fmt.Errorf("%w: predicted %x, the TPM holds %x; fix: do not reseal, generate a new TOTP/HOTP secret after the update", ErrUnverified, got, o.RunningPCR2)
	}
	p, err := Predict(rom, Options{Files: files, UserFiles: o.Kept, KeepUserFiles: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
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
