// Package eventlog parses the firmware's TPM event logs and replays them to
// compute PCR values, including Heads' "future PCR" (`tpmr calcfuturepcr`).
//
// Three log formats are understood, all treated as untrusted input:
//
//   - TCG2: the TCG PC Client "crypto agile" log of TPM 2.0 firmware (Linux's
//     securityfs binary_bios_measurements, coreboot's CBMEM "TPM2 TCGLOG").
//     Layout: TCG PC Client Platform Firmware Profile (PFP) spec, section 10;
//     Linux include/linux/tpm_eventlog.h; coreboot
//     src/commonlib/bsd/include/commonlib/bsd/tpm_log_defs.h and
//     src/security/tpm/tpm2_log_serialized.h.
//   - TCPA: the TPM 1.2 SHA-1 log of TCG_PCR_EVENT records, with or without a
//     "Spec ID Event00" header (SeaBIOS writes none; coreboot's CBMEM
//     "TCPA TCGLOG" has one: src/security/tpm/tpm1_log_serialized.h).
//   - Coreboot: coreboot's own fixed-size table, CBMEM "TPM CB LOG"
//     (src/commonlib/include/commonlib/tpm_log_serialized.h).
//
// The log is read from a file, or from coreboot's CBMEM through a physical
// memory reader (FromCBMEM), as coreboot's util/cbmem does for `cbmem -L`.
//
// This package must stay small: it is linked into the firmware. It uses only
// the standard library.
package eventlog

import (
	"crypto"
	_ "crypto/sha1" // register the PCR bank hashes
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Alg is a TPM 2.0 algorithm identifier (TPM_ALG_ID), as the TCG2 log and the
// TPM use them. TPM 1.2 logs are SHA-1 only.
type Alg uint16

// The hash algorithms that can appear in the logs (TCG Algorithm Registry;
// coreboot tpm_log_defs.h TPM2_ALG_*).
const (
	AlgSHA1   Alg = 0x0004
	AlgSHA256 Alg = 0x000b
	AlgSHA384 Alg = 0x000c
	AlgSHA512 Alg = 0x000d
	AlgSM3    Alg = 0x0012 // parsed, but cannot be replayed (no SM3 in Go's library)
)

// Size returns the digest size of a, or 0 if a is unknown.
func (a Alg) Size() int {
	switch a {
	case AlgSHA1:
		return 20
	case AlgSHA256, AlgSM3:
		return 32
	case AlgSHA384:
		return 48
	case AlgSHA512:
		return 64
	}
	return 0
}

// Hash returns the Go hash for a; ok is false for algorithms goheads cannot compute.
func (a Alg) Hash() (h crypto.Hash, ok bool) {
	switch a {
	case AlgSHA1:
		return crypto.SHA1, true
	case AlgSHA256:
		return crypto.SHA256, true
	case AlgSHA384:
		return crypto.SHA384, true
	case AlgSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// Sum returns the digest of data in algorithm a, as Heads' `tpmr calcfuturepcr`
// does for a file argument (`sha256sum <file`).
func (a Alg) Sum(data []byte) ([]byte, error) {
	h, ok := a.Hash()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlg, a)
	}
	d := h.New()
	d.Write(data)
	return d.Sum(nil), nil
}

func (a Alg) String() string {
	switch a {
	case AlgSHA1:
		return "sha1"
	case AlgSHA256:
		return "sha256"
	case AlgSHA384:
		return "sha384"
	case AlgSHA512:
		return "sha512"
	case AlgSM3:
		return "sm3_256"
	}
	return fmt.Sprintf("alg-%#04x", uint16(a))
}

// Event types the replay needs (TCG PFP spec, table "Event Types"; coreboot
// tpm_log_defs.h enum ev_enum).
const (
	EvNoAction uint32 = 0x00000003 // not extended into any PCR
	EvAction   uint32 = 0x00000005 // what coreboot records for every measurement
)

// Digest is one algorithm's digest of a measurement.
type Digest struct {
	Alg   Alg
	Value []byte
}

// Event is one log record.
type Event struct {
	PCR     int
	Type    uint32
	Digests []Digest
	// Data is the event data: for coreboot measurements the region name
	// ("CBFS: fallback/payload"), NUL padded in the TCG formats.
	Data []byte
	// Offset is where the record starts in the log, for messages.
	Offset int64
}

// Digest returns the event's digest in algorithm a, or nil.
func (e *Event) Digest(a Alg) []byte {
	for _, d := range e.Digests {
		if d.Alg == a {
			return d.Value
		}
	}
	return nil
}

// Description returns the event data as text when it is printable text
// (trailing NULs dropped), else as hex: what `cbmem -L` shows.
func (e *Event) Description() string {
	s := strings.TrimRight(string(e.Data), "\x00")
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f || r == 0xfffd {
			return fmt.Sprintf("%x", e.Data)
		}
	}
	return s
}

// Format names a log format.
type Format string

// The log formats.
const (
	FormatTCG2     Format = "TCG2"     // crypto agile, TPM 2.0
	FormatTCPA     Format = "TCPA"     // TPM 1.2, SHA-1
	FormatCoreboot Format = "coreboot" // coreboot's own "TPM CB LOG" table
)

// AlgSize is one row of the TCG2 header's digest size table.
type AlgSize struct {
	Alg  Alg
	Size int
}

// SpecID is the log header (the "Spec ID Event03" or "Spec ID Event00" event).
type SpecID struct {
	Signature     string // "Spec ID Event03" or "Spec ID Event00"
	PlatformClass uint32
	VersionMajor  uint8
	VersionMinor  uint8
	Errata        uint8
	UintnSize     uint8     // TCG2 only
	Algs          []AlgSize // TCG2 only: the banks every event may carry
	VendorInfo    []byte
}

// Log is a parsed event log.
type Log struct {
	Format Format
	// Source says where the log came from ("/sys/kernel/security/...",
	// "CBMEM TPM2 TCGLOG at 0x7ffd6000"); empty for Parse.
	Source string
	// Spec is the header event, nil for logs without one (coreboot's own
	// format, SeaBIOS' TPM 1.2 log).
	Spec *SpecID
	// Algs lists the banks the log records digests for.
	Algs   []Alg
	Events []Event
}

// HasAlg reports whether the log records digests in bank a.
func (l *Log) HasAlg(a Alg) bool {
	for _, x := range l.Algs {
		if x == a {
			return true
		}
	}
	return false
}

// Errors. Parse failures are *ParseError, which matches ErrMalformed.
var (
	// ErrMalformed: the log's bytes break its format. The log cannot be
	// trusted for replay; nothing is guessed.
	ErrMalformed = errors.New("malformed TPM event log")
	// ErrNoLog: no firmware event log was found on this machine.
	ErrNoLog = errors.New("no TPM event log found")
	// ErrNoCorebootTable: physical memory holds no valid coreboot table.
	ErrNoCorebootTable = errors.New("no coreboot table found")
	// ErrBankNotLogged: the log has no digests in the requested PCR bank.
	ErrBankNotLogged = errors.New("event log does not record this PCR bank")
	// ErrUnsupportedAlg: goheads cannot compute this hash algorithm.
	ErrUnsupportedAlg = errors.New("unsupported hash algorithm")
	// ErrPCRRange: the PCR index cannot be replayed or precomputed.
	ErrPCRRange = errors.New("PCR index out of range")
)

// ParseError says where a log or coreboot table is malformed.
type ParseError struct {
	Format Format // or "coreboot table"
	Offset int64  // byte offset in the log, or physical address for the coreboot table
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Format == formatTable {
		return fmt.Sprintf("coreboot table: physical address %#x: %s", e.Offset, e.Msg)
	}
	return fmt.Sprintf("%s log: offset %d (%#x): %s", e.Format, e.Offset, e.Offset, e.Msg)
}

// Is makes errors.Is(err, ErrMalformed) true for every parse error.
func (e *ParseError) Is(target error) bool { return target == ErrMalformed }

// maxPCR is the highest PCR of a PC Client TPM (24 PCRs, TPM 1.2 and 2.0).
const maxPCR = 23

// Parse detects the log format and parses b: a TCG2 log (starts with a
// "Spec ID Event03" header), a TCPA log (a "Spec ID Event00" header, or none
// as SeaBIOS writes it), or coreboot's own table format.
func Parse(b []byte) (*Log, error) {
	if len(b) == 0 {
		return nil, &ParseError{Format: "event", Offset: 0, Msg: "the log is empty"}
	}
	switch detect(b) {
	case FormatTCG2:
		return ParseTCG2(b)
	case FormatCoreboot:
		return ParseCoreboot(b)
	}
	l, err := ParseTCPA(b)
	if err != nil {
		return nil, fmt.Errorf("%w (read as TPM 1.2: no \"Spec ID Event03\" header, so not a TCG2 log)", err)
	}
	return l, nil
}

// detect guesses the format from the first bytes. TCG2 and TCPA-with-header
// logs are recognised by their header event. Without a header, the first
// 32-bit word of a TCPA log is a PCR index (<= 23), so its bytes 2-3 are zero;
// in a coreboot table those bytes are the entry count, and bytes 0-1 the
// table size (50 in CBMEM).
func detect(b []byte) Format {
	if sig, ok := headerSignature(b); ok {
		if sig == tcg2Signature {
			return FormatTCG2
		}
		return FormatTCPA
	}
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) > maxPCR {
		return FormatCoreboot
	}
	return FormatTCPA
}
