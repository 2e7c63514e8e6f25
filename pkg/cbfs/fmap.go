package cbfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// FMAP layout (src/commonlib/bsd/include/commonlib/bsd/fmap_serialized.h),
// little-endian, packed.
const (
	fmapSignature  = "__FMAP__"
	fmapVerMajor   = 1
	fmapVerMinor   = 1
	fmapNameLen    = 32
	fmapHeaderSize = 8 + 1 + 1 + 8 + 4 + fmapNameLen + 2 // 56
	fmapAreaSize   = 4 + 4 + fmapNameLen + 2             // 42

	// Area names coreboot and cbfstool rely on.
	AreaFMAP     = "FMAP"
	AreaCoreboot = "COREBOOT"
)

// FMAP is a flash map: the firmware image's named areas.
type FMAP struct {
	Offset   int64 // where the FMAP was found in the image
	VerMajor uint8
	VerMinor uint8
	Base     uint64 // address of the flash in the CPU's address space, as fmaptool recorded it
	Size     uint32 // size of the flash image
	Name     string
	Areas    []Area
}

// Area is one FMAP area. Offsets are from the start of the image.
type Area struct {
	Offset uint32
	Size   uint32
	Name   string
	Flags  uint16
}

// Area returns the first area called name (fmap_find_area).
func (f *FMAP) Area(name string) (Area, bool) {
	for _, a := range f.Areas {
		if a.Name == name {
			return a, true
		}
	}
	return Area{}, false
}

// validFMAPAt is cbfstool's is_valid_fmap (util/cbfstool/flashmap/fmap.c),
// bounds-checked: signature, major version 1, a size that can hold the area
// table, and a NUL-terminated printable name.
func validFMAPAt(b []byte, off int) bool {
	if off < 0 || off > len(b)-fmapHeaderSize {
		return false
	}
	h := b[off : off+fmapHeaderSize]
	if string(h[:8]) != fmapSignature || h[8] != fmapVerMajor {
		return false
	}
	size := binary.LittleEndian.Uint32(h[18:22])
	nareas := binary.LittleEndian.Uint16(h[54:56])
	if uint64(size) < uint64(fmapHeaderSize)+uint64(nareas)*fmapAreaSize {
		return false
	}
	name := h[22 : 22+fmapNameLen]
	for i, c := range name {
		if c == 0 {
			return true
		}
		if c < 0x21 || c > 0x7e { // !isgraph
			return false
		}
		if i == fmapNameLen-1 {
			return false // no terminating NUL
		}
	}
	return true
}

// findFMAP is cbfstool's fmap_find: a "binary" search by decreasing stride
// when the image size is a power of two, else a linear search; the first
// plausible FMAP wins, and an FMAP whose area table runs off the image means
// "no FMAP". Returns -1 when there is none. The candidates come from
// bytes.Index, so the search is linear in the image size however it is
// ordered.
func findFMAP(b []byte) int {
	n := len(b)
	if n == 0 {
		return -1
	}
	found := -1
	if bits.OnesCount(uint(n)) == 1 {
		// fmap_bsearch visits offset 0 first, then for stride = n/2 ... 16 the
		// odd multiples of the stride in increasing order. So the winner is
		// offset 0 if valid, else the valid candidate (a multiple of 16) with
		// the largest lowest set bit, then the lowest offset.
		bestBit := -1
		for from := 0; ; {
			i := bytes.Index(b[from:], []byte(fmapSignature))
			if i < 0 {
				break
			}
			off := from + i
			from = off + 1
			if off >= n-len(fmapSignature) || off%16 != 0 || !validFMAPAt(b, off) {
				continue
			}
			if off == 0 {
				found = 0
				break
			}
			lb := bits.TrailingZeros(uint(off))
			if 1<<lb > n/2 {
				continue
			}
			if lb > bestBit {
				bestBit, found = lb, off
			}
		}
	} else {
		for from := 0; ; {
			i := bytes.Index(b[from:], []byte(fmapSignature))
			if i < 0 {
				break
			}
			off := from + i
			from = off + 1
			if off >= n-len(fmapSignature) {
				break
			}
			if validFMAPAt(b, off) {
				found = off
				break
			}
		}
	}
	if found < 0 {
		return -1
	}
	nareas := int(binary.LittleEndian.Uint16(b[found+54 : found+56]))
	if found+fmapHeaderSize+nareas*fmapAreaSize > n {
		return -1
	}
	return found
}

// FindFMAP finds the FMAP in a whole flash image the way cbfstool does and
// parses it. It returns (nil, nil) when the image has none.
func FindFMAP(b []byte) (*FMAP, error) {
	off := findFMAP(b)
	if off < 0 {
		return nil, nil
	}
	f, err := ParseFMAP(b[off:])
	if err != nil {
		return nil, err
	}
	f.Offset = int64(off)
	return f, nil
}

// ParseFMAP parses the FMAP at the start of b. Errors are *FormatError with
// offsets relative to b.
func ParseFMAP(b []byte) (*FMAP, error) {
	if len(b) < fmapHeaderSize {
		return nil, &FormatError{Offset: 0, Msg: fmt.Sprintf("FMAP: %d bytes, shorter than its %d-byte header", len(b), fmapHeaderSize)}
	}
	if string(b[:8]) != fmapSignature {
		return nil, &FormatError{Offset: 0, Msg: fmt.Sprintf("FMAP: signature %q, want %q", b[:8], fmapSignature)}
	}
	if b[8] != fmapVerMajor {
		return nil, &FormatError{Offset: 8, Msg: fmt.Sprintf("FMAP: major version %d, want %d", b[8], fmapVerMajor)}
	}
	if !validFMAPAt(b, 0) {
		return nil, &FormatError{Offset: 22, Msg: "FMAP: name is not a NUL-terminated printable word, or size is smaller than the area table"}
	}
	f := &FMAP{
		VerMajor: b[8],
		VerMinor: b[9],
		Base:     binary.LittleEndian.Uint64(b[10:18]),
		Size:     binary.LittleEndian.Uint32(b[18:22]),
		Name:     cString(b[22 : 22+fmapNameLen]),
	}
	nareas := int(binary.LittleEndian.Uint16(b[54:56]))
	end := fmapHeaderSize + nareas*fmapAreaSize
	if end > len(b) {
		return nil, &FormatError{Offset: 54, Msg: fmt.Sprintf("FMAP: %d areas need %d bytes, only %d available", nareas, end, len(b))}
	}
	f.Areas = make([]Area, nareas)
	for i := range f.Areas {
		a := b[fmapHeaderSize+i*fmapAreaSize:]
		f.Areas[i] = Area{
			Offset: binary.LittleEndian.Uint32(a[0:4]),
			Size:   binary.LittleEndian.Uint32(a[4:8]),
			Name:   cString(a[8 : 8+fmapNameLen]),
			Flags:  binary.LittleEndian.Uint16(a[40:42]),
		}
	}
	return f, nil
}

// Bytes encodes f as fmaptool writes it.
func (f *FMAP) Bytes() []byte {
	b := make([]byte, fmapHeaderSize+len(f.Areas)*fmapAreaSize)
	copy(b, fmapSignature)
	b[8], b[9] = f.VerMajor, f.VerMinor
	binary.LittleEndian.PutUint64(b[10:], f.Base)
	binary.LittleEndian.PutUint32(b[18:], f.Size)
	copy(b[22:22+fmapNameLen-1], f.Name)
	binary.LittleEndian.PutUint16(b[54:], uint16(len(f.Areas)))
	for i, a := range f.Areas {
		p := b[fmapHeaderSize+i*fmapAreaSize:]
		binary.LittleEndian.PutUint32(p[0:], a.Offset)
		binary.LittleEndian.PutUint32(p[4:], a.Size)
		copy(p[8:8+fmapNameLen], a.Name) // area names may fill all 32 bytes
		binary.LittleEndian.PutUint16(p[40:], a.Flags)
	}
	return b
}

// cString returns b up to its first NUL (all of b if none).
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ReadArea returns a copy of the bytes of the FMAP area called name.
func (img *Image) ReadArea(name string) ([]byte, error) {
	if img.fmap == nil {
		return nil, fmt.Errorf("cbfs: %s: %w: no FMAP, so no area %q", img.sourceName(), ErrNotFound, name)
	}
	a, ok := img.fmap.Area(name)
	if !ok {
		return nil, fmt.Errorf("cbfs: %s: %w: FMAP area %q", img.sourceName(), ErrNotFound, name)
	}
	b, err := img.read(int64(a.Offset), int64(a.Size))
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}
