package hotpkey

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// CTAPHID framing (FIDO CTAP 2.1, section 11.2.4): 64-byte packets on the
// FIDO HID interface. An initialization packet is CID(4) CMD|0x80 BCNT(2)
// DATA(57); continuation packets are CID(4) SEQ(0..127) DATA(59).
const (
	ctapPacket       = 64
	ctapInitData     = ctapPacket - 7
	ctapContData     = ctapPacket - 5
	ctapMaxMessage   = ctapInitData + 128*ctapContData // 7609 bytes
	ctapBroadcastCID = 0xffffffff

	ctapCmdInit      = 0x06
	ctapCmdKeepalive = 0x3b
	ctapCmdError     = 0x3f
	// Nitrokey 3 vendor commands (nitrokey-3-firmware docs/ctaphid-commands.md).
	ctapCmdVersion = 0x61 // admin app: firmware version, u32 big-endian
	ctapCmdSecrets = 0x70 // Secrets app: one ISO 7816 APDU

	ctapKeepaliveProcessing = 1
	ctapKeepaliveUPNeeded   = 2

	ctapErrInvalidChannel = 0x0b
)

// ctapErrorText names CTAPHID_ERROR codes.
func ctapErrorText(code byte) string {
	switch code {
	case 0x01:
		return "invalid command"
	case 0x02:
		return "invalid parameter"
	case 0x03:
		return "invalid message length"
	case 0x04:
		return "invalid sequence"
	case 0x05:
		return "message timeout"
	case 0x06:
		return "channel busy"
	case 0x0b:
		return "invalid channel"
	}
	return "other error"
}

// ctapFrame splits a message into 64-byte packets.
func ctapFrame(cid uint32, cmd byte, data []byte) ([][]byte, error) {
	if len(data) > ctapMaxMessage {
		return nil, fmt.Errorf("CTAPHID message of %d bytes, limit %d", len(data), ctapMaxMessage)
	}
	var out [][]byte
	p := make([]byte, ctapPacket)
	binary.BigEndian.PutUint32(p, cid)
	p[4] = cmd | 0x80
	binary.BigEndian.PutUint16(p[5:], uint16(len(data)))
	n := copy(p[7:], data)
	out = append(out, p)
	for seq := byte(0); n < len(data); seq++ {
		p := make([]byte, ctapPacket)
		binary.BigEndian.PutUint32(p, cid)
		p[4] = seq
		n += copy(p[5:], data[n:])
		out = append(out, p)
	}
	return out, nil
}

// ctapAssembler collects the answer to one request on one channel. Packets
// come from a USB device and are not trusted: lengths and sequence numbers
// are checked, and packets for other channels are ignored, as the CTAP
// specification requires.
type ctapAssembler struct {
	cid     uint32
	cmd     byte
	started bool
	need    int
	seq     byte
	buf     []byte
	// Keepalive is the status of the last KEEPALIVE seen (0 if none).
	Keepalive byte
}

// add feeds one packet. done is true when the message is complete; then
// result returns it.
func (a *ctapAssembler) add(p []byte) (done bool, err error) {
	if len(p) < ctapPacket {
		return false, fmt.Errorf("CTAPHID packet of %d bytes, want %d", len(p), ctapPacket)
	}
	p = p[:ctapPacket]
	if binary.BigEndian.Uint32(p) != a.cid {
		return false, nil // another channel's traffic
	}
	if p[4]&0x80 != 0 {
		cmd := p[4] &^ 0x80
		n := int(binary.BigEndian.Uint16(p[5:]))
		switch cmd {
		case ctapCmdKeepalive:
			if n >= 1 {
				a.Keepalive = p[7]
			}
			return false, nil
		case ctapCmdError:
			code := p[7]
			return false, &DeviceError{Op: "CTAPHID", Status: uint16(code), Msg: ctapErrorText(code)}
		}
		if cmd != a.cmd {
			return false, fmt.Errorf("CTAPHID answer to command 0x%02x, expected 0x%02x", cmd, a.cmd)
		}
		if n > ctapMaxMessage {
			return false, fmt.Errorf("CTAPHID answer claims %d bytes, limit %d", n, ctapMaxMessage)
		}
		a.started, a.need, a.seq = true, n, 0
		a.buf = append(a.buf[:0], p[7:7+min(n, ctapInitData)]...)
		return len(a.buf) == a.need, nil
	}
	if !a.started {
		return false, errors.New("CTAPHID continuation packet before the initialization packet")
	}
	if p[4] != a.seq {
		return false, fmt.Errorf("CTAPHID continuation packet %d, expected %d", p[4], a.seq)
	}
	a.seq++
	a.buf = append(a.buf, p[5:5+min(a.need-len(a.buf), ctapContData)]...)
	return len(a.buf) == a.need, nil
}

// ctapConn is a CTAPHID channel to a Nitrokey 3.
type ctapConn struct {
	dev     HID
	cid     uint32
	timeout time.Duration // longest silence tolerated while waiting
	rand    io.Reader
	onTouch func()
}

// send writes a message and returns the answer to it.
func (c *ctapConn) send(ctx context.Context, cid uint32, cmd byte, data []byte) ([]byte, error) {
	if err := c.write(cid, cmd, data); err != nil {
		return nil, err
	}
	return c.answer(ctx, cid, cmd)
}

func (c *ctapConn) write(cid uint32, cmd byte, data []byte) error {
	pkts, err := ctapFrame(cid, cmd, data)
	if err != nil {
		return err
	}
	for _, p := range pkts {
		report := append([]byte{0}, p...) // report ID 0
		err := c.dev.Write(report)
		clear(report)
		clear(p)
		if err != nil {
			return fmt.Errorf("CTAPHID write: %v: %w", err, ErrConnectionLost)
		}
	}
	return nil
}

// answer reads packets until the answer to cmd on cid is complete.
func (c *ctapConn) answer(ctx context.Context, cid uint32, cmd byte) ([]byte, error) {
	a := &ctapAssembler{cid: cid, cmd: cmd}
	buf := make([]byte, ctapPacket)
	touchAsked := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := c.dev.Read(buf, c.timeout)
		if err != nil {
			return nil, fmt.Errorf("CTAPHID read: %v: %w", err, ErrConnectionLost)
		}
		done, err := a.add(buf[:n])
		if err != nil {
			return nil, err
		}
		if a.Keepalive == ctapKeepaliveUPNeeded && !touchAsked {
			touchAsked = true
			if c.onTouch != nil {
				c.onTouch()
			}
		}
		if done {
			return a.buf, nil
		}
	}
}

// init allocates a channel (CTAPHID_INIT on the broadcast channel with an
// 8-byte nonce; the answer echoes the nonce and carries the new CID).
// Answers to other programs' INIT requests, also on the broadcast channel,
// are skipped.
func (c *ctapConn) init(ctx context.Context) error {
	nonce := make([]byte, 8)
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		return fmt.Errorf("CTAPHID init: nonce: %w", err)
	}
	if err := c.write(ctapBroadcastCID, ctapCmdInit, nonce); err != nil {
		return fmt.Errorf("CTAPHID init: %w", err)
	}
	for i := 0; i < 16; i++ {
		resp, err := c.answer(ctx, ctapBroadcastCID, ctapCmdInit)
		if err != nil {
			return fmt.Errorf("CTAPHID init: %w", err)
		}
		if len(resp) < 17 || !bytes.Equal(resp[:8], nonce) {
			continue
		}
		cid := binary.BigEndian.Uint32(resp[8:12])
		if cid == 0 || cid == ctapBroadcastCID {
			return fmt.Errorf("CTAPHID init: token assigned reserved channel 0x%08x: %w", cid, ErrConnectionLost)
		}
		c.cid = cid
		return nil
	}
	return fmt.Errorf("CTAPHID init: no answer carrying our nonce: %w", ErrConnectionLost)
}

// call sends a command on our channel, allocating one first. If the token
// no longer knows the channel (it was unplugged and replugged, or reset),
// a new one is allocated once.
func (c *ctapConn) call(ctx context.Context, cmd byte, data []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		if c.cid == 0 {
			if err := c.init(ctx); err != nil {
				return nil, err
			}
		}
		resp, err := c.send(ctx, c.cid, cmd, data)
		var de *DeviceError
		if attempt == 0 && errors.As(err, &de) && de.Op == "CTAPHID" && de.Status == ctapErrInvalidChannel {
			c.cid = 0
			continue
		}
		return resp, err
	}
}

// Secrets app (trussed-secrets-app, YKOATH-derived). Tags and instructions
// from src/oath.rs; hotp_verification's names in src/ccid.h.
const (
	tagName           = 0x71 // credential label; also the salt in SELECT
	tagKey            = 0x73
	tagResponse       = 0x75
	tagProperty       = 0x78
	tagVersion        = 0x79
	tagInitialCounter = 0x7a
	tagPassword       = 0x80
	tagPINCounter     = 0x82
	tagSerialNumber   = 0x8f

	insPut           = 0x01
	insDelete        = 0x02
	insSelect        = 0xa4
	insSendRemaining = 0xa5
	insVerifyCode    = 0xb1
	insVerifyPIN     = 0xb2
	insSetPIN        = 0xb4

	kindHOTPReverse = 0x30
	algoSHA1        = 0x01

	swOK               = 0x9000
	swVerifyFailed     = 0x6300
	swWrongLength      = 0x6700
	swSecurityStatus   = 0x6982 // not authorized, PIN not set, or no touch
	swOperationBlocked = 0x6983
	swConditionsOfUse  = 0x6985
	swIncorrectData    = 0x6a80
	swNotFound         = 0x6a82
	swInsNotSupported  = 0x6d00
	swClassNotSupp     = 0x6e00

	// nk3Label is hotp_verification's SLOT_NAME, the credential's label.
	nk3Label = "HEADS Validation"
	// nk3MaxPIN is hotp_verification's MAX_PIN_SIZE_CCID.
	nk3MaxPIN = 128
)

// secretsAID selects the Secrets app (YUBICO_OATH_AID).
var secretsAID = []byte{0xa0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01}

func swText(sw uint16) string {
	switch {
	case sw == swOK:
		return "success"
	case sw == swVerifyFailed:
		return "verification failed"
	case sw == swWrongLength:
		return "wrong length"
	case sw == swSecurityStatus:
		return "security status not satisfied"
	case sw == swOperationBlocked:
		return "operation blocked"
	case sw == swConditionsOfUse:
		return "conditions of use not satisfied"
	case sw == swIncorrectData:
		return "incorrect data"
	case sw == swNotFound:
		return "not found"
	case sw == swInsNotSupported:
		return "instruction not supported"
	case sw == swClassNotSupp:
		return "class not supported"
	case sw>>8 == 0x61:
		return "more data available"
	}
	return "unknown status"
}

// tlv encodes one short BER-TLV with a one-byte length.
func tlv(tag byte, v []byte) []byte {
	return append([]byte{tag, byte(len(v))}, v...)
}

// apdu is an ISO 7816-4 short command: CLA 00, INS, P1, P2, Lc and data.
func apdu(ins, p1, p2 byte, data []byte) ([]byte, error) {
	if len(data) > 255 {
		return nil, fmt.Errorf("APDU data of %d bytes, at most 255", len(data))
	}
	out := []byte{0x00, ins, p1, p2}
	if len(data) > 0 {
		out = append(out, byte(len(data)))
		out = append(out, data...)
	}
	return out, nil
}

// parseTLVs splits a Secrets app answer into tag -> value. Lengths are one
// byte, or BER long form 0x81/0x82. Input comes from the device; a length
// running past the end is an error.
func parseTLVs(b []byte) (map[byte][]byte, error) {
	out := map[byte][]byte{}
	for i := 0; i < len(b); {
		tag := b[i]
		i++
		if i >= len(b) {
			return nil, fmt.Errorf("TLV tag 0x%02x at offset %d has no length", tag, i-1)
		}
		n := int(b[i])
		i++
		switch {
		case n == 0x81:
			if i+1 > len(b) {
				return nil, fmt.Errorf("TLV tag 0x%02x: truncated length", tag)
			}
			n = int(b[i])
			i++
		case n == 0x82:
			if i+2 > len(b) {
				return nil, fmt.Errorf("TLV tag 0x%02x: truncated length", tag)
			}
			n = int(binary.BigEndian.Uint16(b[i:]))
			i += 2
		case n > 0x80:
			return nil, fmt.Errorf("TLV tag 0x%02x: length form 0x%02x not supported", tag, n)
		}
		if i+n > len(b) {
			return nil, fmt.Errorf("TLV tag 0x%02x at offset %d: length %d runs past the end (%d bytes)", tag, i, n, len(b))
		}
		if _, dup := out[tag]; !dup {
			out[tag] = b[i : i+n]
		}
		i += n
	}
	return out, nil
}

// secrets sends one APDU to the Secrets app and returns its status word and
// data. Over CTAPHID the status word comes first (trussed-secrets-app
// src/ctaphid.rs), unlike CCID where it ends the answer. 0x61xx ("more
// data") is followed with SEND REMAINING, as nitrokey-sdk-py does.
func (c *ctapConn) secrets(ctx context.Context, ins, p1, p2 byte, data []byte) (uint16, []byte, error) {
	cmd, err := apdu(ins, p1, p2, data)
	if err != nil {
		return 0, nil, err
	}
	defer clear(cmd)
	var out []byte
	for i := 0; ; i++ {
		resp, err := c.call(ctx, ctapCmdSecrets, cmd)
		if err != nil {
			return 0, nil, err
		}
		if len(resp) < 2 {
			return 0, nil, fmt.Errorf("Secrets app answer of %d bytes, want a status word: %w", len(resp), ErrConnectionLost)
		}
		sw := binary.BigEndian.Uint16(resp)
		out = append(out, resp[2:]...)
		if sw>>8 != 0x61 {
			return sw, out, nil
		}
		if i >= 64 {
			return 0, nil, errors.New("Secrets app keeps announcing more data")
		}
		if cmd, err = apdu(insSendRemaining, 0, 0, nil); err != nil {
			return 0, nil, err
		}
	}
}

// nk3Status reads the Secrets app's SELECT answer and the firmware version.
func (c *ctapConn) status(ctx context.Context) (*Status, error) {
	st := &Status{Model: Nitrokey3, PINRetries: -1, UserPINRetries: -1}
	sw, data, err := c.secrets(ctx, insSelect, 0x04, 0x00, secretsAID)
	if err != nil {
		return nil, fmt.Errorf("select Secrets app: %w", err)
	}
	if sw != swOK {
		return nil, &DeviceError{Op: "select Secrets app", Status: sw, Msg: swText(sw)}
	}
	t, err := parseTLVs(data)
	if err != nil {
		return nil, fmt.Errorf("select Secrets app: %v: %w", err, ErrConnectionLost)
	}
	if v := t[tagVersion]; len(v) >= 2 {
		st.SecretsApp = Version{Major: int(v[0]), Minor: int(v[1])}
		if len(v) >= 3 {
			st.SecretsApp.Patch = int(v[2])
		}
	}
	// The PIN counter is only present once a PIN is set (AnswerToSelect
	// vs PINAnswerToSelect in src/authenticator.rs).
	if v := t[tagPINCounter]; len(v) == 1 {
		st.PINSet, st.PINRetries = true, int(v[0])
	}
	if v := t[tagSerialNumber]; len(v) == 4 {
		st.Serial = binary.BigEndian.Uint32(v)
	}
	// Firmware version from the admin app: major<<22 | minor<<6 | patch
	// (hotp_verification main.c prints it this way).
	if v, err := c.call(ctx, ctapCmdVersion, nil); err == nil && len(v) >= 4 {
		x := binary.BigEndian.Uint32(v)
		st.Firmware = Version{Major: int(x >> 22), Minor: int(x >> 6 & 0xffff), Patch: int(x & 0x3f)}
	}
	return st, nil
}

// pinRetries re-reads the PIN counter after a refusal.
func (c *ctapConn) pinRetries(ctx context.Context) int {
	st, err := c.status(ctx)
	if err != nil || !st.PINSet {
		return -1
	}
	return st.PINRetries
}

// program replaces the reverse-HOTP credential: set_secret_on_device_ccid
// (src/operations_ccid.c) with CCID_SECRETS_AUTHENTICATE_OR_CREATE_PIN.
// The token asks for a touch to delete and to check the PIN.
func (c *ctapConn) program(ctx context.Context, secret []byte, counter uint64, pin []byte) error {
	if len(pin) == 0 || len(pin) > nk3MaxPIN {
		return fmt.Errorf("program HOTP credential: Secrets app PIN of %d bytes, want 1 to %d: %w", len(pin), nk3MaxPIN, ErrBadInput)
	}
	if counter > 0xffffffff-1 {
		// The credential keeps a u32 counter (Tag_InitialCounter).
		return fmt.Errorf("program HOTP credential: counter %d does not fit the Nitrokey 3's 32 bits: %w", counter, ErrBadInput)
	}
	if len(secret) > 64 {
		return fmt.Errorf("program HOTP credential: secret of %d bytes: %w", len(secret), ErrBadInput)
	}
	label := []byte(nk3Label)

	// 1. Delete the old credential; "not found" is fine. A Put over an
	// existing label is refused (err_if_credential_with_label_exists).
	sw, _, err := c.secrets(ctx, insDelete, 0, 0, tlv(tagName, label))
	if err != nil {
		return fmt.Errorf("delete old HOTP credential: %w", err)
	}
	if err := c.swErr("delete old HOTP credential", sw, swOK, swNotFound); err != nil {
		return err
	}

	// 2. Verify the PIN; a token without a PIN gets this one set first.
	pinTLV := tlv(tagPassword, pin)
	defer clear(pinTLV)
	sw, _, err = c.secrets(ctx, insVerifyPIN, 0, 0, pinTLV)
	if err != nil {
		return fmt.Errorf("verify Secrets app PIN: %w", err)
	}
	if sw == swSecurityStatus {
		// Either no PIN is set or the touch was missed; SELECT says which.
		if st, err := c.status(ctx); err == nil && !st.PINSet {
			sw, _, err = c.secrets(ctx, insSetPIN, 0, 0, pinTLV)
			if err != nil {
				return fmt.Errorf("set Secrets app PIN: %w", err)
			}
			if err := c.swErr("set Secrets app PIN", sw, swOK); err != nil {
				return err
			}
			if sw, _, err = c.secrets(ctx, insVerifyPIN, 0, 0, pinTLV); err != nil {
				return fmt.Errorf("verify Secrets app PIN: %w", err)
			}
		}
	}
	if sw == swVerifyFailed {
		// hotp_verification ignores a wrong PIN here
		// (authenticate_or_set_ccid returns success) and fails later
		// on the Put; the caller learns nothing about the retries.
		return fmt.Errorf("program HOTP credential: %w", &PINError{Model: Nitrokey3, Retries: c.pinRetries(ctx)})
	}
	if err := c.swErr("verify Secrets app PIN", sw, swOK); err != nil {
		return err
	}

	// 3. Put, which must directly follow the PIN check: the app keeps the
	// authorization for one command (Authenticator::respond).
	// Built in one buffer so the only copy of the secret is cleared.
	body := make([]byte, 0, 2+len(label)+4+len(secret)+2+6)
	defer func() { clear(body[:cap(body)]) }()
	body = append(body, tagName, byte(len(label)))
	body = append(body, label...)
	// Key: kind|algorithm, digits, secret.
	body = append(body, tagKey, byte(2+len(secret)), kindHOTPReverse|algoSHA1, 6)
	body = append(body, secret...)
	// Properties are tag and value without a length (YKOATH); 0: no
	// touch needed, hardware-key encryption (not PIN-encrypted), so the
	// check works without the PIN.
	body = append(body, tagProperty, 0x00)
	body = append(body, tagInitialCounter, 4)
	body = binary.BigEndian.AppendUint32(body, uint32(counter))
	sw, _, err = c.secrets(ctx, insPut, 0, 0, body)
	if err != nil {
		return fmt.Errorf("write HOTP credential: %w", err)
	}
	return c.swErr("write HOTP credential", sw, swOK)
}

// verify asks the Secrets app to check code (verify_code_ccid).
func (c *ctapConn) verify(ctx context.Context, code uint32) error {
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], code)
	body := append(tlv(tagName, []byte(nk3Label)), tlv(tagResponse, v[:])...)
	sw, _, err := c.secrets(ctx, insVerifyCode, 0, 0, body)
	if err != nil {
		return fmt.Errorf("check HOTP code: %w", err)
	}
	switch sw {
	case swOK:
		return nil
	case swVerifyFailed:
		return fmt.Errorf("check HOTP code: %w", ErrWrongCode)
	case swNotFound:
		return fmt.Errorf("check HOTP code: %w", ErrSlotNotProgrammed)
	}
	return c.swErr("check HOTP code", sw)
}

// swErr accepts the listed status words and turns others into errors.
func (c *ctapConn) swErr(op string, sw uint16, ok ...uint16) error {
	for _, o := range ok {
		if sw == o {
			return nil
		}
	}
	switch sw {
	case swSecurityStatus:
		// No touch within 15 s, no PIN verified, or (check) the 5 s
		// back-off after a failed verification.
		return fmt.Errorf("%s: %w", op, ErrNotConfirmed)
	case swInsNotSupported:
		return fmt.Errorf("%s: %w", op, ErrUnsupported)
	}
	return &DeviceError{Op: op, Status: sw, Msg: swText(sw)}
}
