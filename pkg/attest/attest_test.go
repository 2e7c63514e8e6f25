package attest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/eventlog"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
)

var owner = []byte("owner")

func setup(t *testing.T, fam tpm.Family) (*tpmtest.Sim, *TOTP, string) {
	t.Helper()
	sim := tpmtest.Start(t, fam)
	if err := sim.TPM().Reset(owner); err != nil {
		t.Fatal(err)
	}
	runtime := filepath.Join(t.TempDir(), "measurements.log")
	sim.TPM().Log = &tpm.MeasurementLog{Path: runtime}
	a := &TOTP{
		TPM:        sim.TPM(),
		Firmware:   FirmwarePCRs{ReadLog: func() (*eventlog.Log, error) { return nil, eventlog.ErrNoLog }, RuntimeLog: runtime},
		Board:      "qemu-tpm2",
		SourceDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	return sim, a, runtime
}

func TestTOTPSealCodeAndRecovery(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			sim, a, _ := setup(t, fam)
			s, err := a.Seal(owner)
			if err != nil {
				t.Fatal(err)
			}
			raw := append([]byte(nil), s.Raw...)
			if len(raw) != 20 || !strings.HasPrefix(s.URI, "otpauth://totp/qemu-tpm2?secret="+s.Base32) {
				t.Fatalf("new secret %q / %q", s.Base32, s.URI)
			}
			s.Wipe()
			if !bytes.Equal(s.Raw, make([]byte, 20)) {
				t.Error("Wipe left the secret")
			}
			at := time.Date(2026, 11, 25, 12, 0, 7, 0, time.UTC)
			a.Now = func() time.Time { return at }
			c, err := a.Code()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := otp.TOTP(raw, at)
			if c.Code != want || !c.Until.Equal(at.Add(23*time.Second)) {
				t.Errorf("code %s until %v, want %s until +23s", c.Code, c.Until, want)
			}
			// A wrong clock is reported, not turned into a wrong code.
			a.Now = func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }
			if _, err := a.Code(); !errors.Is(err, otp.ErrClockNotSet) {
				t.Errorf("clock in 2000: %v, want ErrClockNotSet", err)
			}
			a.Now = func() time.Time { return at }
			// Recovery shell: PCR 4 poisoned, unseal fails naming PCR 4.
			if err := measure.BootMode(a.TPM, measure.ModeRecovery); err != nil {
				t.Fatal(err)
			}
			_, err = a.Code()
			var pe *tpm.PolicyError
			if !errors.As(err, &pe) || len(pe.PCRs) != 1 || pe.PCRs[0] != 4 {
				t.Fatalf("after recovery: %v, want a policy error naming PCR 4", err)
			}
			// And sealing again in this boot is refused: PCR 4's firmware value is unknown.
			if _, err := a.Seal(owner); !errors.Is(err, ErrPCRAlreadyExtended) {
				t.Errorf("seal after recovery: %v, want ErrPCRAlreadyExtended", err)
			}
			// Next boot the code works again.
			a.TPM = sim.Restart()
			os.Remove(a.Firmware.(FirmwarePCRs).RuntimeLog)
			if c, err := a.Code(); err != nil || c.Code != want {
				t.Fatalf("after reboot: %v %v", c, err)
			}
		})
	}
}

func TestFirmwarePCRFromEventLog(t *testing.T) {
	_, a, runtime := setup(t, tpm.Family20)
	// The firmware measured something into PCR 4; goheads extended "usb" since.
	log := &eventlog.Log{Format: eventlog.FormatCoreboot, Algs: []eventlog.Alg{eventlog.AlgSHA256}, Events: []eventlog.Event{
		{PCR: 4, Type: eventlog.EvAction, Digests: []eventlog.Digest{{Alg: eventlog.AlgSHA256, Value: bytes.Repeat([]byte{7}, 32)}}},
	}}
	a.Firmware = FirmwarePCRs{ReadLog: func() (*eventlog.Log, error) { return log, nil }, RuntimeLog: runtime}
	want, _ := log.Future(4, eventlog.AlgSHA256)
	got, err := a.Firmware.PCR(a.TPM, 4)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("PCR 4 from the log: %x %v, want %x", got, err, want)
	}
}

func TestHOTPCounter(t *testing.T) {
	_, a, _ := setup(t, tpm.Family20)
	s, err := a.Seal(owner)
	if err != nil {
		t.Fatal(err)
	}
	raw := append([]byte(nil), s.Raw...)
	store := FileCounter{Path: filepath.Join(t.TempDir(), "kexec_hotp_counter")}
	if _, _, err := a.HOTPCode(store); !errors.Is(err, ErrNoHOTPCounter) {
		t.Fatalf("no counter file: %v", err)
	}
	os.WriteFile(store.Path, []byte("2\n"), 0o644) // as seal-hotpkey leaves it
	for want := uint64(2); want < 5; want++ {
		code, n, err := a.HOTPCode(store)
		if err != nil {
			t.Fatal(err)
		}
		exp, _ := otp.HOTP(raw, want)
		if n != want || code != exp {
			t.Errorf("counter %d code %s, want %d %s", n, code, want, exp)
		}
	}
	if b, _ := os.ReadFile(store.Path); string(b) != "5\n" {
		t.Errorf("counter file %q, want 5", b)
	}
	os.WriteFile(store.Path, []byte("two"), 0o644)
	if _, _, err := a.HOTPCode(store); err == nil || !strings.Contains(err.Error(), "not a decimal") {
		t.Errorf("bad counter file: %v", err)
	}
}

// TestResealToPrediction: the secret resealed to a predicted PCR 2 stops
// unsealing now, unseals (the same code) after a "reboot" whose firmware
// extends exactly what was predicted, and not after one that extends
// something else.
func TestResealToPrediction(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			sim, a, runtime := setup(t, fam)
			s, err := a.Seal(owner)
			if err != nil {
				t.Fatal(err)
			}
			raw := append([]byte(nil), s.Raw...)
			s.Wipe()
			at := time.Date(2026, 11, 25, 12, 0, 7, 0, time.UTC)
			a.Now = func() time.Time { return at }
			want, _ := otp.TOTP(raw, at)

			newROM := []byte("ROM B's payload")
			h, size := sha256.New, sha256.Size
			if fam == tpm.Family12 {
				h, size = sha1.New, sha1.Size
			}
			d := h()
			d.Write(newROM)
			p := h()
			p.Write(make([]byte, size))
			p.Write(d.Sum(nil))
			if err := a.Reseal(owner, map[int][]byte{2: p.Sum(nil)}); err != nil {
				t.Fatal(err)
			}
			var pe *tpm.PolicyError
			if _, err := a.Code(); !errors.As(err, &pe) || len(pe.PCRs) != 1 || pe.PCRs[0] != 2 {
				t.Fatalf("before the update: %v, want a policy error naming PCR 2", err)
			}
			if err := a.Reseal(owner, map[int][]byte{5: nil}); err == nil {
				t.Error("reseal with PCR 5 outside the policy: no error")
			}

			for _, c := range []struct {
				name string
				rom  []byte
				ok   bool
			}{{"other ROM", []byte("ROM C"), false}, {"predicted ROM", newROM, true}} {
				a.TPM = sim.Restart()
				os.Remove(runtime)
				a.TPM.Log = &tpm.MeasurementLog{Path: runtime}
				if err := a.TPM.Measure(2, c.rom, "firmware"); err != nil {
					t.Fatal(err)
				}
				got, err := a.Code()
				if c.ok && (err != nil || got.Code != want) {
					t.Errorf("%s: %v %v, want code %s", c.name, got, err, want)
				}
				if !c.ok && !errors.Is(err, tpm.ErrPolicyMismatch) {
					t.Errorf("%s: %v, want ErrPolicyMismatch", c.name, err)
				}
			}
		})
	}
}
