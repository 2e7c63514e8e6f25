package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TPM 1.2 wire format (TCG TPM Main Specification 1.2 rev 116, part 3).
// go-tpm's tpm package lacks NV writes that work and monotonic counters, and
// its Seal produces a blob larger than Heads' 312-byte NV space, so goheads
// speaks the few TPM 1.2 commands Heads uses itself.

const (
	tag12RqCommand   = 0x00C1
	tag12RqAuth1     = 0x00C2
	tag12RqAuth2     = 0x00C3
	tag12RspCommand  = 0x00C4
	tag12RspAuth1    = 0x00C5
	tag12RspAuth2    = 0x00C6
	ord12Extend      = 0x00000014
	ord12PcrRead     = 0x00000015
	ord12GetRandom   = 0x00000046
	ord12GetCap      = 0x00000065
	ord12OIAP        = 0x0000000A
	ord12OSAP        = 0x0000000B
	ord12Seal        = 0x00000017
	ord12Unseal      = 0x00000018
	ord12NVDefine    = 0x000000CC
	ord12NVWrite     = 0x000000CD
	ord12NVRead      = 0x000000CF
	ord12CreateCtr   = 0x000000DC
	ord12IncCtr      = 0x000000DD
	ord12ReadCtr     = 0x000000DE
	ord12ReleaseCtr  = 0x000000DF
	ord12FlushSpec   = 0x000000BA
	ord12TakeOwner   = 0x0000000D
	ord12OwnerClear  = 0x0000005B
	ord12ForceClear  = 0x0000005D
	ord12ReadPubEK   = 0x0000007C
	ord12PhysEnable  = 0x0000006F
	ord12PhysSetDeac = 0x00000072
	ord12PhysPres    = 0x4000000A // TSC_PhysicalPresence
	ord12SetOwnerIns = 0x00000071
)

// TPM 1.2 return codes Heads' flows meet.
const (
	rc12AuthFail     = 0x01
	rc12BadIndex     = 0x02
	rc12BadParameter = 0x03
	rc12Deactivated  = 0x06
	rc12Disabled     = 0x07
	rc12NoSpace      = 0x11
	rc12NoSRK        = 0x12
	rc12OwnerSet     = 0x14
	rc12WrongPCRVal  = 0x18
	rc12Auth2Fail    = 0x1d
)

// Error12 is a TPM 1.2 return code.
type Error12 struct {
	Ordinal uint32
	Code    uint32
}

func (e *Error12) Error() string {
	name := rc12Names[e.Code]
	if name == "" {
		name = "unknown error"
	}
	return fmt.Sprintf("TPM 1.2 command 0x%x: %s (0x%x)", e.Ordinal, name, e.Code)
}

// Is maps return codes onto the package's outcome errors.
func (e *Error12) Is(target error) bool {
	switch target {
	case ErrBadAuth:
		return e.Code == rc12AuthFail || e.Code == rc12Auth2Fail
	case ErrPolicyMismatch:
		return e.Code == rc12WrongPCRVal
	case ErrLockout:
		return e.Code == rc12DefendLock
	case ErrNotProvisioned:
		return e.Code == rc12BadIndex || e.Code == rc12NoSRK
	}
	return false
}

const rc12DefendLock = 0x803 // TPM_DEFEND_LOCK_RUNNING (TPM_NON_FATAL + 3)

var rc12Names = map[uint32]string{
	rc12AuthFail:     "authorization failed",
	rc12BadIndex:     "bad index",
	rc12BadParameter: "bad parameter",
	rc12Deactivated:  "TPM deactivated",
	rc12Disabled:     "TPM disabled",
	rc12NoSpace:      "no space",
	rc12NoSRK:        "no SRK (TPM has no owner)",
	rc12OwnerSet:     "TPM already has an owner",
	rc12WrongPCRVal:  "PCR values do not match the sealed policy",
	rc12Auth2Fail:    "second authorization failed",
	rc12DefendLock:   "dictionary-attack defence active",
}

// buf12 builds a TPM 1.2 command.
type buf12 struct{ b []byte }

func newCmd12(tag uint16, ord uint32) *buf12 {
	b := &buf12{b: make([]byte, 10, 64)}
	binary.BigEndian.PutUint16(b.b[0:], tag)
	binary.BigEndian.PutUint32(b.b[6:], ord)
	return b
}

func (b *buf12) u8(v uint8) *buf12   { b.b = append(b.b, v); return b }
func (b *buf12) u16(v uint16) *buf12 { b.b = binary.BigEndian.AppendUint16(b.b, v); return b }
func (b *buf12) u32(v uint32) *buf12 { b.b = binary.BigEndian.AppendUint32(b.b, v); return b }
func (b *buf12) raw(v []byte) *buf12 { b.b = append(b.b, v...); return b }

func (b *buf12) bytes() []byte {
	binary.BigEndian.PutUint32(b.b[2:], uint32(len(b.b)))
	return b.b
}

// run12 sends a TPM 1.2 command and returns the response body after the
// 10-byte header, or an *Error12 for a non-zero return code.
func (t *TPM) run12(cmd []byte) ([]byte, error) {
	ord := binary.BigEndian.Uint32(cmd[6:10])
	rsp, err := t.t.Send(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTransport, err)
	}
	if len(rsp) < 10 {
		return nil, fmt.Errorf("TPM 1.2 command 0x%x: short response (%d bytes)", ord, len(rsp))
	}
	if size := binary.BigEndian.Uint32(rsp[2:6]); int(size) != len(rsp) {
		return nil, fmt.Errorf("TPM 1.2 command 0x%x: response size %d, got %d bytes", ord, size, len(rsp))
	}
	if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 {
		return nil, &Error12{Ordinal: ord, Code: rc}
	}
	return rsp[10:], nil
}

// reader12 parses a response body.
type reader12 struct {
	b   []byte
	err error
}

func (r *reader12) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = errors.New("TPM 1.2 response truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader12) u32() uint32 {
	v := r.take(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader12) u16() uint16 {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (t *TPM) pcrRead12(idx int) ([]byte, error) {
	body, err := t.run12(newCmd12(tag12RqCommand, ord12PcrRead).u32(uint32(idx)).bytes())
	if err != nil {
		return nil, err
	}
	if len(body) != 20 {
		return nil, fmt.Errorf("TPM 1.2 PCR read: %d-byte digest", len(body))
	}
	return append([]byte(nil), body...), nil
}

func (t *TPM) extend12(idx int, digest []byte) ([]byte, error) {
	body, err := t.run12(newCmd12(tag12RqCommand, ord12Extend).u32(uint32(idx)).raw(digest).bytes())
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), body...), nil
}

func (t *TPM) random12(n int) ([]byte, error) {
	var out []byte
	for len(out) < n {
		body, err := t.run12(newCmd12(tag12RqCommand, ord12GetRandom).u32(uint32(n - len(out))).bytes())
		if err != nil {
			return nil, err
		}
		r := &reader12{b: body}
		got := r.take(int(r.u32()))
		if r.err != nil {
			return nil, r.err
		}
		if len(got) == 0 {
			return nil, errors.New("TPM 1.2 GetRandom returned no bytes")
		}
		out = append(out, got...)
	}
	return out, nil
}
