package luks

import (
	"errors"
	"fmt"
)

// Sentinel errors. Functions wrap them with the device path and the slot, so
// test with errors.Is; the typed errors below carry the details a menu needs
// to ask a question or explain a refusal.
var (
	// ErrNotLUKS: no LUKS1/LUKS2 magic at offset 0 (nor a valid LUKS2
	// secondary header).
	ErrNotLUKS = errors.New("not a LUKS volume")
	// ErrCorruptHeader: the header fails a structural check; see *HeaderError.
	ErrCorruptHeader = errors.New("corrupt LUKS header")
	// ErrUnsupported: a valid header using a cipher, hash, KDF or feature
	// goheads does not implement (cryptsetup may still handle it).
	ErrUnsupported = errors.New("unsupported LUKS feature")
	// ErrWrongPassphrase: no keyslot opens with the given passphrase/key.
	ErrWrongPassphrase = errors.New("no key slot matches this passphrase")
	// ErrKDFTooExpensive: a keyslot's Argon2 memory cost is above the
	// configured limit; see *KDFTooExpensiveError.
	ErrKDFTooExpensive = errors.New("key slot KDF needs more memory than allowed")
	// ErrSlotInUse: the target slot is active and the caller did not allow
	// overwriting it; see *SlotInUseError.
	ErrSlotInUse = errors.New("key slot in use")
	// ErrRecoverySlot: the operation would destroy the slot that holds the
	// passphrase used to authorize it (Heads' Disk Recovery Key slot).
	ErrRecoverySlot = errors.New("refusing to touch the Disk Recovery Key slot")
	// ErrSlotInactive: RemoveSlot on a slot that holds no key.
	ErrSlotInactive = errors.New("key slot is not active")
	// ErrBadSlot: slot number outside 0-7 (LUKS1) or 0-31 (LUKS2).
	ErrBadSlot = errors.New("invalid key slot number")
	// ErrNoSpace: no room for another keyslot area or in the JSON area.
	ErrNoSpace = errors.New("no space for a new key slot")
	// ErrChangedOnDisk: the header on disk differs from the one read at
	// Open; someone else modified it. Re-open and retry.
	ErrChangedOnDisk = errors.New("LUKS header changed on disk since it was read")
	// ErrReadOnly: a write on a Device opened with Options.ReadOnly.
	ErrReadOnly = errors.New("LUKS device opened read-only")
	// ErrClosed: the Unlocked handle was closed and its key wiped.
	ErrClosed = errors.New("unlocked volume handle is closed")
)

// HeaderError names the device, the byte offset (or JSON field) and the
// check a header failed.
type HeaderError struct {
	Path   string // device or image
	Offset int64  // byte offset of the field, -1 if the problem is in JSON
	Field  string // e.g. "key slot 3 stripes", "keyslots.31.area.offset"
	Msg    string // what is wrong
}

func (e *HeaderError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = fmt.Sprintf(" at offset %#x", e.Offset)
	}
	return fmt.Sprintf("LUKS header %s%s: %s: %s (restore a header backup with cryptsetup luksHeaderRestore, or try cryptsetup repair)", e.Path, at, e.Field, e.Msg)
}

func (e *HeaderError) Is(target error) bool { return target == ErrCorruptHeader }

// KDFTooExpensiveError: unlocking Slot would allocate MemoryKiB of Argon2
// memory, more than LimitKiB (Options.MaxKDFMemoryKiB). Refusing beats
// being killed by the OOM killer in the middle of a boot.
type KDFTooExpensiveError struct {
	Slot      int
	MemoryKiB uint32
	LimitKiB  uint64
}

func (e *KDFTooExpensiveError) Error() string {
	return fmt.Sprintf("key slot %d: argon2 needs %d MiB of memory, more than the %d MiB allowed here (use another slot, or re-add this passphrase with a smaller --pbkdf-memory)",
		e.Slot, e.MemoryKiB/1024, e.LimitKiB/1024)
}

func (e *KDFTooExpensiveError) Is(target error) bool { return target == ErrKDFTooExpensive }

// SlotInUseError: Slot is active. LegacyDUK marks LUKS slot 1, where older
// Heads releases kept the Disk Unlock Key (and where cryptsetup puts a
// user's second passphrase), so the question can say so.
type SlotInUseError struct {
	Slot      int
	LegacyDUK bool
}

func (e *SlotInUseError) Error() string {
	if e.LegacyDUK {
		return fmt.Sprintf("key slot %d is in use (older Heads kept its Disk Unlock Key there, but it may also hold another passphrase)", e.Slot)
	}
	return fmt.Sprintf("key slot %d is in use", e.Slot)
}

func (e *SlotInUseError) Is(target error) bool { return target == ErrSlotInUse }
