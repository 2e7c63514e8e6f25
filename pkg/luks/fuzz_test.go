package luks

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"os"
	"testing"
)

// Seeds are real headers written by cryptsetup (testdata/, regenerated with
// `go test ./pkg/luks -run TestFuzzSeedsLoad -update`: luksFormat of the
// test volumes, then luksAddKey of the key "k"): luks1-header.bin is the
// first 1024 bytes of a LUKS1 volume with slots 0 and 7,
// luks2-headers.bin the two 16 KiB header copies of a LUKS2 volume with an
// argon2id slot 0 and a pbkdf2 slot 31. The passphrases are test values.

var update = flag.Bool("update", false, "rewrite golden files (testdata/*.bin, made with cryptsetup)")

// memStorage serves data, then zeros up to size: headers are small, but
// they describe multi-MiB keyslot areas the loader checks exist.
type memStorage struct {
	data []byte
	size int64
}

func (m *memStorage) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > m.size {
		return 0, errCut
	}
	clear(b)
	if off < int64(len(m.data)) {
		copy(b, m.data[off:])
	}
	return len(b), nil
}

func (m *memStorage) WriteAt(b []byte, off int64) (int, error) { return 0, errCut }
func (m *memStorage) Sync() error                              { return nil }

func seed(f *testing.F, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// exercise runs everything a Device offers that needs no KDF or writes.
func exercise(t *testing.T, data []byte) {
	d, err := OpenStorage(&memStorage{data: data, size: 1 << 30}, "fuzz", Options{ReadOnly: true, MaxKDFMemoryKiB: 1})
	if err != nil {
		return
	}
	_ = d.UUID()
	slots := d.Slots()
	for _, s := range slots {
		if s.Active {
			if _, err := d.PlanDUK(s.Index); err != nil && s.Index != d.DUKSlot() {
				t.Errorf("PlanDUK(%d): %v", s.Index, err)
			}
		}
	}
	if d.v1 != nil {
		// marshal must reproduce what it parsed.
		again, err := parseLUKS1("fuzz", d.v1.marshal())
		if err != nil {
			t.Fatalf("re-parse of marshalled LUKS1 header: %v", err)
		}
		if again.slots != d.v1.slots || again.keyBytes != d.v1.keyBytes || again.uuid != d.v1.uuid {
			t.Fatalf("LUKS1 marshal round trip changed the header")
		}
		return
	}
	s := d.v2
	text := string(s.root.encode(nil))
	if root, n, err := parseJSON(text); err != nil || n != len(text) || string(root.encode(nil)) != text {
		t.Fatalf("LUKS2 JSON does not round-trip: %v", err)
	}
	// The edits AddKey and RemoveSlot make must keep the metadata valid.
	for _, id := range s.meta.slotOrder {
		root := s.root.clone()
		removeKeyslotJSON(root, id)
		if _, err := s.checkedText("fuzz", root); err != nil && !bytesContains(err, "JSON would be") {
			t.Fatalf("metadata invalid after removing slot %d: %v", id, err)
		}
	}
	for _, dg := range s.meta.digests {
		if len(dg.segments) == 0 {
			continue
		}
		free := -1
		for i := range luks2MaxSlots {
			if s.meta.keyslots[i] == nil {
				free = i
				break
			}
		}
		off, size, err := s.meta.findAreaGap(64)
		if free < 0 || err != nil {
			break
		}
		root := s.root.clone()
		addKeyslotJSON(root, free, dg.id, &luks2Keyslot{keySize: 64, afHash: "sha256", areaOffset: off, areaSize: size,
			areaEnc: "aes-xts-plain64", areaKeySize: 64, kdf: DefaultKDF, salt: make([]byte, saltSize)})
		if _, err := s.checkedText("fuzz", root); err != nil && !bytesContains(err, "JSON would be") {
			t.Fatalf("metadata invalid after adding slot %d: %v", free, err)
		}
		break
	}
}

func bytesContains(err error, s string) bool { return bytes.Contains([]byte(err.Error()), []byte(s)) }

func FuzzLUKS1Header(f *testing.F) {
	f.Add(seed(f, "luks1-header.bin"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > luks2BinLen {
			return
		}
		exercise(t, data)
	})
}

// FuzzLUKS2Header mutates the first 512 bytes of the binary header (every
// field is there) and the JSON text separately; the harness lays them out
// as a primary copy, adds a secondary copy (identical, older, or missing,
// per mode) and, if fix is set, recomputes both sha256 checksums so that
// mutations reach the JSON parser and validator instead of dying at the
// checksum. Inputs stay small, which keeps the fuzzer fast.
func FuzzLUKS2Header(f *testing.F) {
	hdr := seed(f, "luks2-headers.bin")
	text := bytes.TrimRight(hdr[luks2BinLen:luks2MinHdr], "\x00")
	for mode := range uint8(3) {
		f.Add(hdr[:512], text, mode, true)
	}
	f.Add(hdr[:512], text, uint8(0), false)
	f.Fuzz(func(t *testing.T, bin, text []byte, mode uint8, fix bool) {
		if len(bin) > 512 || len(text) > 60000 {
			return
		}
		hs := uint64(luks2MinHdr)
		if len(bin) >= 16 {
			if v := binary.BigEndian.Uint64(bin[8:16]); v >= luks2MinHdr && v <= 4*luks2MinHdr {
				hs = v
			}
		}
		img := make([]byte, 2*hs)
		copy(img, bin)
		copy(img[luks2BinLen:hs], text)
		if mode%3 != 1 {
			sec := img[hs:]
			copy(sec, img[:hs])
			copy(sec, luks2Magic2)
			binary.BigEndian.PutUint64(sec[256:], hs)
			if mode%3 == 2 {
				binary.BigEndian.PutUint64(sec[16:], binary.BigEndian.Uint64(sec[16:])-1)
			}
		}
		if fix {
			fixChecksum(img, 0)
			fixChecksum(img, hs)
		}
		exercise(t, img)
	})
}

func fixChecksum(data []byte, off uint64) {
	if off+luks2BinLen > uint64(len(data)) {
		return
	}
	hs := binary.BigEndian.Uint64(data[off+8:])
	if hs < luks2MinHdr || hs > luks2MaxHdr || off+hs > uint64(len(data)) {
		return
	}
	c := data[off : off+hs]
	clear(c[luks2CsumOff : luks2CsumOff+luks2CsumLen])
	sum := sha256.Sum256(c)
	copy(c[luks2CsumOff:], sum[:])
}

// FuzzLUKS2JSON feeds the JSON area parser and validator directly.
func FuzzLUKS2JSON(f *testing.F) {
	f.Add([]byte(cryptsetupJSON))
	hdr := seed(f, "luks2-headers.bin")
	f.Add(bytes.TrimRight(hdr[luks2BinLen:luks2MinHdr], "\x00"))
	f.Add([]byte(`{"keyslots":{},"tokens":{},"segments":{},"digests":{},"config":{}}`))
	f.Fuzz(func(t *testing.T, text []byte) {
		area := make([]byte, 12288)
		if len(text) >= len(area) {
			return
		}
		copy(area, text)
		got, root, meta, err := parseJSONArea("fuzz", luks2BinLen, area)
		if err != nil {
			return
		}
		if string(root.encode(nil)) != string(compactJSON(t, got)) {
			t.Fatalf("encode differs from the compacted input")
		}
		if meta.jsonSize != uint64(len(area)) {
			t.Fatalf("json_size %d accepted for a %d-byte area", meta.jsonSize, len(area))
		}
	})
}

// compactJSON re-parses and re-encodes, checking that encode is idempotent.
func compactJSON(t *testing.T, text string) []byte {
	n, _, err := parseJSON(text)
	if err != nil {
		t.Fatalf("accepted text does not re-parse: %v", err)
	}
	out := n.encode(nil)
	n2, _, err := parseJSON(string(out))
	if err != nil || !bytes.Equal(n2.encode(nil), out) {
		t.Fatalf("encode is not idempotent: %v", err)
	}
	return out
}

// The seeds themselves must load: a guard that the fuzz targets start from
// valid headers.
func TestFuzzSeedsLoad(t *testing.T) {
	if *update {
		for _, g := range []struct {
			spec volSpec
			slot string
			name string
			n    int
		}{{specLUKS1, "7", "luks1-header.bin", luks1HeaderLen}, {specArgon, "31", "luks2-headers.bin", 2 * luks2MinHdr}} {
			img := volume(t, g.spec)
			mustRun(t, drk, "luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--new-key-slot", g.slot, img, writeKeyFile(t, []byte("k")), "-d", "-")
			if err := os.WriteFile("testdata/"+g.name, readRange(t, img, [2]int64{0, int64(g.n)}), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"luks1-header.bin", "luks2-headers.bin"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		d, err := OpenStorage(&memStorage{data: b, size: 1 << 30}, name, Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var active []int
		for _, s := range d.Slots() {
			if s.Active {
				active = append(active, s.Index)
			}
		}
		if want := []int{0, d.DUKSlot()}; !equalInts(active, want) {
			t.Errorf("%s: active slots %v, want %v", name, active, want)
		}
	}
}
