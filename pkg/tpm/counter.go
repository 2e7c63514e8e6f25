package tpm

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
)

// Rollback counters: TPM monotonic counters that bind /boot's signature to
// the TPM (kexec_rollback.txt). Ids and the counter file follow Heads' tpmr:
//
//	TPM 2.0: id is the NV index in hex without "0x" (e.g. "1a2b3c4"); the
//	         file is "<id>: <8-byte big-endian value in 16 hex digits>\n".
//	TPM 1.2: id is the TPM_COUNT_ID in decimal; the file is
//	         "<id>: <TPM_COUNTER_VALUE in hex: tag 000e, label, count>\n".
//
// Counter values only go up. A TPM 2.0 counter that is deleted and defined
// again starts at the highest value any counter on that TPM ever had.

// Counter is the state of one counter.
type Counter struct {
	ID    string
	Value uint64
	// File is what Heads writes to /tmp/counter-<id>; kexec_rollback.txt
	// holds its sha256sum.
	File []byte
}

// ErrCounterUnwritten is a TPM 2.0 counter that was defined but never
// incremented (Heads: "valid after an increment").
var ErrCounterUnwritten = errors.New("counter has never been incremented")

// CounterCreate creates a rollback counter with owner authorization and
// returns its id. TPM 2.0: an 8-byte NV counter at a random 0x01xxxxxx
// index, readable and incrementable with its own (empty) authorization;
// TPM 1.2: a monotonic counter with empty (SHA-1("")) counter auth.
func (t *TPM) CounterCreate(ownerAuth []byte) (string, error) {
	if t.fam == Family12 {
		id, _, err := t.counterCreate12(authDigest(ownerAuth))
		if err != nil {
			return "", err
		}
		return strconv.FormatUint(uint64(id), 10), nil
	}
	var r [3]byte
	for {
		if _, err := rand.Read(r[:]); err != nil {
			return "", err
		}
		idx := 0x01000000 | uint32(r[0])<<16 | uint32(r[1])<<8 | uint32(r[2])
		if idx&0x00ffff00 == recordBase20&0x00ffff00 {
			continue // keep clear of goheads' seal records
		}
		pub := tpm2.TPMSNVPublic{
			NVIndex: tpm2.TPMHandle(idx), NameAlg: tpm2.TPMAlgSHA256,
			// Heads: "ownerread|authread|authwrite|nt=1".
			Attributes: tpm2.TPMANV{OwnerRead: true, AuthRead: true, AuthWrite: true, NT: tpm2.TPMNTCounter},
			DataSize:   8,
		}
		_, err := tpm2.NVDefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)},
			PublicInfo: tpm2.New2B(pub),
		}.Execute(t.t)
		if errors.Is(err, tpm2.TPMRCNVDefined) {
			continue
		}
		if err != nil {
			return "", t.authError20("create rollback counter", err)
		}
		return fmt.Sprintf("%x", idx), nil
	}
}

func parseCounterID(fam Family, id string) (uint32, error) {
	base := 16
	if fam == Family12 {
		base = 10
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(id, "0x"), base, 32)
	if err != nil {
		return 0, fmt.Errorf("counter id %q: not a %s TPM counter id", id, fam)
	}
	return uint32(v), nil
}

// CounterRead reads a counter.
func (t *TPM) CounterRead(id string) (*Counter, error) {
	idx, err := parseCounterID(t.fam, id)
	if err != nil {
		return nil, err
	}
	if t.fam == Family12 {
		raw, err := t.counterRead12(idx)
		if err != nil {
			return nil, err
		}
		return counter12(id, raw), nil
	}
	raw, err := t.nvRead20(idx, 8)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCNVUninitialized) {
			return nil, fmt.Errorf("read counter %s: %w", id, ErrCounterUnwritten)
		}
		return nil, fmt.Errorf("read counter %s: %w", id, err)
	}
	return counter20(id, raw)
}

// CounterIncrement increments a counter by one and returns the new state.
func (t *TPM) CounterIncrement(id string) (*Counter, error) {
	idx, err := parseCounterID(t.fam, id)
	if err != nil {
		return nil, err
	}
	if t.fam == Family12 {
		raw, err := t.counterIncrement12(idx)
		if err != nil {
			return nil, err
		}
		return counter12(id, raw), nil
	}
	pub, err := t.nvPublic20(idx)
	if err != nil {
		return nil, err
	}
	nh := tpm2.NamedHandle{Handle: tpm2.TPMHandle(idx), Name: pub.NVName}
	if _, err := (tpm2.NVIncrement{
		AuthHandle: tpm2.AuthHandle{Handle: nh.Handle, Name: nh.Name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    nh,
	}).Execute(t.t); err != nil {
		return nil, t.authError20("increment counter "+id, err)
	}
	return t.CounterRead(id)
}

func counter20(id string, raw []byte) (*Counter, error) {
	if len(raw) != 8 {
		return nil, fmt.Errorf("counter %s: %d-byte value", id, len(raw))
	}
	return &Counter{ID: id, Value: binary.BigEndian.Uint64(raw), File: []byte(id + ": " + hex.EncodeToString(raw) + "\n")}, nil
}

func counter12(id string, raw []byte) *Counter {
	return &Counter{ID: id, Value: uint64(binary.BigEndian.Uint32(raw[6:10])), File: []byte(id + ": " + hex.EncodeToString(raw) + "\n")}
}

// NextCounterFile is the counter file the counter will produce after one
// more increment, so /boot can be signed for the new value before the TPM
// is incremented (crash-safe signing).
func NextCounterFile(fam Family, c *Counter) ([]byte, error) {
	id, hx, ok := strings.Cut(strings.TrimSpace(string(c.File)), ": ")
	if !ok {
		return nil, fmt.Errorf("counter file %q: want '<id>: <hex>'", c.File)
	}
	raw, err := hex.DecodeString(hx)
	if err != nil {
		return nil, fmt.Errorf("counter file %q: %w", c.File, err)
	}
	switch {
	case fam == Family20 && len(raw) == 8:
		binary.BigEndian.PutUint64(raw, binary.BigEndian.Uint64(raw)+1)
	case fam == Family12 && len(raw) == 10:
		binary.BigEndian.PutUint32(raw[6:], binary.BigEndian.Uint32(raw[6:])+1)
	default:
		return nil, fmt.Errorf("counter file %q: not a %s counter value", c.File, fam)
	}
	return []byte(id + ": " + hex.EncodeToString(raw) + "\n"), nil
}
