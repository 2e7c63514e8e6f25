//go:build !cgo

package tpmtest

import (
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
	"github.com/goheads/goheads/pkg/tpm"
)

// HaveMSSim reports whether the reference simulator is built in (cgo).
const HaveMSSim = false

// MSSim is unavailable without cgo.
type MSSim struct{}

// StartMSSim skips (or fails under make test): the simulator needs cgo.
func StartMSSim(t testing.TB) *MSSim {
	testenv.Missing(t, "the TPM 2.0 reference simulator needs cgo (CGO_ENABLED=1, gcc, libssl-dev)")
	return nil
}

func (m *MSSim) TPM() *tpm.TPM                 { return nil }
func (m *MSSim) Restart(t testing.TB) *tpm.TPM { return nil }
