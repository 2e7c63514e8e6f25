package luks

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// LUKS2 on-disk layout (cryptsetup lib/luks2/luks2.h, luks2_disk_metadata.c):
// two copies of [4096-byte binary header | JSON area], the primary at 0 and
// the secondary at hdr_size, then the keyslots area. Each copy carries a
// seqid and a checksum over itself; a reader takes the valid copy with the
// higher seqid.
const (
	luks2BinLen       = 4096
	luks2MinHdr       = 0x4000
	luks2MaxHdr       = 0x400000
	luks2MaxSlots     = 32
	luks2MaxKeyslots  = 0x8000000 // LUKS2_MAX_KEYSLOTS_SIZE
	luks2AreaAlign    = 4096
	luks2LabelLen     = 48
	luks2CsumAlgLen   = 32
	luks2SaltLen      = 64
	luks2UUIDLen      = 40
	luks2CsumOff      = 448
	luks2CsumLen      = 64
	luks2MaxKeySize   = 512 // bytes; generous bound for key_size fields
	luks2MaxThreads   = 255 // Go's argon2 takes a uint8
	luks2MinPBKDF2Itr = 1000
)

var (
	luks2Magic2 = []byte("SKUL\xba\xbe")
	// LUKS2_HDR2_OFFSETS: where to look for the secondary copy when the
	// primary is unreadable and its hdr_size cannot be trusted.
	luks2Hdr2Offsets = []uint64{0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000}
)

// luks2Bin is one binary header copy.
type luks2Bin struct {
	hdrSize   uint64
	seqid     uint64
	label     string
	csumAlg   string
	salt      [luks2SaltLen]byte
	uuid      string
	subsystem string
	hdrOffset uint64
}

func parseLUKS2Bin(b []byte) luks2Bin {
	var h luks2Bin
	h.hdrSize = binary.BigEndian.Uint64(b[8:])
	h.seqid = binary.BigEndian.Uint64(b[16:])
	h.label = cString(b[24:72])
	h.csumAlg = cString(b[72:104])
	copy(h.salt[:], b[104:168])
	h.uuid = cString(b[168:208])
	h.subsystem = cString(b[208:256])
	h.hdrOffset = binary.BigEndian.Uint64(b[256:])
	return h
}

// marshal is hdr_to_disk: zeroed 4096 bytes, strings up to their NUL, the
// checksum field left zero for the caller to fill.
func (h *luks2Bin) marshal(secondary bool) []byte {
	b := make([]byte, luks2BinLen)
	if secondary {
		copy(b, luks2Magic2)
	} else {
		copy(b, luksMagic)
	}
	binary.BigEndian.PutUint16(b[6:], 2)
	binary.BigEndian.PutUint64(b[8:], h.hdrSize)
	binary.BigEndian.PutUint64(b[16:], h.seqid)
	copy(b[24:24+luks2LabelLen-1], h.label)
	copy(b[72:72+luks2CsumAlgLen-1], h.csumAlg)
	copy(b[104:168], h.salt[:])
	copy(b[168:168+luks2UUIDLen-1], h.uuid)
	copy(b[208:208+luks2LabelLen-1], h.subsystem)
	binary.BigEndian.PutUint64(b[256:], h.hdrOffset)
	return b
}

// luks2Checksum hashes the binary header with a zeroed checksum field, then
// the whole JSON area including its NUL padding (hdr_checksum_calculate).
func luks2Checksum(alg string, bin, jsonArea []byte) ([]byte, error) {
	hf, err := hashByName(alg)
	if err != nil {
		return nil, err
	}
	h := hf()
	var zero [luks2CsumLen]byte
	h.Write(bin[:luks2CsumOff])
	h.Write(zero[:])
	h.Write(bin[luks2CsumOff+luks2CsumLen : luks2BinLen])
	h.Write(jsonArea)
	return h.Sum(nil), nil
}

// luks2Copy is the result of reading one header copy.
type luks2Copy struct {
	bin  luks2Bin
	text string // JSON text (without padding)
	root *jnode
	meta *luks2Meta
	// csumOK: magic, sanity and checksum passed, so bin.hdrSize can be
	// trusted to locate the secondary copy even if the JSON is bad.
	csumOK bool
	err    error // nil when the copy is valid
}

// readLUKS2Copy is hdr_read_disk + parse_and_validate_json for the copy at
// offset. It never fails as a whole: a bad copy is reported in .err so the
// caller can fall back to the other one.
func readLUKS2Copy(path string, r io.ReaderAt, offset uint64, secondary bool) *luks2Copy {
	c := &luks2Copy{}
	bad := func(off int64, field, format string, a ...any) *luks2Copy {
		c.err = &HeaderError{Path: path, Offset: off, Field: field, Msg: fmt.Sprintf(format, a...)}
		return c
	}
	name := "primary"
	if secondary {
		name = "secondary"
	}
	bin := make([]byte, luks2BinLen)
	if _, err := r.ReadAt(bin, int64(offset)); err != nil {
		c.err = fmt.Errorf("read %s LUKS2 header of %s at %#x: %w", name, path, offset, err)
		return c
	}
	magic := luksMagic
	if secondary {
		magic = luks2Magic2
	}
	if !bytes.Equal(bin[:6], magic) {
		c.err = fmt.Errorf("%s: no %s LUKS2 header at %#x: %w", path, name, offset, ErrNotLUKS)
		return c
	}
	if v := binary.BigEndian.Uint16(bin[6:]); v != 2 {
		return bad(int64(offset)+6, name+" header version", "%d, want 2", v)
	}
	c.bin = parseLUKS2Bin(bin)
	if c.bin.hdrOffset != offset {
		return bad(int64(offset)+256, name+" header offset", "says %#x, found at %#x", c.bin.hdrOffset, offset)
	}
	if c.bin.hdrSize < luks2MinHdr || c.bin.hdrSize > luks2MaxHdr {
		return bad(int64(offset)+8, name+" header size", "%#x, want 16 KiB-4 MiB", c.bin.hdrSize)
	}
	if secondary && offset != c.bin.hdrSize {
		return bad(int64(offset)+8, name+" header size", "%#x does not match its offset %#x", c.bin.hdrSize, offset)
	}
	area := make([]byte, c.bin.hdrSize-luks2BinLen)
	if _, err := r.ReadAt(area, int64(offset)+luks2BinLen); err != nil {
		c.err = fmt.Errorf("read %s LUKS2 JSON area of %s at %#x: %w", name, path, offset+luks2BinLen, err)
		return c
	}
	sum, err := luks2Checksum(c.bin.csumAlg, bin, area)
	if err != nil {
		return bad(int64(offset)+72, name+" header checksum algorithm", "%v", err)
	}
	if !bytes.Equal(sum, bin[luks2CsumOff:luks2CsumOff+len(sum)]) {
		return bad(int64(offset)+luks2CsumOff, name+" header checksum", "does not match the header contents")
	}
	c.csumOK = true
	c.text, c.root, c.meta, c.err = parseJSONArea(path, int64(offset)+luks2BinLen, area)
	return c
}

// parseJSONArea is validate_json_area + LUKS2_hdr_validate: one JSON object
// starting at byte 0, followed only by NUL bytes (at least one).
func parseJSONArea(path string, off int64, area []byte) (string, *jnode, *luks2Meta, error) {
	if len(area) == 0 || area[0] != '{' {
		return "", nil, nil, &HeaderError{Path: path, Offset: off, Field: "JSON area", Msg: "does not start with '{'"}
	}
	end := bytes.IndexByte(area, 0)
	if end < 0 {
		return "", nil, nil, &HeaderError{Path: path, Offset: off, Field: "JSON area", Msg: "no terminating NUL byte"}
	}
	text := string(area[:end])
	root, n, err := parseJSON(text)
	if err != nil {
		return "", nil, nil, &HeaderError{Path: path, Offset: off, Field: "JSON area", Msg: err.Error()}
	}
	if n != len(text) {
		return "", nil, nil, &HeaderError{Path: path, Offset: off + int64(n), Field: "JSON area", Msg: "data after the JSON object"}
	}
	if i := bytes.IndexFunc(area[end:], func(r rune) bool { return r != 0 }); i >= 0 {
		return "", nil, nil, &HeaderError{Path: path, Offset: off + int64(end+i), Field: "JSON area", Msg: "non-NUL byte after the JSON object"}
	}
	meta, err := decodeMeta(root, uint64(len(area)))
	if err != nil {
		return "", nil, nil, &HeaderError{Path: path, Offset: -1, Field: "JSON metadata", Msg: err.Error()}
	}
	return text, root, meta, nil
}

// luks2Keyslot is the part of a keyslot goheads uses.
type luks2Keyslot struct {
	id          int
	typ         string
	keySize     int
	afHash      string
	areaOffset  uint64
	areaSize    uint64
	areaEnc     string
	areaKeySize int
	kdf         KDF
	salt        []byte // kdf salt
	priority    int
	luks2       bool // type "luks2" with a fully validated body
}

type luks2Digest struct {
	id         int
	typ        string
	keyslots   []int
	segments   []int
	hash       string
	iterations uint32
	salt       []byte
	digest     []byte
}

type luks2Segment struct {
	id         int
	typ        string
	offset     uint64
	encryption string
	integrity  bool // dm-integrity (AEAD): its cipher cannot encrypt keyslots
}

type luks2Meta struct {
	keyslots     map[int]*luks2Keyslot
	slotOrder    []int // JSON order, which is cryptsetup's try order
	digests      map[int]*luks2Digest
	segments     map[int]*luks2Segment
	jsonSize     uint64
	keyslotsSize uint64
	requirements []string // config.requirements.mandatory
}

// hdrAndAreas is LUKS2_hdr_and_areas_size: both header copies plus the
// keyslots area, the extent luksHeaderBackup saves.
func (m *luks2Meta) hdrAndAreas() uint64 { return 2*(m.jsonSize+luks2BinLen) + m.keyslotsSize }

// ids returns the numbered keys of a LUKS2 section object, refusing
// non-numeric ids and leading zeros (cryptsetup finds slots by their
// printf("%u") name, so "031" would be invisible to it).
func ids(n *jnode, section string) ([]int, error) {
	out := make([]int, 0, len(n.keys))
	for _, k := range n.keys {
		if !numbered(k) || (len(k) > 1 && k[0] == '0') || len(k) > 9 {
			return nil, fmt.Errorf("%s: id %q is not a decimal number", section, k)
		}
		v, _ := strconv.Atoi(k)
		out = append(out, v)
	}
	return out, nil
}

func idList(n *jnode, path string, exists func(int) bool) ([]int, error) {
	if n == nil || n.kind != jArray {
		return nil, fmt.Errorf("%s: missing or not an array", path)
	}
	out := make([]int, 0, len(n.vals))
	for i, v := range n.vals {
		if v.kind != jString || !numbered(v.str) || len(v.str) > 9 {
			return nil, fmt.Errorf("%s[%d]: not a numbered string", path, i)
		}
		id, _ := strconv.Atoi(v.str)
		if strconv.Itoa(id) != v.str || !exists(id) {
			return nil, fmt.Errorf("%s[%d]: %q refers to nothing", path, i, v.str)
		}
		out = append(out, id)
	}
	return out, nil
}

func b64(n *jnode, path string) ([]byte, error) {
	s, err := n.stringAt(path)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: bad base64: %v", path, err)
	}
	return b, nil
}

// decodeMeta applies the checks of LUKS2_hdr_validate that matter for keyslot
// management and returns the typed view. areaLen is the JSON area size from
// the binary header.
func decodeMeta(root *jnode, areaLen uint64) (*luks2Meta, error) {
	if root.kind != jObject {
		return nil, fmt.Errorf("top level is not an object")
	}
	m := &luks2Meta{keyslots: map[int]*luks2Keyslot{}, digests: map[int]*luks2Digest{}, segments: map[int]*luks2Segment{}}

	// config
	cfg, err := root.get("config").objectAt("config")
	if err != nil {
		return nil, err
	}
	if m.jsonSize, err = cfg.get("json_size").uint64StringAt("config.json_size"); err != nil {
		return nil, err
	}
	if m.keyslotsSize, err = cfg.get("keyslots_size").uint64StringAt("config.keyslots_size"); err != nil {
		return nil, err
	}
	if m.jsonSize != areaLen {
		return nil, fmt.Errorf("config.json_size %d differs from the binary header's JSON area size %d", m.jsonSize, areaLen)
	}
	if md := m.jsonSize + luks2BinLen; md < luks2MinHdr || md > luks2MaxHdr || md&(md-1) != 0 {
		return nil, fmt.Errorf("config.json_size %d: header size %d is not a power of two in 16 KiB-4 MiB", m.jsonSize, md)
	}
	if m.keyslotsSize%luks2AreaAlign != 0 || m.keyslotsSize > luks2MaxKeyslots {
		return nil, fmt.Errorf("config.keyslots_size %d: not 4 KiB aligned or above 128 MiB", m.keyslotsSize)
	}
	if req := cfg.get("requirements"); req != nil {
		if _, err := req.objectAt("config.requirements"); err != nil {
			return nil, err
		}
		if mand := req.get("mandatory"); mand != nil {
			if mand.kind != jArray {
				return nil, fmt.Errorf("config.requirements.mandatory: not an array")
			}
			for i, v := range mand.vals {
				s, err := v.stringAt(fmt.Sprintf("config.requirements.mandatory[%d]", i))
				if err != nil {
					return nil, err
				}
				m.requirements = append(m.requirements, s)
			}
		}
	}

	// keyslots
	ks, err := root.get("keyslots").objectAt("keyslots")
	if err != nil {
		return nil, err
	}
	slotIDs, err := ids(ks, "keyslots")
	if err != nil {
		return nil, err
	}
	for i, id := range slotIDs {
		if id >= luks2MaxSlots {
			return nil, fmt.Errorf("keyslots.%d: more than %d key slots", id, luks2MaxSlots)
		}
		k, err := decodeKeyslot(ks.vals[i], id)
		if err != nil {
			return nil, err
		}
		m.keyslots[id] = k
		m.slotOrder = append(m.slotOrder, id)
	}

	// segments
	segs, err := root.get("segments").objectAt("segments")
	if err != nil {
		return nil, err
	}
	segIDs, err := ids(segs, "segments")
	if err != nil {
		return nil, err
	}
	if len(segIDs) == 0 {
		return nil, fmt.Errorf("segments: empty")
	}
	for i, id := range segIDs {
		p := fmt.Sprintf("segments.%d", id)
		s, err := segs.vals[i].objectAt(p)
		if err != nil {
			return nil, err
		}
		seg := &luks2Segment{id: id}
		if seg.typ, err = s.get("type").stringAt(p + ".type"); err != nil {
			return nil, err
		}
		if seg.offset, err = s.get("offset").uint64StringAt(p + ".offset"); err != nil {
			return nil, err
		}
		if seg.offset%sectorSize != 0 {
			return nil, fmt.Errorf("%s.offset %d: not 512-byte aligned", p, seg.offset)
		}
		size, err := s.get("size").stringAt(p + ".size")
		if err != nil {
			return nil, err
		}
		if size != "dynamic" {
			v, err := s.get("size").uint64StringAt(p + ".size")
			if err != nil {
				return nil, err
			}
			if v == 0 || v%sectorSize != 0 {
				return nil, fmt.Errorf("%s.size %d: zero or not 512-byte aligned", p, v)
			}
		}
		seg.integrity = s.get("integrity") != nil
		if seg.typ == "crypt" {
			if seg.encryption, err = s.get("encryption").stringAt(p + ".encryption"); err != nil {
				return nil, err
			}
			if _, err := s.get("iv_tweak").uint64StringAt(p + ".iv_tweak"); err != nil {
				return nil, err
			}
			ss, err := s.get("sector_size").intAt(p+".sector_size", 1, 1<<32-1)
			if err != nil {
				return nil, err
			}
			if ss%sectorSize != 0 {
				return nil, fmt.Errorf("%s.sector_size %d: not a multiple of 512", p, ss)
			}
		}
		m.segments[id] = seg
	}

	// digests
	dg, err := root.get("digests").objectAt("digests")
	if err != nil {
		return nil, err
	}
	digIDs, err := ids(dg, "digests")
	if err != nil {
		return nil, err
	}
	for i, id := range digIDs {
		p := fmt.Sprintf("digests.%d", id)
		d, err := dg.vals[i].objectAt(p)
		if err != nil {
			return nil, err
		}
		dig := &luks2Digest{id: id}
		if dig.typ, err = d.get("type").stringAt(p + ".type"); err != nil {
			return nil, err
		}
		if dig.keyslots, err = idList(d.get("keyslots"), p+".keyslots", func(k int) bool { return m.keyslots[k] != nil }); err != nil {
			return nil, err
		}
		if dig.segments, err = idList(d.get("segments"), p+".segments", func(s int) bool { return m.segments[s] != nil }); err != nil {
			return nil, err
		}
		if dig.typ == "pbkdf2" {
			if dig.hash, err = d.get("hash").stringAt(p + ".hash"); err != nil {
				return nil, err
			}
			it, err := d.get("iterations").intAt(p+".iterations", 1, 1<<32-1)
			if err != nil {
				return nil, err
			}
			dig.iterations = uint32(it)
			if dig.salt, err = b64(d.get("salt"), p+".salt"); err != nil {
				return nil, err
			}
			if dig.digest, err = b64(d.get("digest"), p+".digest"); err != nil {
				return nil, err
			}
			if len(dig.salt) != saltSize {
				return nil, fmt.Errorf("%s.salt: %d bytes, want %d", p, len(dig.salt), saltSize)
			}
			if len(dig.digest) < luks1DigestLen || len(dig.digest) > 64 {
				return nil, fmt.Errorf("%s.digest: %d bytes, want 20-64", p, len(dig.digest))
			}
		}
		m.digests[id] = dig
	}
	for _, id := range segIDs {
		if m.segments[id].typ != "crypt" {
			continue
		}
		found := false
		for _, d := range m.digests {
			found = found || contains(d.segments, id)
		}
		if !found {
			return nil, fmt.Errorf("segments.%d: no digest covers this crypt segment", id)
		}
	}

	// tokens: only their keyslot references matter here
	tk, err := root.get("tokens").objectAt("tokens")
	if err != nil {
		return nil, err
	}
	tokIDs, err := ids(tk, "tokens")
	if err != nil {
		return nil, err
	}
	for i, id := range tokIDs {
		p := fmt.Sprintf("tokens.%d", id)
		t, err := tk.vals[i].objectAt(p)
		if err != nil {
			return nil, err
		}
		if _, err := t.get("type").stringAt(p + ".type"); err != nil {
			return nil, err
		}
		if _, err := idList(t.get("keyslots"), p+".keyslots", func(k int) bool { return m.keyslots[k] != nil }); err != nil {
			return nil, err
		}
	}

	// keyslot areas: inside the keyslots area, after both header copies,
	// not overlapping (validate_intervals), and the data segment after all.
	md := m.jsonSize + luks2BinLen
	areas := make([]*luks2Keyslot, 0, len(m.keyslots))
	for _, id := range m.slotOrder {
		areas = append(areas, m.keyslots[id])
	}
	sort.Slice(areas, func(a, b int) bool { return areas[a].areaOffset < areas[b].areaOffset })
	for i, k := range areas {
		if k.areaOffset < 2*md || k.areaSize == 0 || k.areaOffset > m.hdrAndAreas() || k.areaSize > m.hdrAndAreas()-k.areaOffset {
			return nil, fmt.Errorf("keyslots.%d.area: [%d, +%d) is outside the keyslots area [%d, %d)", k.id, k.areaOffset, k.areaSize, 2*md, m.hdrAndAreas())
		}
		if i > 0 && areas[i-1].areaOffset+areas[i-1].areaSize > k.areaOffset {
			return nil, fmt.Errorf("keyslots.%d.area overlaps keyslots.%d.area", k.id, areas[i-1].id)
		}
	}
	for _, s := range m.segments {
		if s.offset != 0 && s.offset < m.hdrAndAreas() {
			return nil, fmt.Errorf("segments.%d.offset %d lies inside the header and keyslots area (ends at %d)", s.id, s.offset, m.hdrAndAreas())
		}
	}
	return m, nil
}

func decodeKeyslot(n *jnode, id int) (*luks2Keyslot, error) {
	p := fmt.Sprintf("keyslots.%d", id)
	o, err := n.objectAt(p)
	if err != nil {
		return nil, err
	}
	k := &luks2Keyslot{id: id, priority: 1}
	if k.typ, err = o.get("type").stringAt(p + ".type"); err != nil {
		return nil, err
	}
	ksz, err := o.get("key_size").intAt(p+".key_size", 0, 1<<32-1)
	if err != nil {
		return nil, err
	}
	k.keySize = int(min(ksz, luks2MaxKeySize+1))
	if pr := o.get("priority"); pr != nil {
		v, err := pr.intAt(p+".priority", 0, 2)
		if err != nil {
			return nil, err
		}
		k.priority = int(v)
	}
	// Every keyslot has an area (hdr_validate_areas), whatever its type.
	area, err := o.get("area").objectAt(p + ".area")
	if err != nil {
		return nil, err
	}
	if _, err := area.get("type").stringAt(p + ".area.type"); err != nil {
		return nil, err
	}
	if k.areaOffset, err = area.get("offset").uint64StringAt(p + ".area.offset"); err != nil {
		return nil, err
	}
	if k.areaSize, err = area.get("size").uint64StringAt(p + ".area.size"); err != nil {
		return nil, err
	}
	if k.typ != "luks2" {
		return k, nil // e.g. "reencrypt": listed, never used or written
	}
	// luks2_keyslot_validate
	if k.keySize < 1 || k.keySize > luks2MaxKeySize {
		return nil, fmt.Errorf("%s.key_size %d: want 1-%d", p, ksz, luks2MaxKeySize)
	}
	af, err := o.get("af").objectAt(p + ".af")
	if err != nil {
		return nil, err
	}
	if t, err := af.get("type").stringAt(p + ".af.type"); err != nil {
		return nil, err
	} else if t != "luks1" {
		return nil, fmt.Errorf("%s.af.type %q: want luks1", p, t)
	}
	if k.afHash, err = af.get("hash").stringAt(p + ".af.hash"); err != nil {
		return nil, err
	}
	st, err := af.get("stripes").intAt(p+".af.stripes", stripes, stripes)
	if err != nil {
		return nil, err
	}
	_ = st
	if t, _ := area.get("type").stringAt(""); t != "raw" {
		return nil, fmt.Errorf("%s.area.type %q: want raw", p, t)
	}
	if k.areaEnc, err = area.get("encryption").stringAt(p + ".area.encryption"); err != nil {
		return nil, err
	}
	aks, err := area.get("key_size").intAt(p+".area.key_size", 1, luks2MaxKeySize)
	if err != nil {
		return nil, err
	}
	k.areaKeySize = int(aks)
	if k.areaOffset%sectorSize != 0 {
		return nil, fmt.Errorf("%s.area.offset %d: not 512-byte aligned", p, k.areaOffset)
	}
	if uint64(afSize(k.keySize)) > k.areaSize {
		return nil, fmt.Errorf("%s.area.size %d: smaller than the %d bytes of key material", p, k.areaSize, afSize(k.keySize))
	}
	kdf, err := o.get("kdf").objectAt(p + ".kdf")
	if err != nil {
		return nil, err
	}
	if k.kdf.Type, err = kdf.get("type").stringAt(p + ".kdf.type"); err != nil {
		return nil, err
	}
	if k.salt, err = b64(kdf.get("salt"), p+".kdf.salt"); err != nil {
		return nil, err
	}
	if len(k.salt) != saltSize {
		return nil, fmt.Errorf("%s.kdf.salt: %d bytes, want %d", p, len(k.salt), saltSize)
	}
	u32 := func(name string, lo int64) (uint32, error) {
		v, err := kdf.get(name).intAt(p+".kdf."+name, lo, 1<<32-1)
		return uint32(v), err
	}
	switch k.kdf.Type {
	case KDFPBKDF2:
		if len(kdf.keys) != 4 {
			return nil, fmt.Errorf("%s.kdf: pbkdf2 takes exactly type, hash, iterations, salt", p)
		}
		if k.kdf.Hash, err = kdf.get("hash").stringAt(p + ".kdf.hash"); err != nil {
			return nil, err
		}
		if k.kdf.Iterations, err = u32("iterations", 1); err != nil {
			return nil, err
		}
	case KDFArgon2i, KDFArgon2id:
		if len(kdf.keys) != 5 {
			return nil, fmt.Errorf("%s.kdf: %s takes exactly type, time, memory, cpus, salt", p, k.kdf.Type)
		}
		if k.kdf.Time, err = u32("time", 1); err != nil {
			return nil, err
		}
		if k.kdf.MemoryKiB, err = u32("memory", 1); err != nil {
			return nil, err
		}
		if k.kdf.Threads, err = u32("cpus", 1); err != nil {
			return nil, err
		}
		if k.kdf.Threads > luks2MaxThreads {
			return nil, fmt.Errorf("%s.kdf.cpus %d: more than %d", p, k.kdf.Threads, luks2MaxThreads)
		}
	default:
		return nil, fmt.Errorf("%s.kdf.type %q: want pbkdf2, argon2i or argon2id", p, k.kdf.Type)
	}
	k.luks2 = true
	return k, nil
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) / a * a }

// findAreaGap is LUKS2_find_area_gap: the first 4 KiB-aligned gap after the
// header copies big enough for keyLen*4000 bytes.
func (m *luks2Meta) findAreaGap(keyLen int) (offset, length uint64, err error) {
	length = uint64((keyLen*stripes + luks2AreaAlign - 1) / luks2AreaAlign * luks2AreaAlign)
	used := make([]*luks2Keyslot, 0, len(m.keyslots))
	for _, k := range m.keyslots {
		used = append(used, k)
	}
	sort.Slice(used, func(a, b int) bool { return used[a].areaOffset < used[b].areaOffset })
	offset = 2 * (m.jsonSize + luks2BinLen)
	for _, k := range used {
		if offset < k.areaOffset && offset+length <= k.areaOffset {
			break
		}
		// Rounded up: an existing area whose size is not a multiple of
		// 4 KiB (valid for cryptsetup, which checks only offsets) would
		// otherwise place the new area at an offset validation refuses
		// (found by FuzzLUKS2Header). cryptsetup takes the end as is.
		offset = max(offset, alignUp(k.areaOffset+k.areaSize, luks2AreaAlign))
	}
	if offset+length > m.hdrAndAreas() {
		return 0, 0, fmt.Errorf("keyslots area (%d bytes) has no free %d bytes: %w", m.keyslotsSize, length, ErrNoSpace)
	}
	return offset, length, nil
}

// Edits of the JSON tree, mirroring what cryptsetup does to its json-c tree.

// addKeyslotJSON builds the keyslot object exactly as luks2_keyslot_alloc +
// luks2_keyslot_update_json do (same key order), appends it to "keyslots"
// and appends the slot to the digest's "keyslots" list.
func addKeyslotJSON(root *jnode, slot, digest int, k *luks2Keyslot) {
	ks := jobj()
	ks.set("type", jstr("luks2"))
	ks.set("key_size", jint(int64(k.keySize)))
	af := jobj()
	af.set("type", jstr("luks1"))
	af.set("stripes", jint(stripes))
	af.set("hash", jstr(k.afHash))
	ks.set("af", af)
	area := jobj()
	area.set("type", jstr("raw"))
	area.set("offset", jstr(strconv.FormatUint(k.areaOffset, 10)))
	area.set("size", jstr(strconv.FormatUint(k.areaSize, 10)))
	area.set("encryption", jstr(k.areaEnc))
	area.set("key_size", jint(int64(k.areaKeySize)))
	ks.set("area", area)
	kdf := jobj()
	kdf.set("type", jstr(k.kdf.Type))
	if k.kdf.Type == KDFPBKDF2 {
		kdf.set("hash", jstr(k.kdf.Hash))
		kdf.set("iterations", jint(int64(k.kdf.Iterations)))
	} else {
		kdf.set("time", jint(int64(k.kdf.Time)))
		kdf.set("memory", jint(int64(k.kdf.MemoryKiB)))
		kdf.set("cpus", jint(int64(k.kdf.Threads)))
	}
	kdf.set("salt", jstr(base64.StdEncoding.EncodeToString(k.salt)))
	ks.set("kdf", kdf)
	root.get("keyslots").set(strconv.Itoa(slot), ks)

	d := root.get("digests").get(strconv.Itoa(digest))
	list := d.get("keyslots")
	name := strconv.Itoa(slot)
	for _, v := range list.vals {
		if v.str == name {
			return
		}
	}
	list.vals = append(list.vals, jstr(name))
}

// removeKeyslotJSON is luks2_keyslot_wipe's JSON part: drop the slot from
// every digest and token, delete it, then LUKS2_digests_erase_unused.
func removeKeyslotJSON(root *jnode, slot int) {
	name := strconv.Itoa(slot)
	dropFrom := func(owner *jnode) {
		list := owner.get("keyslots")
		if list == nil || list.kind != jArray {
			return
		}
		for i, v := range list.vals {
			if v.kind == jString && v.str == name {
				owner.set("keyslots", &jnode{kind: jArray, vals: append(list.vals[:i:i], list.vals[i+1:]...)})
				return
			}
		}
	}
	digests := root.get("digests")
	for _, d := range digests.vals {
		dropFrom(d)
	}
	for _, t := range root.get("tokens").vals {
		dropFrom(t)
	}
	root.get("keyslots").del(name)
	for i := 0; i < len(digests.keys); {
		d := digests.vals[i]
		if s, k := d.get("segments"), d.get("keyslots"); s != nil && k != nil && s.kind == jArray && k.kind == jArray && len(s.vals) == 0 && len(k.vals) == 0 {
			digests.del(digests.keys[i])
			continue
		}
		i++
	}
}
