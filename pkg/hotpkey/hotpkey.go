// Package hotpkey talks to the USB security token in Heads' "reverse HOTP"
// attestation: the firmware computes an HOTP code from the secret sealed in
// the TPM and the token, which holds the same secret and its own counter,
// says whether the code is right (and lights green or red).
//
// Heads runs Nitrokey's C tool hotp_verification (and the hotp_initialize
// script around it) for this. This package speaks the same two protocols
// over /dev/hidraw, from their public sources:
//
//   - Nitrokey Pro, Nitrokey Storage and Librem Key: 64-byte HID feature
//     reports with an STM32 CRC-32 (nitrokey-hotp-verification src/device.c,
//     src/operations.c, src/dev_commands.c; token side in
//     nitrokey-pro-firmware src/keyboard/report_protocol.c and src/hotp/hotp.c).
//   - Nitrokey 3: the Secrets app's ISO 7816 commands (as in
//     nitrokey-hotp-verification src/operations_ccid.c), carried in the
//     CTAPHID vendor command 0x70 on the FIDO HID interface instead of CCID,
//     as Nitrokey's own SDK does (trussed-secrets-app src/ctaphid.rs,
//     nitrokey-sdk-py nitrokey/nk3/secrets_app.py). hotp_verification uses
//     CCID through libusb; CTAPHID needs only hidraw.
//
// Results are typed errors that map onto hotp_verification's exit codes
// (ExitCode), so the caller can show Heads' messages.
package hotpkey

import (
	"errors"
	"fmt"
)

// Model is a supported token model.
type Model int

const (
	ModelUnknown Model = iota
	NitrokeyPro
	NitrokeyStorage
	Nitrokey3
	LibremKey
)

// String is the brand name Heads shows (DONGLE_BRAND in functions.sh).
func (m Model) String() string {
	switch m {
	case NitrokeyPro:
		return "Nitrokey Pro"
	case NitrokeyStorage:
		return "Nitrokey Storage"
	case Nitrokey3:
		return "Nitrokey 3"
	case LibremKey:
		return "Librem Key"
	}
	return "USB Security dongle"
}

// PINName names the PIN that programming the HOTP slot needs, as Heads'
// seal-hotpkey.sh words it.
func (m Model) PINName() string {
	if m == Nitrokey3 {
		return "Secrets app PIN"
	}
	return "GPG Admin PIN"
}

// USBID is a USB vendor and product ID.
type USBID struct{ Vendor, Product uint16 }

func (id USBID) String() string { return fmt.Sprintf("%04x:%04x", id.Vendor, id.Product) }

// Devices lists the supported tokens in hotp_verification's search order
// (src/device.c: the HID devices Pro, Librem Key, Storage, then Nitrokey 3).
var Devices = []struct {
	ID    USBID
	Model Model
}{
	{USBID{0x20a0, 0x4108}, NitrokeyPro},
	{USBID{0x316d, 0x4c4b}, LibremKey},
	{USBID{0x20a0, 0x4109}, NitrokeyStorage},
	{USBID{0x20a0, 0x42b2}, Nitrokey3},
}

// ModelOf returns the model with this USB ID, or ModelUnknown.
func ModelOf(id USBID) Model {
	for _, d := range Devices {
		if d.ID == id {
			return d.Model
		}
	}
	return ModelUnknown
}

// Outcomes. Match with errors.Is. The comments give hotp_verification's exit
// code for the same outcome and what Heads' gui-init.sh does with it.
var (
	// ErrWrongCode: the token computed a different code for every counter
	// in its look-ahead window (exit 4: "Invalid code", tamper warning).
	ErrWrongCode = errors.New("HOTP code is incorrect")
	// ErrInvalidCode: the text is not an HOTP code at all (exit 7; Heads
	// treats it like a wrong code). Nothing was sent to the token.
	ErrInvalidCode = errors.New("not a valid HOTP code")
	// ErrSlotNotProgrammed: the token has no HOTP secret (exit 6: "HOTP
	// slot not configured", offer to generate a new secret).
	ErrSlotNotProgrammed = errors.New("HOTP slot is not programmed")
	// ErrWrongPIN: the Admin / Secrets app PIN was refused (exit 2). The
	// concrete error is a *PINError with the retries left.
	ErrWrongPIN = errors.New("wrong PIN")
	// ErrPINBlocked: no PIN attempts are left; the PIN must be reset with
	// the vendor's tools (exit 2). Also errors.Is ErrWrongPIN.
	ErrPINBlocked = errors.New("PIN is blocked: no attempts left")
	// ErrNoDevice: no supported token is plugged in (exit 1).
	ErrNoDevice = errors.New("no HOTP USB security token found")
	// ErrUnsupported: the token does not know the command (exit 5), e.g.
	// firmware without HOTP verification.
	ErrUnsupported = errors.New("token does not support HOTP verification")
	// ErrConnectionLost: the token stopped answering or its answers were
	// corrupt (exit 8; Heads retries).
	ErrConnectionLost = errors.New("connection to the token was lost")
	// ErrNotConfirmed: the token wanted its button touched, or refused
	// for a few seconds after a failed check (exit 3; retry).
	ErrNotConfirmed = errors.New("token did not confirm the operation (touch it when it blinks, then retry)")
	// ErrBadInput: a secret, counter or PIN the token cannot take (exit 7).
	ErrBadInput = errors.New("invalid input for the token")
)

// PINError is ErrWrongPIN (or ErrPINBlocked when Retries is 0) with the
// number of attempts left, so the prompt can say how many remain.
type PINError struct {
	Model   Model
	Retries int // -1 when the token did not say
}

func (e *PINError) Error() string {
	switch {
	case e.Retries == 0:
		return fmt.Sprintf("%s: %s", e.Model.PINName(), ErrPINBlocked)
	case e.Retries < 0:
		return fmt.Sprintf("wrong %s", e.Model.PINName())
	}
	return fmt.Sprintf("wrong %s, %d attempts left", e.Model.PINName(), e.Retries)
}

func (e *PINError) Is(target error) bool {
	return target == ErrWrongPIN || (target == ErrPINBlocked && e.Retries == 0)
}

// DeviceError is a status the token returned that has no better meaning:
// Status is the Pro family's command status byte or the Nitrokey 3's ISO
// 7816 status word.
type DeviceError struct {
	Op     string
	Status uint16
	Msg    string
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("%s: token answered status 0x%x (%s)", e.Op, e.Status, e.Msg)
}

// ExitCode maps an error from this package to hotp_verification's exit code
// (src/return_codes.h, res_to_exit_code): 0 ok, 1 no device, 2 wrong PIN,
// 3 other, 4 wrong code, 5 unsupported, 6 slot not programmed, 7 bad format,
// 8 connection lost. Heads' gui-init.sh treats everything but 0, 4, 6 and 7
// as transient and retries.
//
// Where hotp_verification gets it wrong goheads does not copy it: on a
// Nitrokey 3 an unprogrammed slot is exit 3 there (RET_SLOT_NOT_CONFIGURED
// has no exit code) and any refusal of the check, including the token's
// 5-second back-off after a failure, is exit 4 "wrong code", which Heads
// shows as possible tampering. Here they are 6 and 3. And an unknown
// command on a Pro-family token falls through to exit 3 there (the
// dev_unknown_command case assigns instead of returning); here it is 5.
func ExitCode(err error) int {
	var pe *PINError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNoDevice):
		return 1
	case errors.Is(err, ErrWrongPIN), errors.As(err, &pe), errors.Is(err, ErrPINBlocked):
		return 2
	case errors.Is(err, ErrWrongCode):
		return 4
	case errors.Is(err, ErrUnsupported):
		return 5
	case errors.Is(err, ErrSlotNotProgrammed):
		return 6
	case errors.Is(err, ErrInvalidCode), errors.Is(err, ErrBadInput):
		return 7
	case errors.Is(err, ErrConnectionLost):
		return 8
	}
	return 3
}

// Transient reports whether retrying the same operation may succeed, as
// Heads retries exit codes other than 0, 4, 6 and 7.
func Transient(err error) bool {
	switch ExitCode(err) {
	case 0, 2, 4, 5, 6, 7:
		return false
	}
	return true
}
