package eventlog

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
)

func seedLogs(f *testing.F) {
	f.Add(encTCG2(bothAlgs, []byte("v"), uefiLikeEvents()))
	cbm, _ := corebootTPM2Log(f)
	f.Add(cbm)
	f.Add(encTCPA(true, cbVendor(cbT1Magic, 50, 2, 82), sha1Only([]tev{measured(2, "a"), measured(2, "b")})))
	f.Add(encTCPA(false, nil, sha1Only([]tev{measured(0, "a"), measured(4, "b")})))
	f.Add(encCB(3, []cbEnt{{2, "SHA256", sum(crypto.SHA256, "x"), "x"}, {3, "SHA1", sum(crypto.SHA1, "y"), "y"}}))
}

// checkLog exercises a parsed log: offsets inside the input, replay and
// future of every PCR and bank without panics, results of the right size.
func checkLog(t *testing.T, b []byte, l *Log, err error) {
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		var pe *ParseError
		if errors.As(err, &pe) && (pe.Offset < 0 || pe.Offset > int64(len(b))) {
			t.Fatalf("error offset %d outside the %d-byte input", pe.Offset, len(b))
		}
		return
	}
	for _, e := range l.Events {
		if e.Offset < 0 || e.Offset >= int64(len(b)) || e.PCR < 0 || e.PCR > maxPCR {
			t.Fatalf("event %+v out of range (input %d bytes)", e, len(b))
		}
		_ = e.Description()
	}
	for _, a := range []Alg{AlgSHA1, AlgSHA256, AlgSHA384, AlgSHA512, AlgSM3} {
		for pcr := 0; pcr <= maxPCR; pcr++ {
			v, err := l.Replay(pcr, a)
			if err == nil && len(v) != a.Size() {
				t.Fatalf("Replay(%d, %v) gave %d bytes", pcr, a, len(v))
			}
			if pcr < 8 {
				if _, err := l.Future(pcr, a, make([]byte, a.Size())); err == nil && v == nil {
					t.Fatalf("Future(%d, %v) succeeded where Replay failed", pcr, a)
				}
			}
		}
		_, _ = l.PCRs(a)
	}
}

func FuzzParse(f *testing.F) {
	seedLogs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		checkLog(t, b, l, err)
	})
}

func FuzzParseTCG2(f *testing.F) {
	seedLogs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseTCG2(b)
		checkLog(t, b, l, err)
	})
}

func FuzzParseTCPA(f *testing.F) {
	seedLogs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseTCPA(b)
		checkLog(t, b, l, err)
	})
}

func FuzzParseCoreboot(f *testing.F) {
	seedLogs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseCoreboot(b)
		checkLog(t, b, l, err)
	})
}

// FuzzFromCBMEM feeds the input as physical memory from address 0, seeded
// with a synthetic image: forwarding table, coreboot table, TPM log.
func FuzzFromCBMEM(f *testing.F) {
	tpm2, _ := corebootTPM2Log(f)
	small := make([]byte, 0x3000)
	copy(small[0x500:], encTable(lbForward(0x800)))
	copy(small[0x800:], encTable(lbCBMEMEntry(0x1000, uint32(len(tpm2)), CBMEMTPM2TCGLog), lbRec{0x36, make([]byte, 4)}))
	copy(small[0x1000:], tpm2)
	f.Add(small)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := FromCBMEM(bytes.NewReader(b))
		if err != nil {
			if l != nil {
				t.Fatal("log and error")
			}
			return
		}
		if l.Source == "" {
			t.Fatal("no source")
		}
		checkLog(t, b, l, nil)
	})
}
