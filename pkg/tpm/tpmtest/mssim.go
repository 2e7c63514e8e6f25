//go:build cgo

package tpmtest

import (
	"io"
	"sync"
	"testing"

	"github.com/goheads/goheads/pkg/tpm"
	"github.com/google/go-tpm-tools/simulator"
)

// MSSim is the Microsoft TPM 2.0 reference implementation (through
// go-tpm-tools' simulator, in-process, cgo): a second TPM implementation,
// independent of swtpm's libtpms, for the TPM 2.0 tests. Test-only: it
// must never reach the initramfs (build/deptest_test.go denies go-tpm-tools).
type MSSim struct {
	mu  sync.Mutex
	sim *simulator.Simulator
	tpm *tpm.TPM
}

// HaveMSSim reports whether the reference simulator is built in (cgo).
const HaveMSSim = true

// StartMSSim starts the reference simulator for a test.
func StartMSSim(t testing.TB) *MSSim {
	t.Helper()
	s, err := simulator.Get()
	if err != nil {
		t.Fatalf("start the TPM 2.0 reference simulator: %v", err)
	}
	m := &MSSim{sim: s}
	m.tpm = tpm.New(&rwTransport{rw: s, mu: &m.mu}, tpm.Family20, nil)
	t.Cleanup(func() { s.Close() })
	return m
}

// TPM returns the handle.
func (m *MSSim) TPM() *tpm.TPM { return m.tpm }

// Restart power-cycles the simulator: PCRs reset, NV kept.
func (m *MSSim) Restart(t testing.TB) *tpm.TPM {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.sim.Reset(); err != nil {
		t.Fatal(err)
	}
	return m.tpm
}

type rwTransport struct {
	mu *sync.Mutex
	rw io.ReadWriter
}

func (r *rwTransport) Send(cmd []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.rw.Write(cmd); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	n, err := r.rw.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
