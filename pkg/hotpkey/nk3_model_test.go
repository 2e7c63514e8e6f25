package hotpkey

// A model of the token side of a Nitrokey 3 reached over CTAPHID: the
// CTAPHID transport as the FIDO CTAP 2.1 specification (section 11.2)
// defines it, and the Secrets app as trussed-secrets-app
// (github.com/Nitrokey/trussed-secrets-app) implements it: src/ctaphid.rs for
// the vendor command, src/authenticator.rs for the commands, src/command.rs
// for their parsing, trussed-auth backend/src/data.rs for the PIN counter.
// It keeps its own constants and HOTP code, independent of the host side.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"time"
)

// iso7816 crate status words used by the Secrets app.
const (
	m3Success              = 0x9000
	m3VerificationFailed   = 0x6300
	m3SecurityStatus       = 0x6982
	m3OperationBlocked     = 0x6983
	m3ConditionsOfUse      = 0x6985
	m3IncorrectData        = 0x6a80
	m3NotFound             = 0x6a82
	m3InsNotSupported      = 0x6d00
	m3ClassNotSupported    = 0x6e00
	m3ChainingNotSupported = 0x6884
	m3SecureMsgNotSupp     = 0x6882
	m3PersistentExecError  = 0x6500

	m3RetriesDefault = 8 // ATTEMPT_COUNTER_DEFAULT_RETRIES
)

type m3Credential struct {
	kind, algo, digits byte
	secret             []byte
	counter            *uint32
	touchRequired      bool
	pinEncrypted       bool
}

// secretsAppModel is Authenticator<T> with the state it keeps.
type secretsAppModel struct {
	pinSet      bool
	pin         []byte
	retriesLeft int
	creds       map[string]*m3Credential
	serial      [4]byte
	version     [3]byte
	salt        [8]byte

	// runtime state (state.rs Runtime)
	clientAuthorized, clientNewlyAuthorized bool

	// userPresent answers confirm_user_present: true = touched in time.
	userPresent func() bool
	touches     int // how often a touch was requested

	// brute-force-delay feature: refuse verification for 5 s after one.
	bruteForceDelay  bool
	now              func() time.Time
	lastFailedVerify *time.Time
}

func newSecretsApp() *secretsAppModel {
	return &secretsAppModel{
		creds:       map[string]*m3Credential{},
		serial:      [4]byte{0x12, 0x34, 0x56, 0x78},
		version:     [3]byte{4, 13, 0},
		salt:        [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
		userPresent: func() bool { return true },
		now:         time.Now,
	}
}

// call is the CTAPHID vendor command handler (src/ctaphid.rs): the answer is
// the status word first, then the data. It returns ok=false for input that
// is not an APDU (ctaphid Error::InvalidLength).
func (a *secretsAppModel) call(input []byte) (resp []byte, ok bool) {
	cla, ins, p1, p2, data, ok := m3ParseAPDU(input)
	if !ok {
		return nil, false
	}
	reply, sw := a.respond(cla, ins, p1, p2, data)
	if sw != m3Success {
		return []byte{byte(sw >> 8), byte(sw)}, true
	}
	return append([]byte{0x90, 0x00}, reply...), true
}

// m3ParseAPDU: iso7816::command::CommandView::try_from, short and extended Lc.
func m3ParseAPDU(b []byte) (cla, ins, p1, p2 byte, data []byte, ok bool) {
	if len(b) < 4 {
		return
	}
	cla, ins, p1, p2 = b[0], b[1], b[2], b[3]
	rest := b[4:]
	switch {
	case len(rest) == 0, len(rest) == 1: // case 1, or case 2 with Le
		return cla, ins, p1, p2, nil, true
	case rest[0] != 0: // short Lc
		n := int(rest[0])
		if len(rest) != 1+n && len(rest) != 2+n {
			return
		}
		return cla, ins, p1, p2, rest[1 : 1+n], true
	default: // extended: 00 Lc1 Lc2
		if len(rest) < 3 {
			return cla, ins, p1, p2, nil, len(rest) == 3
		}
		n := int(binary.BigEndian.Uint16(rest[1:3]))
		if len(rest) < 3+n || len(rest) > 3+n+2 {
			return
		}
		return cla, ins, p1, p2, rest[3 : 3+n], true
	}
}

// respond: Authenticator::respond with the authorization bookkeeping.
func (a *secretsAppModel) respond(cla, ins, p1, p2 byte, data []byte) ([]byte, uint16) {
	before := a.clientAuthorized
	a.clientNewlyAuthorized = false
	reply, sw := a.innerRespond(cla, ins, p1, p2, data)
	if before || !a.clientNewlyAuthorized {
		a.clientAuthorized = false
	}
	if a.clientNewlyAuthorized {
		a.clientAuthorized = true
	}
	return reply, sw
}

func (a *secretsAppModel) innerRespond(cla, ins, p1, p2 byte, data []byte) ([]byte, uint16) {
	// inner_respond class checks, then Command::try_from.
	if cla&0x10 != 0 {
		return nil, m3ChainingNotSupported
	}
	if cla&0x0c != 0 {
		return nil, m3SecureMsgNotSupp
	}
	if cla&0x03 != 0 {
		return nil, m3ClassNotSupported
	}
	if cla != 0 {
		return nil, m3InsNotSupported
	}
	switch {
	case ins == 0xa4 && p1 == 0x04 && p2 == 0x00:
		if string(data) != "\xa0\x00\x00\x05\x27\x21\x01" {
			return nil, m3NotFound
		}
		return a.selectApp(), m3Success
	case ins == 0x02 && p1 == 0 && p2 == 0:
		return nil, a.delete(data)
	case ins == 0x01 && p1 == 0 && p2 == 0:
		return nil, a.register(data)
	case ins == 0xb1 && p1 == 0 && p2 == 0:
		return a.verifyCode(data)
	case ins == 0xb2 && p1 == 0 && p2 == 0:
		return nil, a.verifyPIN(data)
	case ins == 0xb4 && p1 == 0 && p2 == 0:
		return nil, a.setPIN(data)
	}
	return nil, m3InsNotSupported
}

func m3TLV(tag byte, v []byte) []byte { return append([]byte{tag, byte(len(v))}, v...) }

// m3Next decodes one simple TLV (flexiber TaggedSlice) from b.
func m3Next(b []byte) (tag byte, val, rest []byte, ok bool) {
	if len(b) < 2 || int(b[1]) > 0x7f || len(b) < 2+int(b[1]) {
		return 0, nil, nil, false
	}
	return b[0], b[2 : 2+b[1]], b[2+b[1]:], true
}

// select: AnswerToSelect or PINAnswerToSelect.
func (a *secretsAppModel) selectApp() []byte {
	out := m3TLV(0x79, a.version[:])
	if a.pinSet {
		out = append(out, m3TLV(0x82, []byte{byte(a.retriesLeft)})...)
	} else {
		out = append(out, m3TLV(0x71, a.salt[:])...)
	}
	return append(out, m3TLV(0x8f, a.serial[:])...)
}

func (a *secretsAppModel) confirmUserPresent() bool {
	a.touches++
	return a.userPresent()
}

// delete: user_present first, then NotFound or removal.
func (a *secretsAppModel) delete(data []byte) uint16 {
	if !a.confirmUserPresent() {
		return m3SecurityStatus
	}
	tag, label, _, ok := m3Next(data)
	if !ok || tag != 0x71 {
		return m3IncorrectData
	}
	if _, ok := a.creds[string(label)]; !ok {
		return m3NotFound
	}
	delete(a.creds, string(label))
	return m3Success
}

// register (Command::Register parsing in command.rs, then register()).
func (a *secretsAppModel) register(data []byte) uint16 {
	tag, label, rest, ok := m3Next(data)
	if !ok || tag != 0x71 {
		return m3IncorrectData
	}
	tag, key, rest, ok := m3Next(rest)
	if !ok || tag != 0x73 || len(key) < 3 {
		return m3IncorrectData
	}
	kind, algo := key[0]&0xf0, key[0]&0x0f
	switch kind {
	case 0x10, 0x20, 0x30, 0x40, 0xf0:
	default:
		return m3IncorrectData
	}
	if algo < 1 || algo > 3 {
		return m3IncorrectData
	}
	c := &m3Credential{kind: kind, algo: algo, digits: key[1], secret: append([]byte(nil), key[2:]...)}
	// Properties: tag 0x78 and one value byte, no length.
	if len(rest) >= 2 && rest[0] == 0x78 {
		c.touchRequired = rest[1]&0x02 != 0
		c.pinEncrypted = rest[1]&0x04 != 0
		rest = rest[2:]
	}
	if kind == 0x10 || kind == 0x30 {
		var ctr uint32
		if tag, v, _, ok := m3Next(rest); ok && tag == 0x7a && len(v) == 4 {
			ctr = binary.BigEndian.Uint32(v)
		}
		c.counter = &ctr
	}
	if c.touchRequired && !c.pinEncrypted && !a.confirmUserPresent() {
		return m3SecurityStatus
	}
	if _, exists := a.creds[string(label)]; exists {
		return m3OperationBlocked // err_if_credential_with_label_exists
	}
	// 2.5 Require PIN to have been verified before creating a ReverseHOTP
	// credential.
	if c.kind == 0x30 && !a.clientAuthorized {
		return m3SecurityStatus
	}
	a.creds[string(label)] = c
	return m3Success
}

// verify_code with COUNTER_WINDOW_SIZE = 9 (offsets 0..=9).
func (a *secretsAppModel) verifyCode(data []byte) ([]byte, uint16) {
	tag, label, rest, ok := m3Next(data)
	if !ok || tag != 0x71 {
		return nil, m3IncorrectData
	}
	tag, resp, _, ok := m3Next(rest)
	if !ok || tag != 0x75 || len(resp) != 4 {
		return nil, m3IncorrectData
	}
	codeIn := binary.BigEndian.Uint32(resp)
	if a.bruteForceDelay {
		// deny_if_too_soon_after_failure, then mark_failed_verification_time.
		now := a.now()
		if a.lastFailedVerify != nil && now.Sub(*a.lastFailedVerify) < 5*time.Second {
			return nil, m3SecurityStatus
		}
		a.lastFailedVerify = &now
	}
	c, ok := a.creds[string(label)]
	if !ok {
		return nil, m3NotFound
	}
	if c.touchRequired && !c.pinEncrypted && !a.confirmUserPresent() {
		return nil, m3SecurityStatus
	}
	if c.kind != 0x30 {
		return nil, m3ConditionsOfUse
	}
	if c.counter == nil {
		return nil, m3PersistentExecError
	}
	cur := *c.counter
	found := -1
	for off := uint32(0); off <= 9; off++ {
		ctr := cur + off
		if ctr < cur {
			return nil, m3PersistentExecError // checked_add overflow
		}
		if m3HOTP(c.secret, ctr, int(c.digits)) == codeIn {
			found = int(ctr)
			break
		}
	}
	if found < 0 {
		return nil, m3VerificationFailed // wink_bad
	}
	next := uint32(found) + 1 // bump_counter_for_cred
	c.counter = &next
	if a.bruteForceDelay {
		a.lastFailedVerify = nil
	}
	return []byte{0x77, 0x00}, m3Success
}

// verify_pin: PIN must exist; touch; trussed-auth check (blocked fails
// without counting, failure decrements, success resets to the maximum).
func (a *secretsAppModel) verifyPIN(data []byte) uint16 {
	tag, pin, _, ok := m3Next(data)
	if !ok || tag != 0x80 {
		return m3IncorrectData
	}
	if !a.pinSet {
		return m3SecurityStatus
	}
	if !a.confirmUserPresent() {
		return m3SecurityStatus
	}
	if a.retriesLeft == 0 {
		return m3VerificationFailed
	}
	if string(pin) != string(a.pin) {
		a.retriesLeft--
		return m3VerificationFailed
	}
	a.retriesLeft = m3RetriesDefault
	a.clientNewlyAuthorized = true
	return m3Success
}

// set_pin: only when no PIN exists; touch; authorizes the next command.
func (a *secretsAppModel) setPIN(data []byte) uint16 {
	tag, pin, _, ok := m3Next(data)
	if !ok || tag != 0x80 {
		return m3IncorrectData
	}
	if a.pinSet {
		return m3SecurityStatus
	}
	if !a.confirmUserPresent() {
		return m3SecurityStatus
	}
	a.pinSet, a.pin, a.retriesLeft = true, append([]byte(nil), pin...), m3RetriesDefault
	a.clientNewlyAuthorized = true
	return m3Success
}

// m3HOTP: calculate_hotp_code_for_counter (SHA-1 only here).
func m3HOTP(secret []byte, counter uint32, digits int) uint32 {
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], uint64(counter))
	m := hmac.New(sha1.New, secret)
	m.Write(c[:])
	d := m.Sum(nil)
	o := d[len(d)-1] & 0xf
	t := binary.BigEndian.Uint32(d[o:]) & 0x7fffffff
	p := uint32(1)
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return t % p
}

// nk3Firmware is the CTAPHID side: packets in through Write, packets out
// through Read.
type nk3Firmware struct {
	app     *secretsAppModel
	nextCID uint32
	cids    map[uint32]bool
	out     [][]byte

	// message being received
	rxCID  uint32
	rxCmd  byte
	rxNeed int
	rxSeq  byte
	rxBuf  []byte
	rxBusy bool

	firmwareVersion uint32 // admin app VERSION
	keepalives      int    // KEEPALIVE(UPNEEDED) packets per touch
	foreignNoise    bool   // interleave a packet for another channel
	strayInit       bool   // answer another program's INIT first
	closed          bool
	writes          int
}

func newNK3Firmware() *nk3Firmware {
	return &nk3Firmware{
		app:             newSecretsApp(),
		nextCID:         0x1000_0001,
		cids:            map[uint32]bool{},
		firmwareVersion: 1<<22 | 8<<6 | 3, // v1.8.3
		keepalives:      3,
	}
}

func (f *nk3Firmware) queue(cid uint32, cmd byte, data []byte) {
	p := make([]byte, 64)
	binary.BigEndian.PutUint32(p, cid)
	p[4] = cmd | 0x80
	binary.BigEndian.PutUint16(p[5:], uint16(len(data)))
	n := copy(p[7:], data)
	f.out = append(f.out, p)
	for seq := byte(0); n < len(data); seq++ {
		p := make([]byte, 64)
		binary.BigEndian.PutUint32(p, cid)
		p[4] = seq
		n += copy(p[5:], data[n:])
		f.out = append(f.out, p)
	}
}

func (f *nk3Firmware) ctapError(cid uint32, code byte) { f.queue(cid, 0x3f, []byte{code}) }

func (f *nk3Firmware) Write(report []byte) error {
	if f.closed {
		return errors.New("device closed")
	}
	f.writes++
	if len(report) != 65 || report[0] != 0 {
		return errors.New("model: output report must be report ID 0 + 64 bytes")
	}
	p := report[1:]
	cid := binary.BigEndian.Uint32(p)
	if p[4]&0x80 != 0 {
		cmd := p[4] &^ 0x80
		n := int(binary.BigEndian.Uint16(p[5:]))
		if cmd == 0x06 { // CTAPHID_INIT
			if n != 8 {
				f.ctapError(cid, 0x03)
				return nil
			}
			nonce := append([]byte(nil), p[7:15]...)
			newCID := cid
			if cid == 0xffffffff {
				newCID = f.nextCID
				f.nextCID++
				f.cids[newCID] = true
			}
			f.rxBusy = false
			if f.strayInit && cid == 0xffffffff {
				other := []byte{9, 9, 9, 9, 9, 9, 9, 9, 0x0e, 0x0e, 0x0e, 0x0e, 2, 1, 8, 3, 5}
				f.queue(cid, 0x06, other)
			}
			resp := append(nonce, 0, 0, 0, 0)
			binary.BigEndian.PutUint32(resp[8:], newCID)
			resp = append(resp, 2, 1, 8, 3, 0x05) // protocol 2, device 1.8.3, WINK|CBOR
			f.queue(cid, 0x06, resp)
			return nil
		}
		if cid == 0xffffffff || !f.cids[cid] {
			f.ctapError(cid, 0x0b) // ERR_INVALID_CHANNEL
			return nil
		}
		if n > 7609 {
			f.ctapError(cid, 0x03)
			return nil
		}
		f.rxCID, f.rxCmd, f.rxNeed, f.rxSeq, f.rxBusy = cid, cmd, n, 0, true
		f.rxBuf = append(f.rxBuf[:0], p[7:7+min(n, 57)]...)
	} else {
		if !f.rxBusy || cid != f.rxCID {
			f.ctapError(cid, 0x0b)
			return nil
		}
		if p[4] != f.rxSeq {
			f.rxBusy = false
			f.ctapError(cid, 0x04) // ERR_INVALID_SEQ
			return nil
		}
		f.rxSeq++
		f.rxBuf = append(f.rxBuf, p[5:5+min(f.rxNeed-len(f.rxBuf), 59)]...)
	}
	if len(f.rxBuf) == f.rxNeed {
		f.rxBusy = false
		f.dispatch(f.rxCID, f.rxCmd, f.rxBuf)
	}
	return nil
}

func (f *nk3Firmware) dispatch(cid uint32, cmd byte, data []byte) {
	if f.foreignNoise {
		// A packet for some other host's channel: must be skipped.
		f.queue(0x0badcafe, 0x70, []byte{0x90, 0x00, 0xde, 0xad})
	}
	switch cmd {
	case 0x61: // admin app VERSION
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], f.firmwareVersion)
		f.queue(cid, cmd, v[:])
	case 0x70: // Secrets app
		touchesBefore := f.app.touches
		resp, ok := f.app.call(data)
		// While the app waited for the button the transport sent
		// KEEPALIVE with status UPNEEDED; they precede the answer.
		if f.app.touches > touchesBefore {
			answer := f.out
			f.out = nil
			for i := 0; i < f.keepalives; i++ {
				f.queue(cid, 0x3b, []byte{2})
			}
			f.out = append(f.out, answer...)
		}
		if !ok {
			f.ctapError(cid, 0x03) // Error::InvalidLength
			return
		}
		f.queue(cid, cmd, resp)
	default:
		f.ctapError(cid, 0x01) // ERR_INVALID_CMD
	}
}

func (f *nk3Firmware) Read(p []byte, timeout time.Duration) (int, error) {
	if f.closed {
		return 0, errors.New("device closed")
	}
	if len(f.out) == 0 {
		return 0, ErrTimeout
	}
	n := copy(p, f.out[0])
	f.out = f.out[1:]
	return n, nil
}

func (f *nk3Firmware) SetFeature([]byte) error {
	return errors.New("model: the FIDO interface has no feature reports")
}
func (f *nk3Firmware) GetFeature([]byte) (int, error) {
	return 0, errors.New("model: the FIDO interface has no feature reports")
}
func (f *nk3Firmware) Close() error { f.closed = true; return nil }
