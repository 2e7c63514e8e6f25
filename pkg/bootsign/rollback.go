package bootsign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Counter is the TPM monotonic counter that binds a signed /boot to the
// TPM (implemented by pkg/tpm). Both methods return the counter file
// Heads' tpmr writes to /tmp/counter-<id>, byte for byte:
//
//	TPM 2.0: "<id>: <8-byte value as 16 lower-case hex digits>\n", id the
//	         NV index in hex without 0x (tpmr.sh tpm2_counter_read: xxd -pc8)
//	TPM 1.2: "<id>: <TPM_COUNTER_VALUE as 20 lower-case hex digits>\n", id
//	         decimal, value = tag 000e, 4-byte label, 4-byte count
//	         (tpmtotp counter_read/counter_increment: "%d: " then %02x)
//
// Increment adds one and returns the new file.
type Counter interface {
	Read(id string) (fileContent []byte, err error)
	Increment(id string) (fileContent []byte, err error)
}

// RollbackFile is the name of the signed rollback binding in /boot.
const RollbackFile = "kexec_rollback.txt"

// counterPath is where Heads keeps the counter file; kexec_rollback.txt
// names it: `sha256sum /tmp/counter-<id>`.
func counterPath(id string) string { return "/tmp/counter-" + id }

// RollbackContent returns kexec_rollback.txt for a counter file: one
// sha256sum line naming /tmp/counter-<id>, what kexec-sign-config.sh writes.
func RollbackContent(id string, counterFile []byte) []byte {
	var b bytes.Buffer
	writeSumLine(&b, sha256.Sum256(counterFile), counterPath(id))
	return b.Bytes()
}

// ParseRollback reads kexec_rollback.txt and returns the counter id and the
// signed hash of its counter file. Heads extracts the id with `grep counter
// | cut -d- -f2`; goheads requires exactly one line naming
// /tmp/counter-<hex digits>.
func ParseRollback(data []byte) (id string, sum [32]byte, err error) {
	m, err := ParseManifest(data)
	if err != nil {
		return "", sum, fmt.Errorf("%s: %w", RollbackFile, err)
	}
	if len(m.Entries) != 1 {
		return "", sum, fmt.Errorf("%s: %w: %d lines, want 1", RollbackFile, ErrMalformedManifest, len(m.Entries))
	}
	e := m.Entries[0]
	id, ok := strings.CutPrefix(e.Path, "/tmp/counter-")
	if !ok || !isHex(id) {
		return "", sum, fmt.Errorf("%s: %w: path %q is not /tmp/counter-<id>", RollbackFile, ErrMalformedManifest, e.Path)
	}
	return id, e.Sum, nil
}

func isHex(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// NextCounterFile predicts the counter file after one increment, so the
// rollback file can be signed before the increment (see Sign). It keeps the
// id, the width and the letter case; for TPM 1.2 only the 4-byte count
// changes (tag and label stay).
func NextCounterFile(cur []byte) ([]byte, error) {
	s := string(cur)
	body, ok := strings.CutSuffix(s, "\n")
	id, val, ok2 := strings.Cut(body, ": ")
	if !ok || !ok2 || !isHex(id) || strings.ContainsAny(val, " \n") {
		return nil, fmt.Errorf("counter file %q: not \"<id>: <hex>\\n\"", truncate(cur, 60))
	}
	upper := strings.ToUpper(val) == val && strings.ToLower(val) != val
	var next string
	switch len(val) {
	case 16: // TPM 2.0: 8-byte NV counter
		v, err := strconv.ParseUint(val, 16, 64)
		if err != nil || v == ^uint64(0) {
			return nil, fmt.Errorf("counter file %q: bad or exhausted TPM 2.0 value", body)
		}
		next = fmt.Sprintf("%016x", v+1)
	case 20: // TPM 1.2: TPM_COUNTER_VALUE (tag 2, label 4, count 4 bytes)
		raw, err := hex.DecodeString(val)
		if err != nil || raw[0] != 0x00 || raw[1] != 0x0e {
			return nil, fmt.Errorf("counter file %q: not a TPM 1.2 TPM_COUNTER_VALUE (tag 000e)", body)
		}
		c := uint32(raw[6])<<24 | uint32(raw[7])<<16 | uint32(raw[8])<<8 | uint32(raw[9])
		if c == ^uint32(0) {
			return nil, fmt.Errorf("counter file %q: TPM 1.2 counter exhausted", body)
		}
		c++
		raw[6], raw[7], raw[8], raw[9] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
		next = hex.EncodeToString(raw)
	default:
		return nil, fmt.Errorf("counter file %q: value of %d hex digits is neither TPM 2.0 (16) nor TPM 1.2 (20)", body, len(val))
	}
	if upper {
		next = strings.ToUpper(next)
	}
	return []byte(id + ": " + next + "\n"), nil
}

// RollbackStatus says what the rollback check did.
type RollbackStatus string

// Rollback check outcomes recorded in a Report.
const (
	// RollbackVerified: kexec_rollback.txt matched the TPM counter.
	RollbackVerified RollbackStatus = "verified"
	// RollbackNotChecked: no Counter was given (CONFIG_IGNORE_ROLLBACK=y
	// or no TPM), so the rollback file, if any, was not checked.
	RollbackNotChecked RollbackStatus = "not checked"
)

// checkRollback verifies a signed kexec_rollback.txt against the counter.
func checkRollback(c Counter, rollback []byte) (string, error) {
	id, sum, err := ParseRollback(rollback)
	if err != nil {
		return "", err
	}
	cur, err := c.Read(id)
	if err != nil {
		return id, fmt.Errorf("read TPM counter %s: %w: %v", id, ErrCounter, err)
	}
	if got := sha256.Sum256(cur); got != sum {
		return id, &RollbackError{
			CounterID: id,
			Reason:    "the signed counter state is not the TPM's; this /boot was signed before a later signing (replayed), or for another TPM. Sign /boot again only if you trust its contents.",
			Signed:    hex.EncodeToString(sum[:]),
			Current:   hex.EncodeToString(got[:]),
		}
	}
	return id, nil
}
