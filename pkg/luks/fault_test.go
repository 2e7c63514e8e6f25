package luks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"testing"
)

// Power-cut tests: run AddKey (and RemoveSlot) against a cryptsetup-made
// volume through a Storage that stops persisting after N bytes, for N at
// every write boundary and at many offsets inside each write, and check
// after each cut that the real cryptsetup still opens the volume with the
// Disk Recovery Key.

// crashSpecs: every format with a dense set of cut points, plus the 64 MiB
// Argon2 volume of the other tests with a light set (each cryptsetup run on
// it costs about a second on a busy machine).
var crashSpecs = []struct {
	spec  volSpec
	light bool
}{{specLUKS1, false}, {specPBKDF, false}, {specArgonCrash, false}, {specArgon, true}}

func TestCrashSafetyAddKey(t *testing.T) {
	for _, c := range crashSpecs {
		t.Run(c.spec.name, func(t *testing.T) { crashTest(t, c.spec, false, c.light || testing.Short()) })
	}
}

func TestCrashSafetyRemoveSlot(t *testing.T) {
	for _, c := range crashSpecs {
		t.Run(c.spec.name, func(t *testing.T) { crashTest(t, c.spec, true, c.light || testing.Short()) })
	}
}

func crashTest(t *testing.T, s volSpec, remove, light bool) {
	pristine := volume(t, s)
	duk := randomKey(t)
	d := openT(t, pristine, Options{})
	slot := d.DUKSlot()
	if remove { // the starting point already has the DUK slot
		if err := d.AddKey(drk, duk, slot, AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := d.Unlock(drk)
	if err != nil {
		t.Fatal(err)
	}
	vk, digest := u.VolumeKey(), u.digest
	u.Close()
	defer wipe(vk)
	hdrRegion, hdrLen := int64(luks1AlignSlots), luks1HeaderLen
	if d.v2 != nil {
		hdrRegion, hdrLen = int64(2*d.v2.bin.hdrSize), int(d.v2.bin.hdrSize)
	}

	op := func(st *cutStorage) error {
		dev, err := OpenStorage(st, pristine, Options{})
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		u := unlockedWithKey(dev, vk, 0, digest)
		defer u.Close()
		if remove {
			return u.RemoveSlot(slot)
		}
		return u.AddKey(duk, slot, AddOptions{})
	}

	// Recording run: learn the write sequence.
	scratch := pristine + ".rec"
	copyFile(t, pristine, scratch)
	f, err := os.OpenFile(scratch, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := &cutStorage{f: f, budget: -1}
	if err := op(rec); err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	f.Close()
	var total int64
	for _, w := range rec.log {
		total += int64(w.n)
	}
	points := cutPoints(rec.log, hdrLen, light)

	pf, err := os.Open(pristine)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	restore := func(w *os.File, ranges []writeOp) {
		for _, r := range append(ranges, writeOp{0, int(hdrRegion)}) {
			b := make([]byte, r.n)
			if _, err := pf.ReadAt(b, r.off); err != nil {
				t.Error(err)
			}
			if _, err := w.WriteAt(b, r.off); err != nil {
				t.Error(err)
			}
		}
	}

	var mu sync.Mutex
	var failures []string
	fail := func(format string, a ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	var listedNew, notListed int
	work := make(chan int64)
	var wg sync.WaitGroup
	for w := range 2 { // 2 cores
		img := fmt.Sprintf("%s.work%d", pristine, w)
		copyFile(t, pristine, img)
		wf, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer wf.Close()
			for n := range work {
				st := &cutStorage{f: wf, budget: n}
				err := op(st)
				switch {
				case n < total && !errors.Is(err, errCut):
					fail("cut at %d/%d: operation returned %v, want the simulated power cut", n, total, err)
				case n >= total && err != nil:
					fail("no cut (%d bytes): %v", n, err)
				}
				if err := csTestKey(img, drk, -1); err != nil {
					fail("cut at byte %d of %d: cryptsetup cannot open the volume with the DRK: %v", n, total, err)
				}
				// Our own reader must agree, and (LUKS2) a listed new slot
				// must open: its material was synced before any header.
				if dev, err := Open(img, Options{ReadOnly: true}); err != nil {
					fail("cut at %d: goheads cannot read the header: %v", n, err)
				} else {
					listed := dev.active(slot)
					if !remove && listed && dev.v2 != nil {
						if u, err := dev.UnlockSlot(duk, slot); err != nil {
							fail("cut at %d: new slot %d is listed but does not open: %v", n, slot, err)
						} else {
							u.Close()
						}
					}
					if !remove && n >= total && !listed {
						fail("completed write: slot %d not listed", slot)
					}
					mu.Lock()
					if listed {
						listedNew++
					} else {
						notListed++
					}
					mu.Unlock()
					dev.Close()
				}
				restore(wf, st.log)
			}
		}()
	}
	for _, n := range points {
		work <- n
	}
	close(work)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	what := "AddKey"
	if remove {
		what = "RemoveSlot"
	}
	t.Logf("%s (DRK: %s) %s: %d cut points tried over %d bytes in %d writes %v; DRK opened with cryptsetup after every cut; slot %d listed after %d cuts, absent after %d",
		s.name, d.Slots()[0].KDF, what, len(points), total, len(rec.log), sizes(rec.log), slot, listedNew, notListed)
}

func sizes(log []writeOp) []int {
	var out []int
	for _, w := range log {
		out = append(out, w.n)
	}
	return out
}

// cutPoints picks where to cut: the first, second and last byte of every
// write; inside header writes (hdrLen bytes: the 1024-byte LUKS1 header or
// one LUKS2 copy) every sector boundary and the seqid and checksum fields,
// and for LUKS1 every 16th byte plus every byte of the DUK slot entry (the
// only bytes that change); 32 evenly spread offsets in the key material
// and wipe writes; 8 pseudo-random offsets per write; and the uncut run.
// light: boundaries, 4 spread and 2 random offsets per write.
func cutPoints(log []writeOp, hdrLen int, light bool) []int64 {
	set := map[int64]bool{}
	var total int64
	for _, w := range log {
		total += int64(w.n)
	}
	add := func(v int64) {
		if v >= 0 && v <= total {
			set[v] = true
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	var pos int64
	for _, w := range log {
		n := int64(w.n)
		add(pos)
		add(pos + 1)
		add(pos + n - 1)
		spread, random := int64(32), 8
		if light {
			spread, random = 4, 2
		}
		if w.n == hdrLen && !light {
			spread = 0
			if hdrLen == luks1HeaderLen {
				for i := int64(0); i < n; i += 16 {
					add(pos + i)
				}
				slotOff := int64(luks1SlotOff + (luks1Slots-1)*luks1SlotLen) // the DUK slot entry
				for i := int64(0); i <= luks1SlotLen; i++ {
					add(pos + slotOff + i)
				}
			} else {
				for i := int64(0); i < n; i += sectorSize {
					add(pos + i)
				}
				for _, o := range []int64{8, 16, 20, 24, luks2CsumOff + 1, luks2CsumOff + 32, luks2BinLen - 1, luks2BinLen + 1} {
					add(pos + o)
				}
			}
		}
		for i := int64(1); i < spread; i++ {
			add(pos + n*i/spread)
		}
		for range random {
			add(pos + r.Int64N(n))
		}
		pos += n
	}
	add(total)
	out := make([]int64, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}
