package eventlog

import (
	"bytes"
	"encoding/binary"
)

// coreboot's own log format, CBMEM "TPM CB LOG"
// (src/commonlib/include/commonlib/tpm_log_serialized.h):
//
//	struct tpm_cb_log_table { u16 max_entries; u16 num_entries; entries[] }
//	struct tpm_cb_log_entry {
//		u32 pcr; char digest_type[10]; u8 digest[64]; u32 digest_length; char name[50];
//	}
//
// packed, little endian (coreboot writes host order; all its x86 and ARM
// targets are little endian).
const (
	cbHeaderSize    = 4
	cbDigestTypeLen = 10
	cbDigestMax     = 64
	cbNameLen       = 50
	cbEntrySize     = 4 + cbDigestTypeLen + cbDigestMax + 4 + cbNameLen // 132
)

// cbAlgNames maps vboot's hash names (vb2_get_hash_algorithm_name, which
// coreboot's log.c copies into digest_type) to TPM algorithm ids.
var cbAlgNames = map[string]Alg{
	"SHA1":   AlgSHA1,
	"SHA256": AlgSHA256,
	"SHA384": AlgSHA384,
	"SHA512": AlgSHA512,
}

// ParseCoreboot parses coreboot's own TPM log table (CBMEM "TPM CB LOG", the
// format of `cbmem -L` lines " PCR-2 <hex> SHA256 [FMAP: FMAP]"). Entries
// carry no event type; they get EV_ACTION, the type coreboot records for the
// same measurements in its TCG formats (log-tpm1.c, log-tpm2.c). Bytes after
// num_entries entries (the unused rest of the table) are ignored.
func ParseCoreboot(b []byte) (*Log, error) {
	r := &reader{b: b, format: FormatCoreboot}
	maxEntries, err := r.u16("table max_entries")
	if err != nil {
		return nil, err
	}
	num, err := r.u16("table num_entries")
	if err != nil {
		return nil, err
	}
	if num > maxEntries {
		return nil, r.errAt(2, "table counts %d entries but has room for %d", num, maxEntries)
	}
	if need := cbHeaderSize + int(num)*cbEntrySize; len(b) < need {
		return nil, r.errAt(2, "table counts %d entries (%d bytes) but only %d bytes are present", num, need, len(b))
	}
	log := &Log{Format: FormatCoreboot}
	for i := 0; i < int(num); i++ {
		start := r.off
		pcr, _ := r.u32("PCR index")
		typeField, _ := r.take(cbDigestTypeLen, "digest type")
		digest, _ := r.take(cbDigestMax, "digest")
		dlen, _ := r.u32("digest length")
		nameField, _ := r.take(cbNameLen, "name")

		if pcr > maxPCR {
			return nil, r.errAt(start, "entry %d is for PCR %d; a PC Client TPM has PCRs 0-%d", i+1, pcr, maxPCR)
		}
		typeName, ok := cString(typeField)
		if !ok {
			return nil, r.errAt(start+4, "entry %d: digest type is not NUL terminated", i+1)
		}
		alg, known := cbAlgNames[typeName]
		if !known {
			// coreboot leaves digest_type empty when it could not log the
			// digest (log.c, "PCR digest too long"), yet the PCR was extended:
			// the log cannot be replayed.
			return nil, r.errAt(start+4, "entry %d: unknown digest type %q (want SHA1, SHA256, SHA384 or SHA512)", i+1, typeName)
		}
		if int(dlen) != alg.Size() {
			return nil, r.errAt(start+4+cbDigestTypeLen+cbDigestMax, "entry %d: digest length %d, want %d for %s", i+1, dlen, alg.Size(), typeName)
		}
		name, ok := cString(nameField)
		if !ok {
			return nil, r.errAt(start+4+cbDigestTypeLen+cbDigestMax+4, "entry %d: name is not NUL terminated", i+1)
		}
		if !log.HasAlg(alg) {
			log.Algs = append(log.Algs, alg)
		}
		log.Events = append(log.Events, Event{
			PCR: int(pcr), Type: EvAction, Offset: int64(start),
			Digests: []Digest{{Alg: alg, Value: clone(digest[:dlen])}},
			Data:    []byte(name),
		})
	}
	return log, nil
}

// cString returns the text before the first NUL; ok is false without one.
func cString(b []byte) (string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}

// cbLogSize is the size of a coreboot-format table from its header, for the
// legacy LB_TAG_TPM_CB_LOG reference that carries no size (util/cbmem
// devmem_drv.c).
func cbLogSize(header []byte) int {
	return cbHeaderSize + int(binary.LittleEndian.Uint16(header[2:]))*cbEntrySize
}
