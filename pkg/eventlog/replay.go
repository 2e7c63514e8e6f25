package eventlog

import (
	"bytes"
	"fmt"
)

// startupLocality is the signature of the PFP spec's "Startup Locality
// Event": EV_NO_ACTION in PCR 0, data "StartupLocality\0" and one byte, the
// locality TPM2_Startup came from (TCG PC Client PFP spec, section 10.4.5.3).
const startupLocality = "StartupLocality\x00"

// Replay computes the value PCR pcr has in bank alg after the measurements
// the log records: start from the PCR's reset value, then for each event in
// order new = H(old || digest). EV_NO_ACTION events are informational and
// never extended (TCG PFP spec, EV_NO_ACTION). Every other event for the PCR
// must carry a digest in alg, else the bank's value is unknown and Replay
// fails rather than guess.
//
// The reset value is all zeros, except PCR 0 after a Startup Locality event
// (TCG2 logs only): its last byte is the locality, so locality 3 gives
// 00..03 and an H-CRTM (locality 4) 00..04 (PFP spec 10.4.5.3). PCRs 17-22
// are DRTM PCRs whose value depends on a dynamic launch the SRTM log does not
// describe; they are refused.
func (l *Log) Replay(pcr int, alg Alg) ([]byte, error) {
	if pcr < 0 || pcr > maxPCR {
		return nil, fmt.Errorf("replay PCR %d: %w (PCRs are 0-%d)", pcr, ErrPCRRange, maxPCR)
	}
	if pcr >= 17 && pcr <= 22 {
		return nil, fmt.Errorf("replay PCR %d: %w: PCRs 17-22 belong to a dynamic launch (DRTM), which this log does not describe", pcr, ErrPCRRange)
	}
	h, ok := alg.Hash()
	if !ok {
		return nil, fmt.Errorf("replay PCR %d: %w: %v", pcr, ErrUnsupportedAlg, alg)
	}
	if !l.HasAlg(alg) && (l.Format != FormatCoreboot || l.measures(pcr)) {
		return nil, fmt.Errorf("replay PCR %d: %w: the %s log records %s, not %v", pcr, ErrBankNotLogged, l.Format, l.algList(), alg)
	}
	v := make([]byte, h.Size())
	extended := false
	for i := range l.Events {
		e := &l.Events[i]
		if e.PCR != pcr {
			continue
		}
		if e.Type == EvNoAction {
			if l.Format != FormatTCG2 || pcr != 0 || !bytes.HasPrefix(e.Data, []byte(startupLocality)) {
				continue
			}
			if len(e.Data) != len(startupLocality)+1 {
				return nil, fmt.Errorf("replay PCR 0: %w: Startup Locality event at offset %d has %d bytes of data, want %d", ErrMalformed, e.Offset, len(e.Data), len(startupLocality)+1)
			}
			loc := e.Data[len(startupLocality)]
			if extended || !allZero(v) {
				return nil, fmt.Errorf("replay PCR 0: %w: Startup Locality event at offset %d comes after PCR 0 was set", ErrMalformed, e.Offset)
			}
			if loc != 0 && loc != 3 && loc != 4 {
				return nil, fmt.Errorf("replay PCR 0: %w: Startup Locality event at offset %d gives locality %d, want 0, 3 or 4", ErrMalformed, e.Offset, loc)
			}
			v[len(v)-1] = loc
			continue
		}
		d := e.Digest(alg)
		if d == nil {
			return nil, fmt.Errorf("replay PCR %d: %w: event at offset %d (type %#x) has no %v digest, so the bank's value is unknown", pcr, ErrBankNotLogged, e.Offset, e.Type, alg)
		}
		if len(d) != h.Size() {
			return nil, fmt.Errorf("replay PCR %d: %w: event at offset %d has a %d-byte %v digest", pcr, ErrMalformed, e.Offset, len(d), alg)
		}
		v = extend(h.New(), v, d)
		extended = true
	}
	return v, nil
}

// Future computes the value PCR pcr will have in bank alg once the extra
// digests are extended after the firmware's measurements: Heads' `tpmr
// calcfuturepcr` (initrd/bin/tpmr.sh replay_pcr, since commit d1a18f1f),
// which replays the coreboot log for that PCR from zero, then folds each
// extra argument. Heads refuses PCR >= 8 ("Illegal PCR number"), and so does
// Future: those PCRs are not sealed to.
//
// Where goheads differs from Heads, on purpose:
//   - Heads selects log lines with an unanchored regex, so "PCR-2" also
//     matches PCR 20-23 entries; Future matches the index exactly.
//   - Heads returns zero plus the extras when the log has no digest in the
//     bank (say, a SHA-1 log on a TPM 2.0); Future refuses
//     (ErrBankNotLogged): a wrong future value would seal a secret that can
//     never be unsealed.
//   - Heads folds every logged digest; Future skips EV_NO_ACTION events, which
//     the firmware never extends, and honours a Startup Locality event for
//     PCR 0. Coreboot logs neither, so on coreboot the values are the same.
func (l *Log) Future(pcr int, alg Alg, extra ...[]byte) ([]byte, error) {
	if pcr < 0 || pcr >= 8 {
		return nil, fmt.Errorf("future PCR %d: %w: only PCRs 0-7 can be precomputed (as Heads' calcfuturepcr)", pcr, ErrPCRRange)
	}
	v, err := l.Replay(pcr, alg)
	if err != nil {
		return nil, err
	}
	h, _ := alg.Hash()
	for i, d := range extra {
		if len(d) != h.Size() {
			return nil, fmt.Errorf("future PCR %d: extra digest %d is %d bytes, want %d for %v", pcr, i+1, len(d), h.Size(), alg)
		}
		v = extend(h.New(), v, d)
	}
	return v, nil
}

// PCRs replays every PCR the log measures (plus PCR 0 when a Startup Locality
// event sets it) in bank alg: what an integrity report compares with the TPM.
// DRTM PCRs 17-22 are left out (see Replay).
func (l *Log) PCRs(alg Alg) (map[int][]byte, error) {
	out := make(map[int][]byte)
	for i := range l.Events {
		e := &l.Events[i]
		if _, done := out[e.PCR]; done || (e.PCR >= 17 && e.PCR <= 22) {
			continue
		}
		if e.Type == EvNoAction && !(e.PCR == 0 && bytes.HasPrefix(e.Data, []byte(startupLocality))) {
			continue
		}
		v, err := l.Replay(e.PCR, alg)
		if err != nil {
			return nil, err
		}
		out[e.PCR] = v
	}
	return out, nil
}

// measures reports whether the log extends pcr at all.
func (l *Log) measures(pcr int) bool {
	for i := range l.Events {
		if l.Events[i].PCR == pcr && l.Events[i].Type != EvNoAction {
			return true
		}
	}
	return false
}

func (l *Log) algList() string {
	if len(l.Algs) == 0 {
		return "no digests"
	}
	s := ""
	for i, a := range l.Algs {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s
}

type hasher interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}

// extend returns H(old || digest), the TPM's PCR extend.
func extend(h hasher, old, digest []byte) []byte {
	h.Write(old)
	h.Write(digest)
	return h.Sum(nil)
}
