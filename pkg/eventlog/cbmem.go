package eventlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// CBMEM ids of coreboot's TPM logs
// (src/commonlib/bsd/include/commonlib/bsd/cbmem_id.h).
const (
	CBMEMTPMCBLog   uint32 = 0x54435041 // "TPM CB LOG ": coreboot's own format
	CBMEMTCPATCGLog uint32 = 0x54445041 // "TCPA TCGLOG": TPM 1.2 spec format
	CBMEMTPM2TCGLog uint32 = 0x54504d32 // "TPM2 TCGLOG": TPM 2.0 spec format
)

// The coreboot table (src/commonlib/include/commonlib/coreboot_tables.h):
//
//	struct lb_header { u8 signature[4] "LBIO"; u32 header_bytes; u32 header_checksum;
//	                   u32 table_bytes; u32 table_checksum; u32 table_entries; }
//	struct lb_record { u32 tag; u32 size; }            // size includes this header
//	struct lb_forward { u32 tag, size; u64 forward; }  // LB_TAG_FORWARD
//	struct lb_cbmem_entry { u32 tag, size; u64 address; u32 entry_size; u32 id; }
//	struct lb_cbmem_ref { u32 tag, size; u64 cbmem_addr; }  // e.g. LB_TAG_TPM_CB_LOG
//
// The u64 fields are only 4-byte aligned (lb_uint64_t).
const (
	lbTagForward    = 0x0011
	lbTagCBMEMEntry = 0x0031
	lbTagTPMCBLog   = 0x0036
	lbHeaderSize    = 24

	maxHeaderBytes = 4 << 10
	maxTableBytes  = 1 << 20 // real tables are a few KiB
	maxLogBytes    = 1 << 20 // coreboot's logs hold at most 50 entries, ~7 KiB
	maxForwards    = 8

	formatTable Format = "coreboot table"
)

// cbmemLogs lists the TPM log entries in the order coreboot's util/cbmem
// (dump_tpm_log) looks for them.
var cbmemLogs = []struct {
	id    uint32
	name  string
	parse func([]byte) (*Log, error)
}{
	{CBMEMTCPATCGLog, "TCPA TCGLOG", ParseTCPA},
	{CBMEMTPM2TCGLog, "TPM2 TCGLOG", ParseTCG2},
	{CBMEMTPMCBLog, "TPM CB LOG", ParseCoreboot},
}

// DevMem reads physical memory through /dev/mem, read-only, with pread. The
// kernel must have CONFIG_DEVMEM; with CONFIG_STRICT_DEVMEM the first MiB and
// reserved regions (where coreboot keeps its table and CBMEM) stay readable.
type DevMem struct{ f *os.File }

// OpenDevMem opens path (normally /dev/mem) read-only.
func OpenDevMem(path string) (*DevMem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &DevMem{f: f}, nil
}

// ReadAt reads physical memory at address off.
func (m *DevMem) ReadAt(p []byte, off int64) (int, error) { return m.f.ReadAt(p, off) }

// Close closes the device.
func (m *DevMem) Close() error { return m.f.Close() }

// readPhys reads exactly n bytes at addr.
func readPhys(mem io.ReaderAt, addr uint64, n int) ([]byte, error) {
	if n < 0 || addr > math.MaxInt64-uint64(n) {
		return nil, fmt.Errorf("physical range %#x+%d is out of reach", addr, n)
	}
	buf := make([]byte, n)
	got, err := mem.ReadAt(buf, int64(addr))
	if got == n {
		return buf, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read %d bytes of physical memory at %#x: %w", n, addr, err)
}

// ipchksum is coreboot's checksum of the table (src/commonlib/bsd/ipchksum.c):
// the RFC 1071 ones' complement sum of little-endian 16-bit words.
func ipchksum(b []byte) uint16 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint64(b[i]) | uint64(b[i+1])<<8
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

type cbTable struct {
	addr    uint64 // physical address of the lb_header
	records []byte // table_bytes of records, at addr + header_bytes
	recBase uint64 // physical address of records[0]
}

// tableScanner finds the coreboot table as util/cbmem's parse_cbtable does:
// an "LBIO" header on a 16-byte boundary with a valid header checksum and
// table checksum; if the table holds a forward record, the search restarts
// at the forward address.
type tableScanner struct {
	mem   io.ReaderAt
	notes []string // why candidates were rejected, for the final error
}

func (s *tableScanner) note(format string, args ...any) {
	if len(s.notes) < 8 {
		s.notes = append(s.notes, fmt.Sprintf(format, args...))
	}
}

// findCorebootTable searches the first 4 KiB (coreboot on x86 writes a
// forwarding table at 0x500: src/arch/x86/tables.c) and 0xf0000-0xfffff
// (older coreboot and util/cbmem's second base).
func findCorebootTable(mem io.ReaderAt) (*cbTable, error) {
	s := &tableScanner{mem: mem}
	for _, w := range []struct{ base, size uint64 }{{0, 4 << 10}, {0xf0000, 64 << 10}} {
		t, err := s.scan(w.base, w.size, 0)
		if err != nil {
			return nil, err
		}
		if t != nil {
			return t, nil
		}
	}
	msg := "searched physical memory 0x0-0xfff and 0xf0000-0xfffff for an \"LBIO\" header"
	if len(s.notes) > 0 {
		msg += ": " + strings.Join(s.notes, "; ")
	}
	return nil, fmt.Errorf("%w: %s (is this firmware coreboot?)", ErrNoCorebootTable, msg)
}

func (s *tableScanner) scan(base, size uint64, depth int) (*cbTable, error) {
	if base > math.MaxInt64-size {
		s.note("address %#x is out of reach", base)
		return nil, nil
	}
	buf := make([]byte, size)
	n, err := s.mem.ReadAt(buf, int64(base))
	if n < lbHeaderSize {
		s.note("cannot read memory at %#x: %v", base, err)
		return nil, nil
	}
	buf = buf[:n]
	for i := 0; i+lbHeaderSize <= len(buf); i += 16 {
		if string(buf[i:i+4]) != "LBIO" {
			continue
		}
		addr := base + uint64(i)
		hdr := buf[i : i+lbHeaderSize]
		headerBytes := binary.LittleEndian.Uint32(hdr[4:])
		tableBytes := binary.LittleEndian.Uint32(hdr[12:])
		tableSum := binary.LittleEndian.Uint32(hdr[16:])
		if headerBytes < lbHeaderSize || headerBytes > maxHeaderBytes {
			s.note("header at %#x has header_bytes %d", addr, headerBytes)
			continue
		}
		if ipchksum(hdr) != 0 {
			s.note("header at %#x fails its checksum", addr)
			continue
		}
		if tableBytes > maxTableBytes {
			s.note("table at %#x claims %d bytes (limit %d)", addr, tableBytes, maxTableBytes)
			continue
		}
		recBase := addr + uint64(headerBytes)
		recs, err := readPhys(s.mem, recBase, int(tableBytes))
		if err != nil {
			s.note("table at %#x: %v", addr, err)
			continue
		}
		if uint32(ipchksum(recs)) != tableSum {
			s.note("table at %#x fails its checksum", addr)
			continue
		}
		t := &cbTable{addr: addr, records: recs, recBase: recBase}
		var fwd *uint64
		err = t.each(func(tag uint32, rec []byte, at uint64) error {
			if tag != lbTagForward || fwd != nil {
				return nil
			}
			if len(rec) < 16 {
				return tableErr(at, "forward record is %d bytes, want 16", len(rec))
			}
			a := binary.LittleEndian.Uint64(rec[8:])
			fwd = &a
			return nil
		})
		if err != nil {
			return nil, err
		}
		if fwd == nil {
			return t, nil
		}
		if depth >= maxForwards {
			return nil, tableErr(addr, "more than %d forward records in a row (a loop?)", maxForwards)
		}
		next, err := s.scan(*fwd, 4<<10, depth+1)
		if err != nil || next != nil {
			return next, err
		}
		s.note("forward record in the table at %#x points to %#x, where no valid table is", addr, *fwd)
		return nil, nil
	}
	return nil, nil
}

func tableErr(addr uint64, format string, args ...any) error {
	off := int64(math.MaxInt64)
	if addr < math.MaxInt64 {
		off = int64(addr)
	}
	return &ParseError{Format: formatTable, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// each calls fn for every record with its physical address. A record whose
// size is below 8 or runs past the table makes the table malformed (util/cbmem
// would loop or read past the end).
func (t *cbTable) each(fn func(tag uint32, rec []byte, at uint64) error) error {
	for off := 0; off < len(t.records); {
		at := t.recBase + uint64(off)
		if len(t.records)-off < 8 {
			return tableErr(at, "%d stray bytes where a record header should be", len(t.records)-off)
		}
		tag := binary.LittleEndian.Uint32(t.records[off:])
		size := binary.LittleEndian.Uint32(t.records[off+4:])
		if size < 8 || uint64(size) > uint64(len(t.records)-off) {
			return tableErr(at, "record tag %#x has size %d; %d bytes of table left", tag, size, len(t.records)-off)
		}
		if err := fn(tag, t.records[off:off+int(size)], at); err != nil {
			return err
		}
		off += int(size)
	}
	return nil
}

// FromCBMEM finds coreboot's TPM log through physical memory mem (addresses
// are physical; see DevMem) as `cbmem -L` does: the coreboot table, its CBMEM
// entry records, then the first of "TCPA TCGLOG", "TPM2 TCGLOG" and
// "TPM CB LOG" (or the older LB_TAG_TPM_CB_LOG reference) that exists.
func FromCBMEM(mem io.ReaderAt) (*Log, error) {
	t, err := findCorebootTable(mem)
	if err != nil {
		return nil, err
	}
	type entry struct {
		addr uint64
		size uint32
	}
	entries := map[uint32]entry{}
	var cbRef *uint64
	err = t.each(func(tag uint32, rec []byte, at uint64) error {
		switch tag {
		case lbTagCBMEMEntry:
			if len(rec) < 24 {
				return tableErr(at, "CBMEM entry record is %d bytes, want 24", len(rec))
			}
			id := binary.LittleEndian.Uint32(rec[20:])
			if _, seen := entries[id]; !seen {
				entries[id] = entry{binary.LittleEndian.Uint64(rec[8:]), binary.LittleEndian.Uint32(rec[16:])}
			}
		case lbTagTPMCBLog:
			if len(rec) < 12 {
				return tableErr(at, "TPM CB log reference is %d bytes, want 16", len(rec))
			}
			// Old firmware wrote a 32-bit address here (util/cbmem parse_cbmem_ref).
			a := uint64(binary.LittleEndian.Uint32(rec[8:]))
			if len(rec) >= 16 {
				a = binary.LittleEndian.Uint64(rec[8:])
			}
			if cbRef == nil {
				cbRef = &a
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range cbmemLogs {
		e, ok := entries[c.id]
		if !ok {
			continue
		}
		if e.size > maxLogBytes {
			return nil, tableErr(t.addr, "CBMEM %s entry claims %d bytes (limit %d)", c.name, e.size, maxLogBytes)
		}
		return readCBMEMLog(mem, c.name, e.addr, int(e.size), c.parse)
	}
	if cbRef != nil {
		hdr, err := readPhys(mem, *cbRef, cbHeaderSize)
		if err != nil {
			return nil, fmt.Errorf("read coreboot TPM log at %#x: %w", *cbRef, err)
		}
		size := cbLogSize(hdr)
		if size > maxLogBytes {
			return nil, tableErr(t.addr, "coreboot TPM log at %#x claims %d bytes (limit %d)", *cbRef, size, maxLogBytes)
		}
		return readCBMEMLog(mem, "TPM CB LOG", *cbRef, size, ParseCoreboot)
	}
	return nil, fmt.Errorf("%w: the coreboot table at %#x lists no TPM log (CBMEM ids %#x, %#x, %#x); is CONFIG_TPM_MEASURED_BOOT enabled?",
		ErrNoLog, t.addr, CBMEMTCPATCGLog, CBMEMTPM2TCGLog, CBMEMTPMCBLog)
}

func readCBMEMLog(mem io.ReaderAt, name string, addr uint64, size int, parse func([]byte) (*Log, error)) (*Log, error) {
	src := fmt.Sprintf("CBMEM %s at %#x", name, addr)
	b, err := readPhys(mem, addr, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	l, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	l.Source = src
	return l, nil
}
