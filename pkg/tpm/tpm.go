// Package tpm is goheads' TPM layer: one API over TPM 1.2 and TPM 2.0 with
// Heads' PCR usage, handles and sealing policies (see the package README in
// shared/reference/heads.md section 2). It talks to /dev/tpmrm0 or /dev/tpm0
// directly; nothing here spawns processes.
//
// The layer knows nothing of boot policy: it measures, seals, unseals and
// counts, and reports failures as typed errors (ErrPolicyMismatch,
// ErrBadAuth, ErrLockout, ...) that callers turn into screens.
package tpm

import (
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// Family is the TPM specification family.
type Family int

const (
	// Family12 is TPM 1.2 (SHA-1 PCRs, 20 bytes).
	Family12 Family = 1
	// Family20 is TPM 2.0 (Heads uses the SHA-256 bank, 32 bytes).
	Family20 Family = 2
)

func (f Family) String() string {
	switch f {
	case Family12:
		return "TPM 1.2"
	case Family20:
		return "TPM 2.0"
	}
	return fmt.Sprintf("TPM family %d", int(f))
}

// PCRSize is the size of the PCR bank Heads uses for this family.
func (f Family) PCRSize() int {
	if f == Family12 {
		return sha1.Size
	}
	return sha256.Size
}

// NewHash returns the hash Heads measures with for this family.
func (f Family) NewHash() hash.Hash {
	if f == Family12 {
		return sha1.New()
	}
	return sha256.New()
}

// TPM is an open TPM of either family.
type TPM struct {
	fam    Family
	t      *CountingTransport
	closer io.Closer
	// Log, if set, receives one record per extend (see MeasurementLog).
	Log *MeasurementLog
	// banks are the active TPM 2.0 PCR banks, read once on first extend.
	banks []bank
}

// New wraps a transport to a TPM of the given family.
func New(t Transport, fam Family, closer io.Closer) *TPM {
	c, ok := t.(*CountingTransport)
	if !ok {
		c = &CountingTransport{T: t}
	}
	return &TPM{fam: fam, t: c, closer: closer}
}

// Family returns the TPM family.
func (t *TPM) Family() Family { return t.fam }

// Transport returns the (counting) transport, for commands this package does
// not wrap.
func (t *TPM) Transport() *CountingTransport { return t.t }

// Commands returns how many TPM commands were sent through this handle.
func (t *TPM) Commands() int64 { return t.t.Count() }

// Close closes the underlying transport.
func (t *TPM) Close() error {
	if t.closer == nil {
		return nil
	}
	return t.closer.Close()
}

// Device paths and sysfs locations, variables so tests can point them at a tree.
var (
	DevTPMRM   = "/dev/tpmrm0"
	DevTPM     = "/dev/tpm0"
	SysfsMajor = "/sys/class/tpm/tpm0/tpm_version_major"
)

// Detect reports which TPM family the kernel exposes, without opening it.
// TPM 2.0 has a resource-managed device; TPM 1.2 only /dev/tpm0.
func Detect() (Family, string, error) {
	if b, err := os.ReadFile(SysfsMajor); err == nil {
		switch strings.TrimSpace(string(b)) {
		case "2":
			return Family20, DevTPMRM, nil
		case "1":
			return Family12, DevTPM, nil
		}
	}
	if _, err := os.Stat(DevTPMRM); err == nil {
		return Family20, DevTPMRM, nil
	}
	if _, err := os.Stat(DevTPM); err == nil {
		return Family12, DevTPM, nil
	}
	return 0, "", ErrNoTPM
}

// RuntimeLogPath is where goheads records its extends in the initramfs (tmpfs).
const RuntimeLogPath = "/tmp/measurements.log"

// Open opens the TPM the kernel exposes, recording extends in RuntimeLogPath.
func Open() (*TPM, error) {
	fam, path, err := Detect()
	if err != nil {
		return nil, err
	}
	c, tr, err := OpenDevice(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open %s: %w", path, ErrNoTPM)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	t := New(tr, fam, c)
	t.Log = &MeasurementLog{Path: RuntimeLogPath}
	return t, nil
}
