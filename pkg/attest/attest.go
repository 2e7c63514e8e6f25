// Package attest is Heads' attestation to the owner: a TOTP secret sealed in
// the TPM to the firmware's measurements, shown as a code at every boot, and
// the same secret driving "reverse HOTP" with a USB token that lights green
// only for the right code.
//
// The secret is 20 bytes, sealed at Heads' location (TPM 2.0 0x81004d47,
// TPM 1.2 NV 0x4d47) to PCRs 0, 1, 2, 3, 4 and 7, where PCR 4 takes its
// firmware-only value: any "usb", "generic" or "recovery" extend in this boot
// makes unsealing fail until the next boot.
package attest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/goheads/goheads/pkg/eventlog"
	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/tpm"
)

// SecretSize is the size of the TOTP/HOTP secret.
const SecretSize = otp.SecretSize

// Firmware tells the firmware-only value of a PCR: what it held when the
// firmware handed over, before goheads measured anything.
type Firmware interface {
	PCR(t *tpm.TPM, pcr int) ([]byte, error)
}

// ErrPCRAlreadyExtended means a PCR's firmware value cannot be known: goheads
// extended it in this boot and the firmware keeps no event log to replay.
var ErrPCRAlreadyExtended = errors.New("PCR was extended in this boot and the firmware keeps no event log")

// FirmwarePCRs finds firmware-only PCR values as Heads' calcfuturepcr does,
// by replaying the firmware's event log (coreboot CBMEM or securityfs).
// Without a log (QEMU boards boot with qboot, which measures nothing), the
// current value is the firmware value as long as goheads' runtime
// measurement log shows no extend of that PCR in this boot.
type FirmwarePCRs struct {
	// ReadLog returns the firmware event log (default eventlog.ReadSystem).
	ReadLog func() (*eventlog.Log, error)
	// RuntimeLog is goheads' measurement log (default tpm.RuntimeLogPath).
	RuntimeLog string
}

// PCR implements Firmware.
func (f FirmwarePCRs) PCR(t *tpm.TPM, pcr int) ([]byte, error) {
	read := f.ReadLog
	if read == nil {
		read = eventlog.ReadSystem
	}
	alg := eventlog.AlgSHA256
	if t.Family() == tpm.Family12 {
		alg = eventlog.AlgSHA1
	}
	log, err := read()
	switch {
	case err == nil:
		v, err := log.Future(pcr, alg)
		if err != nil {
			return nil, fmt.Errorf("firmware value of PCR %d: %w", pcr, err)
		}
		return v, nil
	case !errors.Is(err, eventlog.ErrNoLog):
		return nil, fmt.Errorf("firmware value of PCR %d: %w", pcr, err)
	}
	path := f.RuntimeLog
	if path == "" {
		path = tpm.RuntimeLogPath
	}
	extended, err := runtimeExtended(path, pcr)
	if err != nil {
		return nil, err
	}
	if extended {
		return nil, fmt.Errorf("firmware value of PCR %d: %w; reboot, then seal before entering a recovery shell or booting", pcr, ErrPCRAlreadyExtended)
	}
	return t.ReadPCR(pcr)
}

func runtimeExtended(path string, pcr int) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	ms, err := tpm.ReadMeasurementLog(f)
	if err != nil {
		// An unreadable log cannot prove the PCR is untouched.
		return true, fmt.Errorf("read %s: %w", path, err)
	}
	for _, m := range ms {
		if m.PCR == pcr {
			return true, nil
		}
	}
	return false, nil
}

// TOTP seals and unseals the attestation secret.
type TOTP struct {
	TPM      *tpm.TPM
	Firmware Firmware
	// Board names the secret in the authenticator app (otpauth label).
	Board string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SourceDate is when this goheads was built from source; a clock
	// before it is certainly wrong.
	SourceDate time.Time
	// Rand is the kernel RNG (default crypto/rand); the TPM RNG is mixed in.
	Rand io.Reader
}

// NewSecret is a freshly sealed secret, to show to the owner once. Wipe it
// after showing.
type NewSecret struct {
	Raw    []byte
	Base32 string
	URI    string
}

// Wipe overwrites the secret.
func (s *NewSecret) Wipe() {
	for i := range s.Raw {
		s.Raw[i] = 0
	}
	s.Base32, s.URI = "", ""
}

// Seal generates a new secret and seals it, replacing the old one.
// ownerAuth is the TPM owner passphrase.
func (a *TOTP) Seal(ownerAuth []byte) (*NewSecret, error) {
	secret, err := a.newSecret()
	if err != nil {
		return nil, err
	}
	pcr4, err := a.Firmware.PCR(a.TPM, 4)
	if err != nil {
		wipe(secret)
		return nil, fmt.Errorf("seal TOTP secret: %w", err)
	}
	pcrs := map[int][]byte{0: nil, 1: nil, 2: nil, 3: nil, 4: pcr4, 7: nil}
	if err := a.TPM.Seal(tpm.SealOptions{Index: tpm.IndexTOTP, Secret: secret, PCRs: pcrs, OwnerAuth: ownerAuth}); err != nil {
		wipe(secret)
		return nil, fmt.Errorf("seal TOTP secret: %w", err)
	}
	board := a.Board
	if board == "" {
		board = "TPMTOTP" // Heads' seal-totp default label
	}
	return &NewSecret{Raw: secret, Base32: otp.EncodeSecret(secret), URI: otp.URI(board, secret)}, nil
}

// newSecret mixes the TPM's RNG into the kernel's, so neither alone decides
// the secret.
func (a *TOTP) newSecret() ([]byte, error) {
	r := a.Rand
	if r == nil {
		r = rand.Reader
	}
	s := make([]byte, SecretSize)
	if _, err := io.ReadFull(r, s); err != nil {
		return nil, fmt.Errorf("kernel RNG: %w", err)
	}
	t, err := a.TPM.Random(SecretSize)
	if err != nil {
		wipe(s)
		return nil, fmt.Errorf("TPM RNG: %w", err)
	}
	for i := range s {
		s[i] ^= t[i]
	}
	wipe(t)
	if bytes.Equal(s, make([]byte, SecretSize)) {
		return nil, errors.New("RNG returned zeros")
	}
	return s, nil
}

// Code is a TOTP code and the time it was computed for.
type Code struct {
	Code string
	At   time.Time
	// Until is when the code changes.
	Until time.Time
}

// Code unseals the secret and returns the current TOTP code. A clock that
// is certainly wrong is reported (otp.ErrClockNotSet) before touching the
// TPM: a code for the wrong time would look like tampering.
func (a *TOTP) Code() (*Code, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	at := now()
	if err := otp.ClockPlausible(at, a.SourceDate); err != nil {
		return nil, err
	}
	secret, err := a.TPM.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs})
	if err != nil {
		return nil, fmt.Errorf("unseal TOTP secret: %w", err)
	}
	defer wipe(secret)
	code, err := otp.TOTP(secret, at)
	if err != nil {
		return nil, err
	}
	until, _ := otp.NextStep(at, otp.Period)
	return &Code{Code: code, At: at, Until: until}, nil
}

// Secret unseals the attestation secret itself (for HOTP and for
// programming a token). The caller must wipe it.
func (a *TOTP) Secret() ([]byte, error) {
	s, err := a.TPM.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs})
	if err != nil {
		return nil, fmt.Errorf("unseal TOTP/HOTP secret: %w", err)
	}
	return s, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// Reseal seals the current secret again, unchanged (the owner's
// authenticator app and token keep working), to the PCR values a firmware
// update will produce: predicted overrides those PCRs (typically 2 and 7
// from pkg/pcrpredict), the others keep their current values and PCR 4 its
// firmware value, as in Seal. The secret must unseal now, so only a machine
// that still attests can move its secret to a new ROM. If the update does
// not happen, Reseal again with no predictions to return to this firmware.
func (a *TOTP) Reseal(ownerAuth []byte, predicted map[int][]byte) error {
	secret, err := a.Secret()
	if err != nil {
		return fmt.Errorf("reseal: %w", err)
	}
	defer wipe(secret)
	return a.SealSecret(secret, ownerAuth, predicted)
}

// SealSecret seals a known secret (from Secret) as Reseal does. flash
// uses it to move the secret back to this firmware when writing the new
// ROM fails, since after a reseal this firmware can no longer unseal it.
func (a *TOTP) SealSecret(secret, ownerAuth []byte, predicted map[int][]byte) error {
	if len(secret) != SecretSize {
		return fmt.Errorf("reseal TOTP secret: %d bytes, want %d", len(secret), SecretSize)
	}
	pcr4, err := a.Firmware.PCR(a.TPM, 4)
	if err != nil {
		return fmt.Errorf("reseal TOTP secret: %w", err)
	}
	pcrs := map[int][]byte{0: nil, 1: nil, 2: nil, 3: nil, 4: pcr4, 7: nil}
	for pcr, v := range predicted {
		if _, ok := pcrs[pcr]; !ok {
			return fmt.Errorf("reseal TOTP secret: PCR %d is not in its policy %v", pcr, tpm.TOTPPCRs)
		}
		pcrs[pcr] = v
	}
	if err := a.TPM.Seal(tpm.SealOptions{Index: tpm.IndexTOTP, Secret: secret, PCRs: pcrs, OwnerAuth: ownerAuth}); err != nil {
		return fmt.Errorf("reseal TOTP secret: %w", err)
	}
	return nil
}
