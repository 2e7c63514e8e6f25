package cbfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mustCreate(t testing.TB, size int64, layout Layout) *Image {
	t.Helper()
	img, err := Create(size, CreateOptions{Layout: layout})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{ConfigUserName, true},
		{strings.Repeat("x", MaxNameLen), true},
		{strings.Repeat("x", MaxNameLen+1), false},
		{"", false},
		{"a\x00b", false},
		{"[FMAP REGION]", false},
	} {
		err := CheckName(tc.name)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrName)) {
			t.Errorf("CheckName(%.20q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestAddEdges covers name lengths and content sizes around the 4-byte
// name padding and the 64-byte alignment, and reads every file back.
func TestAddEdges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		wantMeta int64
	}{
		{"abc", 0, 28},                            // "abc\0" = 4 bytes
		{"abcd", 1, 32},                           // "abcd\0" pads to 8
		{"abcdefg", 36, 32},                       // 32 + 36 = 68: next header at +128
		{"abcdefg", 32, 32},                       // 32 + 32 = 64: next header right after
		{strings.Repeat("m", MaxNameLen), 5, 256}, // the longest name: metadata is 256 bytes
	} {
		t.Run(fmt.Sprintf("%d-%d", len(tc.name), tc.size), func(t *testing.T) {
			img := mustCreate(t, 0x4000, LayoutRegion)
			data := randBytes(int64(tc.size), tc.size)
			if err := img.Add(tc.name, data, TypeRaw); err != nil {
				t.Fatal(err)
			}
			if err := img.Add("next", []byte("n"), TypeRaw); err != nil {
				t.Fatal(err)
			}
			es := img.Entries()
			if es[0].Name != tc.name || es[0].DataOffset-es[0].Offset != tc.wantMeta || es[0].Type != TypeRaw {
				t.Errorf("entry 0 = %+v, want metadata %d", es[0], tc.wantMeta)
			}
			if want := alignUp(tc.wantMeta+int64(tc.size), Alignment); es[1].Offset != want {
				t.Errorf("second file at %#x, want %#x", es[1].Offset, want)
			}
			if got, err := img.Read(tc.name); err != nil || !bytes.Equal(got, data) {
				t.Errorf("Read = %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestAddErrors(t *testing.T) {
	img := mustCreate(t, 0x1000, LayoutRegion)
	if err := img.Add("a", []byte("1"), TypeRaw); err != nil {
		t.Fatal(err)
	}
	before, _ := img.Bytes()
	largest, total := img.Free()
	for _, tc := range []struct {
		name string
		data []byte
		typ  Type
		want error
	}{
		{"a", nil, TypeRaw, ErrExists},
		{"A", nil, TypeRaw, ErrExists},
		{"", nil, TypeRaw, ErrName},
		{"free", nil, TypeNull, nil}, // not a file type; any error will do
		{"big", make([]byte, largest-28+1), TypeRaw, ErrNoSpace},
	} {
		err := img.Add(tc.name, tc.data, tc.typ)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("Add(%q, %d bytes, %v) = %v, want %v", tc.name, len(tc.data), tc.typ, err, tc.want)
		}
		if after, _ := img.Bytes(); !bytes.Equal(before, after) {
			t.Fatalf("failed Add(%q) changed the image", tc.name)
		}
	}
	var ns *NoSpaceError
	err := img.Add("heads/initrd/.gnupg/pubring.kbx", make([]byte, 5000), TypeRaw)
	if !errors.As(err, &ns) {
		t.Fatalf("Add too big = %v, want *NoSpaceError", err)
	}
	if ns.Need != 5000+headerSize(ns.Name) || ns.Data != 5000 || ns.Largest != largest || ns.Free != total {
		t.Errorf("NoSpaceError = %+v, want largest %d total %d", ns, largest, total)
	}
	for _, s := range []string{"pubring.kbx", "5000", fmt.Sprint(largest)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	// Exactly the free space fits.
	if err := img.Add("fit", make([]byte, largest-28), TypeRaw); err != nil {
		t.Errorf("Add of exactly the free space: %v", err)
	}
	if l, _ := img.Free(); l != 0 {
		t.Errorf("after filling: largest free = %d, want 0", l)
	}
}

func TestRemoveAndReplace(t *testing.T) {
	img := mustCreate(t, 0x2000, LayoutFMAP)
	for _, n := range []string{"a", "b", "c"} {
		if err := img.Add(n, []byte(n+n+n), TypeRaw); err != nil {
			t.Fatal(err)
		}
	}
	_, totalBefore := img.Free()
	for _, tc := range []struct {
		name string
		want error
	}{
		{"b", nil}, // middle
		{"b", ErrNotFound},
		{"B", ErrNotFound}, // exact names, unlike cbfstool
		{"a", nil},         // first
		{"c", nil},         // last
	} {
		if err := img.Remove(tc.name); !errors.Is(err, tc.want) {
			t.Errorf("Remove(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	if fs := img.Files(); len(fs) != 0 {
		t.Errorf("files left: %v", fs)
	}
	if es := img.Entries(); len(es) != 1 || es[0].Type != TypeNull {
		t.Errorf("free space not merged into one entry: %v", es)
	}
	if _, total := img.Free(); total <= totalBefore {
		t.Errorf("free %d after removing everything, %d before", total, totalBefore)
	}
	// Removed bytes are gone.
	b, _ := img.Bytes()
	if bytes.Contains(b, []byte("bbb")) {
		t.Error("removed content still in the image")
	}

	// Replace keeps the old file when the new one does not fit.
	if err := img.Add(ConfigUserName, []byte("old"), TypeRaw); err != nil {
		t.Fatal(err)
	}
	largest, _ := img.Free()
	if err := img.Replace(ConfigUserName, make([]byte, 2*largest), TypeRaw); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Replace too big = %v", err)
	}
	if got, err := img.Read(ConfigUserName); err != nil || string(got) != "old" {
		t.Errorf("after failed Replace: %q, %v", got, err)
	}
	if err := img.Replace(ConfigUserName, []byte("new"), TypeRaw); err != nil {
		t.Fatal(err)
	}
	if err := img.Replace("fresh", []byte("x"), TypeRaw); err != nil {
		t.Errorf("Replace of a new name: %v", err)
	}
	if got, _ := img.Read(ConfigUserName); string(got) != "new" {
		t.Errorf("after Replace: %q", got)
	}
}

func TestRemoveProtected(t *testing.T) {
	img := mustCreate(t, 0x2000, LayoutRegion)
	hdr := make([]byte, masterHeaderSize)
	if err := img.Add("cbfs master header", hdr, TypeCBFSHeader); err != nil {
		t.Fatal(err)
	}
	if err := img.Add("bootblock", []byte{0x90}, TypeBootblock); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cbfs master header", "bootblock"} {
		if err := img.Remove(n); !errors.Is(err, ErrProtected) {
			t.Errorf("Remove(%q) = %v, want ErrProtected", n, err)
		}
	}
}

// corrupt returns a copy of b with the big-endian word at off set to v.
func corrupt(b []byte, off int64, v uint32) []byte {
	c := bytes.Clone(b)
	binary.BigEndian.PutUint32(c[off:], v)
	return c
}

// TestMalformed: damaged headers are skipped as coreboot skips them,
// reported with their offset, and block writes.
func TestMalformed(t *testing.T) {
	img := mustCreate(t, 0x2000, LayoutRegion)
	img.Add("first", []byte("1111"), TypeRaw)
	img.Add("second", randBytes(1, 100), TypeRaw)
	img.Add("third", []byte("3333"), TypeRaw)
	good, _ := img.Bytes()
	second, _ := img.Lookup("second")
	o := second.Offset
	for _, tc := range []struct {
		name      string
		b         []byte
		wantFiles string // names listed
		wantOff   int64  // offset named by the first problem
	}{
		{"data offset 0", corrupt(good, o+20, 0), "first third", o},
		{"data offset 23", corrupt(good, o+20, 23), "first third", o},
		{"data offset 300", corrupt(good, o+20, 300), "first third", o},
		{"length past end", corrupt(good, o+8, 0x10000), "first third", o},
		{"length 2^32-1", corrupt(good, o+8, 0xffffffff), "first third", o},
		{"attributes offset inside header", corrupt(good, o+16, 8), "first third", o},
		{"attributes offset past data", corrupt(good, o+16, 200), "first third", o},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, err := Open(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range bad.Files() {
				names = append(names, f.Name)
			}
			if strings.Join(names, " ") != tc.wantFiles {
				t.Errorf("files = %v, want %s", names, tc.wantFiles)
			}
			p := bad.Problems()
			if len(p) == 0 || p[0].Offset != tc.wantOff || !errors.Is(p[0], ErrFormat) || !strings.Contains(p[0].Error(), fmt.Sprintf("%#x", tc.wantOff)) {
				t.Fatalf("Problems = %v, want one at %#x", p, tc.wantOff)
			}
			if err := bad.Add("x", nil, TypeRaw); !errors.Is(err, ErrFormat) {
				t.Errorf("Add on a malformed image = %v, want ErrFormat", err)
			}
		})
	}

	t.Run("bad attributes", func(t *testing.T) {
		// Give "second" an attribute area: attributes_offset 32, data
		// offset 32+n, attribute words written over its name padding
		// and content.
		attr := func(tag, l uint32, rest ...byte) []byte {
			c := bytes.Clone(good)
			binary.BigEndian.PutUint32(c[o+16:], 32)                     // attributes at +32
			binary.BigEndian.PutUint32(c[o+20:], 32+8+uint32(len(rest))) // data after them
			binary.BigEndian.PutUint32(c[o+32:], tag)
			binary.BigEndian.PutUint32(c[o+36:], l)
			copy(c[o+40:], rest)
			return c
		}
		for _, tc := range []struct {
			name    string
			b       []byte
			problem bool
			read    error
		}{
			{"length 0", attr(AttrPosition, 0, 0, 0, 0, 0), true, nil},
			{"length past data", attr(AttrPosition, 100, 0, 0, 0, 0), true, nil},
			{"short compression", attr(AttrCompression, 12, 0, 0, 0, 1), true, nil},
			{"unknown hash algorithm", attr(AttrHash, 12, 0, 0, 0, 9), true, ErrFormat},
			{"hash of wrong size", attr(AttrHash, 16, 0, 0, 0, byte(HashSHA256), 1, 2, 3, 4), true, ErrFormat},
			{"lzma", attr(AttrCompression, 16, 0, 0, 0, 1, 0, 0, 0, 50), false, ErrCompressed},
			{"unused tag stops quietly", attr(AttrUnused2, 0xffffffff), false, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bad, err := Open(tc.b)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(bad.Problems()) > 0; got != tc.problem {
					t.Errorf("problems = %v, want some: %v", bad.Problems(), tc.problem)
				}
				if _, err := bad.Read("second"); !errors.Is(err, tc.read) {
					t.Errorf("Read = %v, want %v", err, tc.read)
				}
			})
		}
	})

	t.Run("gap in the chain", func(t *testing.T) {
		// Overwrite the magic of "second": coreboot's walker scans on and
		// finds "third", cbfstool's chain stops at "first".
		c := bytes.Clone(good)
		copy(c[o:], "XXXXXXXX")
		bad, err := Open(c)
		if err != nil {
			t.Fatal(err)
		}
		if fs := bad.Files(); len(fs) != 2 || fs[1].Name != "third" {
			t.Errorf("files = %v", fs)
		}
		if err := bad.Remove("third"); !errors.Is(err, ErrFormat) {
			t.Errorf("Remove on a broken chain = %v, want ErrFormat", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"zeros", make([]byte, 4096)},
		{"ff", bytes.Repeat([]byte{0xff}, 4096)},
		{"short magic", []byte("LARCHIV")},
	} {
		if _, err := Open(tc.b); !errors.Is(err, ErrFormat) {
			t.Errorf("Open(%s) = %v, want ErrFormat", tc.name, err)
		}
	}
	// An FMAP without COREBOOT is refused, naming the FMAP's offset.
	f := &FMAP{VerMajor: 1, VerMinor: 1, Size: 0x1000, Name: "FLASH", Areas: []Area{{Offset: 0, Size: 0x100, Name: AreaFMAP}}}
	b := bytes.Repeat([]byte{0xff}, 0x1000)
	copy(b, f.Bytes())
	if _, err := Open(b); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "COREBOOT") {
		t.Errorf("Open(no COREBOOT) = %v", err)
	}
	// COREBOOT running off the image.
	f.Areas = append(f.Areas, Area{Offset: 0x100, Size: 0x1000, Name: AreaCoreboot})
	copy(b, f.Bytes())
	if _, err := Open(b); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "runs off") {
		t.Errorf("Open(COREBOOT too big) = %v", err)
	}
}

func TestFindFMAP(t *testing.T) {
	fm := func(name string) []byte {
		return (&FMAP{VerMajor: 1, VerMinor: 1, Size: 0x100, Name: name}).Bytes()
	}
	place := func(size int, at ...int) []byte {
		b := bytes.Repeat([]byte{0xff}, size)
		for _, a := range at {
			copy(b[a:], fm(fmt.Sprintf("AT%x", a)))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want int
	}{
		{"pow2 at 0", place(0x1000, 0, 0x800), 0},
		// bsearch tries large strides first: 0x800 before 0x10.
		{"pow2 prefers the larger stride", place(0x1000, 0x10, 0x800), 0x800},
		{"pow2 same stride: lower offset", place(0x1000, 0x300, 0x100), 0x100},
		{"pow2 unaligned is not found", place(0x1000, 0x101), -1},
		{"linear: first offset", place(0x1100, 0x10, 0x800), 0x10},
		{"linear: unaligned found", place(0x1100, 0x101), 0x101},
		{"table past the end", func() []byte {
			b := place(0x1100, 0x10c0)
			binary.LittleEndian.PutUint16(b[0x10c0+54:], 2) // 56+84 bytes > 0x40 left
			binary.LittleEndian.PutUint32(b[0x10c0+18:], 0x1000)
			return b
		}(), -1},
		{"bad name", func() []byte {
			b := place(0x1000, 0x800)
			b[0x800+22] = ' '
			return b
		}(), -1},
		{"bad version", func() []byte {
			b := place(0x1000, 0x800)
			b[0x800+8] = 2
			return b
		}(), -1},
	} {
		if got := findFMAP(tc.b); got != tc.want {
			t.Errorf("%s: findFMAP = %#x, want %#x", tc.name, got, tc.want)
		}
	}
	f, err := FindFMAP(place(0x1000, 0x800))
	if err != nil || f == nil || f.Offset != 0x800 || f.Name != "AT800" {
		t.Errorf("FindFMAP = %+v, %v", f, err)
	}
	if f, err := FindFMAP(place(0x1000)); f != nil || err != nil {
		t.Errorf("FindFMAP(none) = %v, %v", f, err)
	}
}

func TestParseFMAPRoundTrip(t *testing.T) {
	f := &FMAP{VerMajor: 1, VerMinor: 1, Base: 0xff000000, Size: 0x1000000, Name: "FLASH", Areas: []Area{
		{Offset: 0, Size: 0x1000, Name: "SI_DESC", Flags: 1},
		{Offset: 0x1000, Size: 0x200, Name: AreaFMAP},
		{Offset: 0x1200, Size: 0xfee00, Name: strings.Repeat("N", 31), Flags: 0x8},
	}}
	got, err := ParseFMAP(f.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(f) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, f)
	}
	if a, ok := got.Area(AreaFMAP); !ok || a.Offset != 0x1000 {
		t.Errorf("Area(FMAP) = %v, %v", a, ok)
	}
	for n := 0; n < len(f.Bytes()); n += 7 {
		if _, err := ParseFMAP(f.Bytes()[:n]); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFMAP(truncated to %d) = %v", n, err)
		}
	}
}

// TestGoldenListing pins the listing and UserFiles of an image built by
// this package (regenerate with -update; TestCbfstoolReadsOurImages checks
// such images against cbfstool).
func TestGoldenListing(t *testing.T) {
	img := mustCreate(t, 0x10000, LayoutFMAP)
	steps := []struct {
		name string
		data []byte
		typ  Type
	}{
		{"fallback/payload", randBytes(1, 5000), TypeSELF},
		{PubringName, randBytes(2, 1777), TypeRaw},
		{TrustdbName, randBytes(3, 1280), TypeRaw},
		{ConfigUserName, []byte("export CONFIG_TPM=y\n"), TypeRaw},
		{"heads/initrd/bootsplash.jpg", randBytes(4, 99), TypeBootsplash},
		{"serial_number", []byte("42\n"), TypeRaw},
	}
	for _, s := range steps {
		if err := img.Add(s.name, s.data, s.typ); err != nil {
			t.Fatal(err)
		}
	}
	if err := img.Replace(PubringName, randBytes(5, 1900), TypeRaw); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString(img.String())
	uf, err := UserFiles(img)
	if err != nil {
		t.Fatal(err)
	}
	sb.WriteString("\nUserFiles:\n")
	for _, u := range uf {
		fmt.Fprintf(&sb, "%s\t%s\t%d bytes\n", u.Name, u.Path, len(u.Data))
	}
	golden := filepath.Join("testdata", "listing.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if sb.String() != string(want) {
		t.Errorf("listing differs from %s:\n%s", golden, sb.String())
	}
}

func TestParseOpenFileWriteFile(t *testing.T) {
	img := mustCreate(t, 0x2000, LayoutFMAP)
	if err := img.Add(ConfigUserName, []byte("x=1\n"), TypeRaw); err != nil {
		t.Fatal(err)
	}
	b, _ := img.Bytes()
	p, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil || p.String() != img.String() {
		t.Fatalf("Parse: %v\n%s", err, p)
	}
	if _, err := Parse(bytes.NewReader(b), int64(len(b))+1); err == nil {
		t.Error("Parse past the end of the reader succeeded")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rom")
	if err := img.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 || st.Size() != int64(len(b)) {
		t.Fatalf("written file: %v, %v", st, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	o, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := o.Read(ConfigUserName); string(got) != "x=1\n" {
		t.Errorf("OpenFile: Read = %q", got)
	}
	if _, err := OpenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenFile(missing) = %v", err)
	}
	// Errors from an opened file name it.
	o.Add("bad", nil, TypeRaw)
	c, _ := o.Bytes()
	binary.BigEndian.PutUint32(c[0x200+20:], 0) // first entry: data offset 0
	os.WriteFile(path, c, 0o644)
	o, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p := o.Problems(); len(p) == 0 || !strings.Contains(p[0].Error(), path+": offset 0x200") {
		t.Errorf("problem does not name the file and offset: %v", p)
	}
}
