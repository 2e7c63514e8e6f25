package tpm

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
)

// Heads' sealed-secret indices.
const (
	// IndexTOTP holds the TOTP/HOTP secret (TPM 2.0: 0x81004d47; TPM 1.2: NV 0x4d47).
	IndexTOTP uint32 = 0x4d47
	// IndexDUK holds the LUKS Disk Unlock Key (TPM 2.0: 0x81000003; TPM 1.2: NV 3).
	IndexDUK uint32 = 3
	// SealedSize12 is the size of Heads' TPM 1.2 NV space for a sealed blob.
	SealedSize12 = 312
)

// TOTPPCRs are the PCRs the TOTP/HOTP secret is sealed to (PCR 4 with its
// predicted firmware-only value).
var TOTPPCRs = []int{0, 1, 2, 3, 4, 7}

// SealOptions describe one secret to seal.
type SealOptions struct {
	Index  uint32
	Secret []byte
	// PCRs lists every PCR of the policy with the value it must hold when
	// unsealing: the current value or a predicted one (e.g. PCR 4 replayed
	// from the event log). A nil value means "the current value".
	PCRs map[int][]byte
	// Passphrase, if set, is required in addition to the PCRs.
	Passphrase []byte
	// OwnerAuth is the TPM owner passphrase: TPM 2.0 needs it to persist the
	// object; TPM 1.2 only to define the NV space the first time.
	OwnerAuth []byte
}

// UnsealOptions describe a secret to unseal.
type UnsealOptions struct {
	Index      uint32
	PCRs       []int // the policy's PCR list (TPM 2.0; TPM 1.2 blobs carry it)
	Passphrase []byte
}

// Seal seals o.Secret at Heads' location for o.Index, replacing what was
// there. It also stores a seal record (the PCR values sealed to) in a small
// NV index beside it, so a later policy failure can say which PCRs changed;
// Heads does not have this, and nothing depends on it but diagnostics.
func (t *TPM) Seal(o SealOptions) error {
	if len(o.PCRs) == 0 {
		return errors.New("seal: no PCRs in the policy")
	}
	values, err := t.completePCRs(o.PCRs)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	switch t.fam {
	case Family12:
		blob, err := t.seal12(o.Secret, values, o.Passphrase)
		if err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		defer wipe(blob)
		if len(blob) > SealedSize12 {
			return fmt.Errorf("seal: sealed blob is %d bytes, more than Heads' %d-byte NV space", len(blob), SealedSize12)
		}
		padded := make([]byte, SealedSize12)
		copy(padded, blob)
		if err := t.nvWrite12(o.Index, padded); err != nil {
			if !errors.Is(err, ErrNotProvisioned) {
				return fmt.Errorf("seal: %w", err)
			}
			// First seal after a TPM reset: define Heads' space (owner auth).
			if err := t.nvDefine12(o.Index, SealedSize12, authDigest(o.OwnerAuth)); err != nil {
				return fmt.Errorf("seal: %w", err)
			}
			if err := t.nvWrite12(o.Index, padded); err != nil {
				return fmt.Errorf("seal: %w", err)
			}
		}
	case Family20:
		if err := t.seal20(o.Index, o.Secret, values, o.Passphrase, o.OwnerAuth); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
	}
	// Best effort: a TPM short of NV space still gets its secret sealed.
	t.writeSealRecord(o.Index, values, o.OwnerAuth)
	return nil
}

// completePCRs fills nil values with the current PCR values.
func (t *TPM) completePCRs(in map[int][]byte) (map[int][]byte, error) {
	out := make(map[int][]byte, len(in))
	var missing []int
	for i, v := range in {
		if err := checkPCR(i); err != nil {
			return nil, err
		}
		if v == nil {
			missing = append(missing, i)
			continue
		}
		if len(v) != t.fam.PCRSize() {
			return nil, fmt.Errorf("PCR %d value is %d bytes, want %d", i, len(v), t.fam.PCRSize())
		}
		out[i] = v
	}
	if len(missing) > 0 {
		sort.Ints(missing)
		cur, err := t.ReadPCRs(missing...)
		if err != nil {
			return nil, err
		}
		for i, v := range cur {
			out[i] = v
		}
	}
	return out, nil
}

// Unseal returns the secret sealed at Heads' location for o.Index. A policy
// failure is a *PolicyError naming the PCRs that differ from what the secret
// was sealed to, when goheads sealed it (and so left a seal record).
func (t *TPM) Unseal(o UnsealOptions) ([]byte, error) {
	var secret []byte
	var err error
	switch t.fam {
	case Family12:
		var blob []byte
		blob, err = t.nvRead12(o.Index, SealedSize12)
		if err == nil {
			if bytes.Equal(blob, make([]byte, len(blob))) {
				err = fmt.Errorf("NV 0x%x holds no sealed secret (wiped): %w", o.Index, ErrNotProvisioned)
			} else {
				secret, err = t.unseal12(blob, o.Passphrase)
			}
			wipe(blob)
		}
	case Family20:
		secret, err = t.unseal20(o.Index, o.PCRs, o.Passphrase)
	}
	if err == nil {
		return secret, nil
	}
	if errors.Is(err, ErrPolicyMismatch) {
		return nil, fmt.Errorf("unseal: %w", t.diagnosePolicy(o.Index))
	}
	return nil, fmt.Errorf("unseal: %w", err)
}

// diagnosePolicy compares the seal record with the current PCRs.
func (t *TPM) diagnosePolicy(idx uint32) error {
	want, err := t.readSealRecord(idx)
	if err != nil || len(want) == 0 {
		return &PolicyError{}
	}
	cur, err := t.ReadPCRs(sortedKeys(want)...)
	if err != nil {
		return &PolicyError{}
	}
	return &PolicyError{PCRs: diffPCRs(cur, want)}
}

// Seal records: "GHSR", version 1, value size, count, then (pcr, value)...
const (
	recordMagic   = "GHSR"
	recordBase20  = 0x01800000 // TPM 2.0 owner NV range
	recordBase12  = 0x00010000 // TPM 1.2 NV index with purview 1
	recordMaxPCRs = 8
)

func recordIndex(fam Family, idx uint32) uint32 {
	if fam == Family12 {
		return recordBase12 | idx
	}
	return recordBase20 | idx
}

func recordSize(fam Family) int { return 7 + recordMaxPCRs*(1+fam.PCRSize()) }

func (t *TPM) writeSealRecord(idx uint32, values map[int][]byte, ownerAuth []byte) error {
	keys := sortedKeys(values)
	if len(keys) > recordMaxPCRs {
		return errors.New("seal record: too many PCRs")
	}
	rec := make([]byte, 0, recordSize(t.fam))
	rec = append(rec, recordMagic...)
	rec = append(rec, 1, byte(t.fam.PCRSize()), byte(len(keys)))
	for _, k := range keys {
		rec = append(rec, byte(k))
		rec = append(rec, values[k]...)
	}
	rec = append(rec, make([]byte, recordSize(t.fam)-len(rec))...)
	ri := recordIndex(t.fam, idx)
	if t.fam == Family12 {
		if err := t.nvWrite12(ri, rec); err != nil {
			if err := t.nvDefine12(ri, uint32(len(rec)), authDigest(ownerAuth)); err != nil {
				return err
			}
			return t.nvWrite12(ri, rec)
		}
		return nil
	}
	return t.nvDefineWrite20(ri, rec, ownerAuth)
}

func (t *TPM) readSealRecord(idx uint32) (map[int][]byte, error) {
	ri := recordIndex(t.fam, idx)
	var rec []byte
	var err error
	if t.fam == Family12 {
		rec, err = t.nvRead12(ri, recordSize(t.fam))
	} else {
		rec, err = t.nvRead20(ri, recordSize(t.fam))
	}
	if err != nil {
		return nil, err
	}
	return parseSealRecord(rec, t.fam.PCRSize())
}

func parseSealRecord(rec []byte, size int) (map[int][]byte, error) {
	if len(rec) < 7 || string(rec[:4]) != recordMagic || rec[4] != 1 || int(rec[5]) != size {
		return nil, errors.New("seal record: bad header")
	}
	n := int(rec[6])
	if n > recordMaxPCRs || len(rec) < 7+n*(1+size) {
		return nil, errors.New("seal record: truncated")
	}
	out := map[int][]byte{}
	p := rec[7:]
	for i := 0; i < n; i++ {
		out[int(p[0])] = append([]byte(nil), p[1:1+size]...)
		p = p[1+size:]
	}
	return out, nil
}

// Destroy removes a sealed secret: TPM 2.0 evicts the persistent object
// (owner auth); TPM 1.2 overwrites the NV space with zeros (no auth needed),
// as Heads' wipe-totp does.
func (t *TPM) Destroy(idx uint32, ownerAuth []byte) error {
	if t.fam == Family12 {
		return t.nvWrite12(idx, make([]byte, SealedSize12))
	}
	return t.evict20(idx, ownerAuth)
}
