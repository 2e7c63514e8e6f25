package eventlog

// Test encoders, written from the specifications (not from the parser):
// TCG PC Client PFP spec section 10 (TCG_PCR_EVENT, TCG_PCR_EVENT2,
// TCG_EfiSpecIDEvent), coreboot tpm_log_defs.h, tpm{1,2}_log_serialized.h,
// tpm_log_serialized.h and coreboot_tables.h.

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"io"
	"sort"
	"testing"
)

type tev struct {
	pcr     uint32
	typ     uint32
	digests []Digest
	data    []byte
}

type buf struct{ bytes.Buffer }

func (b *buf) u8(v uint8)   { b.WriteByte(v) }
func (b *buf) u16(v uint16) { binary.Write(b, binary.LittleEndian, v) }
func (b *buf) u32(v uint32) { binary.Write(b, binary.LittleEndian, v) }
func (b *buf) u64(v uint64) { binary.Write(b, binary.LittleEndian, v) }
func (b *buf) raw(p []byte) { b.Write(p) }
func (b *buf) fixed(s string, n int) {
	p := make([]byte, n)
	copy(p, s)
	b.Write(p)
}

// cbVendor is coreboot's struct tpm_{1,2}_vendor.
func cbVendor(magic uint32, maxEntries, num uint16, entrySize uint32) []byte {
	var b buf
	b.u8(0)
	b.u8(1)
	b.u8(0)
	b.u32(magic)
	b.u16(maxEntries)
	b.u16(num)
	b.u32(entrySize)
	return b.Bytes()
}

// encTCG2 writes a crypto agile log: TCG_PCR_EVENT with TCG_EfiSpecIDEvent,
// then TCG_PCR_EVENT2 records.
func encTCG2(algs []AlgSize, vendor []byte, events []tev) []byte {
	var spec buf
	spec.fixed("Spec ID Event03", 16)
	spec.u32(0) // platform class
	spec.u8(0)  // minor
	spec.u8(2)  // major
	spec.u8(0)  // errata
	spec.u8(2)  // uintn size
	spec.u32(uint32(len(algs)))
	for _, a := range algs {
		spec.u16(uint16(a.Alg))
		spec.u16(uint16(a.Size))
	}
	spec.u8(uint8(len(vendor)))
	spec.raw(vendor)

	var b buf
	b.u32(0)
	b.u32(3) // EV_NO_ACTION
	b.raw(make([]byte, 20))
	b.u32(uint32(spec.Len()))
	b.raw(spec.Bytes())
	for _, e := range events {
		b.raw(encEvent2(e))
	}
	return b.Bytes()
}

func encEvent2(e tev) []byte {
	var b buf
	b.u32(e.pcr)
	b.u32(e.typ)
	b.u32(uint32(len(e.digests)))
	for _, d := range e.digests {
		b.u16(uint16(d.Alg))
		b.raw(d.Value)
	}
	b.u32(uint32(len(e.data)))
	b.raw(e.data)
	return b.Bytes()
}

// encTCPA writes TPM 1.2 TCG_PCR_EVENT records, with a "Spec ID Event00"
// header if header is true.
func encTCPA(header bool, vendor []byte, events []tev) []byte {
	var b buf
	if header {
		var spec buf
		spec.fixed("Spec ID Event00", 16)
		spec.u32(0)
		spec.u8(2) // minor
		spec.u8(1) // major
		spec.u8(1) // errata
		spec.u8(0)
		spec.u8(uint8(len(vendor)))
		spec.raw(vendor)
		b.u32(0)
		b.u32(3)
		b.raw(make([]byte, 20))
		b.u32(uint32(spec.Len()))
		b.raw(spec.Bytes())
	}
	for _, e := range events {
		b.u32(e.pcr)
		b.u32(e.typ)
		b.raw(e.digests[0].Value)
		b.u32(uint32(len(e.data)))
		b.raw(e.data)
	}
	return b.Bytes()
}

type cbEnt struct {
	pcr    uint32
	typ    string // digest_type
	digest []byte
	name   string
}

// encCB writes coreboot's struct tpm_cb_log_table with room for maxEntries.
func encCB(maxEntries uint16, ents []cbEnt) []byte {
	var b buf
	b.u16(maxEntries)
	b.u16(uint16(len(ents)))
	for _, e := range ents {
		b.u32(e.pcr)
		b.fixed(e.typ, 10)
		b.fixed(string(e.digest), 64)
		b.u32(uint32(len(e.digest)))
		b.fixed(e.name, 50)
	}
	for i := len(ents); i < int(maxEntries); i++ {
		b.raw(make([]byte, 132))
	}
	return b.Bytes()
}

// sum hashes s with h.
func sum(h crypto.Hash, s string) []byte {
	d := h.New()
	d.Write([]byte(s))
	return d.Sum(nil)
}

// fold is the test's own PCR extend: v = H(v || d) for each d.
func fold(h crypto.Hash, init []byte, ds ...[]byte) []byte {
	v := append([]byte(nil), init...)
	if v == nil {
		v = make([]byte, h.Size())
	}
	for _, d := range ds {
		x := h.New()
		x.Write(append(append([]byte(nil), v...), d...))
		v = x.Sum(nil)
	}
	return v
}

// measured returns the event with SHA-1 and SHA-256 digests of s.
func measured(pcr uint32, s string) tev {
	return tev{pcr: pcr, typ: EvAction, data: []byte(s), digests: []Digest{
		{AlgSHA1, sum(crypto.SHA1, s)}, {AlgSHA256, sum(crypto.SHA256, s)},
	}}
}

// memImage is a sparse physical memory for FromCBMEM: regions at addresses,
// zeros elsewhere up to size.
type memImage struct {
	size    int64
	regions map[int64][]byte
}

func newMem(size int64) *memImage { return &memImage{size: size, regions: map[int64][]byte{}} }

func (m *memImage) put(addr int64, b []byte) { m.regions[addr] = b }

func (m *memImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= m.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > m.size-off {
		n = int(m.size - off)
	}
	clear(p[:n])
	addrs := make([]int64, 0, len(m.regions))
	for a := range m.regions {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	for _, a := range addrs {
		r := m.regions[a]
		lo, hi := max(a, off), min(a+int64(len(r)), off+int64(n))
		if lo < hi {
			copy(p[lo-off:hi-off], r[lo-a:hi-a])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// flat returns the image as one byte slice (for a /dev/mem stand-in file).
func (m *memImage) flat(t testing.TB) []byte {
	b := make([]byte, m.size)
	if _, err := m.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

type lbRec struct {
	tag  uint32
	body []byte // after tag and size
}

func lbForward(addr uint64) lbRec {
	var b buf
	b.u64(addr)
	return lbRec{0x11, b.Bytes()}
}

func lbCBMEMEntry(addr uint64, size, id uint32) lbRec {
	var b buf
	b.u64(addr)
	b.u32(size)
	b.u32(id)
	return lbRec{0x31, b.Bytes()}
}

// lbChecksum is the test's RFC 1071 checksum over little-endian words.
func lbChecksum(p []byte) uint16 {
	var s uint32
	for i := 0; i < len(p); i += 2 {
		w := uint32(p[i])
		if i+1 < len(p) {
			w |= uint32(p[i+1]) << 8
		}
		s += w
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// encTable writes an lb_header and its records with both checksums.
func encTable(recs ...lbRec) []byte {
	var body buf
	for _, r := range recs {
		body.u32(r.tag)
		body.u32(uint32(8 + len(r.body)))
		body.raw(r.body)
	}
	var h buf
	h.raw([]byte("LBIO"))
	h.u32(24)
	h.u32(0) // header checksum, set below
	h.u32(uint32(body.Len()))
	h.u32(uint32(lbChecksum(body.Bytes())))
	h.u32(uint32(len(recs)))
	hb := h.Bytes()
	binary.LittleEndian.PutUint32(hb[8:], uint32(lbChecksum(hb)))
	return append(hb, body.Bytes()...)
}
