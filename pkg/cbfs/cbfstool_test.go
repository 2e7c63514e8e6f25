package cbfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
)

// layoutCase makes the same empty image with cbfstool (at path) and with
// Create, so tests can run identical operations on both.
type layoutCase struct {
	name   string
	size   int64
	layout Layout
	// fmapOff > 0 puts the FMAP there (cbfstool only; Create puts it at 0).
	fmapOff int64
}

var layoutCases = []layoutCase{
	{name: "x86-legacy-64K", size: 0x10000, layout: LayoutMasterHeader},
	{name: "x86-legacy-odd", size: 0x10024, layout: LayoutMasterHeader}, // not a multiple of 64
	{name: "fmap-128K", size: 0x20000, layout: LayoutFMAP},              // power of two: bsearch
	{name: "fmap-192K", size: 0x30000, layout: LayoutFMAP},              // linear search
	{name: "fmap-at-4K", size: 0x20000, layout: LayoutFMAP, fmapOff: 0x1000},
}

// cbfstoolCreate makes the empty image with cbfstool and returns its path.
func cbfstoolCreate(t *testing.T, c tool, dir string, lc layoutCase) string {
	t.Helper()
	path := filepath.Join(dir, lc.name+".rom")
	switch lc.layout {
	case LayoutMasterHeader:
		c.run(path, "create", "-m", "x86", "-s", fmt.Sprint(lc.size))
	case LayoutFMAP:
		c.run(path, "create", "-M", fmapFile(t, dir, lc.size, lc.fmapOff, 0x200))
	default:
		t.Fatalf("no cbfstool recipe for %v", lc.layout)
	}
	return path
}

// TestCreateMatchesCbfstool: Create's images are byte-identical to
// cbfstool's, for each layout.
func TestCreateMatchesCbfstool(t *testing.T) {
	c := needCbfstool(t)
	for _, lc := range layoutCases {
		if lc.fmapOff != 0 {
			continue
		}
		t.Run(lc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := readFile(t, cbfstoolCreate(t, c, dir, lc))
			img, err := Create(lc.size, CreateOptions{Layout: lc.layout})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := img.Bytes()
			if d := firstDiff(got, want); d >= 0 {
				t.Fatalf("Create differs from cbfstool create at offset %#x (got %d bytes, want %d)", d, len(got), len(want))
			}
			if img.Layout() != lc.layout {
				t.Errorf("Layout = %v, want %v", img.Layout(), lc.layout)
			}
		})
	}
	t.Run("region", func(t *testing.T) {
		// A bare region is what `cbfstool read -r COREBOOT` extracts from
		// a freshly created FMAP image.
		dir := t.TempDir()
		rom := cbfstoolCreate(t, c, dir, layoutCase{name: "r", size: 0x20000, layout: LayoutFMAP})
		region := filepath.Join(dir, "region.bin")
		c.run(rom, "read", "-r", "COREBOOT", "-f", region)
		want := readFile(t, region)
		img, err := Create(int64(len(want)), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := img.Bytes()
		if d := firstDiff(got, want); d >= 0 {
			t.Fatalf("Create(LayoutRegion) differs from cbfstool's COREBOOT region at %#x", d)
		}
		if img.Layout() != LayoutRegion {
			t.Errorf("Layout = %v", img.Layout())
		}
		// And cbfstool reads our bare region back.
		diffRows(t, "bare region", ourRows(img), c.printRows(region))
	})
}

func firstDiff(a, b []byte) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// cbfsFile is a file to add with cbfstool: extra arguments select type,
// compression or hash.
type cbfsFile struct {
	name string
	data []byte
	args []string
}

// TestReadCbfstoolImages: images written by cbfstool list the same as
// `cbfstool print -k -v`, and Read/ReadRaw return what cbfstool extract
// returns.
func TestReadCbfstoolImages(t *testing.T) {
	c := needCbfstool(t)
	long := strings.Repeat("n", MaxNameLen)
	files := []cbfsFile{
		{name: ConfigUserName, data: []byte("export CONFIG_TPM=y\n")},
		{name: "to-be-removed", data: randBytes(1, 700)},
		{name: PubringName, data: randBytes(2, 1500)},
		{name: "empty", data: nil},
		{name: long, data: randBytes(3, 64-int(headerSize(long))%64)},
		{name: "hashed", data: randBytes(4, 100), args: []string{"-A", "sha256"}},
		{name: "hashed512", data: randBytes(5, 33), args: []string{"-A", "sha512"}},
		{name: "compressed", data: bytes.Repeat([]byte("goheads "), 800), args: []string{"-c", "lzma"}},
		{name: "splash", data: randBytes(6, 77), args: []string{"-t", "bootsplash"}},
		{name: TrustdbName, data: randBytes(7, 40)},
	}
	for _, lc := range layoutCases {
		t.Run(lc.name, func(t *testing.T) {
			dir := t.TempDir()
			rom := cbfstoolCreate(t, c, dir, lc)
			for i, f := range files {
				src := writeTemp(t, dir, fmt.Sprintf("f%d", i), f.data)
				args := []string{rom, "add", "-n", f.name, "-f", src}
				if !hasArg(f.args, "-t") {
					args = append(args, "-t", "raw")
				}
				c.run(append(args, f.args...)...)
			}
			c.run(rom, "remove", "-n", "to-be-removed")

			img, err := OpenFile(rom)
			if err != nil {
				t.Fatal(err)
			}
			if img.Layout() != lc.layout {
				t.Errorf("Layout = %v, want %v", img.Layout(), lc.layout)
			}
			if p := img.Problems(); len(p) > 0 {
				t.Errorf("Problems on a cbfstool image: %v", p)
			}
			diffRows(t, "listing", ourRows(img), c.printRows(rom))
			for _, f := range files {
				if f.name == "to-be-removed" {
					if _, err := img.Read(f.name); !errors.Is(err, ErrNotFound) {
						t.Errorf("Read(removed) = %v, want ErrNotFound", err)
					}
					continue
				}
				out := filepath.Join(dir, "extract.bin")
				c.run(rom, "extract", "-n", f.name, "-f", out, "-U")
				stored := readFile(t, out)
				raw, err := img.ReadRaw(f.name)
				if err != nil || !bytes.Equal(raw, stored) {
					t.Errorf("ReadRaw(%q) = %d bytes, %v; cbfstool extract -U gave %d bytes", f.name, len(raw), err, len(stored))
				}
				got, err := img.Read(f.name)
				if hasArg(f.args, "-c") {
					var ce *CompressedError
					if !errors.As(err, &ce) || ce.Compression != CompressLZMA || !errors.Is(err, ErrCompressed) {
						t.Errorf("Read(compressed) = %v, want *CompressedError LZMA", err)
					}
					fl, _ := img.Lookup(f.name)
					if fl.DecompressedSize != uint32(len(f.data)) || fl.Size >= fl.DecompressedSize {
						t.Errorf("compressed file: Size %d DecompressedSize %d, original %d", fl.Size, fl.DecompressedSize, len(f.data))
					}
					continue
				}
				if err != nil || !bytes.Equal(got, f.data) {
					t.Errorf("Read(%q) = %d bytes, %v; want the %d bytes added", f.name, len(got), err, len(f.data))
				}
			}
			if fl, _ := img.Lookup("hashed"); fl.Hash == nil || fl.Hash.Algo != HashSHA256 {
				t.Errorf("hashed: Hash = %+v", fl.Hash)
			}
			// UserFiles: raw heads/initrd files in CBFS order.
			uf, err := UserFiles(img)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range uf {
				got = append(got, u.Path)
			}
			want := []string{"/etc/config.user", "/.gnupg/pubring.kbx", "/.gnupg/trustdb.gpg"}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("UserFiles paths = %v, want %v", got, want)
			}
		})
	}
}

func hasArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

// op is one change applied to both the cbfstool image and ours.
type op struct {
	kind string // add, remove, replace
	name string
	data []byte
}

func (o op) String() string { return fmt.Sprintf("%s %q (%d bytes)", o.kind, o.name, len(o.data)) }

// twin holds the same image as a cbfstool file and an *Image.
type twin struct {
	t   *testing.T
	c   tool
	dir string
	rom string
	img *Image
	n   int
}

func newTwin(t *testing.T, c tool, lc layoutCase) *twin {
	dir := t.TempDir()
	rom := cbfstoolCreate(t, c, dir, lc)
	img, err := OpenFile(rom)
	if err != nil {
		t.Fatal(err)
	}
	return &twin{t: t, c: c, dir: dir, rom: rom, img: img}
}

// apply runs o on both and checks they agree: both fail, or both succeed
// with byte-identical images.
func (w *twin) apply(o op) error {
	t := w.t
	t.Helper()
	w.n++
	src := writeTemp(t, w.dir, "data.bin", o.data)
	add := []string{w.rom, "add", "-t", "raw", "-n", o.name, "-f", src}
	var ours, theirs error
	switch o.kind {
	case "add":
		ours = w.img.Add(o.name, o.data, TypeRaw)
		_, theirs = w.c.try(add...)
	case "remove":
		ours = w.img.Remove(o.name)
		_, theirs = w.c.try(w.rom, "remove", "-n", o.name)
	case "replace":
		ours = w.img.Replace(o.name, o.data, TypeRaw)
		w.c.try(w.rom, "remove", "-n", o.name) // may fail: not there yet
		_, theirs = w.c.try(add...)
	}
	if (ours == nil) != (theirs == nil) {
		t.Fatalf("step %d, %v: goheads: %v; cbfstool: %v", w.n, o, ours, theirs)
	}
	if ours != nil && o.kind == "replace" {
		// cbfstool removed before failing to add; goheads left the image
		// as it was. Resynchronize from ours.
		b, _ := w.img.Bytes()
		writeTemp(t, w.dir, filepath.Base(w.rom), b)
	}
	got, _ := w.img.Bytes()
	want := readFile(t, w.rom)
	if d := firstDiff(got, want); d >= 0 {
		t.Fatalf("step %d, %v: image differs from cbfstool's at %#x\n--- goheads\n%s--- cbfstool\n%s", w.n, o, d, rowsText(ourRows(w.img)), rowsText(w.c.printRows(w.rom)))
	}
	return ours
}

// TestWriteMatchesCbfstool runs the same changes through Add/Remove/Replace
// and through cbfstool, and requires byte-identical images after every
// step (so placement, alignment, free-space merging and the bytes written
// all match), including the steps that fail for lack of space.
func TestWriteMatchesCbfstool(t *testing.T) {
	c := needCbfstool(t)
	sequences := []struct {
		name string
		ops  func(free int64) []op
	}{
		{"heads-settings", func(int64) []op {
			return []op{
				{"add", PubringName, randBytes(1, 2100)},
				{"add", TrustdbName, randBytes(2, 1280)},
				{"add", ConfigUserName, []byte("export CONFIG_TPM=y\n")},
				{"replace", ConfigUserName, []byte("export CONFIG_TPM=y\nexport CONFIG_AUTO_BOOT_TIMEOUT=5\n")},
				{"replace", PubringName, randBytes(3, 1800)},
				{"replace", "heads/initrd/.gnupg/otrust.txt", []byte("trust\n")},
			}
		}},
		{"remove-first-middle-last", func(int64) []op {
			return []op{
				{"add", "a", randBytes(1, 100)},
				{"add", "b", randBytes(2, 200)},
				{"add", "c", randBytes(3, 300)},
				{"add", "d", randBytes(4, 400)},
				{"remove", "b", nil}, // middle: hole between a and c
				{"add", "small", randBytes(5, 60)},
				{"remove", "a", nil}, // first
				{"remove", "d", nil}, // last: merges into the trailing free space
				{"remove", "small", nil},
				{"add", "big", randBytes(6, 900)},
				{"remove", "nope", nil},
				{"add", "c", nil}, // exists
				{"add", "C", nil}, // exists, ignoring case
				{"remove", "c", nil},
				{"remove", "big", nil},
			}
		}},
		{"alignment-edges", func(int64) []op {
			var ops []op
			// metadata 28 (name "eN"): content sizes that end 1 byte
			// before, at, and 1 byte after a 64-byte boundary.
			for i, n := range []int{35, 36, 37, 99, 100, 101, 0, 1} {
				ops = append(ops, op{"add", fmt.Sprintf("e%d", i), randBytes(int64(i), n)})
			}
			return append(ops, op{"remove", "e1", nil}, op{"remove", "e3", nil}, op{"add", "fill", randBytes(9, 36)})
		}},
		{"full", func(free int64) []op {
			// free is the one free entry's span: a file with 28 bytes of
			// metadata and free-28 bytes of content fills it exactly.
			return []op{
				{"add", "toobig", randBytes(1, int(free-28+1))},
				{"add", "full", randBytes(2, int(free-28))},
				{"add", "more", []byte{1}},
				{"remove", "full", nil},
				{"add", "half", randBytes(3, int(free/2))},
				{"add", "other", randBytes(4, int(free/2))},
				{"add", "rest", randBytes(5, 10)},
			}
		}},
	}
	for _, lc := range layoutCases {
		for _, seq := range sequences {
			t.Run(lc.name+"/"+seq.name, func(t *testing.T) {
				w := newTwin(t, c, lc)
				_, free := w.img.Free()
				for _, o := range seq.ops(free) {
					w.apply(o)
				}
			})
		}
		t.Run(lc.name+"/random", func(t *testing.T) {
			w := newTwin(t, c, lc)
			rng := rand.New(rand.NewSource(int64(len(lc.name))))
			names := []string{ConfigUserName, PubringName, TrustdbName, "a", "bb", "ccc", "dddd", "heads/initrd/etc/x", "serial_number"}
			ok, failed := 0, 0
			defer func() {
				// Both outcomes must occur, or the comparison proved little.
				if !t.Failed() && (ok < 10 || failed < 3) {
					t.Errorf("random sequence: %d steps succeeded, %d failed; want >= 10 and >= 3", ok, failed)
				}
			}()
			for i := 0; i < 40; i++ {
				o := op{name: names[rng.Intn(len(names))]}
				switch r := rng.Intn(10); {
				case r < 5:
					o.kind = "add"
				case r < 8:
					o.kind = "remove"
				default:
					o.kind = "replace"
				}
				if o.kind != "remove" {
					o.data = randBytes(int64(i), rng.Intn(int(lc.size/8)))
				}
				if w.apply(o) == nil {
					ok++
				} else {
					failed++
				}
			}
		})
	}
}

// TestCbfstoolReadsOurImages: cbfstool lists exactly the files Add wrote
// and extracts the same bytes.
func TestCbfstoolReadsOurImages(t *testing.T) {
	c := needCbfstool(t)
	for _, layout := range []Layout{LayoutRegion, LayoutMasterHeader, LayoutFMAP} {
		t.Run(layout.String(), func(t *testing.T) {
			dir := t.TempDir()
			img, err := Create(0x8000, CreateOptions{Layout: layout})
			if err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{
				ConfigUserName:   []byte("export CONFIG_HOTPKEY=y\n"),
				PubringName:      randBytes(11, 3333),
				TrustdbName:      randBytes(12, 1200),
				"serial_number":  []byte("1234\n"),
				"heads/initrd/x": nil,
			}
			for _, n := range []string{PubringName, "serial_number", TrustdbName, ConfigUserName, "heads/initrd/x"} {
				if err := img.Add(n, files[n], TypeRaw); err != nil {
					t.Fatal(err)
				}
			}
			if err := img.Remove("serial_number"); err != nil {
				t.Fatal(err)
			}
			delete(files, "serial_number")
			rom := filepath.Join(dir, "ours.rom")
			if err := img.WriteFile(rom); err != nil {
				t.Fatal(err)
			}
			rows := c.printRows(rom)
			diffRows(t, "listing", ourRows(img), rows)
			var names []string
			for _, r := range rows {
				if r.Type != "null" {
					names = append(names, r.Name)
				}
			}
			if len(names) != len(files) {
				t.Errorf("cbfstool lists %v, want the %d files added", names, len(files))
			}
			for n, data := range files {
				out := filepath.Join(dir, "x.bin")
				c.run(rom, "extract", "-n", n, "-f", out)
				if got := readFile(t, out); !bytes.Equal(got, data) {
					t.Errorf("cbfstool extract %s: %d bytes, want %d", n, len(got), len(data))
				}
			}
		})
	}
}

// TestHashAttributes: a corrupted file with a hash attribute fails Read
// (cbfstool print -v calls it invalid), and the CBFS verification anchor
// stops writes.
func TestHashAttributes(t *testing.T) {
	c := needCbfstool(t)
	dir := t.TempDir()
	rom := cbfstoolCreate(t, c, dir, layoutCases[0])
	data := randBytes(1, 300)
	c.run(rom, "add", "-t", "raw", "-n", "h", "-f", writeTemp(t, dir, "h", data), "-A", "sha256")
	b := readFile(t, rom)
	img, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := img.Lookup("h")
	bad := bytes.Clone(b)
	bad[f.DataOffset+7] ^= 1
	writeTemp(t, dir, "bad.rom", bad)
	if rows := c.printRows(filepath.Join(dir, "bad.rom")); !strings.HasSuffix(rows[0].Extra, ":invalid") {
		t.Fatalf("cbfstool does not see the corruption: %v", rows[0])
	}
	bi, err := Open(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bi.Read("h"); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("Read(corrupted) = %v, want ErrHashMismatch", err)
	}
	if _, err := bi.ReadRaw("h"); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("ReadRaw(corrupted) = %v, want ErrHashMismatch", err)
	}

	// An image carrying coreboot's metadata hash anchor is not modified.
	anchor := append([]byte(metadataHashAnchorMagic), make([]byte, 40)...)
	c.run(rom, "add", "-t", "raw", "-n", "bootblock-ish", "-f", writeTemp(t, dir, "a", anchor))
	vi, err := OpenFile(rom)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := vi.Bytes()
	if err := vi.Add("x", []byte("y"), TypeRaw); !errors.Is(err, ErrVerification) {
		t.Errorf("Add on a verified image = %v, want ErrVerification", err)
	}
	if after, _ := vi.Bytes(); !bytes.Equal(before, after) {
		t.Error("refused Add changed the image")
	}
}
