package cbfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxImageSize bounds what Parse and OpenFile read into memory and what
// OpenPhysical accepts as a ROM size: larger than any x86 flash chip coreboot
// supports, small enough that a bogus size cannot exhaust memory.
const maxImageSize = 256 << 20

// Layout says how the CBFS was found in the image.
type Layout int

const (
	// LayoutRegion: the whole image is one CBFS region that starts with a
	// file header, as in an FMAP region made by `cbfstool create -M`, or
	// the image the builder hands to QEMU through fw_cfg.
	LayoutRegion Layout = iota
	// LayoutFMAP: a flash image with an FMAP; the CBFS is its COREBOOT area
	// (what coreboot and cbfstool use by default).
	LayoutFMAP
	// LayoutMasterHeader: a legacy image with a CBFS master header. For
	// `cbfstool create -m x86` images the entries start at offset 0, so
	// the CBFS is read exactly as a region (cbfstool does the same) and
	// the header the last 4 bytes point to is reported; other legacy
	// images are located through the header (the pointer, else a scan).
	// Also the running ROM, found through the pointer at 0xfffffffc.
	LayoutMasterHeader
)

func (l Layout) String() string {
	switch l {
	case LayoutRegion:
		return "CBFS region"
	case LayoutFMAP:
		return "FMAP"
	case LayoutMasterHeader:
		return "master header"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// MasterHeader is the legacy CBFS master header (struct cbfs_header).
// Offsets are absolute in the flash: CBFSOffset is where the entries start,
// ROMSize where the CBFS ends.
type MasterHeader struct {
	Offset        int64 // of the header itself, in the image
	Version       uint32
	ROMSize       uint32
	BootblockSize uint32
	Align         uint32
	CBFSOffset    uint32
	Architecture  uint32
}

// File is one CBFS entry. Offsets are from the start of the image (for the
// running ROM: flash offsets). `cbfstool print` shows Offset minus the CBFS
// region start (see Image.Region), Size as "Size" and DataOffset-Offset as
// "Metadata Size".
type File struct {
	Name        string
	Type        Type
	Offset      int64  // of the "LARCHIVE" header
	DataOffset  int64  // of the content
	Size        uint32 // bytes stored (compressed size if compressed)
	Compression Compression
	// DecompressedSize is the size after decompression; Size when stored
	// uncompressed.
	DecompressedSize uint32
	Hash             *Hash       // nil if the file has no (valid) hash attribute
	Attributes       []Attribute // all attributes in stored order; do not modify

	badHash string // non-empty: a hash attribute coreboot would reject, and why
}

// Empty reports whether the entry is free space.
func (f File) Empty() bool { return f.Type.Empty() }

// Image is a CBFS inside a flash image (or a bare CBFS region). Methods are
// not safe for concurrent use with Add, Remove or Replace.
type Image struct {
	src  io.ReaderAt
	size int64
	buf  []byte // the whole image; nil for the running ROM read through physical memory
	// readOnly: read from physical memory (buf may still hold a copy).
	readOnly bool
	source   string // file or device, for error messages
	closer   io.Closer

	layout     Layout
	fmap       *FMAP
	master     *MasterHeader
	start, end int64 // the CBFS region

	entries  []File
	problems []*FormatError
	// chain: the entries form cbfstool's contiguous chain from start (each
	// header where the previous entry ends, 64-aligned) and nothing was
	// skipped; Add and Remove require it.
	chain bool
}

// Open parses a flash image or CBFS region held in memory. It looks for
// the CBFS the way cbfstool does: an FMAP's COREBOOT area first, then a
// region starting with a file header, then a legacy master header (the
// pointer in the last 4 bytes, else a scan). Open does not copy b and never
// modifies it; Add and friends work on a private copy.
func Open(b []byte) (*Image, error) { return openBytes(b, "") }

// OpenFile reads and opens an image file (a ROM, or a CBFS region file).
func OpenFile(path string) (*Image, error) {
	b, err := readFileLimited(path, maxImageSize)
	if err != nil {
		return nil, fmt.Errorf("cbfs: %w", err)
	}
	return openBytes(b, path)
}

// Parse reads size bytes from r and opens them (see Open).
func Parse(r io.ReaderAt, size int64) (*Image, error) {
	if size < 0 || size > maxImageSize {
		return nil, &FormatError{Offset: 0, Msg: fmt.Sprintf("image size %d outside 0..%d", size, maxImageSize)}
	}
	b := make([]byte, size)
	if _, err := r.ReadAt(b, 0); err != nil && !(err == io.EOF && size == 0) {
		return nil, fmt.Errorf("cbfs: read %d-byte image: %w", size, err)
	}
	return Open(b)
}

// ReadImageFile reads a firmware image file (a ROM someone hands over, to
// open or predict), refusing one larger than any flash chip.
func ReadImageFile(path string) ([]byte, error) { return readFileLimited(path, maxImageSize) }

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes, not a firmware image", path, limit)
	}
	return b, nil
}

func openBytes(b []byte, source string) (*Image, error) {
	img := &Image{src: bytes.NewReader(b), size: int64(len(b)), buf: b, source: source}
	if err := img.locate(); err != nil {
		return nil, err
	}
	if err := img.walk(); err != nil {
		return nil, err
	}
	return img, nil
}

func (img *Image) formatErr(off int64, format string, args ...any) *FormatError {
	return &FormatError{Source: img.source, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// locate finds the CBFS region in an in-memory image.
func (img *Image) locate() error {
	b := img.buf
	if len(b) > maxImageSize {
		return img.formatErr(0, "image is %d bytes, larger than %d", len(b), maxImageSize)
	}
	if off := findFMAP(b); off >= 0 {
		return img.locateFMAP(off)
	}
	if len(b) >= HeaderSize && string(b[:len(fileMagic)]) == fileMagic {
		img.layout, img.start, img.end = LayoutRegion, 0, int64(len(b))
		// cbfstool reads `create -m x86` images this way too (a file
		// header at 0 wins over the master header). Report the header the
		// trailing pointer names, if it describes this same CBFS.
		if n := len(b); n >= masterHeaderSize+4 {
			hoff := int64(n) + int64(int32(binary.LittleEndian.Uint32(b[n-4:])))
			if hoff >= 0 && hoff <= int64(n-4-masterHeaderSize) && validMasterHeader(b[hoff:]) {
				if h := parseMasterHeader(b[hoff:]); h.CBFSOffset == 0 {
					h.Offset = hoff
					img.layout, img.master = LayoutMasterHeader, h
				}
			}
		}
		return nil
	}
	hoff := findMasterHeader(b)
	if hoff < 0 {
		return img.formatErr(0, "no FMAP, no CBFS file header at the start and no CBFS master header: not a CBFS image")
	}
	h := parseMasterHeader(b[hoff : hoff+masterHeaderSize])
	h.Offset = int64(hoff)
	// coreboot always uses 64-byte alignment (the field is "fixed to 64");
	// accepting another value would make cbfstool and coreboot disagree.
	if h.Align != Alignment {
		return img.formatErr(int64(hoff)+16, "CBFS master header alignment %d, want %d", h.Align, Alignment)
	}
	if h.CBFSOffset%Alignment != 0 || int64(h.CBFSOffset) >= int64(len(b)) {
		return img.formatErr(int64(hoff)+20, "CBFS master header puts the first file at %#x: not 64-aligned or outside the %d-byte image", h.CBFSOffset, len(b))
	}
	img.layout, img.master = LayoutMasterHeader, h
	img.start, img.end = int64(h.CBFSOffset), int64(len(b))
	return nil
}

// locateFMAP applies cbfstool's checks (partitioned_file_reopen and
// partitioned_file_read_region) to the FMAP found at off.
func (img *Image) locateFMAP(off int) error {
	f, err := ParseFMAP(img.buf[off:])
	if err != nil {
		fe := err.(*FormatError)
		return img.formatErr(int64(off)+fe.Offset, "%s", fe.Msg)
	}
	f.Offset = int64(off)
	if int64(f.Size) > img.size {
		return img.formatErr(int64(off)+18, "FMAP records the image size as %d, but the image is %d bytes", f.Size, img.size)
	}
	fa, ok := f.Area(AreaFMAP)
	if !ok || int64(fa.Offset) != f.Offset {
		return img.formatErr(int64(off), "FMAP has no %q area pointing back at itself (%#x)", AreaFMAP, off)
	}
	cb, ok := f.Area(AreaCoreboot)
	if !ok {
		return img.formatErr(int64(off), "FMAP has no %q area", AreaCoreboot)
	}
	if int64(cb.Offset)+int64(cb.Size) > img.size {
		return img.formatErr(int64(off), "FMAP area %s [%#x+%#x] runs off the end of the %#x-byte image", AreaCoreboot, cb.Offset, cb.Size, img.size)
	}
	img.layout, img.fmap = LayoutFMAP, f
	img.start, img.end = int64(cb.Offset), int64(cb.Offset)+int64(cb.Size)
	return nil
}

func validMasterHeader(h []byte) bool {
	if len(h) < masterHeaderSize || binary.BigEndian.Uint32(h[0:4]) != masterHeaderMagic {
		return false
	}
	v := binary.BigEndian.Uint32(h[4:8])
	if v != masterHeaderVersion1 && v != masterHeaderVersion2 {
		return false
	}
	return binary.BigEndian.Uint32(h[20:24]) < binary.BigEndian.Uint32(h[8:12]) // offset < romsize
}

func parseMasterHeader(h []byte) *MasterHeader {
	be := binary.BigEndian
	return &MasterHeader{
		Version:       be.Uint32(h[4:]),
		ROMSize:       be.Uint32(h[8:]),
		BootblockSize: be.Uint32(h[12:]),
		Align:         be.Uint32(h[16:]),
		CBFSOffset:    be.Uint32(h[20:]),
		Architecture:  be.Uint32(h[24:]),
	}
}

// findMasterHeader is cbfstool's cbfs_find_header: try the relative pointer
// in the last 4 bytes (little-endian int32; on x86 it doubles as the
// header's address below 4 GiB), else scan from 0; the first valid header
// from that point on wins. Returns -1 if none.
func findMasterHeader(b []byte) int {
	n := len(b)
	if n < masterHeaderSize+4 {
		return -1
	}
	rel := int64(int32(binary.LittleEndian.Uint32(b[n-4:])))
	start := int64(n) + rel
	if start < 0 || start >= int64(n-masterHeaderSize) || !validMasterHeader(b[start:]) {
		start = 0
	}
	magic := []byte{0x4f, 0x52, 0x42, 0x43}
	for from := int(start); from+masterHeaderSize < n; {
		// A header must start before n-32 (cbfstool: offset + 32 < size).
		i := bytes.Index(b[from:n-masterHeaderSize-1+len(magic)], magic)
		if i < 0 {
			return -1
		}
		off := from + i
		if validMasterHeader(b[off:]) {
			return off
		}
		from = off + 1
	}
	return -1
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// read returns n bytes at off, which the caller has bounds-checked.
func (img *Image) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > img.size || n > img.size-off {
		return nil, img.formatErr(off, "read of %d bytes outside the %#x-byte image", n, img.size)
	}
	if img.buf != nil {
		return img.buf[off : off+n], nil
	}
	p := make([]byte, n)
	if _, err := img.src.ReadAt(p, off); err != nil {
		return nil, fmt.Errorf("cbfs: %s: read %d bytes at flash offset %#x: %w", img.sourceName(), n, off, err)
	}
	return p, nil
}

func (img *Image) sourceName() string {
	if img.source == "" {
		return "CBFS image"
	}
	return img.source
}

// walk lists the entries between start and end as coreboot's cbfs_walk
// (src/commonlib/bsd/cbfs_private.c, main branch) finds them: look for
// "LARCHIVE" at 64-byte steps from the region start, skip a header whose
// metadata is outside 24..256 bytes or whose data runs past the region (and
// go on 64 bytes later), otherwise continue after its data. Every step
// moves forward, so a malicious image cannot make it loop, and it reads at
// most one header per 64 bytes. (coreboot 25.09 loops forever on a header
// with offset 0; this code, like coreboot's main branch, does not.)
func (img *Image) walk() error {
	img.entries, img.problems, img.chain = nil, nil, true
	next := img.start // where cbfstool expects the next header
	off := img.start
	for {
		off = img.start + alignUp(off-img.start, Alignment)
		var hdr []byte
		for ; off+HeaderSize < img.end; off += Alignment {
			h, err := img.read(off, HeaderSize)
			if err != nil {
				return err
			}
			if string(h[:8]) == fileMagic {
				hdr = h
				break
			}
		}
		if hdr == nil {
			return nil
		}
		be := binary.BigEndian
		length := int64(be.Uint32(hdr[8:]))
		typ := Type(be.Uint32(hdr[12:]))
		attrOff := int64(be.Uint32(hdr[16:]))
		dataOff := int64(be.Uint32(hdr[20:]))
		if dataOff < HeaderSize || dataOff > MaxMetadataSize || length > img.end-img.start || off+dataOff+length > img.end {
			img.problem(off, "file header: metadata size %d (must be %d..%d) or %d data bytes run past the CBFS end %#x; skipped as coreboot does", dataOff, HeaderSize, MaxMetadataSize, length, img.end)
			off += Alignment
			continue
		}
		if off != next {
			img.chain = false
		}
		next = img.start + alignUp(off+dataOff+length-img.start, Alignment)
		f, err := img.parseEntry(off, typ, attrOff, dataOff, length)
		if err != nil {
			return err
		}
		if f != nil {
			img.entries = append(img.entries, *f)
		}
		off += dataOff + length
	}
}

func (img *Image) problem(off int64, format string, args ...any) {
	img.problems = append(img.problems, img.formatErr(off, format, args...))
}

// parseEntry decodes name and attributes. It returns nil for a non-empty
// file coreboot would skip as corrupt (the problem is recorded).
func (img *Image) parseEntry(off int64, typ Type, attrOff, dataOff, length int64) (*File, error) {
	meta, err := img.read(off, dataOff)
	if err != nil {
		return nil, err
	}
	f := &File{
		Type:             typ,
		Offset:           off,
		DataOffset:       off + dataOff,
		Size:             uint32(length),
		DecompressedSize: uint32(length),
	}
	nameEnd := dataOff
	if attrOff != 0 {
		nameEnd = attrOff
	}
	if nameEnd <= HeaderSize || dataOff < attrOff {
		if typ.Empty() {
			return f, nil // coreboot never looks at an empty entry's name
		}
		img.problem(off, "file header: attributes offset %d outside %d..%d; coreboot skips this file", attrOff, HeaderSize+1, dataOff)
		return nil, nil
	}
	// coreboot forces a NUL at the last byte before the attributes/data.
	f.Name = cString(meta[HeaderSize : nameEnd-1])
	if attrOff == 0 {
		return f, nil
	}
	// Attributes as coreboot's cbfs_find_attr walks them; cbfstool also
	// stops at an "unused" tag, which only matters for padding.
	be := binary.BigEndian
	compressionSeen, hashSeen := false, false
	for o := attrOff; o+8 <= dataOff; {
		tag := be.Uint32(meta[o:])
		l := int64(be.Uint32(meta[o+4:]))
		if l < 8 || l > dataOff-o {
			if tag != AttrUnused && tag != AttrUnused2 {
				img.problem(off+o, "file %q: attribute %#x has length %d, outside 8..%d", f.Name, tag, l, dataOff-o)
			}
			break
		}
		a := Attribute{Tag: tag, Offset: off + o, Data: append([]byte(nil), meta[o+8:o+l]...)}
		f.Attributes = append(f.Attributes, a)
		switch {
		case tag == AttrCompression && !compressionSeen:
			compressionSeen = true
			if l != 16 {
				img.problem(off+o, "file %q: compression attribute is %d bytes, want 16; coreboot ignores it", f.Name, l)
				break
			}
			f.Compression = Compression(be.Uint32(a.Data[0:]))
			f.DecompressedSize = be.Uint32(a.Data[4:])
		case tag == AttrHash && !hashSeen:
			hashSeen = true
			if l < 12 {
				f.badHash = fmt.Sprintf("hash attribute is %d bytes, too short", l)
				break
			}
			algo := HashAlgo(a.Data[3])
			if algo.size() == 0 {
				f.badHash = fmt.Sprintf("hash algorithm %d unknown", a.Data[3])
				break
			}
			if int64(algo.size()) != l-12 {
				f.badHash = fmt.Sprintf("hash attribute holds %d digest bytes, %s needs %d", l-12, algo, algo.size())
				break
			}
			f.Hash = &Hash{Algo: algo, Digest: a.Data[4:]}
		}
		o += l
	}
	if f.badHash != "" {
		img.problem(off, "file %q: %s", f.Name, f.badHash)
	}
	return f, nil
}

// Close releases the physical-memory device of an image from OpenRunning;
// reads of file contents fail afterwards. It does nothing for other images.
func (img *Image) Close() error {
	if img.closer == nil {
		return nil
	}
	err := img.closer.Close()
	img.closer = nil
	return err
}

// Layout says how the CBFS was located.
func (img *Image) Layout() Layout { return img.layout }

// Size is the size of the whole image (for the running ROM: the ROM size).
func (img *Image) Size() int64 { return img.size }

// Region returns the CBFS region: its offset in the image and its size.
func (img *Image) Region() (offset, size int64) { return img.start, img.end - img.start }

// FMAP returns the image's flash map, nil if it has none (or was not read).
func (img *Image) FMAP() *FMAP { return img.fmap }

// MasterHeader returns the legacy master header the CBFS was found through,
// nil if the image was located another way.
func (img *Image) MasterHeader() *MasterHeader { return img.master }

// Problems lists the malformed entries the walk skipped or could not fully
// decode (skipped as coreboot skips them). Add, Remove and Replace refuse
// to modify an image that has any.
func (img *Image) Problems() []*FormatError { return append([]*FormatError(nil), img.problems...) }

// Entries lists every entry, free space included, in CBFS order (the order
// `cbfstool print` shows).
func (img *Image) Entries() []File { return append([]File(nil), img.entries...) }

// Files lists the files (free space left out) in CBFS order.
func (img *Image) Files() []File {
	var fs []File
	for _, f := range img.entries {
		if !f.Empty() {
			fs = append(fs, f)
		}
	}
	return fs
}

// Lookup returns the first file called name. Like coreboot's cbfs_lookup
// the comparison is exact (cbfstool's extract and remove ignore case).
func (img *Image) Lookup(name string) (File, error) {
	for _, f := range img.entries {
		if !f.Empty() && f.Name == name {
			return f, nil
		}
	}
	return File{}, fmt.Errorf("cbfs: %s: %w: %q", img.sourceName(), ErrNotFound, name)
}

// Read returns the content of the file called name. It checks the file's
// hash attribute if it has one, and returns a *CompressedError for a
// compressed file.
func (img *Image) Read(name string) ([]byte, error) {
	f, err := img.Lookup(name)
	if err != nil {
		return nil, err
	}
	if f.Compression != CompressNone {
		return nil, &CompressedError{Name: name, Compression: f.Compression}
	}
	return img.content(f)
}

// ReadRaw returns the bytes stored for the file called name, compressed or
// not (`cbfstool extract -U`); the hash attribute, if any, is checked.
func (img *Image) ReadRaw(name string) ([]byte, error) {
	f, err := img.Lookup(name)
	if err != nil {
		return nil, err
	}
	return img.content(f)
}

// content returns a copy of f's stored bytes, checked against its hash.
func (img *Image) content(f File) ([]byte, error) {
	if f.badHash != "" {
		return nil, img.formatErr(f.Offset, "file %q: %s", f.Name, f.badHash)
	}
	b, err := img.read(f.DataOffset, int64(f.Size))
	if err != nil {
		return nil, err
	}
	data := append([]byte(nil), b...)
	if f.Hash != nil {
		h := f.Hash.Algo.new()
		h.Write(data)
		if got := h.Sum(nil); !bytes.Equal(got, f.Hash.Digest) {
			return nil, fmt.Errorf("cbfs: %s: file %q at %#x: %w: %s %x, content hashes to %x", img.sourceName(), f.Name, f.Offset, ErrHashMismatch, f.Hash.Algo, f.Hash.Digest, got)
		}
	}
	return data, nil
}

// Free returns the largest free entry and all free entries together, in
// bytes including their metadata (a file of n content bytes with name
// length l fits when 24+align4(l+1)+n <= largest).
func (img *Image) Free() (largest, total int64) {
	for _, f := range img.entries {
		if f.Empty() {
			sz := img.start + alignUp(f.DataOffset+int64(f.Size)-img.start, Alignment) - f.Offset
			total += sz
			largest = max(largest, sz)
		}
	}
	return largest, total
}

// String is a listing like `cbfstool print`, with region-relative offsets.
func (img *Image) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-30s %-10s %-12s %8s %s\n", "Name", "Offset", "Type", "Size", "Comp")
	for _, f := range img.entries {
		name := f.Name
		if name == "" {
			name = "(empty)"
		}
		fmt.Fprintf(&sb, "%-30s 0x%-8x %-12s %8d %s", name, f.Offset-img.start, f.Type, f.Size, f.Compression)
		if f.Compression != CompressNone {
			fmt.Fprintf(&sb, " (%d decompressed)", f.DecompressedSize)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}
