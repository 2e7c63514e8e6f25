package tpm

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	legacy "github.com/google/go-tpm/tpm"
)

// pcrInfo12 builds the TPM_PCR_INFO structure tpmtotp's sealfile2 uses
// (sizeOfSelect 2, so PCRs 0-15): the release digest is SHA-1 of the
// TPM_PCR_COMPOSITE of the given values; digestAtCreation is left zero for
// the TPM to fill. This layout makes the sealed blob exactly 312 bytes,
// the size of Heads' NV space.
func pcrInfo12(values map[int][]byte) ([]byte, error) {
	var sel [2]byte
	idx := make([]int, 0, len(values))
	for i, v := range values {
		if i < 0 || i > 15 {
			return nil, fmt.Errorf("TPM 1.2 seal: PCR %d outside 0-15", i)
		}
		if len(v) != 20 {
			return nil, fmt.Errorf("TPM 1.2 seal: PCR %d value is %d bytes, want 20", i, len(v))
		}
		sel[i/8] |= 1 << (i % 8)
		idx = append(idx, i)
	}
	sort.Ints(idx)
	comp := sha1.New()
	binary.Write(comp, binary.BigEndian, uint16(2))
	comp.Write(sel[:])
	binary.Write(comp, binary.BigEndian, uint32(20*len(idx)))
	for _, i := range idx {
		comp.Write(values[i])
	}
	info := binary.BigEndian.AppendUint16(nil, 2)
	info = append(info, sel[:]...)
	info = append(info, comp.Sum(nil)...)
	info = append(info, make([]byte, 20)...)
	return info, nil
}

// seal12 is TPM_Seal under the SRK (well-known auth) with an OSAP session,
// returning the TPM_STORED_DATA blob.
func (t *TPM) seal12(secret []byte, values map[int][]byte, pass []byte) ([]byte, error) {
	info, err := pcrInfo12(values)
	if err != nil {
		return nil, err
	}
	s, err := t.osap(et12KeyHandle, kh12SRK, wellKnown)
	if err != nil {
		return nil, err
	}
	dataAuth := authDigest(pass)
	defer wipe(dataAuth)
	params := s.encAuth(dataAuth)
	params = binary.BigEndian.AppendUint32(params, uint32(len(info)))
	params = append(params, info...)
	params = binary.BigEndian.AppendUint32(params, uint32(len(secret)))
	params = append(params, secret...)
	body, err := t.runAuthed(&authed12{ord: ord12Seal, handles: []uint32{kh12SRK}, params: params, sessions: []*session12{s}}, 0)
	wipe(params)
	if err != nil {
		return nil, fmt.Errorf("TPM 1.2 seal: %w", err)
	}
	// TPM_STORED_DATA: ver(4) sealInfoSize(4) sealInfo encDataSize(4) encData.
	r := &reader12{b: body}
	r.take(4)
	r.take(int(r.u32()))
	r.take(int(r.u32()))
	if r.err != nil {
		return nil, fmt.Errorf("TPM 1.2 seal: %w", r.err)
	}
	return append([]byte(nil), body[:len(body)-len(r.b)]...), nil
}

// unseal12 is TPM_Unseal of a TPM_STORED_DATA blob (SRK well-known auth,
// data auth from the passphrase). Trailing bytes after the structure (NV
// spaces are fixed-size) are ignored.
func (t *TPM) unseal12(blob []byte, pass []byte) ([]byte, error) {
	r := &reader12{b: blob}
	r.take(4)
	r.take(int(r.u32()))
	r.take(int(r.u32()))
	if r.err != nil {
		return nil, fmt.Errorf("TPM 1.2 unseal: sealed blob malformed: %w", r.err)
	}
	blob = blob[:len(blob)-len(r.b)]
	key, err := t.oiap(wellKnown)
	if err != nil {
		return nil, err
	}
	dataAuth := authDigest(pass)
	defer wipe(dataAuth)
	data, err := t.oiap(dataAuth)
	if err != nil {
		return nil, err
	}
	body, err := t.runAuthed(&authed12{ord: ord12Unseal, handles: []uint32{kh12SRK}, params: blob, sessions: []*session12{key, data}}, 0)
	if err != nil {
		return nil, err
	}
	rr := &reader12{b: body}
	secret := rr.take(int(rr.u32()))
	if rr.err != nil {
		return nil, fmt.Errorf("TPM 1.2 unseal: %w", rr.err)
	}
	out := append([]byte(nil), secret...)
	wipe(body)
	return out, nil
}

// nvDefine12 defines (size > 0) or deletes (size 0) an NV space with no
// access restrictions (Heads: `nv_definespace -per 0`), using owner auth.
func (t *TPM) nvDefine12(index uint32, size uint32, ownerAuth []byte) error {
	s, err := t.osap(et12Owner, kh12Owner, ownerAuth)
	if err != nil {
		return err
	}
	// No PCR binding; locality 0 only (where Linux and coreboot run). An
	// area without write authorization must restrict localities, or the
	// TPM refuses it (TPM_PER_NOWRITE, TPM 1.2 Part 3 20.1 step 9.d).
	pcrShort := append(binary.BigEndian.AppendUint16(nil, 3), 0, 0, 0, 0x01)
	pcrShort = append(pcrShort, make([]byte, 20)...)
	pub := binary.BigEndian.AppendUint16(nil, 0x0018)
	pub = binary.BigEndian.AppendUint32(pub, index)
	pub = append(pub, pcrShort...)
	pub = append(pub, pcrShort...)
	pub = binary.BigEndian.AppendUint16(pub, 0x0017)
	pub = binary.BigEndian.AppendUint32(pub, 0) // attributes: none
	pub = append(pub, 0, 0, 0)                  // bReadSTClear, bWriteSTClear, bWriteDefine
	pub = binary.BigEndian.AppendUint32(pub, size)
	params := append(pub, s.encAuth(wellKnown)...)
	_, err = t.runAuthed(&authed12{ord: ord12NVDefine, params: params, sessions: []*session12{s}}, 0)
	if err != nil {
		return fmt.Errorf("TPM 1.2 NV define 0x%x: %w", index, err)
	}
	return nil
}

// nvChunk12 bounds one NV write or read; TPM 1.2 input buffers can be small.
const nvChunk12 = 256

func (t *TPM) nvWrite12(index uint32, data []byte) error {
	for off := 0; off < len(data); off += nvChunk12 {
		end := min(off+nvChunk12, len(data))
		cmd := newCmd12(tag12RqCommand, ord12NVWrite).u32(index).u32(uint32(off)).u32(uint32(end - off)).raw(data[off:end])
		if _, err := t.run12(cmd.bytes()); err != nil {
			return fmt.Errorf("TPM 1.2 NV write 0x%x: %w", index, err)
		}
	}
	return nil
}

func (t *TPM) nvRead12(index uint32, size int) ([]byte, error) {
	var out []byte
	for off := 0; off < size; off += nvChunk12 {
		n := min(nvChunk12, size-off)
		body, err := t.run12(newCmd12(tag12RqCommand, ord12NVRead).u32(index).u32(uint32(off)).u32(uint32(n)).bytes())
		if err != nil {
			return nil, fmt.Errorf("TPM 1.2 NV read 0x%x: %w", index, err)
		}
		r := &reader12{b: body}
		d := r.take(int(r.u32()))
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, d...)
	}
	return out, nil
}

// Counter label Heads' OEM reset uses for the TPM 1.2 rollback counter.
const counterLabel12 = 3135106223 // 0xbaddecaf

// counterAuth12 is the TPM 1.2 rollback counter's authorization: SHA-1 of
// the empty string, as Heads passes `-pwdc ”` (PR #2117: using the owner
// passphrase there caused TPM_AUTHFAIL and dictionary-attack lockouts).
func counterAuth12() []byte {
	s := sha1.Sum(nil)
	return s[:]
}

func (t *TPM) counterCreate12(ownerAuth []byte) (uint32, []byte, error) {
	s, err := t.osap(et12Owner, kh12Owner, ownerAuth)
	if err != nil {
		return 0, nil, err
	}
	params := append(s.encAuth(counterAuth12()), binary.BigEndian.AppendUint32(nil, counterLabel12)...)
	body, err := t.runAuthed(&authed12{ord: ord12CreateCtr, params: params, sessions: []*session12{s}}, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("TPM 1.2 create counter: %w", err)
	}
	if len(body) < 14 {
		return 0, nil, errors.New("TPM 1.2 create counter: short response")
	}
	return binary.BigEndian.Uint32(body), append([]byte(nil), body[4:14]...), nil
}

func (t *TPM) counterRead12(id uint32) ([]byte, error) {
	body, err := t.run12(newCmd12(tag12RqCommand, ord12ReadCtr).u32(id).bytes())
	if err != nil {
		return nil, fmt.Errorf("TPM 1.2 read counter %d: %w", id, err)
	}
	if len(body) < 10 {
		return nil, errors.New("TPM 1.2 read counter: short response")
	}
	return append([]byte(nil), body[:10]...), nil
}

func (t *TPM) counterIncrement12(id uint32) ([]byte, error) {
	s, err := t.oiap(counterAuth12())
	if err != nil {
		return nil, err
	}
	// countID is a parameter, so it is part of the HMAC'd digest.
	body, err := t.runAuthed(&authed12{ord: ord12IncCtr, params: binary.BigEndian.AppendUint32(nil, id), sessions: []*session12{s}}, 0)
	if err != nil {
		return nil, fmt.Errorf("TPM 1.2 increment counter %d: %w", id, err)
	}
	if len(body) < 10 {
		return nil, errors.New("TPM 1.2 increment counter: short response")
	}
	return append([]byte(nil), body[:10]...), nil
}

// physicalPresence12 asserts physical presence through the TSC command
// interface, as `tpm physicalpresence -s` does. On real machines firmware
// may have locked this; errors are returned for the caller to report.
func (t *TPM) physicalPresence12() error {
	const cmdEnable, present = 0x0020, 0x0008
	t.run12(newCmd12(tag12RqCommand, ord12PhysPres).u16(cmdEnable).bytes()) // may already be enabled or locked
	if _, err := t.run12(newCmd12(tag12RqCommand, ord12PhysPres).u16(present).bytes()); err != nil {
		return fmt.Errorf("assert physical presence: %w", err)
	}
	return nil
}

// reset12 is Heads' tpm1_reset: physical presence, enable, activate, force
// clear, enable, take ownership with the new owner passphrase (SRK well-known).
func (t *TPM) reset12(ownerPass []byte) error {
	if err := t.physicalPresence12(); err != nil {
		return err
	}
	t.run12(newCmd12(tag12RqCommand, ord12PhysEnable).bytes())
	t.run12(newCmd12(tag12RqCommand, ord12PhysSetDeac).u8(0).bytes())
	if _, err := t.run12(newCmd12(tag12RqCommand, ord12ForceClear).bytes()); err != nil {
		return fmt.Errorf("TPM 1.2 force clear: %w", err)
	}
	t.run12(newCmd12(tag12RqCommand, ord12PhysEnable).bytes())
	rw := &readWriter{t: t.t}
	pubEK, err := legacy.ReadPubEK(rw)
	if err != nil {
		// A TPM without an endorsement key (a fresh swtpm) gets one first.
		if err := t.createEK12(); err != nil {
			return err
		}
		if pubEK, err = legacy.ReadPubEK(rw); err != nil {
			return fmt.Errorf("TPM 1.2 read endorsement key: %w", err)
		}
	}
	var owner, srk legacy.Digest
	copy(owner[:], authDigest(ownerPass))
	if err := legacy.TakeOwnership(rw, owner, srk, pubEK); err != nil {
		return fmt.Errorf("TPM 1.2 take ownership: %w", err)
	}
	// Force clear left the persistent "deactivated" flag set; it takes
	// effect at the next startup. Leave the TPM enabled and active, as
	// Heads' tpm1_reset does last.
	if err := t.physicalPresence12(); err != nil {
		return err
	}
	if _, err := t.run12(newCmd12(tag12RqCommand, ord12PhysEnable).bytes()); err != nil {
		return fmt.Errorf("TPM 1.2 enable: %w", err)
	}
	if _, err := t.run12(newCmd12(tag12RqCommand, ord12PhysSetDeac).u8(0).bytes()); err != nil {
		return fmt.Errorf("TPM 1.2 activate: %w", err)
	}
	return nil
}

func (t *TPM) createEK12() error {
	cmd := newCmd12(tag12RqCommand, 0x78).raw(nonce20()).
		u32(1).u16(3).u16(1). // TPM_ALG_RSA, RSAESOAEP_SHA1_MGF1, SS_NONE
		u32(12).u32(2048).u32(2).u32(0)
	if _, err := t.run12(cmd.bytes()); err != nil {
		return fmt.Errorf("TPM 1.2 create endorsement key: %w", err)
	}
	return nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
