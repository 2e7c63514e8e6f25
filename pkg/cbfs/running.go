package cbfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Where the running ROM's CBFS comes from.
const (
	// DefaultFwCfg is the QEMU fw_cfg file through which the builder passes
	// a CBFS image to VMs without coreboot (QEMU option
	// -fw_cfg name=opt/goheads/cbfs,file=IMAGE).
	DefaultFwCfg = "/sys/firmware/qemu_fw_cfg/by_name/opt/goheads/cbfs/raw"
	// DefaultDevMem is the physical-memory device. The kernel needs
	// CONFIG_DEVMEM=y; CONFIG_STRICT_DEVMEM allows the flash window, which
	// is not RAM.
	DefaultDevMem = "/dev/mem"
	// Skip, as a path in Options, turns that source off.
	Skip = "-"

	// x86 maps the top of the boot flash just below 4 GiB.
	x86FlashTop = 1 << 32
)

// Options say where OpenRunning looks for the running ROM's CBFS.
type Options struct {
	// FwCfg is read first if it exists (a whole CBFS image; QEMU boards
	// without coreboot). "" means DefaultFwCfg, Skip turns it off. Boards
	// with coreboot may skip it so only the flash counts.
	FwCfg string
	// DevMem is opened read-only to reach the memory-mapped flash. ""
	// means DefaultDevMem, Skip turns it off.
	DevMem string
	// Mem, if set, is used as physical memory instead of opening DevMem
	// (tests; callers with their own mapping). ReadAt offsets are physical
	// addresses.
	Mem io.ReaderAt
	// ROMSize is the flash size mapped below 4 GiB. 0: the master header's
	// ROM size (where the COREBOOT region ends, which on x86 is the top of
	// the flash because the reset vector is there).
	ROMSize int64
}

// OpenRunning opens the CBFS of the firmware that booted this system:
// the fw_cfg image if there is one, else the flash through physical
// memory (OpenPhysical). The result is read-only when it comes from
// physical memory, and then holds the device open until Close.
func OpenRunning(opts Options) (*Image, error) {
	fwcfg := opts.FwCfg
	if fwcfg == "" {
		fwcfg = DefaultFwCfg
	}
	if fwcfg != Skip {
		b, err := readFileLimited(fwcfg, maxImageSize)
		switch {
		case err == nil:
			return openBytes(b, fwcfg)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("cbfs: %w", err)
		}
	}
	if opts.Mem == nil {
		path := opts.DevMem
		if path == "" {
			path = DefaultDevMem
		}
		if path == Skip {
			return nil, fmt.Errorf("cbfs: no CBFS source: %s does not exist and physical memory access is off", fwcfg)
		}
		dm, err := OpenDevMem(path)
		if err != nil {
			return nil, fmt.Errorf("cbfs: %w (the running ROM is read through %s: the kernel needs CONFIG_DEVMEM=y)", err, path)
		}
		img, err := openPhysical(dm, opts.ROMSize, path)
		if err != nil {
			dm.Close()
			return nil, err
		}
		img.closer = dm
		return img, nil
	}
	return openPhysical(opts.Mem, opts.ROMSize, "physical memory")
}

// OpenFwCfg opens the CBFS image in a QEMU fw_cfg file (DefaultFwCfg).
func OpenFwCfg(path string) (*Image, error) {
	b, err := readFileLimited(path, maxImageSize)
	if err != nil {
		return nil, fmt.Errorf("cbfs: %w", err)
	}
	return openBytes(b, path)
}

// OpenPhysical opens the CBFS of an x86 flash mapped just below 4 GiB in
// mem (ReadAt offsets are physical addresses), as Heads' `cbfs` tool
// (osresearch/flashtools) does: the little-endian pointer at 0xfffffffc
// gives the master header's address; the header gives where the CBFS
// starts and ends in the flash; the flash starts at 4 GiB - romSize.
// romSize 0 means the header's ROM size. Only headers are read here and
// file contents on demand, through a page cache, so booting does not read
// the whole flash. Without a master header, romSize must be given and the
// whole ROM is read and searched for an FMAP.
func OpenPhysical(mem io.ReaderAt, romSize int64) (*Image, error) {
	return openPhysical(mem, romSize, "physical memory")
}

func openPhysical(mem io.ReaderAt, romSize int64, source string) (*Image, error) {
	if romSize < 0 || romSize > maxImageSize || romSize%4 != 0 {
		return nil, fmt.Errorf("cbfs: ROM size %d: want a multiple of 4 up to %d", romSize, maxImageSize)
	}
	pc := &pageCache{r: mem, pages: map[int64][]byte{}}
	var p [4]byte
	if _, err := pc.ReadAt(p[:], x86FlashTop-4); err != nil {
		return nil, fmt.Errorf("cbfs: %s: read the CBFS master header pointer at %#x: %w", source, int64(x86FlashTop-4), err)
	}
	haddr := int64(binary.LittleEndian.Uint32(p[:]))
	h, herr := readPhysMasterHeader(pc, haddr)
	if herr != nil {
		if romSize == 0 {
			return nil, fmt.Errorf("cbfs: %s: %w; without a master header the ROM size must be given to search the flash for an FMAP", source, herr)
		}
		// Read the whole flash and locate the CBFS as in a ROM file.
		b := make([]byte, romSize)
		if _, err := mem.ReadAt(b, x86FlashTop-romSize); err != nil {
			return nil, fmt.Errorf("cbfs: %s: read %d-byte ROM at %#x: %w", source, romSize, x86FlashTop-romSize, err)
		}
		img, err := openBytes(b, source)
		if err != nil {
			return nil, err
		}
		img.readOnly = true
		return img, nil
	}
	if romSize == 0 {
		romSize = int64(h.ROMSize)
	}
	base := int64(x86FlashTop) - romSize
	fe := func(off int64, format string, args ...any) error {
		return &FormatError{Source: source, Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case int64(h.ROMSize) > romSize:
		return nil, fe(haddr-base, "CBFS master header says the CBFS ends at %#x, beyond the %#x-byte ROM", h.ROMSize, romSize)
	case h.CBFSOffset%Alignment != 0:
		return nil, fe(haddr-base+20, "CBFS master header puts the first file at %#x, not 64-aligned", h.CBFSOffset)
	case haddr < base+int64(h.CBFSOffset) || haddr+masterHeaderSize > base+int64(h.ROMSize):
		return nil, fe(haddr-base, "CBFS master header at %#x lies outside the CBFS it describes [%#x, %#x)", haddr, base+int64(h.CBFSOffset), base+int64(h.ROMSize))
	}
	h.Offset = haddr - base
	img := &Image{
		src:      &offsetReader{r: pc, base: base},
		size:     romSize,
		source:   source,
		layout:   LayoutMasterHeader,
		master:   h,
		readOnly: true,
		start:    int64(h.CBFSOffset),
		end:      int64(h.ROMSize),
	}
	if err := img.walk(); err != nil {
		return nil, err
	}
	return img, nil
}

// readPhysMasterHeader reads and checks the master header at physical
// address haddr, which the flash's last 4 bytes pointed to.
func readPhysMasterHeader(pc io.ReaderAt, haddr int64) (*MasterHeader, error) {
	if haddr < x86FlashTop-maxImageSize || haddr > x86FlashTop-4-masterHeaderSize {
		return nil, fmt.Errorf("the pointer at %#x, %#x, does not point into the flash below it", int64(x86FlashTop-4), haddr)
	}
	var hb [masterHeaderSize]byte
	if _, err := pc.ReadAt(hb[:], haddr); err != nil {
		return nil, fmt.Errorf("read the CBFS master header at %#x: %w", haddr, err)
	}
	if !validMasterHeader(hb[:]) {
		return nil, fmt.Errorf("no valid CBFS master header at %#x (the address in the pointer at %#x)", haddr, int64(x86FlashTop-4))
	}
	h := parseMasterHeader(hb[:])
	if h.Align != Alignment {
		return nil, fmt.Errorf("CBFS master header at %#x: alignment %d, want %d", haddr, h.Align, Alignment)
	}
	if int64(h.ROMSize) > maxImageSize {
		return nil, fmt.Errorf("CBFS master header at %#x: ROM size %d larger than %d", haddr, h.ROMSize, maxImageSize)
	}
	return h, nil
}

// offsetReader maps image offsets to physical addresses.
type offsetReader struct {
	r    io.ReaderAt
	base int64
}

func (o *offsetReader) ReadAt(p []byte, off int64) (int, error) { return o.r.ReadAt(p, o.base+off) }

// pageCache reads physical memory a page at a time and keeps the pages, so
// the walk's many small header reads cost one device read per 4 KiB.
type pageCache struct {
	r     io.ReaderAt
	pages map[int64][]byte
}

const pageSize = 4096

func (c *pageCache) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		addr := off + int64(n)
		pg := addr &^ (pageSize - 1)
		data, ok := c.pages[pg]
		if !ok {
			data = make([]byte, pageSize)
			if _, err := c.r.ReadAt(data, pg); err != nil {
				return n, err
			}
			c.pages[pg] = data
		}
		n += copy(p[n:], data[addr-pg:])
	}
	return n, nil
}
