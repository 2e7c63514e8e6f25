package cbfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, layout := range []Layout{LayoutRegion, LayoutMasterHeader, LayoutFMAP} {
		img, err := Create(0x1000, CreateOptions{Layout: layout})
		if err != nil {
			f.Fatal(err)
		}
		img.Add(ConfigUserName, []byte("export CONFIG_TPM=y\n"), TypeRaw)
		img.Add(PubringName, randBytes(1, 300), TypeRaw)
		img.Add("x", []byte("y"), TypeStage)
		b, _ := img.Bytes()
		f.Add(b)
	}
	f.Add([]byte(fileMagic))
	f.Add(bytes.Repeat([]byte{0xff}, 256))
}

// FuzzOpen: Open never panics or hangs on any input; whatever it accepts
// can be listed, read, measured and (if clean) modified, and a modified
// image parses back cleanly. The same bytes mapped below 4 GiB go through
// OpenPhysical.
func FuzzOpen(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		img, err := Open(b)
		if err == nil {
			exercise(t, img)
			if img.Writable() == nil {
				orig := bytes.Clone(b)
				if err := img.Add("heads/initrd/fuzz", []byte("data"), TypeRaw); err == nil {
					if got, err := img.Read("heads/initrd/fuzz"); err != nil || string(got) != "data" {
						t.Fatalf("read back after Add: %q, %v", got, err)
					}
					if err := img.Remove("heads/initrd/fuzz"); err != nil {
						t.Fatalf("Remove after Add: %v", err)
					}
				} else if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrExists) && !errors.Is(err, ErrFormat) {
					t.Fatalf("Add on a writable image: %v", err)
				}
				if !bytes.Equal(b, orig) {
					t.Fatal("Add/Remove modified the caller's slice")
				}
			}
		} else if !errors.Is(err, ErrFormat) {
			t.Fatalf("Open error is not ErrFormat: %v", err)
		}
		if len(b)%4 == 0 && len(b) >= 4 {
			if img, err := OpenPhysical(&physMem{rom: b}, 0); err == nil {
				exercise(t, img)
			}
			if img, err := OpenPhysical(&physMem{rom: b}, int64(len(b))); err == nil {
				exercise(t, img)
			}
		}
	})
}

func exercise(t *testing.T, img *Image) {
	start, size := img.Region()
	for _, f := range img.Entries() {
		if f.Offset < start || f.DataOffset+int64(f.Size) > start+size || f.DataOffset < f.Offset+HeaderSize {
			t.Fatalf("entry %+v outside region [%#x+%#x]", f, start, size)
		}
		if !f.Empty() {
			img.content(f) // by entry: Lookup per file would be quadratic
		}
	}
	for i, f := range img.Files() {
		if i == 4 {
			break
		}
		img.Read(f.Name)
		img.ReadRaw(f.Name)
	}
	UserFiles(img)
	img.Free()
	_ = img.String()
}

// FuzzParseFMAP: ParseFMAP and the FMAP search never panic, and what
// ParseFMAP accepts encodes back to the same bytes.
func FuzzParseFMAP(f *testing.F) {
	fm := &FMAP{VerMajor: 1, VerMinor: 1, Size: 0x10000, Name: "FLASH", Areas: []Area{
		{Offset: 0, Size: 0x200, Name: AreaFMAP},
		{Offset: 0x200, Size: 0xfe00, Name: AreaCoreboot, Flags: 2},
	}}
	f.Add(fm.Bytes())
	f.Add(append(make([]byte, 16), fm.Bytes()...))
	f.Fuzz(func(t *testing.T, b []byte) {
		findFMAP(b)
		if _, err := FindFMAP(b); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
		p, err := ParseFMAP(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatal(err)
			}
			return
		}
		enc := p.Bytes()
		n := fmapHeaderSize + len(p.Areas)*fmapAreaSize
		// Names are C strings: bytes after the NUL are not kept.
		q, err := ParseFMAP(enc)
		if err != nil || len(enc) != n {
			t.Fatalf("re-parse of encoded FMAP: %v", err)
		}
		if binary.LittleEndian.Uint32(enc[18:]) != p.Size || len(q.Areas) != len(p.Areas) || q.Name != p.Name {
			t.Fatalf("round trip changed the FMAP: %+v -> %+v", p, q)
		}
		for i := range q.Areas {
			if q.Areas[i] != p.Areas[i] {
				t.Fatalf("area %d: %+v -> %+v", i, p.Areas[i], q.Areas[i])
			}
		}
	})
}
