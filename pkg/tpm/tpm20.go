package tpm

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// Error20 is a failed TPM 2.0 command, keeping go-tpm's error and mapping it
// onto this package's outcome errors.
type Error20 struct {
	Op  string
	Err error
}

func (e *Error20) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error20) Unwrap() error { return e.Err }

// Is maps TPM 2.0 response codes onto outcomes.
func (e *Error20) Is(target error) bool {
	switch target {
	case ErrPolicyMismatch:
		return errors.Is(e.Err, tpm2.TPMRCPolicyFail) || errors.Is(e.Err, tpm2.TPMRCPCRChanged)
	case ErrBadAuth:
		return errors.Is(e.Err, tpm2.TPMRCAuthFail) || errors.Is(e.Err, tpm2.TPMRCBadAuth)
	case ErrLockout:
		return errors.Is(e.Err, tpm2.TPMRCLockout)
	case ErrNotProvisioned:
		// A persistent handle or NV index that does not exist.
		return errors.Is(e.Err, tpm2.TPMRCHandle) || errors.Is(e.Err, tpm2.TPMRCNVUninitialized)
	}
	return false
}

func wrap20(op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error20{Op: op, Err: err}
}

// errorf20 is a convenience for formatted operation names.
func errorf20(err error, format string, a ...any) error {
	return wrap20(fmt.Sprintf(format, a...), err)
}
