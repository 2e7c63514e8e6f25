package tpm_test

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
)

// fold is the PCR extend operation: H(old || digest).
func fold(fam tpm.Family, old, digest []byte) []byte {
	h := fam.NewHash()
	h.Write(old)
	h.Write(digest)
	return h.Sum(nil)
}

func hashOf(fam tpm.Family, data []byte) []byte {
	if fam == tpm.Family12 {
		s := sha1.Sum(data)
		return s[:]
	}
	s := sha256.Sum256(data)
	return s[:]
}

func TestMeasureMatchesHostReplay(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			sim := tpmtest.Start(t, fam)
			tp := sim.TPM()
			logPath := filepath.Join(t.TempDir(), "measurements.log")
			tp.Log = &tpm.MeasurementLog{Path: logPath}

			before, err := tp.ReadPCRs(7, 16)
			if err != nil {
				t.Fatal(err)
			}
			if len(before[16]) != fam.PCRSize() {
				t.Fatalf("PCR 16 is %d bytes, want %d", len(before[16]), fam.PCRSize())
			}
			inputs := [][]byte{[]byte("/.gnupg/pubring.kbx"), []byte("keyring contents"), {}}
			for _, in := range inputs {
				if err := tp.Measure(16, in, "test "+string(in)); err != nil {
					t.Fatal(err)
				}
			}
			want := before[16]
			for _, in := range inputs {
				want = fold(fam, want, hashOf(fam, in))
			}
			after, err := tp.ReadPCRs(7, 16)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after[16], want) {
				t.Errorf("PCR 16 = %x, host replay = %x", after[16], want)
			}
			if !bytes.Equal(after[7], before[7]) {
				t.Errorf("PCR 7 changed without an extend")
			}

			// The runtime log replays to the same value.
			f, err := os.Open(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ms, err := tpm.ReadMeasurementLog(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(inputs) {
				t.Fatalf("log has %d records, want %d", len(ms), len(inputs))
			}
			bankName := map[tpm.Family]string{tpm.Family12: "sha1", tpm.Family20: "sha256"}[fam]
			replay := before[16]
			for _, m := range ms {
				replay = fold(fam, replay, m.Digests[bankName])
			}
			if !bytes.Equal(replay, after[16]) {
				t.Errorf("log replay %x != PCR %x", replay, after[16])
			}

			// ExtendDigest takes a raw digest of the right size only.
			if err := tp.ExtendDigest(16, make([]byte, 5), "short"); err == nil {
				t.Errorf("ExtendDigest accepted a 5-byte digest")
			}
			if _, err := tp.ReadPCRs(24); err == nil {
				t.Errorf("ReadPCRs(24) succeeded")
			}
		})
	}
}

func TestRestartResetsPCRs(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			sim := tpmtest.Start(t, fam)
			if err := sim.TPM().Measure(8, []byte("x"), ""); err != nil {
				t.Fatal(err)
			}
			v, err := sim.Restart().ReadPCR(8)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(v, make([]byte, fam.PCRSize())) {
				t.Errorf("PCR 8 after restart = %x, want zero", v)
			}
		})
	}
}

func TestRandom(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			tp := tpmtest.Start(t, fam).TPM()
			a, err := tp.Random(70)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := tp.Random(70)
			if len(a) != 70 || bytes.Equal(a, b) {
				t.Errorf("Random: %x / %x", a, b)
			}
		})
	}
}
