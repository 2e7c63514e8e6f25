package tpm

import (
	"encoding/binary"
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

// runPW20 sends a TPM 2.0 command that go-tpm's direct API lacks, with one
// password authorization for handle (TPM_RS_PW), and checks the response code.
func (t *TPM) runPW20(cc uint32, handle tpm2.TPMHandle, auth, params []byte) error {
	b := binary.BigEndian.AppendUint16(nil, 0x8002) // TPM_ST_SESSIONS
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, cc)
	b = binary.BigEndian.AppendUint32(b, uint32(handle))
	area := binary.BigEndian.AppendUint32(nil, 0x40000009) // TPM_RS_PW
	area = binary.BigEndian.AppendUint16(area, 0)          // nonce
	area = append(area, 0)                                 // attributes
	area = binary.BigEndian.AppendUint16(area, uint16(len(auth)))
	area = append(area, auth...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(area)))
	b = append(b, area...)
	b = append(b, params...)
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)))
	rsp, err := t.t.Send(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTransport, err)
	}
	if len(rsp) < 10 {
		return fmt.Errorf("TPM 2.0 command 0x%x: short response", cc)
	}
	if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 {
		return tpm2.TPMRC(rc)
	}
	return nil
}
