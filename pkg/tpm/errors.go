package tpm

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Security outcomes. Callers test with errors.Is and show a screen per kind.
var (
	// ErrNoTPM: the kernel exposes no TPM device.
	ErrNoTPM = errors.New("no TPM found")
	// ErrNotProvisioned: the object, NV index or primary key is absent
	// (TPM reset, never sealed, or another owner cleared it).
	ErrNotProvisioned = errors.New("TPM is not provisioned for this")
	// ErrBadAuth: a passphrase (owner, object or NV) was wrong.
	ErrBadAuth = errors.New("wrong TPM passphrase")
	// ErrLockout: the TPM is in dictionary-attack lockout.
	ErrLockout = errors.New("TPM is locked out after too many wrong passphrases")
	// ErrPolicyMismatch: the PCRs do not hold the values the secret was sealed to.
	ErrPolicyMismatch = errors.New("PCR values differ from the sealed policy")
)

// PolicyError is an ErrPolicyMismatch that knows which PCRs differ, when the
// expected values are known (they are recorded beside sealed secrets).
type PolicyError struct {
	// PCRs lists the PCR indices whose current value differs; empty when unknown.
	PCRs []int
}

func (e *PolicyError) Error() string {
	if len(e.PCRs) == 0 {
		return ErrPolicyMismatch.Error()
	}
	s := make([]string, len(e.PCRs))
	for i, p := range e.PCRs {
		s[i] = fmt.Sprint(p)
	}
	word := "PCR"
	if len(s) > 1 {
		word = "PCRs"
	}
	return fmt.Sprintf("%s %s changed since the secret was sealed", word, strings.Join(s, ", "))
}

func (e *PolicyError) Is(target error) bool { return target == ErrPolicyMismatch }

// LockoutError is ErrLockout with the time until the TPM forgives one failure.
type LockoutError struct {
	// Wait is how long until another attempt is allowed; 0 when unknown.
	Wait time.Duration
}

func (e *LockoutError) Error() string {
	if e.Wait <= 0 {
		return ErrLockout.Error()
	}
	return fmt.Sprintf("%s; try again in %s", ErrLockout, e.Wait.Round(time.Second))
}

func (e *LockoutError) Is(target error) bool { return target == ErrLockout }

// diffPCRs returns the sorted indices where got and want differ.
func diffPCRs(got, want map[int][]byte) []int {
	var d []int
	for i, w := range want {
		if g, ok := got[i]; !ok || string(g) != string(w) {
			d = append(d, i)
		}
	}
	sort.Ints(d)
	return d
}
