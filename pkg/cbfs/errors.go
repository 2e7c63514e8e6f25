package cbfs

import (
	"errors"
	"fmt"
)

// Sentinel errors; functions wrap them with the file name or offset, so test
// with errors.Is. The typed errors below carry the details.
var (
	// ErrFormat: the image is not a CBFS goheads can read, or a structure in
	// it fails a check; see *FormatError.
	ErrFormat = errors.New("malformed CBFS image")
	// ErrNotFound: no file of that name.
	ErrNotFound = errors.New("no such CBFS file")
	// ErrExists: Add of a name already in the image (cbfstool compares names
	// case-insensitively, and so does Add).
	ErrExists = errors.New("CBFS file already exists")
	// ErrNoSpace: no free entry is large enough; see *NoSpaceError.
	ErrNoSpace = errors.New("not enough free space in CBFS")
	// ErrName: a name cbfstool would refuse (empty, NUL, too long, starts
	// with '[').
	ErrName = errors.New("invalid CBFS file name")
	// ErrCompressed: Read of a compressed file (goheads does not carry an
	// LZMA/LZ4 decoder); see *CompressedError. ReadRaw returns the stored
	// bytes.
	ErrCompressed = errors.New("CBFS file is compressed")
	// ErrHashMismatch: the file's content does not match its hash attribute.
	ErrHashMismatch = errors.New("CBFS file content does not match its hash attribute")
	// ErrVerification: the image embeds coreboot's CBFS metadata hash anchor
	// (CONFIG_CBFS_VERIFICATION); changing files without updating the
	// anchor would make coreboot refuse to boot, so goheads does not write
	// such images. Use cbfstool, which updates the anchor.
	ErrVerification = errors.New("image uses CBFS verification (metadata hash anchor); modify it with cbfstool")
	// ErrReadOnly: a write to an image read from the running ROM through
	// physical memory. Read the flash with flashprog, Open that, modify it
	// and flash it.
	ErrReadOnly = errors.New("CBFS image is read-only")
	// ErrProtected: Remove of the master header or the bootblock, which
	// would leave an image that does not boot.
	ErrProtected = errors.New("refusing to remove a CBFS file coreboot needs to boot")
)

// FormatError names the offset (in the image given to Open, or the flash
// offset for the running ROM) and the check that failed.
type FormatError struct {
	Source string // file or device, "" for an in-memory image
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	src := "CBFS image"
	if e.Source != "" {
		src = e.Source
	}
	return fmt.Sprintf("%s: offset %#x: %s", src, e.Offset, e.Msg)
}

// Is makes errors.Is(err, ErrFormat) true.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// NoSpaceError says what Add needed and what the image had.
type NoSpaceError struct {
	Name    string
	Need    int64 // metadata + content bytes the file needs
	Data    int64 // content bytes
	Largest int64 // the largest free entry, metadata included (0 if none)
	Free    int64 // all free entries together
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("add %s: needs %d bytes (%d metadata + %d content) but the largest free space in CBFS is %d bytes (%d free in total): remove files or use a larger CBFS",
		e.Name, e.Need, e.Need-e.Data, e.Data, e.Largest, e.Free)
}

// Is makes errors.Is(err, ErrNoSpace) true.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

// CompressedError names a compressed file Read cannot decode.
type CompressedError struct {
	Name        string
	Compression Compression
}

func (e *CompressedError) Error() string {
	return fmt.Sprintf("read %s: stored with %s compression, which goheads does not decode (ReadRaw returns the stored bytes; cbfstool extract decompresses)", e.Name, e.Compression)
}

// Is makes errors.Is(err, ErrCompressed) true.
func (e *CompressedError) Is(target error) bool { return target == ErrCompressed }
