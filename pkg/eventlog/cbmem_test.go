package eventlog

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	lowTable  = 0x500    // coreboot x86's forwarding table (src/arch/x86/tables.c)
	highTable = 0x7ff000 // the real table, in CBMEM
	logAddr   = 0x7fd000 // a TPM log CBMEM entry
	memSize   = 0x800000 // 8 MiB of "physical memory"
)

func corebootTPM2Log(t testing.TB) ([]byte, []byte) {
	var evs []tev
	var ds [][]byte
	for _, r := range cbRegions {
		evs = append(evs, tev{pcr: 2, typ: EvAction, data: []byte(r), digests: []Digest{{AlgSHA256, sum(crypto.SHA256, r)}}})
		ds = append(ds, sum(crypto.SHA256, r))
	}
	b := encTCG2([]AlgSize{{AlgSHA256, 32}}, cbVendor(cbT2Magic, 50, uint16(len(evs)), 100), evs)
	return append(b, make([]byte, 300)...), fold(crypto.SHA256, nil, ds...)
}

// image builds memory with the forwarding table at 0x500, the real table
// (a memory-map-like record, a console entry, then recs) and the log.
func image(logBytes []byte, recs ...lbRec) *memImage {
	m := newMem(memSize)
	m.put(lowTable, encTable(lbForward(highTable)))
	all := append([]lbRec{
		{0x01, make([]byte, 40)},                   // LB_TAG_MEMORY
		lbCBMEMEntry(0x7fc000, 0x1000, 0x434f4e53), // CBMEM console
		{0x04, []byte("26.06\x00\x00\x00")},        // LB_TAG_VERSION
	}, recs...)
	m.put(highTable, encTable(all...))
	if logBytes != nil {
		m.put(logAddr, logBytes)
	}
	return m
}

func TestFromCBMEM(t *testing.T) {
	tpm2, pcr2 := corebootTPM2Log(t)
	l, err := FromCBMEM(image(tpm2, lbCBMEMEntry(logAddr, uint32(len(tpm2)), CBMEMTPM2TCGLog)))
	if err != nil {
		t.Fatal(err)
	}
	if l.Format != FormatTCG2 || len(l.Events) != len(cbRegions) || !strings.Contains(l.Source, "TPM2 TCGLOG at 0x7fd000") {
		t.Fatalf("got %s log from %q with %d events", l.Format, l.Source, len(l.Events))
	}
	if v, err := l.Future(2, AlgSHA256); err != nil || !bytes.Equal(v, pcr2) {
		t.Errorf("Future(2) = %x, %v; want %x", v, err, pcr2)
	}

	// The coreboot-format log, as Heads' QEMU boards use it.
	var ents []cbEnt
	for _, r := range cbRegions {
		ents = append(ents, cbEnt{2, "SHA256", sum(crypto.SHA256, r), r})
	}
	cb := encCB(50, ents)
	l, err = FromCBMEM(image(cb, lbCBMEMEntry(logAddr, uint32(len(cb)), CBMEMTPMCBLog)))
	if err != nil || l.Format != FormatCoreboot {
		t.Fatalf("coreboot format: %v, %v", l, err)
	}
	if v, err := l.Future(2, AlgSHA256); err != nil || !bytes.Equal(v, pcr2) {
		t.Errorf("coreboot format: Future(2) = %x, %v; want %x", v, err, pcr2)
	}

	// Older firmware: only the LB_TAG_TPM_CB_LOG reference, 64- and 32-bit.
	var ref64, ref32 buf
	ref64.u64(logAddr)
	ref32.u32(logAddr)
	for name, rec := range map[string]lbRec{"ref64": {0x36, ref64.Bytes()}, "ref32": {0x36, ref32.Bytes()}} {
		l, err = FromCBMEM(image(cb, rec))
		if err != nil || l.Format != FormatCoreboot || len(l.Events) != len(ents) {
			t.Errorf("%s: %v, %v", name, l, err)
		}
	}

	// TPM 1.2 spec format, and cbmem's preference when several exist.
	tcpa := encTCPA(true, cbVendor(cbT1Magic, 50, 1, 82), sha1Only([]tev{measured(2, "FMAP: FMAP")}))
	m := image(tcpa,
		lbCBMEMEntry(logAddr+0x1000, uint32(len(cb)), CBMEMTPMCBLog),
		lbCBMEMEntry(logAddr, uint32(len(tcpa)), CBMEMTCPATCGLog))
	m.put(logAddr+0x1000, cb)
	l, err = FromCBMEM(m)
	if err != nil || l.Format != FormatTCPA {
		t.Errorf("TCPA first: %v, %v", l, err)
	}

	// The table can also sit in 0xf0000-0xfffff with no forward.
	m = newMem(memSize)
	m.put(0xf0000+0x1230, encTable(lbCBMEMEntry(logAddr, uint32(len(tpm2)), CBMEMTPM2TCGLog)))
	m.put(logAddr, tpm2)
	if l, err = FromCBMEM(m); err != nil || l.Format != FormatTCG2 {
		t.Errorf("table at 0xf1230: %v, %v", l, err)
	}
}

func TestFromCBMEMErrors(t *testing.T) {
	tpm2, _ := corebootTPM2Log(t)
	entry := lbCBMEMEntry(logAddr, uint32(len(tpm2)), CBMEMTPM2TCGLog)

	t.Run("no table", func(t *testing.T) {
		if _, err := FromCBMEM(newMem(memSize)); !errors.Is(err, ErrNoCorebootTable) {
			t.Errorf("%v", err)
		}
	})
	t.Run("bad checksums", func(t *testing.T) {
		for _, off := range []int{8, 30} { // header checksum; a record byte
			m := newMem(memSize)
			tb := encTable(entry)
			tb[off] ^= 0x40
			m.put(lowTable, tb)
			m.put(logAddr, tpm2)
			_, err := FromCBMEM(m)
			if !errors.Is(err, ErrNoCorebootTable) || !strings.Contains(err.Error(), "checksum") {
				t.Errorf("corrupt byte %d: %v", off, err)
			}
		}
	})
	t.Run("forward to nothing", func(t *testing.T) {
		m := newMem(memSize)
		m.put(lowTable, encTable(lbForward(0x300000)))
		_, err := FromCBMEM(m)
		if !errors.Is(err, ErrNoCorebootTable) || !strings.Contains(err.Error(), "points to 0x300000") {
			t.Errorf("%v", err)
		}
	})
	t.Run("forward loop", func(t *testing.T) {
		m := newMem(memSize)
		m.put(lowTable, encTable(lbForward(lowTable)))
		if _, err := FromCBMEM(m); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "loop") {
			t.Errorf("%v", err)
		}
	})
	t.Run("forward out of reach", func(t *testing.T) {
		m := newMem(memSize)
		m.put(lowTable, encTable(lbForward(1<<63+5)))
		if _, err := FromCBMEM(m); !errors.Is(err, ErrNoCorebootTable) {
			t.Errorf("%v", err)
		}
	})
	t.Run("zero-size record", func(t *testing.T) {
		m := newMem(memSize)
		tb := encTable(lbRec{0x01, nil}, entry)
		binary.LittleEndian.PutUint32(tb[24+4:], 0)
		fixTableChecksum(tb)
		m.put(lowTable, tb)
		if _, err := FromCBMEM(m); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "size 0") {
			t.Errorf("%v", err)
		}
	})
	t.Run("short cbmem entry", func(t *testing.T) {
		m := newMem(memSize)
		m.put(lowTable, encTable(lbRec{0x31, make([]byte, 8)}))
		if _, err := FromCBMEM(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("%v", err)
		}
	})
	t.Run("no tpm log", func(t *testing.T) {
		_, err := FromCBMEM(image(nil))
		if !errors.Is(err, ErrNoLog) || !strings.Contains(err.Error(), "CONFIG_TPM_MEASURED_BOOT") {
			t.Errorf("%v", err)
		}
	})
	t.Run("log beyond memory", func(t *testing.T) {
		_, err := FromCBMEM(image(nil, lbCBMEMEntry(memSize-16, 4096, CBMEMTPM2TCGLog)))
		if err == nil || errors.Is(err, ErrNoLog) || !strings.Contains(err.Error(), "physical memory") {
			t.Errorf("%v", err)
		}
	})
	t.Run("huge entry", func(t *testing.T) {
		if _, err := FromCBMEM(image(nil, lbCBMEMEntry(0, 1<<30, CBMEMTPM2TCGLog))); !errors.Is(err, ErrMalformed) {
			t.Errorf("%v", err)
		}
	})
	t.Run("malformed log", func(t *testing.T) {
		bad := append([]byte(nil), tpm2...)
		bad[40] = 'X' // signature
		_, err := FromCBMEM(image(bad, entry))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "CBMEM TPM2 TCGLOG at 0x7fd000") {
			t.Errorf("%v", err)
		}
	})
}

func fixTableChecksum(tb []byte) {
	n := binary.LittleEndian.Uint32(tb[12:])
	binary.LittleEndian.PutUint32(tb[16:], uint32(lbChecksum(tb[24:24+n])))
	binary.LittleEndian.PutUint32(tb[8:], 0)
	binary.LittleEndian.PutUint32(tb[8:], uint32(lbChecksum(tb[:24])))
}

func TestIPChecksum(t *testing.T) {
	for _, b := range [][]byte{nil, {1}, {1, 2, 3}, bytes.Repeat([]byte{0xff}, 1<<17), []byte("LBIO some table bytes!")} {
		if got, want := ipchksum(b), lbChecksum(b); got != want {
			t.Errorf("ipchksum(%d bytes) = %#x, want %#x", len(b), got, want)
		}
	}
	// RFC 1071 section 3's example, summed as little-endian words.
	if got := ipchksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xf2dd) {
		t.Errorf("RFC 1071 example: %#x", got)
	}
}

func TestReadSystem(t *testing.T) {
	tpm2, pcr2 := corebootTPM2Log(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mem := image(tpm2, lbCBMEMEntry(logAddr, uint32(len(tpm2)), CBMEMTPM2TCGLog))
	devmem := write("mem", mem.flat(t))
	uefi := encTCG2(bothAlgs, nil, []tev{measured(0, "uefi")})
	secfs := write("binary_bios_measurements", uefi)
	missing := filepath.Join(dir, "missing")

	p := SystemPaths{CBMEMSysfs: missing, DevMem: devmem, SecurityFS: secfs}
	l, err := p.Read()
	if err != nil || !strings.HasPrefix(l.Source, devmem+": CBMEM TPM2 TCGLOG") {
		t.Fatalf("devmem: %v, %v", l, err)
	}
	if v, err := l.Future(2, AlgSHA256); err != nil || !bytes.Equal(v, pcr2) {
		t.Errorf("devmem Future(2) = %x, %v", v, err)
	}

	// The kernel's coreboot bus comes first.
	sysfs := filepath.Join(dir, "coreboot")
	write("coreboot/cbmem-54504d32/mem", tpm2)
	p.CBMEMSysfs = sysfs
	if l, err = p.Read(); err != nil || !strings.Contains(l.Source, "cbmem-54504d32/mem (CBMEM TPM2 TCGLOG)") {
		t.Errorf("sysfs: %v, %v", l, err)
	}

	// Not coreboot: the securityfs log.
	plain := write("plainmem", make([]byte, 2<<20))
	p = SystemPaths{CBMEMSysfs: missing, DevMem: plain, SecurityFS: secfs}
	if l, err = p.Read(); err != nil || l.Source != secfs || l.Format != FormatTCG2 {
		t.Errorf("securityfs: %v, %v", l, err)
	}

	// A damaged coreboot log is an error, not a reason to use another log.
	bad := append([]byte(nil), tpm2...)
	bad[40] = 'X'
	badmem := write("badmem", image(bad, lbCBMEMEntry(logAddr, uint32(len(bad)), CBMEMTPM2TCGLog)).flat(t))
	p = SystemPaths{DevMem: badmem, SecurityFS: secfs}
	if _, err = p.Read(); !errors.Is(err, ErrMalformed) {
		t.Errorf("damaged CBMEM log: %v, want ErrMalformed", err)
	}

	// Nothing anywhere.
	p = SystemPaths{CBMEMSysfs: missing, DevMem: missing, SecurityFS: missing}
	if _, err = p.Read(); !errors.Is(err, ErrNoLog) || !strings.Contains(err.Error(), "securityfs") {
		t.Errorf("nothing: %v", err)
	}

	if l, err := ReadFile(secfs); err != nil || l.Source != secfs || len(l.Events) != 1 {
		t.Errorf("ReadFile: %v, %v", l, err)
	}
}
