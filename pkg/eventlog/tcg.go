package eventlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

const (
	tcg2Signature = "Spec ID Event03" // TCG PFP spec; coreboot TCG_EFI_SPEC_ID_EVENT_SIGNATURE
	tcpaSignature = "Spec ID Event00" // TCG 1.2 PC Client spec; coreboot TCPA_SPEC_ID_EVENT_SIGNATURE

	// tcpaEventHeader is sizeof(TCG_PCR_EVENT) before the event data: PCR
	// index, event type, SHA-1 digest, event size (Linux struct tcpa_event).
	tcpaEventHeader = 4 + 4 + 20 + 4
	// tcg2EventHeader is TCG_PCR_EVENT2 up to the digests: PCR index, event
	// type, TPML_DIGEST_VALUES.count (Linux struct tcg_pcr_event2_head).
	tcg2EventHeader = 4 + 4 + 4

	// maxHeaderAlgs bounds the header's digest size table; a TPM has a
	// handful of hash algorithms, and each event repeats them all.
	maxHeaderAlgs = 32
	// maxDigestSize is the largest TPMU_HA member (SHA-512, SHA3-512).
	maxDigestSize = 64

	// coreboot's vendor info in the header event (struct tpm_1_vendor,
	// struct tpm_2_vendor in src/security/tpm/tpm{1,2}_log_serialized.h):
	// reserved u8, version major u8, minor u8, magic u32, max_entries u16,
	// num_entries u16, entry_size u32.
	cbVendorSize = 15
	cbT1Magic    = 0x31544243 // "CBT1"
	cbT2Magic    = 0x32544243 // "CBT2"
)

// reader reads little-endian fields with bounds checks; errors carry the
// offset of the field in the whole log (base + off).
type reader struct {
	b      []byte
	off    int
	base   int64
	format Format
}

func (r *reader) errAt(off int, format string, args ...any) error {
	return &ParseError{Format: r.format, Offset: r.base + int64(off), Msg: fmt.Sprintf(format, args...)}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) take(n uint64, what string) ([]byte, error) {
	if n > uint64(r.left()) {
		return nil, r.errAt(r.off, "%s needs %d bytes, only %d left (log truncated or a size field is corrupt)", what, n, r.left())
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v, nil
}

func (r *reader) u8(what string) (uint8, error) {
	v, err := r.take(1, what)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	v, err := r.take(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(v), nil
}

func (r *reader) u32(what string) (uint32, error) {
	v, err := r.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(v), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// headerSignature returns the Spec ID signature if b starts with a
// TCG_PCR_EVENT of type EV_NO_ACTION carrying one.
func headerSignature(b []byte) (string, bool) {
	if len(b) < tcpaEventHeader+16 || binary.LittleEndian.Uint32(b[4:]) != EvNoAction ||
		binary.LittleEndian.Uint32(b[28:]) < 16 {
		return "", false
	}
	sig := b[tcpaEventHeader : tcpaEventHeader+16]
	for _, s := range []string{tcg2Signature, tcpaSignature} {
		if string(sig) == s+"\x00" {
			return s, true
		}
	}
	return "", false
}

// headerEvent reads the first TCG_PCR_EVENT and returns a reader over its
// data, which must start with signature.
func (r *reader) headerEvent(signature string) (*reader, error) {
	if _, err := r.take(4, "header event PCR index"); err != nil {
		return nil, err
	}
	typ, err := r.u32("header event type")
	if err != nil {
		return nil, err
	}
	if typ != EvNoAction {
		return nil, r.errAt(4, "first event has type %#x, want EV_NO_ACTION (0x3) carrying the %q header", typ, signature)
	}
	if _, err := r.take(20, "header event digest"); err != nil {
		return nil, err
	}
	size, err := r.u32("header event size")
	if err != nil {
		return nil, err
	}
	start := r.off
	data, err := r.take(uint64(size), "header event data")
	if err != nil {
		return nil, err
	}
	h := &reader{b: data, base: r.base + int64(start), format: r.format}
	sig, err := h.take(16, "header signature")
	if err != nil {
		return nil, err
	}
	if string(sig) != signature+"\x00" {
		return nil, h.errAt(0, "header signature is %q, want %q", bytes.TrimRight(sig, "\x00"), signature)
	}
	return h, nil
}

// corebootCount returns the entry count from coreboot's vendor info, which
// coreboot keeps in the header of the logs it writes to CBMEM; the rest of
// the CBMEM area is zeros (log-tpm1.c, log-tpm2.c). ok is false for vendor
// info that is not coreboot's.
func corebootCount(h *reader, vendor []byte, vendorOff int, magic uint32) (n int, ok bool, err error) {
	if len(vendor) != cbVendorSize || binary.LittleEndian.Uint32(vendor[3:]) != magic {
		return 0, false, nil
	}
	maxEntries := binary.LittleEndian.Uint16(vendor[7:])
	num := binary.LittleEndian.Uint16(vendor[9:])
	if num > maxEntries {
		return 0, false, h.errAt(vendorOff+9, "coreboot vendor info counts %d entries in a table of %d", num, maxEntries)
	}
	return int(num), true, nil
}

// ParseTCG2 parses a TCG PC Client crypto-agile log: a TCG_PCR_EVENT
// (SHA-1 format) carrying the "Spec ID Event03" header with the digest size
// table, then TCG_PCR_EVENT2 records (TCG PFP spec section 10.2; Linux
// drivers/char/tpm/eventlog/tpm2.c and include/linux/tpm_eventlog.h).
//
// The log ends at the end of b, or at an event of type 0 with no data
// (Linux __calc_tpm2_event_size), or at 12 zero bytes (coreboot util/cbmem
// parse_tpm2_log): firmware log areas are zero filled after the last event.
// For logs coreboot wrote, the entry count in its vendor info is enforced.
func ParseTCG2(b []byte) (*Log, error) {
	r := &reader{b: b, format: FormatTCG2}
	h, err := r.headerEvent(tcg2Signature)
	if err != nil {
		return nil, err
	}
	spec := &SpecID{Signature: tcg2Signature}
	if spec.PlatformClass, err = h.u32("platform class"); err != nil {
		return nil, err
	}
	for _, f := range []*uint8{&spec.VersionMinor, &spec.VersionMajor, &spec.Errata, &spec.UintnSize} {
		if *f, err = h.u8("spec version"); err != nil {
			return nil, err
		}
	}
	numOff := h.off
	numAlgs, err := h.u32("number of algorithms")
	if err != nil {
		return nil, err
	}
	if numAlgs == 0 || numAlgs > maxHeaderAlgs {
		return nil, h.errAt(numOff, "header lists %d algorithms, want 1 to %d", numAlgs, maxHeaderAlgs)
	}
	sizes := make(map[Alg]int, numAlgs)
	log := &Log{Format: FormatTCG2, Spec: spec}
	for i := uint32(0); i < numAlgs; i++ {
		off := h.off
		id, err := h.u16("algorithm id")
		if err != nil {
			return nil, err
		}
		size, err := h.u16("digest size")
		if err != nil {
			return nil, err
		}
		a := Alg(id)
		if _, dup := sizes[a]; dup {
			return nil, h.errAt(off, "header lists algorithm %v twice", a)
		}
		if want := a.Size(); want != 0 && int(size) != want {
			return nil, h.errAt(off, "header gives %v a %d-byte digest, want %d", a, size, want)
		}
		if size == 0 || size > maxDigestSize {
			return nil, h.errAt(off, "header gives %v a %d-byte digest, want 1 to %d", a, size, maxDigestSize)
		}
		sizes[a] = int(size)
		spec.Algs = append(spec.Algs, AlgSize{Alg: a, Size: int(size)})
		log.Algs = append(log.Algs, a)
	}
	vsize, err := h.u8("vendor info size")
	if err != nil {
		return nil, err
	}
	vendorOff := h.off
	vendor, err := h.take(uint64(vsize), "vendor info")
	if err != nil {
		return nil, err
	}
	spec.VendorInfo = clone(vendor)
	if h.left() != 0 {
		return nil, h.errAt(h.off, "%d unexpected bytes after the header's vendor info", h.left())
	}
	limit, limited, err := corebootCount(h, vendor, vendorOff, cbT2Magic)
	if err != nil {
		return nil, err
	}

	for !limited || len(log.Events) < limit {
		start := r.off
		if r.left() < tcg2EventHeader {
			if allZero(r.b[r.off:]) {
				break
			}
			return nil, r.errAt(start, "%d stray bytes after the last event (truncated event?)", r.left())
		}
		pcr, _ := r.u32("PCR index")
		typ, _ := r.u32("event type")
		count, _ := r.u32("digest count")
		if pcr == 0 && typ == 0 && count == 0 {
			break // coreboot util/cbmem: 12 zero bytes end the log
		}
		if count > numAlgs {
			return nil, r.errAt(start+8, "event %d has %d digests, the header lists %d algorithms", len(log.Events)+1, count, numAlgs)
		}
		ev := Event{PCR: int(pcr), Type: typ, Offset: int64(start)}
		for k := uint32(0); k < count; k++ {
			off := r.off
			id, err := r.u16("digest algorithm")
			if err != nil {
				return nil, err
			}
			a := Alg(id)
			size, known := sizes[a]
			if !known {
				return nil, r.errAt(off, "event %d has a digest in %v, which the header does not list", len(log.Events)+1, a)
			}
			if ev.Digest(a) != nil {
				return nil, r.errAt(off, "event %d has two %v digests", len(log.Events)+1, a)
			}
			v, err := r.take(uint64(size), "digest "+a.String())
			if err != nil {
				return nil, err
			}
			ev.Digests = append(ev.Digests, Digest{Alg: a, Value: clone(v)})
		}
		size, err := r.u32("event size")
		if err != nil {
			return nil, err
		}
		if typ == 0 && size == 0 {
			break
		}
		data, err := r.take(uint64(size), "event data")
		if err != nil {
			return nil, err
		}
		if pcr > maxPCR {
			return nil, r.errAt(start, "event %d is for PCR %d; a PC Client TPM has PCRs 0-%d", len(log.Events)+1, pcr, maxPCR)
		}
		ev.Data = clone(data)
		log.Events = append(log.Events, ev)
	}
	if limited && len(log.Events) < limit {
		return nil, r.errAt(r.off, "coreboot's header counts %d events but the log ends after %d", limit, len(log.Events))
	}
	return log, nil
}

// ParseTCPA parses a TPM 1.2 log of TCG_PCR_EVENT records (SHA-1 digests):
// with a "Spec ID Event00" header as coreboot writes to CBMEM "TCPA TCGLOG"
// (src/security/tpm/tpm1_log_serialized.h), or without one as SeaBIOS does.
//
// The log ends at the end of b, or at an event of type 0 with no data (Linux
// drivers/char/tpm/eventlog/tpm1.c), which also covers the zero block
// coreboot's util/cbmem stops at.
func ParseTCPA(b []byte) (*Log, error) {
	r := &reader{b: b, format: FormatTCPA}
	log := &Log{Format: FormatTCPA, Algs: []Alg{AlgSHA1}}
	limit, limited := 0, false
	if sig, ok := headerSignature(b); ok {
		if sig == tcg2Signature {
			return nil, r.errAt(tcpaEventHeader, "this is a TCG2 (crypto agile) log, not a TPM 1.2 one")
		}
		h, err := r.headerEvent(tcpaSignature)
		if err != nil {
			return nil, err
		}
		spec := &SpecID{Signature: tcpaSignature}
		if spec.PlatformClass, err = h.u32("platform class"); err != nil {
			return nil, err
		}
		for _, f := range []*uint8{&spec.VersionMinor, &spec.VersionMajor, &spec.Errata, &spec.UintnSize} {
			if *f, err = h.u8("spec version"); err != nil {
				return nil, err
			}
		}
		vsize, err := h.u8("vendor info size")
		if err != nil {
			return nil, err
		}
		vendorOff := h.off
		vendor, err := h.take(uint64(vsize), "vendor info")
		if err != nil {
			return nil, err
		}
		spec.VendorInfo = clone(vendor)
		if h.left() != 0 {
			return nil, h.errAt(h.off, "%d unexpected bytes after the header's vendor info", h.left())
		}
		log.Spec = spec
		if limit, limited, err = corebootCount(h, vendor, vendorOff, cbT1Magic); err != nil {
			return nil, err
		}
	}
	for !limited || len(log.Events) < limit {
		start := r.off
		if r.left() < tcpaEventHeader {
			if allZero(r.b[r.off:]) {
				break
			}
			return nil, r.errAt(start, "%d stray bytes after the last event (truncated event?)", r.left())
		}
		pcr, _ := r.u32("PCR index")
		typ, _ := r.u32("event type")
		digest, _ := r.take(20, "digest")
		size, _ := r.u32("event size")
		if typ == 0 && size == 0 {
			break
		}
		data, err := r.take(uint64(size), "event data")
		if err != nil {
			return nil, err
		}
		if pcr > maxPCR {
			return nil, r.errAt(start, "event %d is for PCR %d; a PC Client TPM has PCRs 0-%d", len(log.Events)+1, pcr, maxPCR)
		}
		log.Events = append(log.Events, Event{
			PCR: int(pcr), Type: typ, Offset: int64(start),
			Digests: []Digest{{Alg: AlgSHA1, Value: clone(digest)}},
			Data:    clone(data),
		})
	}
	if limited && len(log.Events) < limit {
		return nil, r.errAt(r.off, "coreboot's header counts %d events but the log ends after %d", limit, len(log.Events))
	}
	return log, nil
}
