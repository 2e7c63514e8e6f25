package cbfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/goheads/goheads/pkg/atomicfile"
)

// The writers reproduce util/cbfstool/cbfs_image.c (coreboot 4.15 to 25.09
// behave the same here) byte for byte:
//   - before an add, and after a remove, every run of free entries is merged
//     into one "null" entry whose data is filled with 0xff
//     (cbfs_merge_empty_entry);
//   - a file goes into the first null entry whose span, up to the next
//     64-aligned header, holds its metadata and content (cbfs_add_entry);
//   - the rest of that span becomes a new null entry, 4 bytes shorter when
//     it would reach into the last 4 bytes of the CBFS buffer, where x86
//     keeps the master header pointer (cbfs_add_entry_at);
//   - metadata is the 24-byte header plus the name, NUL-padded to a
//     multiple of 4 (cbfs_create_file_header), no attributes;
//   - a remove sets the type to "deleted", then merges.
// The tests compare the results with cbfstool's.

// CreateOptions selects the kind of image Create makes.
type CreateOptions struct {
	// Layout: LayoutRegion (default) is a bare CBFS region, as the builder
	// hands to QEMU through fw_cfg; LayoutMasterHeader is what
	// `cbfstool IMG create -m x86 -s SIZE` makes; LayoutFMAP is a flash
	// image with an FMAP at offset 0 (area FMAP, 0x200 bytes) and a
	// COREBOOT area covering the rest, as `cbfstool IMG create -M` makes
	// from the fmd "FLASH SIZE { FMAP 0x200 COREBOOT(CBFS) }".
	Layout Layout
}

// fmapAreaBytes is the FMAP area size LayoutFMAP uses.
const fmapAreaBytes = 0x200

// Create makes an empty CBFS image of size bytes (filled with 0xff, like
// flash), with one free entry covering the CBFS.
func Create(size int64, opts CreateOptions) (*Image, error) {
	if size <= 0 || size > maxImageSize || size%4 != 0 {
		return nil, fmt.Errorf("cbfs: create: size %d must be a positive multiple of 4 up to %d", size, maxImageSize)
	}
	b := bytes.Repeat([]byte{0xff}, int(size))
	var start, entries int64
	switch opts.Layout {
	case LayoutRegion:
		start, entries = 0, size
	case LayoutMasterHeader:
		// cbfs_create + cbfs_legacy_image_create for x86 without a
		// bootblock: header just below the 4-byte pointer, entries from 0.
		hoff := size - 4 - masterHeaderSize
		if hoff < Alignment {
			return nil, fmt.Errorf("cbfs: create: %d bytes is too small for a master-header image", size)
		}
		be := binary.BigEndian
		h := b[hoff:]
		be.PutUint32(h[0:], masterHeaderMagic)
		be.PutUint32(h[4:], masterHeaderVersion2)
		be.PutUint32(h[8:], uint32(size)) // romsize
		be.PutUint32(h[12:], 0)           // bootblocksize: no bootblock
		be.PutUint32(h[16:], Alignment)
		be.PutUint32(h[20:], 0) // entries at offset 0
		be.PutUint32(h[24:], 1) // CBFS_ARCHITECTURE_X86
		// h[28:32], the pad word, stays 0xff as cbfstool leaves it.
		binary.LittleEndian.PutUint32(b[size-4:], uint32(int32(hoff-size)))
		start, entries = 0, hoff
	case LayoutFMAP:
		if size < fmapAreaBytes+Alignment || size > math.MaxUint32 {
			return nil, fmt.Errorf("cbfs: create: %d bytes is too small for an FMAP image", size)
		}
		f := &FMAP{VerMajor: fmapVerMajor, VerMinor: fmapVerMinor, Size: uint32(size), Name: "FLASH", Areas: []Area{
			{Offset: 0, Size: fmapAreaBytes, Name: AreaFMAP},
			{Offset: fmapAreaBytes, Size: uint32(size - fmapAreaBytes), Name: AreaCoreboot},
		}}
		copy(b, f.Bytes())
		start, entries = fmapAreaBytes, size-fmapAreaBytes
	default:
		return nil, fmt.Errorf("cbfs: create: unknown layout %v", opts.Layout)
	}
	entries -= entries % Alignment
	if entries < Alignment {
		return nil, fmt.Errorf("cbfs: create: %d bytes leave no room for a CBFS", size)
	}
	writeEmpty(b, start, entries-emptyHeaderSize)
	return Open(b)
}

// writeEmpty writes a null entry with n data bytes at off and fills its
// data with 0xff (cbfs_create_empty_entry).
func writeEmpty(b []byte, off, n int64) {
	writeHeader(b, off, "", TypeNull, n)
	fill := b[off+emptyHeaderSize : off+emptyHeaderSize+n]
	for i := range fill {
		fill[i] = 0xff
	}
}

// headerSize is cbfs_calculate_file_header_size: header + name + NUL,
// padded to 4 bytes.
func headerSize(name string) int64 { return HeaderSize + alignUp(int64(len(name))+1, 4) }

// writeHeader writes cbfs_create_file_header's metadata at off.
func writeHeader(b []byte, off int64, name string, typ Type, n int64) {
	hs := headerSize(name)
	h := b[off : off+hs]
	copy(h, fileMagic)
	be := binary.BigEndian
	be.PutUint32(h[8:], uint32(n))
	be.PutUint32(h[12:], uint32(typ))
	be.PutUint32(h[16:], 0)
	be.PutUint32(h[20:], uint32(hs))
	clear(h[HeaderSize:])
	copy(h[HeaderSize:], name)
}

// CheckName reports whether cbfstool would accept name for a file without
// attributes.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("cbfs: %w: empty name", ErrName)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("cbfs: %w: %q contains a NUL byte", ErrName, name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("cbfs: %w: %q is %d bytes, the limit is %d", ErrName, name, len(name), MaxNameLen)
	case name[0] == '[':
		// cbfstool reserves "[...]" rows in `print -k -v` output.
		return fmt.Errorf("cbfs: %w: %q starts with '['", ErrName, name)
	}
	return nil
}

// Add stores data as a new file of type typ (TypeRaw for what Heads adds)
// in the first free space that fits, as `cbfstool add -t raw` does. It
// fails with ErrExists if a file of that name exists (ignoring case, as
// cbfstool does), *NoSpaceError if nothing fits. The image keeps its size;
// on error it is unchanged.
func (img *Image) Add(name string, data []byte, typ Type) error {
	return img.modify(func(m *mutation) error { return m.add(name, data, typ) })
}

// Remove deletes the file called name and merges the free space around it
// (its bytes become 0xff), as `cbfstool remove` does, except that the
// name is compared exactly and the master header and bootblock are refused
// (ErrProtected).
func (img *Image) Remove(name string) error {
	return img.modify(func(m *mutation) error { return m.remove(name) })
}

// Replace removes the file called name if there is one and adds data under
// that name, as Heads does for config.user and the keyring. On error the
// image is unchanged.
func (img *Image) Replace(name string, data []byte, typ Type) error {
	return img.modify(func(m *mutation) error {
		if err := m.remove(name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return m.add(name, data, typ)
	})
}

// Writable reports why the image cannot be modified, or nil.
func (img *Image) Writable() error {
	if img.buf == nil || img.readOnly {
		return fmt.Errorf("cbfs: %s: %w: it was read through physical memory; read the flash with flashprog and open that file", img.sourceName(), ErrReadOnly)
	}
	if len(img.problems) > 0 {
		return fmt.Errorf("cbfs: not modifying an image with malformed entries (%d; first: %w)", len(img.problems), img.problems[0])
	}
	if !img.chain {
		return img.formatErr(img.start, "the CBFS entries do not follow each other from the region start; cbfstool would see a different file list, so goheads does not modify this image")
	}
	if bytes.Contains(img.buf, []byte(metadataHashAnchorMagic)) {
		return fmt.Errorf("cbfs: %s: %w", img.sourceName(), ErrVerification)
	}
	return nil
}

// mutation is a change in progress on a copy of the image.
type mutation struct {
	img        *Image
	b          []byte
	start, end int64
	slots      []slot
}

type slot struct {
	off, meta, n int64
	typ          Type
	name         string
}

func (m *mutation) next(s slot) int64 { return m.start + alignUp(s.off+s.meta+s.n-m.start, Alignment) }

func (img *Image) modify(fn func(*mutation) error) error {
	if err := img.Writable(); err != nil {
		return err
	}
	m := &mutation{img: img, b: bytes.Clone(img.buf), start: img.start, end: img.end}
	for _, f := range img.entries {
		m.slots = append(m.slots, slot{off: f.Offset, meta: f.DataOffset - f.Offset, n: int64(f.Size), typ: f.Type, name: f.Name})
	}
	if err := fn(m); err != nil {
		return err
	}
	n, err := openBytes(m.b, img.source)
	if err != nil {
		return img.formatErr(img.start, "cannot modify this CBFS safely: after the change it would not parse (%v)", err)
	}
	// The result must read back exactly as the image did. An image whose
	// layout hangs on bytes the change rewrites (e.g. a legacy master header
	// found by scanning inside free space, which a merge fills with 0xff) is
	// refused as malformed rather than turned into a different image; the
	// original is untouched. (Found by FuzzOpen; coreboot never builds such
	// images.)
	if len(n.problems) > 0 || !n.chain || n.layout != img.layout || n.start != img.start {
		return img.formatErr(img.start, "cannot modify this CBFS safely: after the change it would read back differently (layout %v -> %v, start %#x -> %#x, contiguous %v, %d problems)",
			img.layout, n.layout, img.start, n.start, n.chain, len(n.problems))
	}
	n.closer = img.closer
	*img = *n
	return nil
}

// merge is cbfs_legacy_walk(cbfs_merge_empty_entry): each run of free
// entries, even a single one, is rewritten as one null entry reaching the
// next file (or the end of the chain), its data filled with 0xff.
func (m *mutation) merge() error {
	var out []slot
	for i := 0; i < len(m.slots); {
		if !m.slots[i].typ.Empty() {
			out = append(out, m.slots[i])
			i++
			continue
		}
		j := i
		for j < len(m.slots) && m.slots[j].typ.Empty() {
			j++
		}
		off := m.slots[i].off
		nextAddr := m.next(m.slots[j-1])
		if nextAddr > m.end {
			return m.img.formatErr(m.slots[j-1].off, "free entry ends at %#x, past the CBFS end %#x", nextAddr, m.end)
		}
		n := nextAddr - off - emptyHeaderSize
		writeEmpty(m.b, off, n)
		out = append(out, slot{off: off, meta: emptyHeaderSize, n: n, typ: TypeNull})
		i = j
	}
	m.slots = out
	return nil
}

func (m *mutation) add(name string, data []byte, typ Type) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if typ.Empty() {
		return fmt.Errorf("cbfs: add %s: type %v marks free space, not a file", name, typ)
	}
	for _, s := range m.slots {
		if strings.EqualFold(s.name, name) {
			return fmt.Errorf("cbfs: add %s: %w (as %q at %#x)", name, ErrExists, s.name, s.off)
		}
	}
	hs := headerSize(name)
	need := hs + int64(len(data))
	if err := m.merge(); err != nil {
		return err
	}
	var largest, free int64
	for i, s := range m.slots {
		if s.typ != TypeNull {
			continue
		}
		addr, addrNext := s.off, m.next(s)
		largest = max(largest, addrNext-addr)
		free += addrNext - addr
		if addr+need > addrNext {
			continue
		}
		writeHeader(m.b, addr, name, typ, int64(len(data)))
		copy(m.b[addr+hs:], data)
		added := slot{off: addr, meta: hs, n: int64(len(data)), typ: typ, name: name}
		rest := []slot{added}
		if nn := m.next(added); nn != addrNext {
			n := addrNext - nn - emptyHeaderSize
			if nn+emptyHeaderSize+n > m.end-4 {
				n -= 4 // keep the master header pointer's 4 bytes
			}
			writeEmpty(m.b, nn, n)
			rest = append(rest, slot{off: nn, meta: emptyHeaderSize, n: n, typ: TypeNull})
		}
		m.slots = append(m.slots[:i:i], append(rest, m.slots[i+1:]...)...)
		return nil
	}
	return fmt.Errorf("cbfs: %w", &NoSpaceError{Name: name, Need: need, Data: int64(len(data)), Largest: largest, Free: free})
}

func (m *mutation) remove(name string) error {
	for i, s := range m.slots {
		if s.typ.Empty() || s.name != name {
			continue
		}
		if s.typ == TypeCBFSHeader || s.typ == TypeBootblock {
			return fmt.Errorf("cbfs: remove %s: %w (type %v)", name, ErrProtected, s.typ)
		}
		binary.BigEndian.PutUint32(m.b[s.off+12:], uint32(TypeDeleted))
		m.slots[i].typ, m.slots[i].name = TypeDeleted, ""
		return m.merge()
	}
	return fmt.Errorf("cbfs: remove: %w: %q", ErrNotFound, name)
}

// Bytes returns a copy of the whole image (for the running ROM, read from
// physical memory).
func (img *Image) Bytes() ([]byte, error) {
	if img.buf != nil {
		return bytes.Clone(img.buf), nil
	}
	b, err := img.read(0, img.size)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

// WriteFile writes the image to path atomically: a temporary file in the
// same directory, fsync, rename, fsync of the directory.
func (img *Image) WriteFile(path string) error {
	b, err := img.Bytes()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("cbfs: %w", err)
	}
	return nil
}

// Content is a file for Fit.
type Content struct {
	Name string
	Data []byte
	Type Type
}

// minFit is the smallest image Fit makes.
const minFit = 16 << 10

// Fit creates the smallest bare CBFS region (16 KiB, doubling) holding
// files in order. The builder hands such an image to QEMU boards through
// fw_cfg, and size matters there: the guest's qemu_fw_cfg driver reads a
// blob one page per read() and re-reads it from the start each time
// without DMA, so reading 1 MiB took 7.5 s of boot under TCG and 16 KiB
// takes milliseconds.
func Fit(files []Content) (*Image, error) {
	var need int64
	for _, f := range files {
		need += int64(len(f.Data)) + 256 // header, name, attributes, alignment
	}
	for size := int64(minFit); size <= maxImageSize; size *= 2 {
		if size < need {
			continue
		}
		img, err := Create(size, CreateOptions{})
		if err != nil {
			return nil, err
		}
		ok := true
		for _, f := range files {
			if err := img.Add(f.Name, f.Data, f.Type); err != nil {
				if errors.Is(err, ErrNoSpace) {
					ok = false
					break
				}
				return nil, err
			}
		}
		if ok {
			return img, nil
		}
	}
	return nil, fmt.Errorf("cbfs: %d files (%d bytes) do not fit in %d bytes: %w", len(files), need, maxImageSize, ErrNoSpace)
}
