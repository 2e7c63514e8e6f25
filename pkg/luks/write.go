package luks

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
)

// Writing keyslots.
//
// Crash safety: at every byte of every write, the volume must still open
// with the passphrase that authorized the change (the Disk Recovery Key).
// That holds because nothing the DRK slot depends on is ever rewritten with
// different content, and each header is rewritten only after what it points
// to is durable:
//
//   - AddKey writes the new key material into an area no header references
//     yet (LUKS2: a free gap; LUKS1: the slot's own area, whose slot is
//     disabled), then Syncs, and only then rewrites the header.
//   - LUKS1 has one header copy. Its rewrite changes only the target key
//     slot's 48 bytes; every other byte is rewritten with its own value, so
//     a torn write yields either the old slot (disabled) or a half-written
//     new one, which cryptsetup tries, fails on, and passes over.
//   - LUKS2 has two copies, each with a seqid and a checksum over the whole
//     copy; a reader uses the valid copy with the higher seqid
//     (LUKS2_disk_hdr_read). We write the secondary copy, Sync, then the
//     primary, Sync, both with seqid+1. A cut inside the secondary leaves a
//     bad secondary and the old, valid primary; a cut inside the primary
//     leaves the new, valid secondary (higher seqid) and a bad primary.
//     cryptsetup 2.6 writes the two copies in the other order (primary
//     first), which is equally safe by the same argument; goheads writes the
//     secondary first so that the copy at offset 0, the only one that
//     simpler readers (luks.go, blkid, old tools) look at, stays untouched
//     until the new metadata is already durable elsewhere.
//   - RemoveSlot wipes the key material first (cryptsetup does the same),
//     then drops the slot from the header; in between, the slot is listed
//     but opens with nothing, which harms no other slot.
//
// CONTRIBUTING asks for staged, atomic writes (temp file, fsync, rename).
// A block device has no rename; the ordering above, with a Sync after each
// step, is the equivalent, and LUKS2's two checksummed copies are its
// journal. If a failed write changed header bytes, the Device refuses
// further writes (ErrChangedOnDisk): Open the device again.
//
// The tests cut the writes at every write boundary and at hundreds of byte
// offsets inside them and check with the real cryptsetup that the DRK still
// opens the volume.

// AddOptions controls AddKey.
type AddOptions struct {
	// KDF for the new slot; zero value: DefaultKDF. LUKS1 supports only
	// pbkdf2 with the header's hash.
	KDF KDF
	// Overwrite allows replacing an active slot other than DUKSlot (the
	// user confirmed). The DUK slot itself is replaced without asking, as
	// Heads does. The slot that authorized the change never is.
	Overwrite bool
}

// AddKey opens the volume with existing (the Disk Recovery Key) and stores
// newKey in slot. See (*Unlocked).AddKey.
func (d *Device) AddKey(existing, newKey []byte, slot int, opts AddOptions) error {
	if d.opts.ReadOnly { // before spending a KDF run
		return fmt.Errorf("%s: %w", d.path, ErrReadOnly)
	}
	u, err := d.Unlock(existing)
	if err != nil {
		return err
	}
	defer u.Close()
	return u.AddKey(newKey, slot, opts)
}

// RemoveSlot destroys a keyslot after checking that remaining opens another
// slot, so the volume stays openable (what `cryptsetup luksKillSlot
// --key-file` checks).
func (d *Device) RemoveSlot(slot int, remaining []byte) error {
	if err := d.checkSlot(slot); err != nil {
		return err
	}
	if !d.active(slot) {
		return fmt.Errorf("%s: key slot %d: %w", d.path, slot, ErrSlotInactive)
	}
	if d.opts.ReadOnly {
		return fmt.Errorf("%s: %w", d.path, ErrReadOnly)
	}
	u, err := d.unlock(remaining, -1, slot)
	if err != nil {
		return err
	}
	defer u.Close()
	return u.RemoveSlot(slot)
}

func (u *Unlocked) usable() error {
	if u.key == nil {
		return ErrClosed
	}
	if u.d.opts.ReadOnly {
		return fmt.Errorf("%s: %w", u.d.path, ErrReadOnly)
	}
	return nil
}

// AddKey stores newKey (a passphrase or key file contents, e.g. Heads' 128
// random bytes) in slot, wrapping the volume key. If slot is active it is
// first removed, but only when slot is DUKSlot or opts.Overwrite is set;
// otherwise the result is a *SlotInUseError for the caller to turn into a
// question. The slot that opened u is never overwritten (ErrRecoverySlot).
// After writing, the header is read back and the new slot is checked to
// open with newKey.
func (u *Unlocked) AddKey(newKey []byte, slot int, opts AddOptions) error {
	d := u.d
	if err := u.usable(); err != nil {
		return err
	}
	if err := d.checkSlot(slot); err != nil {
		return err
	}
	if slot == u.slot {
		return fmt.Errorf("%s: key slot %d holds the passphrase used to authorize this change: %w", d.path, slot, ErrRecoverySlot)
	}
	if len(newKey) == 0 {
		return fmt.Errorf("%s: refusing to add an empty key to key slot %d", d.path, slot)
	}
	kdf, err := d.newSlotKDF(opts.KDF)
	if err != nil {
		return err
	}
	if d.active(slot) {
		if slot != d.DUKSlot() && !opts.Overwrite {
			return fmt.Errorf("%s: %w", d.path, &SlotInUseError{Slot: slot, LegacyDUK: slot == 1})
		}
		if err := u.RemoveSlot(slot); err != nil {
			return fmt.Errorf("replace key slot %d: %w", slot, err)
		}
	}
	if err := d.checkUnchanged(); err != nil {
		return err
	}
	if d.v1 != nil {
		err = u.addLUKS1(newKey, slot, kdf)
	} else {
		err = u.addLUKS2(newKey, slot, kdf)
	}
	if err != nil {
		return err
	}
	if err := d.load(); err != nil {
		return fmt.Errorf("re-read header after adding key slot %d: %w", slot, err)
	}
	check, err := d.UnlockSlot(newKey, slot)
	if err != nil {
		return fmt.Errorf("%s: key slot %d was written but does not open with the new key: %w", d.path, slot, err)
	}
	check.Close()
	return nil
}

// newSlotKDF fills defaults and enforces cryptsetup's limits, so every slot
// goheads writes is one cryptsetup would write too.
func (d *Device) newSlotKDF(k KDF) (KDF, error) {
	if k == (KDF{}) {
		k = DefaultKDF
	}
	if d.v1 != nil {
		if k.Type != KDFPBKDF2 {
			return k, fmt.Errorf("%s: LUKS1 key slots use pbkdf2, not %q: %w", d.path, k.Type, ErrUnsupported)
		}
		k.Hash = d.v1.hashSpec // LUKS1 has one hash for everything
	}
	switch k.Type {
	case KDFPBKDF2:
		if k.Hash == "" {
			k.Hash = DefaultKDF.Hash
		}
		if _, err := hashByName(k.Hash); err != nil {
			return k, err
		}
		k.Iterations = max(k.Iterations, minPBKDF2Iterations)
		k.Time, k.MemoryKiB, k.Threads = 0, 0, 0
	case KDFArgon2i, KDFArgon2id:
		k.Hash, k.Iterations = "", 0
		k.Time = max(k.Time, minArgon2Time)
		k.MemoryKiB = max(k.MemoryKiB, minArgon2MemoryKiB)
		k.Threads = max(k.Threads, 1)
		if k.MemoryKiB > maxArgon2MemoryKiB || k.Threads > maxArgon2Threads {
			return k, fmt.Errorf("%s: %s: memory %d KiB / %d threads above cryptsetup's limits (%d KiB, %d): %w", d.path, k.Type, k.MemoryKiB, k.Threads, maxArgon2MemoryKiB, maxArgon2Threads, ErrUnsupported)
		}
		if uint64(k.MemoryKiB) > d.limit {
			return k, fmt.Errorf("%s: new slot: %w", d.path, &KDFTooExpensiveError{Slot: -1, MemoryKiB: k.MemoryKiB, LimitKiB: d.limit})
		}
	default:
		return k, fmt.Errorf("%s: kdf %q: %w", d.path, k.Type, ErrUnsupported)
	}
	return k, nil
}

// makeMaterial derives the slot key from newKey, AF-splits the volume key
// and encrypts the result: the bytes to store in the keyslot area.
func makeMaterial(vk, newKey, salt []byte, kdf KDF, slotKeyLen int, cipherName, mode, afHash string) ([]byte, error) {
	afh, err := hashByName(afHash)
	if err != nil {
		return nil, err
	}
	dk, err := deriveKey(kdf, salt, newKey, slotKeyLen)
	if err != nil {
		return nil, err
	}
	defer wipe(dk)
	c, err := newSectorCipher(cipherName, mode, dk)
	if err != nil {
		return nil, err
	}
	// AF_split: stripes-1 random blocks, the last one computed; the tail of
	// the last sector stays zero, as in cryptsetup's zeroed buffer.
	buf := make([]byte, afSize(len(vk)))
	if _, err := rand.Read(buf[:(stripes-1)*len(vk)]); err != nil {
		return nil, err
	}
	afSplit(vk, buf[:stripes*len(vk)], stripes, afh)
	cryptSectors(c, buf, true)
	return buf, nil
}

func randomSalt() ([]byte, error) {
	s := make([]byte, saltSize)
	_, err := rand.Read(s)
	return s, err
}

func (u *Unlocked) addLUKS1(newKey []byte, slot int, kdf KDF) error {
	d := u.d
	h := d.v1
	salt, err := randomSalt()
	if err != nil {
		return err
	}
	material, err := makeMaterial(u.key, newKey, salt, kdf, int(h.keyBytes), h.cipherName, h.cipherMode, h.hashSpec)
	if err != nil {
		return fmt.Errorf("%s key slot %d: %w", d.path, slot, err)
	}
	defer wipe(material)
	if err := d.writeSync(material, int64(h.slots[slot].offset)*sectorSize, fmt.Sprintf("key slot %d material", slot)); err != nil {
		return err
	}
	nh := *h
	s := &nh.slots[slot]
	s.active = luks1Enabled
	s.iterations = kdf.Iterations
	copy(s.salt[:], salt)
	return d.writeSync(nh.marshal(), 0, "LUKS1 header")
}

// keyslotCipher is crypt_keyslot_get_encryption for a new LUKS2 slot: the
// data segment's cipher and key size when it can encrypt a keyslot, else
// cryptsetup's default aes-xts-plain64 with a 512-bit key.
func (s *luks2State) keyslotCipher(vkLen int) (spec string, keyLen int) {
	if seg := s.meta.segments[0]; seg != nil && seg.typ == "crypt" && !seg.integrity {
		if name, mode, err := splitCipherSpec(seg.encryption); err == nil {
			if _, err := newSectorCipher(name, mode, make([]byte, vkLen)); err == nil {
				return seg.encryption, vkLen
			}
		}
	}
	return "aes-xts-plain64", 64
}

func (u *Unlocked) addLUKS2(newKey []byte, slot int, kdf KDF) error {
	d := u.d
	s := d.v2
	if err := s.writable(d.path); err != nil {
		return err
	}
	if s.meta.digests[u.digest] == nil {
		return fmt.Errorf("%s: digest %d of the unlocked key is gone: %w", d.path, u.digest, ErrChangedOnDisk)
	}
	off, size, err := s.meta.findAreaGap(len(u.key))
	if err != nil {
		return fmt.Errorf("%s: %w", d.path, err)
	}
	salt, err := randomSalt()
	if err != nil {
		return err
	}
	spec, keyLen := s.keyslotCipher(len(u.key))
	afHash := "sha256" // cryptsetup: the pbkdf hash, or sha256 for argon2
	if kdf.Type == KDFPBKDF2 {
		afHash = kdf.Hash
	}
	k := &luks2Keyslot{typ: "luks2", keySize: len(u.key), afHash: afHash, areaOffset: off, areaSize: size,
		areaEnc: spec, areaKeySize: keyLen, kdf: kdf, salt: salt}
	root := s.root.clone()
	addKeyslotJSON(root, slot, u.digest, k)
	text, err := s.checkedText(d.path, root)
	if err != nil {
		return err
	}
	name, mode, _ := splitCipherSpec(spec)
	material, err := makeMaterial(u.key, newKey, salt, kdf, keyLen, name, mode, afHash)
	if err != nil {
		return fmt.Errorf("%s key slot %d: %w", d.path, slot, err)
	}
	defer wipe(material)
	if err := d.writeSync(material, int64(off), fmt.Sprintf("key slot %d material", slot)); err != nil {
		return err
	}
	return d.writeLUKS2(text)
}

// writable refuses metadata with mandatory requirements: cryptsetup sets
// them during reencryption and for features it must understand before
// touching the header. Better to send the user to cryptsetup.
func (s *luks2State) writable(path string) error {
	if len(s.meta.requirements) > 0 {
		return fmt.Errorf("%s: LUKS2 metadata requires %s (reencryption in progress?); finish that with cryptsetup first: %w",
			path, strings.Join(s.meta.requirements, ", "), ErrUnsupported)
	}
	return nil
}

// checkedText serializes the edited tree and validates it with the same
// code that reads headers, so goheads never writes what it would refuse to
// read.
func (s *luks2State) checkedText(path string, root *jnode) (string, error) {
	text := string(root.encode(nil))
	if uint64(len(text)) > s.meta.jsonSize-1 {
		return "", fmt.Errorf("%s: LUKS2 JSON would be %d bytes, the area holds %d: %w", path, len(text), s.meta.jsonSize-1, ErrNoSpace)
	}
	area := make([]byte, s.meta.jsonSize)
	copy(area, text)
	if _, _, _, err := parseJSONArea(path, luks2BinLen, area); err != nil {
		return "", fmt.Errorf("new LUKS2 metadata fails validation (bug): %w", err)
	}
	return text, nil
}

// writeLUKS2 writes both header copies with seqid+1: secondary, Sync,
// primary, Sync (see the crash-safety note at the top of this file).
func (d *Device) writeLUKS2(text string) error {
	s := d.v2
	area := make([]byte, s.meta.jsonSize)
	copy(area, text)
	seq := s.bin.seqid + 1
	for _, secondary := range []bool{true, false} {
		b := s.bin
		b.seqid = seq
		b.hdrOffset = 0
		b.salt = s.salts[0]
		what := "primary LUKS2 header"
		if secondary {
			b.hdrOffset = b.hdrSize
			b.salt = s.salts[1]
			what = "secondary LUKS2 header"
		}
		bin := b.marshal(secondary)
		sum, err := luks2Checksum(b.csumAlg, bin, area)
		if err != nil {
			return err
		}
		copy(bin[luks2CsumOff:], sum)
		if err := d.writeSync(append(bin, area...), int64(b.hdrOffset), what); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) writeSync(b []byte, off int64, what string) error {
	if _, err := d.st.WriteAt(b, off); err != nil {
		return fmt.Errorf("write %s of %s at %#x: %w", what, d.path, off, err)
	}
	if err := d.st.Sync(); err != nil {
		return fmt.Errorf("sync %s after writing %s: %w", d.path, what, err)
	}
	return nil
}

// checkUnchanged re-reads the header and compares it with what was parsed
// (cryptsetup's LUKS2_check_sequence_id, for both formats): another tool
// writing in between must not have its change silently overwritten.
func (d *Device) checkUnchanged() error {
	var want []byte
	if d.v1 != nil {
		want = d.v1.raw[:]
	} else {
		want = d.v2.raw
	}
	got := make([]byte, len(want))
	if err := d.readAt(got, 0, "LUKS header"); err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: %w", d.path, ErrChangedOnDisk)
	}
	return nil
}

// RemoveSlot destroys slot: its key material is overwritten with random
// data and synced, then the slot is dropped from the header (LUKS1: disabled
// with salt and iterations zeroed, as cryptsetup does; LUKS2: deleted and
// unassigned from digests and tokens). The slot that opened u is refused.
//
// One random pass, as cryptsetup uses on non-rotational devices: on flash
// the translation layer remaps writes, so more passes over the same logical
// sectors add nothing.
func (u *Unlocked) RemoveSlot(slot int) error {
	d := u.d
	if err := u.usable(); err != nil {
		return err
	}
	if err := d.checkSlot(slot); err != nil {
		return err
	}
	if slot == u.slot {
		return fmt.Errorf("%s: key slot %d holds the passphrase used to authorize this change: %w", d.path, slot, ErrRecoverySlot)
	}
	if !d.active(slot) {
		return fmt.Errorf("%s: key slot %d: %w", d.path, slot, ErrSlotInactive)
	}
	if err := d.checkUnchanged(); err != nil {
		return err
	}
	var off, size int64
	var text string
	if h := d.v1; h != nil {
		off, size = int64(h.slots[slot].offset)*sectorSize, int64(afSize(int(h.keyBytes)))
	} else {
		if err := d.v2.writable(d.path); err != nil {
			return err
		}
		k := d.v2.meta.keyslots[slot]
		off, size = int64(k.areaOffset), int64(k.areaSize)
		root := d.v2.root.clone()
		removeKeyslotJSON(root, slot)
		var err error
		if text, err = d.v2.checkedText(d.path, root); err != nil {
			return err
		}
	}
	junk := make([]byte, size)
	if _, err := rand.Read(junk); err != nil {
		return err
	}
	if err := d.writeSync(junk, off, fmt.Sprintf("wipe of key slot %d", slot)); err != nil {
		return err
	}
	if h := d.v1; h != nil {
		nh := *h
		nh.slots[slot].active = luks1Disabled
		nh.slots[slot].iterations = 0
		nh.slots[slot].salt = [saltSize]byte{}
		if err := d.writeSync(nh.marshal(), 0, "LUKS1 header"); err != nil {
			return err
		}
	} else if err := d.writeLUKS2(text); err != nil {
		return err
	}
	if err := d.load(); err != nil {
		return fmt.Errorf("re-read header after removing key slot %d: %w", slot, err)
	}
	if d.active(slot) {
		return fmt.Errorf("%s: key slot %d still active after removal: %w", d.path, slot, ErrChangedOnDisk)
	}
	return nil
}

// DUKPlan is what Heads' kexec-seal-key.sh does to one device's keyslots
// before adding the Disk Unlock Key, as data for the menu to act on.
type DUKPlan struct {
	// Slot receives the DUK: DUKSlot(), 7 on LUKS1, 31 on LUKS2.
	Slot int
	// Replaces: Slot is active; AddKey replaces it without asking, as
	// Heads does (it is the slot Heads reserves for its own key).
	Replaces bool
	// Ask lists every other active slot except the DRK slot. Heads asks
	// about each before wiping it, except legacy slot 1, which it wipes
	// silently. goheads asks about slot 1 too (LegacyDUK set, so the
	// question can explain): slot 1 is exactly where `cryptsetup
	// luksAddKey` puts a user's second passphrase, and wiping that
	// without a word can lock the user out if the DRK is later lost.
	Ask []SlotInUseError
}

// PlanDUK returns the slot policy for adding a DUK on a device whose Disk
// Recovery Key is in drkSlot (from Unlock). It fails with ErrRecoverySlot if
// the DRK occupies the DUK slot itself: Heads would fail there too (its
// luksAddKey finds the slot taken).
func (d *Device) PlanDUK(drkSlot int) (DUKPlan, error) {
	p := DUKPlan{Slot: d.DUKSlot()}
	if err := d.checkSlot(drkSlot); err != nil {
		return p, err
	}
	if drkSlot == p.Slot {
		return p, fmt.Errorf("%s: the Disk Recovery Key is in key slot %d, the slot Heads reserves for the Disk Unlock Key; add the recovery passphrase to another slot (cryptsetup luksAddKey) and remove slot %d first: %w",
			d.path, drkSlot, drkSlot, ErrRecoverySlot)
	}
	for i := range d.maxSlots() {
		if !d.active(i) || i == drkSlot {
			continue
		}
		if i == p.Slot {
			p.Replaces = true
			continue
		}
		p.Ask = append(p.Ask, SlotInUseError{Slot: i, LegacyDUK: i == 1})
	}
	return p, nil
}

// HeaderBackup returns exactly the bytes `cryptsetup luksHeaderBackup`
// writes for the device at path: what Heads hashes into PCR 6 and
// kexec_lukshdr_hash.txt (qubes-measure-luks.sh). See (*Device).HeaderBackup.
func HeaderBackup(path string) ([]byte, error) {
	d, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.HeaderBackup()
}

// HeaderBackup reads the header area as luksHeaderBackup saves it:
//
//   - LUKS1 (LUKS_hdr_backup): from 0 to the end of the last keyslot area,
//     with the unused bytes between the 1024-byte header and the first
//     keyslot (at 4096) zeroed.
//   - LUKS2 (LUKS2_hdr_backup): both header copies and the keyslots area,
//     2*(json_size+4096)+keyslots_size bytes, raw.
//
// Both are padded with zeros to a multiple of the page size. Unlike
// cryptsetup, goheads does not first repair a LUKS2 copy that is stale
// after an interrupted write (cryptsetup rewrites it before the backup), so
// the bytes differ in that case only; the measurement then changes, which
// is the honest outcome for a header that changed.
func (d *Device) HeaderBackup() ([]byte, error) {
	var n uint64
	if h := d.v1; h != nil {
		n = h.deviceSectors() * sectorSize
		if n < luks1AlignSlots {
			return nil, &HeaderError{Path: d.path, Offset: 0, Field: "key slots", Msg: fmt.Sprintf("header and key material end at %d, before %d", n, luks1AlignSlots)}
		}
		// cryptsetup calls anything beyond 8 x 16 MiB of key material a
		// bogus header (LUKS_wipe_header_areas); do not allocate for it.
		if n > luks1Slots*luks1MaxSlotArea {
			return nil, &HeaderError{Path: d.path, Offset: luks1SlotOff + 40, Field: "key slots", Msg: fmt.Sprintf("key material ends at %d, beyond %d", n, luks1Slots*luks1MaxSlotArea)}
		}
	} else {
		n = d.v2.meta.hdrAndAreas()
	}
	page := uint64(os.Getpagesize())
	buf := make([]byte, (n+page-1)/page*page)
	if err := d.readAt(buf[:n], 0, "LUKS header area"); err != nil {
		return nil, err
	}
	if h := d.v1; h != nil && uint64(h.slots[0].offset)*sectorSize == luks1AlignSlots {
		clear(buf[luks1HeaderLen:luks1AlignSlots])
	}
	return buf, nil
}
