package hotpkey

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// The Nitrokey Pro / Storage / Librem Key protocol: the host sends a 64-byte
// feature report (command byte, payload, CRC) and polls the feature report
// for the answer. Layouts from nitrokey-hotp-verification src/structs.h
// (DeviceQuery, DeviceResponse_st) and the firmware's report_protocol.h.

// proReportSize is a feature report with its report ID byte (HID_REPORT_SIZE).
const proReportSize = 65

// Offsets in the 65-byte buffer (report ID at 0).
const (
	proQueryCmd     = 1
	proQueryPayload = 2
	proQueryCRC     = 61 // CRC over bytes 1..60 (15 words)

	proRespDeviceStatus = 1
	proRespCmd          = 2
	proRespLastCRC      = 3
	proRespLastStatus   = 7
	proRespPayload      = 8
	proRespPayloadLen   = 53
	proRespCRC          = 61
)

// Command IDs (src/command_id.h).
const (
	proCmdGetStatus                 = 0x00
	proCmdWriteToSlot               = 0x01
	proCmdFirstAuthenticate         = 0x07
	proCmdGetPasswordRetryCount     = 0x09
	proCmdGetUserPasswordRetryCount = 0x0f
	proCmdSendOTPData               = 0x17
	proCmdVerifyOTPCode             = 0x18
	proCmdGetDeviceStatus           = 0x2e // Nitrokey Storage only
)

// Command status codes (enum command_status; firmware CMD_STATUS_*).
const (
	proStatusOK                = 0
	proStatusWrongCRC          = 1
	proStatusWrongSlot         = 2
	proStatusSlotNotProgrammed = 3
	proStatusWrongPassword     = 4
	proStatusNotAuthorized     = 5
	proStatusNoNameError       = 7
	proStatusUnknownCommand    = 9
)

// proStatusText names a command status for error messages.
func proStatusText(s byte) string {
	switch s {
	case proStatusWrongCRC:
		return "wrong CRC"
	case proStatusWrongSlot:
		return "wrong slot"
	case proStatusSlotNotProgrammed:
		return "slot not programmed"
	case proStatusWrongPassword:
		return "wrong password"
	case proStatusNotAuthorized:
		return "not authorized"
	case 6:
		return "timestamp warning"
	case proStatusNoNameError:
		return "slot name missing"
	case 8:
		return "not supported"
	case proStatusUnknownCommand:
		return "unknown command"
	case 10:
		return "AES decryption failed"
	}
	return "unknown status"
}

const (
	// proHOTPSlot is the slot hotp_verification uses: HOTP slot 3
	// (get_internal_slot_number_for_hotp: 0x10 + 3), the one the firmware
	// reserves for verification (cmd_get_code refuses to emit it).
	proHOTPSlot = 0x13
	// proTempPasswordLen is the size of PIN and temporary password fields.
	proTempPasswordLen = 25
	// proSlotName is hotp_verification's SLOT_NAME. The firmware keeps
	// the first 15 bytes; the slot must have a name to be written.
	proSlotName = "HEADS Validation"
	// proSecretMax is what hotp_verification sends of the secret in one
	// SEND_OTP_DATA report (min(20, decoded length)).
	proSecretMax = 20
)

// stmCRC32 is the STM32 hardware CRC the firmware uses (CRC_CalcBlockCRC):
// polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection, no final
// XOR, fed 32-bit words that the little-endian MCU reads from the report.
// hotp_verification's src/crc32.c (stm_crc32) computes the same on the host.
// len(b) must be a multiple of 4.
func stmCRC32(b []byte) uint32 {
	crc := uint32(0xffffffff)
	for i := 0; i+4 <= len(b); i += 4 {
		crc ^= binary.LittleEndian.Uint32(b[i:])
		for j := 0; j < 32; j++ {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// buildProQuery lays out a query report (device_send): report ID 0, command,
// payload (at most 59 bytes), CRC over bytes 1..60 little-endian.
func buildProQuery(cmd byte, payload []byte) ([proReportSize]byte, uint32, error) {
	var q [proReportSize]byte
	if len(payload) > proQueryCRC-proQueryPayload {
		return q, 0, fmt.Errorf("payload of %d bytes does not fit a report", len(payload))
	}
	q[proQueryCmd] = cmd
	copy(q[proQueryPayload:], payload)
	crc := stmCRC32(q[1:proQueryCRC])
	binary.LittleEndian.PutUint32(q[proQueryCRC:], crc)
	return q, crc, nil
}

// proResponse is a parsed answer report (DeviceResponse_st).
type proResponse struct {
	DeviceStatus byte // 0 ready, 1 busy, 3 report received
	Cmd          byte
	LastCRC      uint32 // CRC of the query the token processed
	Status       byte   // command status
	Payload      [proRespPayloadLen]byte
	CRCOK        bool // the report's own CRC matches
}

// parseProResponse decodes a feature report read from the token. The report
// comes from a USB device and is not trusted: anything but 65 bytes is an
// error, and CRCOK says whether the content can be believed.
func parseProResponse(b []byte) (proResponse, error) {
	var r proResponse
	if len(b) != proReportSize {
		return r, fmt.Errorf("feature report of %d bytes, want %d", len(b), proReportSize)
	}
	r.DeviceStatus = b[proRespDeviceStatus]
	r.Cmd = b[proRespCmd]
	r.LastCRC = binary.LittleEndian.Uint32(b[proRespLastCRC:])
	r.Status = b[proRespLastStatus]
	copy(r.Payload[:], b[proRespPayload:proRespCRC])
	// The firmware computes this CRC with the device status byte at 0 and
	// sets the byte afterwards (CCIDHID_usb_prop.c), so it only matches a
	// ready token's report; device_receive relies on that as well.
	r.CRCOK = stmCRC32(b[1:proRespCRC]) == binary.LittleEndian.Uint32(b[proRespCRC:])
	return r, nil
}

// proConn runs the query/poll exchange.
type proConn struct {
	dev      HID
	model    Model
	poll     time.Duration
	attempts int
}

// transact sends one command and waits for its answer, as device_send and
// device_receive do: poll every 200 ms, up to 40 times, until a report
// arrives with a valid CRC, the CRC of our query, and the token ready.
func (c *proConn) transact(ctx context.Context, op string, cmd byte, payload []byte) (proResponse, error) {
	q, crc, err := buildProQuery(cmd, payload)
	defer clear(q[:])
	if err != nil {
		return proResponse{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := c.dev.SetFeature(q[:]); err != nil {
		return proResponse{}, fmt.Errorf("%s: send: %v: %w", op, err, ErrConnectionLost)
	}
	buf := make([]byte, proReportSize)
	var lastErr error
	for i := 0; i < c.attempts; i++ {
		// The Storage needs the delay before the first read too
		// (device.c: "keep this 200ms for Nitrokey Storage").
		if err := sleepCtx(ctx, c.poll); err != nil {
			return proResponse{}, fmt.Errorf("%s: %w", op, err)
		}
		clear(buf)
		buf[0] = 0 // report ID
		n, err := c.dev.GetFeature(buf)
		if err != nil {
			lastErr = err
			continue
		}
		r, err := parseProResponse(buf[:n])
		if err != nil {
			lastErr = err
			continue
		}
		if !r.CRCOK || r.LastCRC != crc || r.DeviceStatus != 0 {
			continue // busy, stale or corrupt: poll again
		}
		return r, nil
	}
	if lastErr != nil {
		return proResponse{}, fmt.Errorf("%s: no valid answer from the %s after %d polls (last error: %v): %w", op, c.model, c.attempts, lastErr, ErrConnectionLost)
	}
	return proResponse{}, fmt.Errorf("%s: no valid answer from the %s after %d polls: %w", op, c.model, c.attempts, ErrConnectionLost)
}

// check turns a command status into an error.
func (c *proConn) check(op string, r proResponse) error {
	switch r.Status {
	case proStatusOK:
		return nil
	case proStatusSlotNotProgrammed:
		return fmt.Errorf("%s: %w", op, ErrSlotNotProgrammed)
	case proStatusUnknownCommand:
		return fmt.Errorf("%s: %w", op, ErrUnsupported)
	}
	return &DeviceError{Op: op, Status: uint16(r.Status), Msg: proStatusText(r.Status)}
}

func (c *proConn) status(ctx context.Context) (*Status, error) {
	// device_get_status: two retry counters, then GET_STATUS.
	r, err := c.transact(ctx, "read Admin PIN retry counter", proCmdGetPasswordRetryCount, nil)
	if err != nil {
		return nil, err
	}
	if err := c.check("read Admin PIN retry counter", r); err != nil {
		return nil, err
	}
	st := &Status{Model: c.model, PINSet: true, PINRetries: int(r.Payload[0])}
	r, err = c.transact(ctx, "read User PIN retry counter", proCmdGetUserPasswordRetryCount, nil)
	if err != nil {
		return nil, err
	}
	if err := c.check("read User PIN retry counter", r); err != nil {
		return nil, err
	}
	st.UserPINRetries = int(r.Payload[0])
	r, err = c.transact(ctx, "read status", proCmdGetStatus, nil)
	if err != nil {
		return nil, err
	}
	if err := c.check("read status", r); err != nil {
		return nil, err
	}
	// struct ResponseStatus: firmware_version {minor, major}, card_serial u32.
	st.Firmware = Version{Major: int(r.Payload[1]), Minor: int(r.Payload[0])}
	st.Serial = binary.LittleEndian.Uint32(r.Payload[2:6])
	if r.Payload[0] == 1 {
		// The Nitrokey Storage reports version 0.1 here; the real
		// version and the smart card serial are in its device status
		// (struct StatusResponsePayloadStorage at payload offset 22).
		// hotp_verification polls up to 100 times for a non-zero
		// serial; a few polls are enough to skip a stale report.
		for i := 0; i < 5; i++ {
			r, err = c.transact(ctx, "read Storage device status", proCmdGetDeviceStatus, nil)
			if err != nil {
				return nil, err
			}
			p := r.Payload[22:]
			st.Firmware = Version{Major: int(p[4]), Minor: int(p[5])}
			st.Serial = binary.LittleEndian.Uint32(p[20:24])
			if st.Serial != 0 {
				break
			}
		}
	}
	return st, nil
}

// program writes secret and counter to HOTP slot 3, authenticated with the
// Admin PIN: set_secret_on_device (src/operations.c) with authenticate_admin
// (src/dev_commands.c).
func (c *proConn) program(ctx context.Context, secret []byte, counter uint64, pin, tmp []byte) error {
	if len(pin) > proTempPasswordLen {
		return fmt.Errorf("program HOTP slot: %s is longer than %d bytes: %w", c.model.PINName(), proTempPasswordLen, ErrBadInput)
	}
	for _, b := range pin {
		if b == 0 {
			// The firmware reads the PIN as a C string.
			return fmt.Errorf("program HOTP slot: %s contains a NUL byte: %w", c.model.PINName(), ErrBadInput)
		}
	}
	if len(secret) > proSecretMax {
		return fmt.Errorf("program HOTP slot: secret of %d bytes, the %s takes at most %d: %w", len(secret), c.model, proSecretMax, ErrBadInput)
	}

	// struct FirstAuthenticate: card_password[25], temporary_password[25].
	// hotp_verification means to send random bytes as the temporary
	// password but copies an all-zero buffer; goheads sends the random one
	// it intends, which the firmware stores and compares the same way.
	auth := make([]byte, 2*proTempPasswordLen)
	defer clear(auth)
	copy(auth, pin)
	copy(auth[proTempPasswordLen:], tmp)
	r, err := c.transact(ctx, "authenticate with the Admin PIN", proCmdFirstAuthenticate, auth)
	if err != nil {
		return err
	}
	if r.Status == proStatusWrongPassword {
		pe := &PINError{Model: c.model, Retries: -1}
		if rr, err := c.transact(ctx, "read Admin PIN retry counter", proCmdGetPasswordRetryCount, nil); err == nil && rr.Status == proStatusOK {
			pe.Retries = int(rr.Payload[0])
		}
		return fmt.Errorf("program HOTP slot: %w", pe)
	}
	if err := c.check("authenticate with the Admin PIN", r); err != nil {
		return err
	}

	// struct SendOTPData: temporary_admin_password[25], type, id, data[30].
	send := func(op string, typ byte, data []byte) error {
		p := make([]byte, proTempPasswordLen+2+30)
		defer clear(p)
		copy(p, tmp)
		p[proTempPasswordLen] = typ
		p[proTempPasswordLen+1] = 0 // id: first (only) chunk
		copy(p[proTempPasswordLen+2:], data)
		r, err := c.transact(ctx, op, proCmdSendOTPData, p)
		if err != nil {
			return err
		}
		return c.check(op, r)
	}
	if err := send("send HOTP secret", 'S', secret); err != nil {
		return err
	}
	if err := send("send HOTP slot name", 'N', []byte(proSlotName)); err != nil {
		return err
	}

	// struct WriteToOTPSlot: temporary_admin_password[25], slot_number,
	// counter u64 little-endian, config (bit 0: 8 digits; 0 = 6 digits),
	// token id[13].
	w := make([]byte, proTempPasswordLen+1+8+1+13)
	defer clear(w)
	copy(w, tmp)
	w[proTempPasswordLen] = proHOTPSlot
	binary.LittleEndian.PutUint64(w[proTempPasswordLen+1:], counter)
	r, err = c.transact(ctx, "write HOTP slot", proCmdWriteToSlot, w)
	if err != nil {
		return err
	}
	return c.check("write HOTP slot", r)
}

// verify asks the token to check code (check_code_on_device): it answers
// payload[0] = 1 if the code matched a counter in its window.
func (c *proConn) verify(ctx context.Context, code uint32) error {
	var p [4]byte
	binary.LittleEndian.PutUint32(p[:], code)
	r, err := c.transact(ctx, "check HOTP code", proCmdVerifyOTPCode, p[:])
	if err != nil {
		return err
	}
	if err := c.check("check HOTP code", r); err != nil {
		return err
	}
	if r.Payload[0] != 1 {
		return fmt.Errorf("check HOTP code: %w", ErrWrongCode)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
