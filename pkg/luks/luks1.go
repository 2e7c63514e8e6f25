package luks

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
)

// LUKS1 on-disk header (cryptsetup lib/luks1/luks.h, struct luks_phdr):
// 592 bytes of fields, padded to 1024; big-endian integers.
const (
	luks1HeaderLen   = 1024 // sizeof(struct luks_phdr), what cryptsetup writes
	luks1FieldsLen   = 592
	luks1Slots       = 8
	luks1SlotOff     = 208 // first keyblock
	luks1SlotLen     = 48
	luks1Enabled     = 0x00AC71F3
	luks1Disabled    = 0x0000DEAD
	luks1DigestLen   = 20
	luks1AlignSlots  = 4096      // LUKS_ALIGN_KEYSLOTS
	luks1MinIter     = 1000      // LUKS_SLOT_ITERATIONS_MIN
	luks1MaxKeyBytes = 4096      // 32768-bit keys, LUKS_MAX_KEYSLOT_SIZE / stripes
	luks1MaxSlotArea = 0x1000000 // LUKS_MAX_KEYSLOT_SIZE
)

var luksMagic = []byte("LUKS\xba\xbe")

type luks1Slot struct {
	active     uint32
	iterations uint32
	salt       [saltSize]byte
	offset     uint32 // key material, in 512-byte sectors
	stripes    uint32
}

type luks1Header struct {
	cipherName, cipherMode, hashSpec string
	payloadOffset                    uint32 // sectors
	keyBytes                         uint32
	mkDigest                         [luks1DigestLen]byte
	mkDigestSalt                     [saltSize]byte
	mkDigestIter                     uint32
	uuid                             string
	slots                            [luks1Slots]luks1Slot
	raw                              [luks1HeaderLen]byte // as read, for change detection
}

// cString reads a NUL-terminated fixed field; cryptsetup forces the last
// byte to NUL, so at most len-1 characters count.
func cString(b []byte) string {
	b = b[:len(b)-1]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseLUKS1 decodes and checks a LUKS1 header the way cryptsetup's
// _check_and_convert_hdr and LUKS_check_keyslots do. b holds at least
// luks1HeaderLen bytes read from offset 0.
func parseLUKS1(path string, b []byte) (*luks1Header, error) {
	if len(b) < luks1HeaderLen {
		return nil, &HeaderError{Path: path, Offset: 0, Field: "header", Msg: fmt.Sprintf("only %d bytes, LUKS1 needs %d", len(b), luks1HeaderLen)}
	}
	if !bytes.Equal(b[:6], luksMagic) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotLUKS)
	}
	if v := binary.BigEndian.Uint16(b[6:8]); v != 1 {
		return nil, &HeaderError{Path: path, Offset: 6, Field: "version", Msg: fmt.Sprintf("%d, want 1", v)}
	}
	h := &luks1Header{
		cipherName:    cString(b[8:40]),
		cipherMode:    cString(b[40:72]),
		hashSpec:      cString(b[72:104]),
		payloadOffset: binary.BigEndian.Uint32(b[104:108]),
		keyBytes:      binary.BigEndian.Uint32(b[108:112]),
		mkDigestIter:  binary.BigEndian.Uint32(b[164:168]),
		uuid:          cString(b[168:208]),
	}
	copy(h.mkDigest[:], b[112:132])
	copy(h.mkDigestSalt[:], b[132:164])
	copy(h.raw[:], b[:luks1HeaderLen])
	if h.keyBytes == 0 || h.keyBytes > luks1MaxKeyBytes {
		return nil, &HeaderError{Path: path, Offset: 108, Field: "key bytes", Msg: fmt.Sprintf("%d, want 1-%d", h.keyBytes, luks1MaxKeyBytes)}
	}
	for i := range h.slots {
		o := luks1SlotOff + i*luks1SlotLen
		s := &h.slots[i]
		s.active = binary.BigEndian.Uint32(b[o:])
		s.iterations = binary.BigEndian.Uint32(b[o+4:])
		copy(s.salt[:], b[o+8:o+40])
		s.offset = binary.BigEndian.Uint32(b[o+40:])
		s.stripes = binary.BigEndian.Uint32(b[o+44:])
	}
	if err := h.checkSlots(path); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *luks1Header) areaSectors() uint32 { return uint32(afSize(int(h.keyBytes)) / sectorSize) }

// checkSlots mirrors LUKS_check_keyslots: 4000 stripes, material after the
// header, before the payload, and no two areas overlapping. A header that
// fails here is one cryptsetup refuses too.
func (h *luks1Header) checkSlots(path string) error {
	secs := h.areaSectors()
	for i, s := range h.slots {
		o := int64(luks1SlotOff + i*luks1SlotLen)
		bad := func(off int64, msg string) error {
			return &HeaderError{Path: path, Offset: off, Field: fmt.Sprintf("key slot %d", i), Msg: msg}
		}
		if s.stripes != stripes {
			return bad(o+44, fmt.Sprintf("stripes %d, want %d", s.stripes, stripes))
		}
		if uint64(s.offset)*sectorSize < luks1HeaderLen {
			return bad(o+40, fmt.Sprintf("key material at sector %d overlaps the header", s.offset))
		}
		// A state word that is neither enabled nor disabled (a torn write)
		// makes only that slot invalid, as in cryptsetup's
		// LUKS_keyslot_info; the header stays usable.
		if h.payloadOffset == 0 { // detached header
			continue
		}
		if uint64(s.offset)+uint64(secs) > uint64(h.payloadOffset) {
			return bad(o+40, fmt.Sprintf("key material sectors %d-%d run past the data offset %d", s.offset, uint64(s.offset)+uint64(secs), h.payloadOffset))
		}
	}
	order := h.slotsByOffset()
	for k := 1; k < len(order); k++ {
		prev, next := h.slots[order[k-1]], h.slots[order[k]]
		if uint64(next.offset) < uint64(prev.offset)+uint64(secs) {
			return &HeaderError{Path: path, Offset: int64(luks1SlotOff + order[k]*luks1SlotLen + 40), Field: fmt.Sprintf("key slot %d", order[k]),
				Msg: fmt.Sprintf("key material overlaps key slot %d", order[k-1])}
		}
	}
	return nil
}

func (h *luks1Header) slotsByOffset() []int {
	order := []int{0, 1, 2, 3, 4, 5, 6, 7}
	sort.SliceStable(order, func(a, b int) bool { return h.slots[order[a]].offset < h.slots[order[b]].offset })
	return order
}

// deviceSectors is LUKS_device_sectors: the end of the last keyslot area,
// which is how much luksHeaderBackup saves.
func (h *luks1Header) deviceSectors() uint64 {
	var end uint64
	for _, s := range h.slots {
		end = max(end, uint64(s.offset)+uint64(h.areaSectors()))
	}
	return end
}

// marshal renders the header as LUKS_write_phdr does: the 1024-byte struct
// as read (cryptsetup copies even the bytes after a string's NUL), with the
// last byte of each string forced to NUL, the padding zeroed and the key
// slots re-encoded. Only key slots ever change.
func (h *luks1Header) marshal() []byte {
	b := bytes.Clone(h.raw[:])
	b[39], b[71], b[103], b[207] = 0, 0, 0, 0
	clear(b[luks1FieldsLen:])
	for i, s := range h.slots {
		o := luks1SlotOff + i*luks1SlotLen
		binary.BigEndian.PutUint32(b[o:], s.active)
		binary.BigEndian.PutUint32(b[o+4:], s.iterations)
		copy(b[o+8:o+40], s.salt[:])
		binary.BigEndian.PutUint32(b[o+40:], s.offset)
		binary.BigEndian.PutUint32(b[o+44:], s.stripes)
	}
	return b
}
