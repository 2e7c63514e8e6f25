package flash

import (
	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/pcrpredict"
	"github.com/goheads/goheads/pkg/tpm"
)

// ResealWith makes o move the TOTP/HOTP secret in t to the PCRs the new
// ROM will produce on this board (pcrpredict.ForUpdate, which first checks
// its method against the running firmware's PCR 2), and back if the write
// fails. owner is the TPM owner passphrase; the caller wipes it.
func (o *Options) ResealWith(t *tpm.TPM, cfg *config.Config, owner []byte) {
	o.OwnerAuth = owner
	o.Reseal = &attest.TOTP{TPM: t, Firmware: attest.FirmwarePCRs{}}
	o.Predict = func(image, current []byte, kept []measure.UserFile) (map[int][]byte, error) {
		pcr2, err := t.ReadPCR(2)
		if err != nil {
			return nil, err
		}
		u, err := pcrpredict.ForUpdate(o.Update, image, pcrpredict.UpdateOptions{Config: cfg, Family: t.Family(), Kept: kept, Running: current, RunningPCR2: pcr2})
		if err != nil {
			return nil, err
		}
		return u.PCRs, nil
	}
}
