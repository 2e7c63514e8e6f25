package cbfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// physMem maps rom just below 4 GiB, as x86 maps the boot flash, and
// counts the device reads.
type physMem struct {
	rom   []byte
	reads int
}

func (m *physMem) ReadAt(p []byte, off int64) (int, error) {
	m.reads++
	base := int64(1<<32) - int64(len(m.rom))
	if off < base || off+int64(len(p)) > 1<<32 {
		return 0, fmt.Errorf("physical address %#x+%d is not flash", off, len(p))
	}
	return copy(p, m.rom[off-base:]), nil
}

// corebootLikeROM makes what coreboot builds for x86: an FMAP image whose
// COREBOOT region ends at the top of the flash, starting with the master
// header file and ending with a bootblock whose last 4 bytes hold the
// pointer to that header, plus a payload and Heads' user files.
func corebootLikeROM(t *testing.T, c tool, size int64) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	rom := filepath.Join(dir, "coreboot.rom")
	c.run(rom, "create", "-M", fmapFile(t, dir, size, 0, 0x200))
	c.run(rom, "add-master-header")
	// add-master-header wrote the pointer into the last 4 bytes; the next
	// cbfstool add would fill them with 0xff again (it merges the
	// trailing free entry up to the region end), so, as in coreboot, the
	// pointer lives in the bootblock at the top.
	ptr := readFile(t, rom)[size-4:]
	bb := append(randBytes(9, 1020), ptr...)
	c.run(rom, "add", "-t", "bootblock", "-n", "bootblock", "-f", writeTemp(t, dir, "bb", bb), "-b", fmt.Sprint(size-0x200-int64(len(bb))))
	files := map[string][]byte{
		"fallback/payload": randBytes(1, 30000),
		PubringName:        randBytes(2, 2500),
		TrustdbName:        randBytes(3, 1280),
		ConfigUserName:     []byte("export CONFIG_TPM=y\n"),
	}
	for _, n := range []string{"fallback/payload", PubringName, TrustdbName, ConfigUserName} {
		c.run(rom, "add", "-t", "raw", "-n", n, "-f", writeTemp(t, dir, "f", files[n]))
	}
	if got := readFile(t, rom)[size-4:]; !bytes.Equal(got, ptr) {
		t.Fatalf("master header pointer %x, want %x", got, ptr)
	}
	return rom, files
}

func TestOpenPhysical(t *testing.T) {
	c := needCbfstool(t)
	const size = 0x40000
	rom, files := corebootLikeROM(t, c, size)
	b := readFile(t, rom)
	fromFile, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, romSize := range []int64{0, size} {
		t.Run(fmt.Sprintf("romsize=%#x", romSize), func(t *testing.T) {
			mem := &physMem{rom: b}
			img, err := OpenPhysical(mem, romSize)
			if err != nil {
				t.Fatal(err)
			}
			if img.Layout() != LayoutMasterHeader || img.MasterHeader() == nil || img.Size() != size {
				t.Errorf("layout %v, header %+v, size %#x", img.Layout(), img.MasterHeader(), img.Size())
			}
			// Same entries at the same (flash) offsets as from the file.
			if got, want := absListing(img), absListing(fromFile); got != want {
				t.Errorf("physical listing:\n%s\nfile listing:\n%s", got, want)
			}
			// Only headers were read: not the 30000-byte payload.
			if mem.reads*pageSize >= 30000 {
				t.Errorf("opening read %d pages; the walk should skip file contents", mem.reads)
			}
			uf, err := UserFiles(img)
			if err != nil {
				t.Fatal(err)
			}
			if len(uf) != 3 {
				t.Fatalf("UserFiles = %d files", len(uf))
			}
			for _, u := range uf {
				if !bytes.Equal(u.Data, files[u.Name]) {
					t.Errorf("%s: %d bytes, want %d", u.Name, len(u.Data), len(files[u.Name]))
				}
			}
			if err := img.Add("x", nil, TypeRaw); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Add on the running ROM = %v, want ErrReadOnly", err)
			}
			all, err := img.Bytes()
			if err != nil || !bytes.Equal(all, b) {
				t.Errorf("Bytes() = %d bytes, %v", len(all), err)
			}
		})
	}

	t.Run("x86 legacy", func(t *testing.T) {
		leg := mustCreate(t, 0x10000, LayoutMasterHeader)
		if err := leg.Add(ConfigUserName, []byte("c"), TypeRaw); err != nil {
			t.Fatal(err)
		}
		lb, _ := leg.Bytes()
		img, err := OpenPhysical(&physMem{rom: lb}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := img.Read(ConfigUserName); err != nil || string(got) != "c" {
			t.Errorf("Read = %q, %v", got, err)
		}
	})

	t.Run("no master header", func(t *testing.T) {
		fm := mustCreate(t, 0x10000, LayoutFMAP)
		fm.Add(ConfigUserName, []byte("fmap"), TypeRaw)
		fb, _ := fm.Bytes()
		if _, err := OpenPhysical(&physMem{rom: fb}, 0); err == nil || !strings.Contains(err.Error(), "ROM size") {
			t.Errorf("without ROM size: %v", err)
		}
		img, err := OpenPhysical(&physMem{rom: fb}, int64(len(fb)))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := img.Read(ConfigUserName); err != nil || string(got) != "fmap" || img.Layout() != LayoutFMAP {
			t.Errorf("Read = %q, %v (layout %v)", got, err, img.Layout())
		}
	})

	t.Run("bad pointers", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			ptr     uint32
			romSize int64
		}{
			{"zero", 0, 0},
			{"top", 0xffffffff, 0},
			{"below the flash", 0x10000000, 0},
			{"into the pointer", 0xfffffffc, 0},
			{"not a header", 0xffff0000, 0},
			{"ROM size too small", 0, 0x100},
		} {
			bad := bytes.Clone(b)
			binary.LittleEndian.PutUint32(bad[len(bad)-4:], tc.ptr)
			if tc.romSize != 0 {
				bad = bad[len(bad)-int(tc.romSize):]
			}
			if _, err := OpenPhysical(&physMem{rom: bad}, tc.romSize); err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		}
		// A header claiming a CBFS beyond the ROM.
		bad := bytes.Clone(b)
		mh, err := fromFile.Lookup("cbfs master header")
		if err != nil {
			t.Fatal(err)
		}
		hoff := mh.DataOffset
		binary.BigEndian.PutUint32(bad[hoff+8:], 0x80000) // romsize
		if _, err := OpenPhysical(&physMem{rom: bad}, size); !errors.Is(err, ErrFormat) {
			t.Errorf("romsize beyond ROM: %v, want ErrFormat", err)
		}
	})
}

// TestOpenRunning reads a ROM through the DevMem code path: a sparse 4 GiB
// file stands in for /dev/mem, with the ROM at its end.
func TestOpenRunning(t *testing.T) {
	c := needCbfstool(t)
	rom, files := corebootLikeROM(t, c, 0x20000)
	b := readFile(t, rom)
	dir := t.TempDir()
	devmem := filepath.Join(dir, "mem")
	f, err := os.Create(devmem)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 32); err != nil {
		t.Skipf("no sparse 4 GiB file here: %v", err)
	}
	if _, err := f.WriteAt(b, 1<<32-int64(len(b))); err != nil {
		t.Fatal(err)
	}
	f.Close()

	img, err := OpenRunning(Options{FwCfg: filepath.Join(dir, "absent"), DevMem: devmem})
	if err != nil {
		t.Fatal(err)
	}
	got, err := img.Read(ConfigUserName)
	if err != nil || !bytes.Equal(got, files[ConfigUserName]) {
		t.Errorf("Read = %q, %v", got, err)
	}
	if err := img.Close(); err != nil {
		t.Error(err)
	}
	if _, err := img.ReadRaw("fallback/payload"); err == nil {
		t.Error("reading uncached flash after Close of /dev/mem succeeded")
	}

	// fw_cfg wins when present.
	fw := mustCreate(t, 0x4000, LayoutRegion)
	fw.Add(ConfigUserName, []byte("from fw_cfg"), TypeRaw)
	fwPath := filepath.Join(dir, "raw")
	if err := fw.WriteFile(fwPath); err != nil {
		t.Fatal(err)
	}
	img, err = OpenRunning(Options{FwCfg: fwPath, DevMem: devmem})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := img.Read(ConfigUserName); string(got) != "from fw_cfg" {
		t.Errorf("fw_cfg: Read = %q", got)
	}
	if img, err = OpenFwCfg(fwPath); err != nil || img.Layout() != LayoutRegion {
		t.Errorf("OpenFwCfg: %v", err)
	}

	// Options.Mem replaces the device.
	img, err = OpenRunning(Options{FwCfg: Skip, Mem: &physMem{rom: b}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := img.Read(TrustdbName); !bytes.Equal(got, files[TrustdbName]) {
		t.Error("Options.Mem: wrong trustdb")
	}

	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"nothing", Options{FwCfg: Skip, DevMem: Skip}, "no CBFS source"},
		{"no /dev/mem", Options{FwCfg: Skip, DevMem: filepath.Join(dir, "nomem")}, "CONFIG_DEVMEM"},
		{"fw_cfg unreadable", Options{FwCfg: dir}, dir},
	} {
		if _, err := OpenRunning(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// absListing lists entries with absolute offsets.
func absListing(img *Image) string {
	var sb strings.Builder
	for _, f := range img.Entries() {
		fmt.Fprintf(&sb, "%s %#x %v %#x %d\n", f.Name, f.Offset, f.Type, f.DataOffset, f.Size)
	}
	return sb.String()
}
