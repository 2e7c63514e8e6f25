package bootsign

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goheads/goheads/pkg/keyring"
)

// Security outcomes. Each refusal wraps exactly one of these, so the UI can
// say which check failed (errors.Is). The signature errors are keyring's
// sentinels, re-exported so callers need not import keyring.
var (
	// ErrUnsigned: /boot has no kexec.sig. Heads skips verification
	// silently in that case; goheads reports it as its own state and never
	// treats unsigned content as verified.
	ErrUnsigned = errors.New("/boot is not signed (no kexec.sig)")

	ErrMalformedSignature = keyring.ErrMalformedSignature
	ErrBadSignature       = keyring.ErrBadSignature
	ErrUnknownKey         = keyring.ErrUnknownKey
	ErrRevokedKey         = keyring.ErrRevokedKey
	ErrExpiredKey         = keyring.ErrExpiredKey
	ErrExpiredSignature   = keyring.ErrExpiredSignature
	ErrUnusableKey        = keyring.ErrUnusableKey

	// ErrMissingManifest: kexec.sig verifies but kexec_hashes.txt or
	// kexec_tree.txt is absent (Heads' "Missing File!" screen).
	ErrMissingManifest = errors.New("integrity manifest missing")
	// ErrMalformedManifest: a signed manifest cannot be parsed.
	ErrMalformedManifest = errors.New("malformed manifest")
	// ErrHashMismatch: /boot differs from the signed manifests; the error
	// is a *HashError listing the files.
	ErrHashMismatch = errors.New("/boot files differ from the signed hashes")
	// ErrNotInManifest: a file to load is not covered by any manifest.
	ErrNotInManifest = errors.New("file is not covered by the signed hashes")
	// ErrRollback: the signed rollback file does not match the TPM counter
	// (an older signed /boot replayed, or the TPM was changed), or it is
	// missing while rollback protection is on.
	ErrRollback = errors.New("rollback counter mismatch")
	// ErrCounter: the TPM rollback counter could not be read or
	// incremented.
	ErrCounter = errors.New("TPM rollback counter unavailable")
	// ErrUnsignable: a name under /boot contains a byte Heads refuses to
	// sign (control characters, backslash, bytes >= 0x7f).
	ErrUnsignable = errors.New("file name cannot be signed")
)

// HashError lists what differs between /boot and its signed manifests.
// Paths are as in the manifests ("./grub/grub.cfg"); they may contain any
// byte, so escape them (EscapeName) before showing them.
type HashError struct {
	// Changed: in kexec_hashes.txt, present, different content (or no
	// longer a regular file).
	Changed []string
	// Added: present now but not in the signed kexec_tree.txt or, for
	// regular files, not in kexec_hashes.txt.
	Added []string
	// Missing: in a signed manifest but gone.
	Missing []string
}

func (e *HashError) Error() string {
	var parts []string
	add := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		shown := list
		if len(shown) > 10 {
			shown = shown[:10]
		}
		esc := make([]string, len(shown))
		for i, p := range shown {
			esc[i] = EscapeName(p)
		}
		s := fmt.Sprintf("%d %s (%s", len(list), what, strings.Join(esc, ", "))
		if len(list) > len(shown) {
			s += ", ..."
		}
		parts = append(parts, s+")")
	}
	add("changed", e.Changed)
	add("added", e.Added)
	add("missing", e.Missing)
	return ErrHashMismatch.Error() + ": " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrHashMismatch) true.
func (e *HashError) Is(target error) bool { return target == ErrHashMismatch }

// Empty reports whether nothing differs.
func (e *HashError) Empty() bool { return len(e.Changed)+len(e.Added)+len(e.Missing) == 0 }

// UnsignableError names a file Heads would refuse to sign.
type UnsignableError struct {
	Path   string // relative to /boot, "./..."
	Offset int    // byte offset of the first refused byte in Path
	Byte   byte
}

func (e *UnsignableError) Error() string {
	return fmt.Sprintf("%s: %s contains byte 0x%02x at offset %d; rename it (control characters, backslash and bytes >= 0x7f are refused, as in Heads)",
		ErrUnsignable, EscapeName(e.Path), e.Byte, e.Offset)
}

// Is makes errors.Is(err, ErrUnsignable) true.
func (e *UnsignableError) Is(target error) bool { return target == ErrUnsignable }

// RollbackError details a rollback refusal.
type RollbackError struct {
	CounterID string
	Reason    string
	// Signed is the counter-file hash kexec_rollback.txt holds; Current the
	// hash of the counter file read from the TPM now (empty when unread).
	Signed, Current string
}

func (e *RollbackError) Error() string {
	s := ErrRollback.Error()
	if e.CounterID != "" {
		s += " (counter " + e.CounterID + ")"
	}
	return s + ": " + e.Reason
}

// Is makes errors.Is(err, ErrRollback) true.
func (e *RollbackError) Is(target error) bool { return target == ErrRollback }
