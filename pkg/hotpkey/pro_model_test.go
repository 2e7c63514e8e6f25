package hotpkey

// A model of the token side of the Nitrokey Pro / Librem Key protocol,
// written from nitrokey-pro-firmware (github.com/Nitrokey/nitrokey-pro-firmware),
// not from this package's host code: it has its own report layout
// constants, its own CRC routine and its own HOTP computation. Function
// names in comments are the firmware's.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"time"
)

// Firmware constants (src/inc/report_protocol.h, hotp.h, CCIDHID_usb_desc.h).
const (
	fwFeatureCount = 64 // KEYBOARD_FEATURE_COUNT

	fwStatusReady    = 0x00 // STATUS_READY
	fwStatusBusy     = 0x01 // STATUS_BUSY
	fwStatusReceived = 0x03 // STATUS_RECEIVED_REPORT

	fwOutCmdType   = 1  // OUTPUT_CMD_TYPE_OFFSET
	fwOutCmdCRC    = 2  // OUTPUT_CMD_CRC_OFFSET
	fwOutCmdStatus = 6  // OUTPUT_CMD_STATUS_OFFSET
	fwOutResult    = 7  // OUTPUT_CMD_RESULT_OFFSET
	fwOutCRC       = 60 // OUTPUT_CRC_OFFSET

	fwHOTPSlots    = 4  // NUMBER_OF_HOTP_SLOTS
	fwSecretLength = 40 // SECRET_LENGTH_DEFINE
	fwFirmwareVer  = 0x0f

	fwAdminRetriesMax = 3 // OpenPGP card PW3 default
	fwUserRetriesMax  = 3
)

// fwOTPSlot is OTP_slot (hotp.h); type 0xFF means unprogrammed.
type fwOTPSlot struct {
	typ     byte
	slotNum byte
	name    [15]byte
	secret  [fwSecretLength]byte
	config  byte
	tokenID [13]byte
	counter uint64 // kept on its own flash page (hotp_slot_counters)
}

// proFirmware implements HID as the token: SetFeature stores a report,
// GetFeature returns the output report, and processing happens between them
// as in main.c's loop.
type proFirmware struct {
	// The OpenPGP card behind cardAuthenticate (CcidLocalAccess.c): PIN
	// retry counters as the card keeps them.
	adminPIN, userPIN         string
	adminRetries, userRetries int
	cardSerial                uint32
	firmwareMinor             byte

	slots [fwHOTPSlots]fwOTPSlot

	// report_protocol.c globals.
	tempPassword              [25]byte
	tempAdminPasswordSet      bool
	localSlotContent          fwOTPSlot
	writeToSlotTransactionBeg bool

	deviceStatus byte
	setReport    [fwFeatureCount]byte // HID_SetReport_Value_tmp
	getReport    [fwFeatureCount]byte // HID_GetReport_Value_tmp

	// busyPolls is how many GET_FEATURE requests see STATUS_BUSY before
	// the main loop finishes parse_report (a slow smart card).
	busyPolls, busyLeft int

	// Test hooks: corruptIn flips a bit in the next n received reports
	// (line noise towards the token), corruptOut in the next n answers.
	corruptIn, corruptOut int

	// Counters for assertions.
	processed int
	closed    bool
}

func newProFirmware() *proFirmware {
	f := &proFirmware{
		adminPIN: "12345678", userPIN: "123456",
		adminRetries: fwAdminRetriesMax, userRetries: fwUserRetriesMax,
		cardSerial:    0x000a1b2c,
		firmwareMinor: fwFirmwareVer,
	}
	for i := range f.slots {
		f.slots[i].typ = 0xff // erased flash
	}
	return f
}

// fwCRC is CRC_CalcBlockCRC on the STM32 CRC unit: each 32-bit word (read
// little-endian from RAM) is shifted in MSB first, polynomial 0x04C11DB7,
// after CRC_ResetDR() set the register to 0xFFFFFFFF.
func fwCRC(words []byte) uint32 {
	reg := uint32(0xffffffff)
	for i := 0; i < len(words); i += 4 {
		w := uint32(words[i]) | uint32(words[i+1])<<8 | uint32(words[i+2])<<16 | uint32(words[i+3])<<24
		for bit := 31; bit >= 0; bit-- {
			in := (w >> uint(bit)) & 1
			top := reg >> 31
			reg <<= 1
			if top^in != 0 {
				reg ^= 0x04c11db7
			}
		}
	}
	return reg
}

// Keyboard_SetReport_Feature path (CCIDHID_usb_prop.c): a report is taken
// only when the device is ready; otherwise it is dropped.
func (f *proFirmware) SetFeature(report []byte) error {
	if f.closed {
		return errors.New("device closed")
	}
	if len(report) != fwFeatureCount+1 || report[0] != 0 {
		return errors.New("model: feature report must be report ID 0 + 64 bytes")
	}
	if f.deviceStatus == fwStatusReady {
		f.deviceStatus = fwStatusReceived
		copy(f.setReport[:], report[1:])
		if f.corruptIn > 0 {
			f.corruptIn--
			f.setReport[20] ^= 0x04
		}
		f.busyLeft = f.busyPolls
	}
	return nil
}

// Keyboard_GetReport_Feature: the last output with byte 0 replaced by the
// current device status. The main loop runs parse_report meanwhile.
func (f *proFirmware) GetFeature(report []byte) (int, error) {
	if f.closed {
		return 0, errors.New("device closed")
	}
	if len(report) < fwFeatureCount+1 {
		return 0, errors.New("model: buffer too small")
	}
	if f.deviceStatus == fwStatusReceived {
		if f.busyLeft > 0 {
			f.busyLeft--
			f.deviceStatus = fwStatusBusy
		} else {
			f.mainLoop()
		}
	} else if f.deviceStatus == fwStatusBusy {
		if f.busyLeft > 0 {
			f.busyLeft--
		} else {
			f.mainLoop()
		}
	}
	report[0] = 0
	copy(report[1:], f.getReport[:])
	report[1] = f.deviceStatus
	if f.corruptOut > 0 && f.deviceStatus == fwStatusReady {
		f.corruptOut--
		report[30] ^= 0x10
	}
	return fwFeatureCount + 1, nil
}

// main.c: while (1) { if RECEIVED: BUSY; parse_report; READY }.
func (f *proFirmware) mainLoop() {
	f.deviceStatus = fwStatusBusy
	f.parseReport(f.setReport[:], f.getReport[:])
	f.deviceStatus = fwStatusReady
	f.processed++
}

func (f *proFirmware) Write([]byte) error {
	return errors.New("model: Pro family has no output reports")
}
func (f *proFirmware) Read([]byte, time.Duration) (int, error) {
	return 0, errors.New("model: Pro family has no input reports")
}
func (f *proFirmware) Close() error { f.closed = true; return nil }

// parse_report (report_protocol.c).
func (f *proFirmware) parseReport(report, output []byte) {
	cmdType := report[0]
	received := binary.LittleEndian.Uint32(report[fwFeatureCount-4:]) // getu32
	calculated := fwCRC(report[:fwFeatureCount-4])

	clear(output)
	output[fwOutCmdType] = cmdType
	binary.LittleEndian.PutUint32(output[fwOutCmdCRC:], calculated)

	if calculated == received {
		notAuthorized := false
		switch cmdType {
		case 0x00: // CMD_GET_STATUS: cmd_get_status
			output[fwOutResult] = f.firmwareMinor // FIRMWARE_VERSION & 0xFF
			output[fwOutResult+1] = 0             // FIRMWARE_VERSION >> 8
			binary.LittleEndian.PutUint32(output[fwOutResult+2:], f.cardSerial)
		case 0x17: // CMD_SEND_OTP_DATA
			tmp := report[1:26]
			typ, id, data := report[26], report[27], report[28:58]
			if f.isValidAdminTempPassword(tmp) {
				if !f.writeToSlotTransactionBeg {
					f.localSlotContent = fwOTPSlot{}
				}
				f.writeToSlotTransactionBeg = true
				switch typ {
				case 'N':
					copy(f.localSlotContent.name[:], data) // s_min(30, 15)
					copy(output[fwOutResult:], f.localSlotContent.name[:])
				case 'S':
					off := int(id) * len(data)
					if off > fwSecretLength {
						off = 0
					}
					copy(f.localSlotContent.secret[off:], data)
					copy(output[fwOutResult:], f.localSlotContent.secret[:])
				}
			} else {
				notAuthorized = true
			}
		case 0x01: // CMD_WRITE_TO_SLOT (write_to_slot_payload overlays the report)
			tmp := report[1:26]
			if f.isValidAdminTempPassword(tmp) && f.writeToSlotTransactionBeg {
				f.writeToSlotTransactionBeg = false
				f.localSlotContent.slotNum = report[26]
				f.localSlotContent.counter = binary.LittleEndian.Uint64(report[27:35])
				f.localSlotContent.config = report[35]
				copy(f.localSlotContent.tokenID[:], report[36:49])
				f.cmdWriteToSlot(output)
			} else {
				notAuthorized = true
			}
		case 0x18: // CMD_VERIFY_OTP_CODE: cmd_verify_code
			f.cmdVerifyCode(binary.LittleEndian.Uint32(report[1:5]), output)
		case 0x07: // CMD_FIRST_AUTHENTICATE: cmd_first_authenticate
			clear(f.tempPassword[:])
			f.tempAdminPasswordSet = false
			if f.cardAuthenticate(report[1:26]) {
				copy(f.tempPassword[:], report[26:51])
				f.tempAdminPasswordSet = true
			} else {
				output[fwOutCmdStatus] = 4 // CMD_STATUS_WRONG_PASSWORD
			}
		case 0x09: // CMD_GET_PASSWORD_RETRY_COUNT
			output[fwOutResult] = byte(f.adminRetries)
		case 0x0f: // CMD_GET_USER_PASSWORD_RETRY_COUNT
			output[fwOutResult] = byte(f.userRetries)
		case 0x08, 0x10: // CMD_AUTHORIZE, CMD_USER_AUTHORIZE
			output[fwOutCmdStatus] = 9
		default:
			output[fwOutCmdStatus] = 9 // CMD_STATUS_UNKNOWN_COMMAND
		}
		if notAuthorized {
			output[fwOutCmdStatus] = 5 // CMD_STATUS_NOT_AUTHORIZED
		}
	} else {
		output[fwOutCmdStatus] = 1 // CMD_STATUS_WRONG_CRC
	}
	// The output CRC covers bytes 0..59 with byte 0 (device status) still 0.
	binary.LittleEndian.PutUint32(output[fwOutCRC:], fwCRC(output[:fwOutCRC]))
}

// is_valid_admin_temp_password.
func (f *proFirmware) isValidAdminTempPassword(p []byte) bool {
	return f.tempAdminPasswordSet && string(p[:25]) == string(f.tempPassword[:])
}

// cardAuthenticate: VERIFY PW3 on the OpenPGP card. The password is a C
// string (cmd_first_authenticate NUL-terminates the 25 bytes). The card
// counts down on failure, resets on success, refuses everything at 0.
func (f *proFirmware) cardAuthenticate(field []byte) bool {
	pin := field
	for i, b := range field {
		if b == 0 {
			pin = field[:i]
			break
		}
	}
	if f.adminRetries == 0 {
		return false
	}
	if string(pin) != f.adminPIN {
		f.adminRetries--
		return false
	}
	f.adminRetries = fwAdminRetriesMax
	return true
}

// cmd_write_to_slot.
func (f *proFirmware) cmdWriteToSlot(output []byte) {
	s := f.localSlotContent
	if s.name[0] == 0 {
		output[fwOutCmdStatus] = 7 // CMD_STATUS_NO_NAME_ERROR
		return
	}
	if s.slotNum >= 0x10 && s.slotNum < 0x10+fwHOTPSlots { // is_HOTP_slot_number
		s.typ = 'H'
		f.slots[s.slotNum&0x0f] = s // write_to_slot + set_counter_value
		return
	}
	output[fwOutCmdStatus] = 2 // CMD_STATUS_WRONG_SLOT (TOTP slots not modelled)
}

// cmd_verify_code + validate_code_from_hotp_slot (hotp.c): slot 3, ten
// counters from the stored one; on a match at offset k the counter page is
// incremented k+1 times.
func (f *proFirmware) cmdVerifyCode(code uint32, output []byte) {
	slot := &f.slots[3]
	if slot.typ == 0xff {
		output[fwOutCmdStatus] = 3 // CMD_STATUS_SLOT_NOT_PROGRAMMED
		return
	}
	digits := 6
	if slot.config&1 != 0 {
		digits = 8
	}
	const calculateAheadValues = 10
	off := 0
	for ; off < calculateAheadValues; off++ {
		if fwHOTPValue(slot.secret[:], slot.counter+uint64(off), digits) == code {
			break
		}
	}
	result := -2 // RET_CODE_NOT_VALID
	if off < calculateAheadValues {
		slot.counter += uint64(off + 1)
		result = off
	}
	correct := result >= 0
	if correct {
		output[fwOutResult] = 1
	}
	output[fwOutResult+1] = byte(result)
}

// get_hotp_value: HMAC-SHA1 over the whole 40-byte secret field (zero
// padded), counter big-endian (endian_swap), dynamic_truncate, mod 10^len.
func fwHOTPValue(secret []byte, counter uint64, digits int) uint32 {
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], counter)
	m := hmac.New(sha1.New, secret)
	m.Write(c[:])
	h := m.Sum(nil)
	o := h[19] & 0xf
	bin := uint32(h[o]&0x7f)<<24 | uint32(h[o+1])<<16 | uint32(h[o+2])<<8 | uint32(h[o+3])
	if digits == 8 {
		return bin % 100000000
	}
	return bin % 1000000
}
