package luks

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	luksgo "github.com/anatol/luks.go"
)

// cryptsetupVolumeKey asks cryptsetup for the volume key (luksDump
// --dump-volume-key), the independent answer VolumeKey must match.
func cryptsetupVolumeKey(t *testing.T, img string) []byte {
	t.Helper()
	out := mustRun(t, drk, "luksDump", "--dump-volume-key", "--batch-mode", img, "-d", "-")
	i := strings.Index(out, "MK dump:")
	if i < 0 {
		t.Fatalf("no MK dump in:\n%s", out)
	}
	hexDigits := regexp.MustCompile(`[0-9a-f]{2}`).FindAllString(out[i+len("MK dump:"):], -1)
	k, err := hex.DecodeString(strings.Join(hexDigits, ""))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOpenListUnlock(t *testing.T) {
	for _, s := range append(allSpecs, specESSIV) {
		t.Run(s.name, func(t *testing.T) {
			img := volume(t, s)
			d := openT(t, img, Options{ReadOnly: true})
			wantVersion := 2
			if strings.HasPrefix(s.name, "luks1") {
				wantVersion = 1
			}
			if d.Version() != wantVersion {
				t.Errorf("Version() = %d, want %d", d.Version(), wantVersion)
			}
			if want := strings.TrimSpace(mustRun(t, nil, "luksUUID", img)); d.UUID() != want {
				t.Errorf("UUID() = %q, cryptsetup says %q", d.UUID(), want)
			}
			var active []int
			for _, sl := range d.Slots() {
				if sl.Active {
					active = append(active, sl.Index)
				}
			}
			if cs := cryptsetupSlots(t, img); !equalInts(active, cs) {
				t.Errorf("active slots %v, cryptsetup luksDump says %v", active, cs)
			}
			sl := d.Slots()[0]
			switch s.name {
			case specArgon.name:
				if sl.KDF.Type != KDFArgon2id || sl.KDF.MemoryKiB != 65536 || sl.KDF.Time != 4 || sl.KDF.Threads != 2 || sl.Priority != 1 {
					t.Errorf("slot 0 = %+v", sl)
				}
			default:
				if sl.KDF.Type != KDFPBKDF2 || sl.KDF.Iterations != 1000 {
					t.Errorf("slot 0 = %+v", sl)
				}
			}
			if d.DUKSlot() != map[int]int{1: 7, 2: 31}[wantVersion] {
				t.Errorf("DUKSlot() = %d", d.DUKSlot())
			}

			key, slot, err := d.VolumeKey(drk)
			if err != nil {
				t.Fatal(err)
			}
			if slot != 0 {
				t.Errorf("opened slot %d, want 0", slot)
			}
			if want := cryptsetupVolumeKey(t, img); !bytes.Equal(key, want) {
				t.Errorf("volume key differs from cryptsetup's --dump-volume-key")
			}
			if _, _, err := d.VolumeKey([]byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: err = %v, want ErrWrongPassphrase", err)
			}
			if _, err := d.UnlockSlot(drk, 3); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("inactive slot 3: err = %v, want ErrWrongPassphrase", err)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The complete add/remove cycle, each step checked by cryptsetup and by
// luks.go as a second, independent reader.
func TestAddRemoveKey(t *testing.T) {
	for _, s := range append(allSpecs, specESSIV) {
		t.Run(s.name, func(t *testing.T) {
			img := volume(t, s)
			d := openT(t, img, Options{})
			duk := randomKey(t)
			u, err := d.Unlock(drk)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			slot := d.DUKSlot()
			if err := u.AddKey(duk, slot, AddOptions{}); err != nil {
				t.Fatal(err)
			}
			if cs := cryptsetupSlots(t, img); !equalInts(cs, []int{0, slot}) {
				t.Fatalf("cryptsetup luksDump slots %v, want [0 %d]", cs, slot)
			}
			dump := mustRun(t, nil, "luksDump", img)
			if d.Version() == 2 && !strings.Contains(dump, "Iterations: 1000") {
				t.Errorf("luksDump does not show the pbkdf2 slot with 1000 iterations:\n%s", dump)
			}
			kf := writeKeyFile(t, duk)
			mustRun(t, nil, "open", "--test-passphrase", "--key-file", kf, "--key-slot", itoa(slot), img)
			if err := csTestKey(img, drk, 0); err != nil {
				t.Fatalf("DRK no longer opens slot 0: %v", err)
			}
			if s.name != specESSIV.name { // luks.go only does XTS
				lg, err := luksgo.Open(img)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := lg.UnsealVolume(slot, duk); err != nil {
					t.Errorf("luks.go cannot open the new slot: %v", err)
				}
				lg.Close()
			}

			// Removing needs a remaining passphrase and never removes the
			// DRK's own slot.
			if err := u.RemoveSlot(0); !errors.Is(err, ErrRecoverySlot) {
				t.Errorf("RemoveSlot(DRK slot) err = %v, want ErrRecoverySlot", err)
			}
			if err := d.RemoveSlot(slot, duk); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("RemoveSlot with only the key being removed: err = %v, want ErrWrongPassphrase", err)
			}
			area := slotArea(t, d, slot)
			before := readRange(t, img, area)
			if err := d.RemoveSlot(slot, drk); err != nil {
				t.Fatal(err)
			}
			if cs := cryptsetupSlots(t, img); !equalInts(cs, []int{0}) {
				t.Fatalf("after removal cryptsetup luksDump slots %v, want [0]", cs)
			}
			if err := csTestKey(img, drk, -1); err != nil {
				t.Errorf("DRK does not open after removal: %v", err)
			}
			if err := csTestKey(img, duk, -1); err == nil {
				t.Errorf("removed key still opens the volume")
			}
			if after := readRange(t, img, area); bytes.Equal(before, after) {
				t.Errorf("key material of the removed slot was not wiped")
			}
			if err := d.RemoveSlot(slot, drk); !errors.Is(err, ErrSlotInactive) {
				t.Errorf("second removal: err = %v, want ErrSlotInactive", err)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func slotArea(t *testing.T, d *Device, slot int) [2]int64 {
	t.Helper()
	if d.v1 != nil {
		return [2]int64{int64(d.v1.slots[slot].offset) * sectorSize, int64(afSize(int(d.v1.keyBytes)))}
	}
	k := d.v2.meta.keyslots[slot]
	return [2]int64{int64(k.areaOffset), int64(k.areaSize)}
}

func readRange(t *testing.T, img string, r [2]int64) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, r[1])
	if _, err := f.ReadAt(b, r[0]); err != nil {
		t.Fatal(err)
	}
	return b
}

// goheads must write what cryptsetup luksAddKey writes for the same
// request: same LUKS1 header bytes and same LUKS2 binary headers and JSON,
// apart from the random salt of the new slot.
func TestSameBytesAsCryptsetup(t *testing.T) {
	cases := []struct {
		spec   volSpec
		csArgs []string
		kdf    KDF
	}{
		{specLUKS1, []string{"--pbkdf-force-iterations", "1000"}, KDF{}},
		{specPBKDF, []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}, KDF{}},
		{specArgon, []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}, KDF{}},
		{specArgon, []string{"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "1024", "--pbkdf-parallel", "1"},
			KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 1024, Threads: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.spec.name+"-"+tc.csArgs[1], func(t *testing.T) {
			duk := randomKey(t)
			ours := volume(t, tc.spec)
			theirs := filepath.Join(t.TempDir(), "cryptsetup.img")
			copyFile(t, ours, theirs)
			d := openT(t, ours, Options{})
			slot := d.DUKSlot()
			args := append([]string{"luksAddKey", "--batch-mode", "--new-key-slot", itoa(slot)}, tc.csArgs...)
			mustRun(t, drk, append(args, theirs, writeKeyFile(t, duk), "-d", "-")...)
			if err := d.AddKey(drk, duk, slot, AddOptions{KDF: tc.kdf}); err != nil {
				t.Fatal(err)
			}
			a, b := headerBytes(t, ours, d), headerBytes(t, theirs, d)
			if d.Version() == 1 {
				o := luks1SlotOff + slot*luks1SlotLen + 8
				clear(a[o : o+saltSize])
				clear(b[o : o+saltSize])
				if !bytes.Equal(a, b) {
					t.Fatalf("LUKS1 header differs from cryptsetup's beyond the slot salt:\n ours %x\ntheirs %x", a, b)
				}
				return
			}
			hs := int(d.v2.bin.hdrSize)
			for _, off := range []int{0, hs} {
				for _, x := range [][]byte{a, b} {
					clear(x[off+luks2CsumOff : off+luks2CsumOff+luks2CsumLen])
				}
				if !bytes.Equal(a[off:off+luks2BinLen], b[off:off+luks2BinLen]) {
					t.Errorf("binary header at %#x differs from cryptsetup's", off)
				}
				ja, jb := maskSalt(a[off+luks2BinLen:off+hs], slot), maskSalt(b[off+luks2BinLen:off+hs], slot)
				if ja != jb {
					t.Errorf("JSON at %#x differs from cryptsetup's:\n ours %s\ntheirs %s", off, ja, jb)
				}
			}
		})
	}
}

func headerBytes(t *testing.T, img string, d *Device) []byte {
	n := int64(luks1HeaderLen)
	if d.v2 != nil {
		n = int64(2 * d.v2.bin.hdrSize)
	}
	return readRange(t, img, [2]int64{0, n})
}

// maskSalt returns the JSON text with the new slot's kdf salt replaced.
func maskSalt(area []byte, slot int) string {
	text := string(area[:bytes.IndexByte(area, 0)])
	re := regexp.MustCompile(`("` + itoa(slot) + `":\{.*?"salt":")[^"]*"`)
	return re.ReplaceAllString(text, `${1}SALT"`)
}

func TestHeaderBackupMatchesCryptsetup(t *testing.T) {
	for _, s := range append(allSpecs, specESSIV) {
		t.Run(s.name, func(t *testing.T) {
			img := volume(t, s)
			check := func(when string) {
				t.Helper()
				f := filepath.Join(t.TempDir(), "backup")
				mustRun(t, nil, "luksHeaderBackup", img, "--header-backup-file", f)
				want, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				got, err := HeaderBackup(img)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: HeaderBackup gave %d bytes, cryptsetup %d; equal prefix %d", when, len(got), len(want), commonPrefix(got, want))
				}
			}
			check("fresh volume")
			d := openT(t, img, Options{})
			if err := d.AddKey(drk, randomKey(t), d.DUKSlot(), AddOptions{}); err != nil {
				t.Fatal(err)
			}
			check("after AddKey")
		})
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// TestUnlockTime reports what unlocking costs for the slots goheads adds
// (DefaultKDF) next to the DRK slots cryptsetup made.
func TestUnlockTime(t *testing.T) {
	for _, s := range allSpecs {
		t.Run(s.name, func(t *testing.T) {
			img := volume(t, s)
			d := openT(t, img, Options{})
			duk := randomKey(t)
			if err := d.AddKey(drk, duk, d.DUKSlot(), AddOptions{}); err != nil {
				t.Fatal(err)
			}
			timeIt := func(key []byte, slot int) time.Duration {
				start := time.Now()
				u, err := d.UnlockSlot(key, slot)
				el := time.Since(start)
				if err != nil {
					t.Fatal(err)
				}
				u.Close()
				return el
			}
			dukT, drkT := timeIt(duk, d.DUKSlot()), timeIt(drk, 0)
			t.Logf("unlock time %s: new DUK slot %d (%s): %v; DRK slot 0 (%s): %v",
				s.name, d.DUKSlot(), d.Slots()[len(d.Slots())-1].KDF, dukT, d.Slots()[0].KDF, drkT)
			if dukT > time.Second {
				t.Errorf("unlocking the DUK slot took %v, expected milliseconds", dukT)
			}
		})
	}
}

func TestKDFMemoryCap(t *testing.T) {
	img := volume(t, specArgon)
	d := openT(t, img, Options{MaxKDFMemoryKiB: 32768})
	_, err := d.Unlock(drk)
	var tooBig *KDFTooExpensiveError
	if !errors.As(err, &tooBig) || !errors.Is(err, ErrKDFTooExpensive) {
		t.Fatalf("err = %v, want *KDFTooExpensiveError", err)
	}
	if tooBig.Slot != 0 || tooBig.MemoryKiB != 65536 || tooBig.LimitKiB != 32768 {
		t.Errorf("error details %+v", tooBig)
	}
	t.Log(err)
	// A cheap slot is still usable under the cap.
	d2 := openT(t, img, Options{})
	duk := randomKey(t)
	if err := d2.AddKey(drk, duk, d2.DUKSlot(), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	d = openT(t, img, Options{MaxKDFMemoryKiB: 32768})
	u, err := d.Unlock(duk)
	if err != nil {
		t.Fatalf("DUK (pbkdf2) under a 32 MiB cap: %v", err)
	}
	defer u.Close()
	// And goheads will not write an Argon2 slot above the cap.
	err = u.AddKey(randomKey(t), 5, AddOptions{KDF: KDF{Type: KDFArgon2id, MemoryKiB: 65536}})
	if !errors.As(err, &tooBig) || tooBig.MemoryKiB != 65536 {
		t.Errorf("AddKey with 64 MiB of Argon2 memory under a 32 MiB cap: err = %v, want *KDFTooExpensiveError", err)
	}
	if err := u.AddKey(randomKey(t), 5, AddOptions{KDF: KDF{Type: KDFArgon2id, MemoryKiB: 8192, Threads: 5}}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("AddKey with 5 Argon2 threads: err = %v, want ErrUnsupported (cryptsetup allows 4)", err)
	}
}

func TestSlotPolicy(t *testing.T) {
	for _, s := range []volSpec{specLUKS1, specPBKDF} {
		t.Run(s.name, func(t *testing.T) {
			img := volume(t, s)
			user2 := []byte("second user passphrase")
			other := []byte("third passphrase")
			// cryptsetup puts a second passphrase in slot 1, a third in 2.
			mustRun(t, drk, "luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img, writeKeyFile(t, user2), "-d", "-")
			mustRun(t, drk, "luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img, writeKeyFile(t, other), "-d", "-")
			d := openT(t, img, Options{})
			u, err := d.Unlock(drk)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			plan, err := d.PlanDUK(u.Slot())
			if err != nil {
				t.Fatal(err)
			}
			want := DUKPlan{Slot: d.DUKSlot(), Ask: []SlotInUseError{{Slot: 1, LegacyDUK: true}, {Slot: 2}}}
			if plan.Slot != want.Slot || plan.Replaces || len(plan.Ask) != 2 || plan.Ask[0] != want.Ask[0] || plan.Ask[1] != want.Ask[1] {
				t.Fatalf("PlanDUK = %+v, want %+v", plan, want)
			}
			// Adding into another user's slot needs the caller's consent.
			err = u.AddKey(randomKey(t), 1, AddOptions{})
			var inUse *SlotInUseError
			if !errors.As(err, &inUse) || inUse.Slot != 1 || !inUse.LegacyDUK || !errors.Is(err, ErrSlotInUse) {
				t.Fatalf("AddKey into slot 1: err = %v, want *SlotInUseError{1, legacy}", err)
			}
			if err := csTestKey(img, user2, 1); err != nil {
				t.Fatalf("refused AddKey damaged slot 1: %v", err)
			}
			if err := u.AddKey(randomKey(t), 0, AddOptions{Overwrite: true}); !errors.Is(err, ErrRecoverySlot) {
				t.Fatalf("AddKey over the DRK slot: err = %v, want ErrRecoverySlot", err)
			}
			// The DUK slot is replaced silently, as Heads does.
			first, second := randomKey(t), randomKey(t)
			if err := u.AddKey(first, d.DUKSlot(), AddOptions{}); err != nil {
				t.Fatal(err)
			}
			if p, _ := d.PlanDUK(0); !p.Replaces {
				t.Errorf("PlanDUK after adding a DUK: Replaces = false")
			}
			if err := u.AddKey(second, d.DUKSlot(), AddOptions{}); err != nil {
				t.Fatalf("replacing the DUK slot: %v", err)
			}
			if csTestKey(img, first, -1) == nil || csTestKey(img, second, d.DUKSlot()) != nil {
				t.Errorf("after replacement the old DUK must fail and the new one open")
			}
			// Confirmed overwrite of slot 2.
			if err := u.AddKey(randomKey(t), 2, AddOptions{Overwrite: true}); err != nil {
				t.Fatal(err)
			}
			if csTestKey(img, other, -1) == nil {
				t.Errorf("overwritten slot 2 still opens with its old passphrase")
			}
			if _, err := d.PlanDUK(d.DUKSlot()); !errors.Is(err, ErrRecoverySlot) {
				t.Errorf("PlanDUK with the DRK in the DUK slot: err = %v, want ErrRecoverySlot", err)
			}
		})
	}
}

func TestChangedOnDisk(t *testing.T) {
	for _, s := range []volSpec{specLUKS1, specPBKDF} {
		t.Run(s.name, func(t *testing.T) {
			img := volume(t, s)
			d := openT(t, img, Options{})
			u, err := d.Unlock(drk)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			mustRun(t, drk, "luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img, writeKeyFile(t, []byte("x")), "-d", "-")
			if err := u.AddKey(randomKey(t), d.DUKSlot(), AddOptions{}); !errors.Is(err, ErrChangedOnDisk) {
				t.Fatalf("err = %v, want ErrChangedOnDisk", err)
			}
			if cs := cryptsetupSlots(t, img); !equalInts(cs, []int{0, 1}) {
				t.Errorf("slots %v after the refused write, want [0 1]", cs)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	img := volume(t, specPBKDF)
	d := openT(t, img, Options{ReadOnly: true})
	if err := d.AddKey(drk, randomKey(t), 31, AddOptions{}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("err = %v, want ErrReadOnly", err)
	}
}

// A LUKS2 header whose primary copy is destroyed still opens from the
// secondary, as with cryptsetup.
func TestLUKS2SecondaryFallback(t *testing.T) {
	img := volume(t, specPBKDF)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := openT(t, img, Options{})
	if _, _, err := d.VolumeKey(drk); err != nil {
		t.Fatalf("unlock from the secondary header: %v", err)
	}
	// Our next write repairs the primary: cryptsetup sees both copies.
	if err := d.AddKey(drk, randomKey(t), 31, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, nil, "luksDump", img); !strings.Contains(out, "31: luks2") {
		t.Errorf("luksDump after repair:\n%s", out)
	}
	if b := readRange(t, img, [2]int64{0, 6}); !bytes.Equal(b, luksMagic) {
		t.Errorf("primary header not rewritten")
	}
}

func TestNotLUKS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zero.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, Options{}); !errors.Is(err, ErrNotLUKS) {
		t.Fatalf("err = %v, want ErrNotLUKS", err)
	}
}
