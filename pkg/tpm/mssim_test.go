package tpm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
)

// TestReferenceSimulator runs the TPM 2.0 flows against the Microsoft
// reference TPM, a second implementation independent of swtpm's libtpms.
func TestReferenceSimulator(t *testing.T) {
	sim := tpmtest.StartMSSim(t)
	tp := sim.TPM()
	if err := tp.Reset(ownerPass); err != nil {
		t.Fatalf("reset: %v", err)
	}
	secret := []byte("reference-simulator!")
	if err := tp.Seal(tpm.SealOptions{Index: tpm.IndexTOTP, Secret: secret, PCRs: totpPolicy(), OwnerAuth: ownerPass}); err != nil {
		t.Fatal(err)
	}
	if got, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs}); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unseal: %q %v", got, err)
	}
	if err := tp.Measure(4, []byte("recovery"), "recovery shell"); err != nil {
		t.Fatal(err)
	}
	_, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs})
	var pe *tpm.PolicyError
	if !errors.As(err, &pe) || len(pe.PCRs) != 1 || pe.PCRs[0] != 4 {
		t.Fatalf("after recovery extend: %v, want a policy error naming PCR 4", err)
	}
	tp = sim.Restart(t)
	if got, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs}); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("after power cycle: %q %v", got, err)
	}
	id, err := tp.CounterCreate(ownerPass)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tp.CounterIncrement(id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tp.CounterIncrement(id)
	if err != nil || b.Value != a.Value+1 {
		t.Fatalf("counter: %v %v %v", a, b, err)
	}
	if err := tp.Finalize(); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	// After finalize the platform hierarchy is locked: a reset (Clear via platform) must fail.
	if err := tp.Reset(ownerPass); err == nil {
		t.Error("reset succeeded after the platform hierarchy was locked")
	}
}
