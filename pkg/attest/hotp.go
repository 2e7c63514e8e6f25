package attest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/goheads/goheads/pkg/atomicfile"
	"github.com/goheads/goheads/pkg/otp"
)

// HOTPCounterFile is where Heads keeps the HOTP counter: the next counter
// value, in decimal, on /boot (not signed: Heads does not protect it).
const HOTPCounterFile = "/boot/kexec_hotp_counter"

// ErrNoHOTPCounter: the HOTP counter file is missing (token never set up,
// or /boot reinstalled).
var ErrNoHOTPCounter = errors.New("HOTP counter file is missing")

// CounterStore holds the next HOTP counter value.
type CounterStore interface {
	Load() (uint64, error)
	Store(uint64) error
}

// FileCounter is Heads' counter file. Store writes a temporary file, syncs
// it and renames it over the old one, so a power cut leaves either value.
type FileCounter struct {
	Path string
}

// Load reads the counter.
func (f FileCounter) Load() (uint64, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w", f.Path, ErrNoHOTPCounter)
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a decimal counter", f.Path, strings.TrimSpace(string(b)))
	}
	return v, nil
}

// Store writes the counter: after a power cut the file holds the old value
// or the new one.
func (f FileCounter) Store(v uint64) error {
	return atomicfile.Write(f.Path, fmt.Appendf(nil, "%d\n", v), 0o644)
}

// HOTPCode unseals the secret, computes the HOTP code for the stored
// counter and advances the counter, as Heads' unseal-hotp does. The caller
// sends the code to the token, which checks it against its own counter.
func (a *TOTP) HOTPCode(store CounterStore) (code string, counter uint64, err error) {
	counter, err = store.Load()
	if err != nil {
		return "", 0, err
	}
	secret, err := a.Secret()
	if err != nil {
		return "", 0, err
	}
	defer wipe(secret)
	code, err = otp.HOTP(secret, counter)
	if err != nil {
		return "", 0, err
	}
	// Advance first: a code is never shown twice for one counter value.
	if err := store.Store(counter + 1); err != nil {
		return "", 0, fmt.Errorf("advance HOTP counter: %w", err)
	}
	return code, counter, nil
}
