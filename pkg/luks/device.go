package luks

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Storage is what a Device reads and writes: a block device or image file.
// Every write phase ends with Sync, so a Storage that stops persisting at
// some byte (a power cut) leaves a prefix of the writes on disk; the fault
// injection tests use exactly that model.
type Storage interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Options for Open and OpenStorage. The zero value opens read-write with the
// default Argon2 memory limit.
type Options struct {
	// ReadOnly refuses every write (listing, unlocking, header backup only).
	ReadOnly bool
	// MaxKDFMemoryKiB caps the Argon2 memory a keyslot may demand before
	// goheads tries it; a slot above the cap is skipped and, if nothing else
	// matched, reported as *KDFTooExpensiveError. 0 means
	// DefaultMaxKDFMemoryKiB().
	MaxKDFMemoryKiB uint64
}

// KDF types as written in LUKS2 metadata (LUKS1 is always pbkdf2).
const (
	KDFPBKDF2   = "pbkdf2"
	KDFArgon2i  = "argon2i"
	KDFArgon2id = "argon2id"
)

// KDF describes a keyslot's passphrase hashing.
type KDF struct {
	Type       string // KDFPBKDF2, KDFArgon2i or KDFArgon2id
	Hash       string // pbkdf2 only: sha256, sha1, sha512...
	Iterations uint32 // pbkdf2 only
	Time       uint32 // argon2 only: passes
	MemoryKiB  uint32 // argon2 only
	Threads    uint32 // argon2 only
}

func (k KDF) String() string {
	if k.Type == KDFPBKDF2 {
		return fmt.Sprintf("pbkdf2-%s, %d iterations", k.Hash, k.Iterations)
	}
	return fmt.Sprintf("%s, time %d, memory %d KiB, %d threads", k.Type, k.Time, k.MemoryKiB, k.Threads)
}

// Cryptsetup's KDF limits (crypt_pbkdf_get_limits in
// lib/crypto_backend/pbkdf_check.c); goheads never writes outside them, so
// cryptsetup accepts every slot it adds.
const (
	minPBKDF2Iterations = 1000
	minArgon2Time       = 4
	minArgon2MemoryKiB  = 32
	maxArgon2MemoryKiB  = 4 * 1024 * 1024
	maxArgon2Threads    = 4
)

// DefaultKDF is what AddKey uses when AddOptions.KDF is zero: PBKDF2-SHA256
// at cryptsetup's minimum of 1000 iterations (LUKS1: with the header's hash).
//
// The keys goheads adds are 128 random bytes (Heads' Disk Unlock Key), i.e.
// 1024 bits of entropy. A KDF only slows down guessing, and nobody guesses
// a 1024-bit key, so memory-hard or slow settings buy nothing, while every
// unlock in firmware (and every `cryptsetup open` trying slots in order)
// pays for them. PBKDF2 rather than Argon2: no memory at all, and every
// LUKS reader (cryptsetup, systemd, GRUB, luks.go) supports it. The KDF
// then costs well under a millisecond; a whole unlock of such a slot (read
// and merge the 256 KB of key material, check the volume's digest, whose
// cost cryptsetup set at format time) took 5-15 ms in TestUnlockTime.
var DefaultKDF = KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: minPBKDF2Iterations}

// Slot describes one keyslot.
type Slot struct {
	Index    int
	Active   bool   // LUKS1: enabled; LUKS2: present in the metadata
	Type     string // "luks1", or the LUKS2 keyslot type ("luks2", "reencrypt")
	KDF      KDF
	Priority int // LUKS2: 0 ignore, 1 normal, 2 preferred; LUKS1: always 1
	KeySize  int // volume key bytes
	// Invalid: LUKS1 state word neither enabled nor disabled (e.g. after a
	// torn header write). Such a slot opens with nothing, in cryptsetup as
	// here, and AddKey may overwrite it.
	Invalid bool
}

// Device is an open LUKS1 or LUKS2 volume. It is not safe for concurrent
// use; writes check that the header on disk is still the one read (see
// ErrChangedOnDisk), so two goheads processes cannot undo each other.
type Device struct {
	path   string
	st     Storage
	closer io.Closer
	opts   Options
	limit  uint64
	v1     *luks1Header
	v2     *luks2State
}

type luks2State struct {
	bin   luks2Bin // from the copy in use (seqid, uuid, labels, checksum algorithm)
	salts [2][luks2SaltLen]byte
	root  *jnode
	meta  *luks2Meta
	raw   []byte // [0, 2*hdr_size) as read, to detect concurrent changes
}

// DefaultMaxKDFMemoryKiB is half of physical RAM, at most 4 GiB: the bound
// cryptsetup itself puts on the Argon2 memory of new keyslots
// (adjusted_phys_memory in lib/utils_pbkdf.c: "OOM killer is too
// clever"), so a slot made by cryptsetup on this machine fits, and one that
// would push the firmware into the OOM killer is refused instead. Callers
// that know the firmware's budget better (goheads runs from RAM, next to
// its initramfs) pass Options.MaxKDFMemoryKiB.
func DefaultMaxKDFMemoryKiB() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return maxArgon2MemoryKiB
	}
	return min(uint64(si.Totalram)*uint64(si.Unit)/2/1024, maxArgon2MemoryKiB)
}

// Open opens the LUKS volume at path (a block device or an image file).
func Open(path string, opts Options) (*Device, error) {
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open LUKS device: %w", err)
	}
	d, err := OpenStorage(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.closer = f
	return d, nil
}

// OpenStorage reads the LUKS header from st; name is used in errors.
func OpenStorage(st Storage, name string, opts Options) (*Device, error) {
	d := &Device{path: name, st: st, opts: opts, limit: opts.MaxKDFMemoryKiB}
	if d.limit == 0 {
		d.limit = DefaultMaxKDFMemoryKiB()
	}
	if err := d.load(); err != nil {
		return nil, err
	}
	return d, nil
}

// Close closes the underlying file (when opened with Open).
func (d *Device) Close() error {
	if d.closer != nil {
		return d.closer.Close()
	}
	return nil
}

func (d *Device) readAt(b []byte, off int64, what string) error {
	n, err := d.st.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %s of %s at %#x: %w (device too small?)", what, d.path, off, err)
}

// load (re)reads the header. On failure the Device keeps its previous
// state, so a failed re-read after a write cannot leave it half-empty.
func (d *Device) load() error {
	hdr := make([]byte, luks2BinLen)
	if err := d.readAt(hdr, 0, "LUKS header"); err != nil {
		return err
	}
	if bytes.Equal(hdr[:6], luksMagic) && hdr[6] == 0 && hdr[7] == 1 {
		h, err := parseLUKS1(d.path, hdr)
		if err != nil {
			return err
		}
		// LUKS_check_device_size: the keyslot areas must be on the device.
		if err := d.readAt(make([]byte, 1), int64(h.deviceSectors())*sectorSize-1, "end of the LUKS1 key material"); err != nil {
			return err
		}
		d.v1, d.v2 = h, nil
		return nil
	}
	st, err := d.loadLUKS2(hdr)
	if err != nil {
		return err
	}
	d.v1, d.v2 = nil, st
	return nil
}

// loadLUKS2 follows LUKS2_disk_hdr_read: primary, then the secondary at the
// primary's hdr_size (or, if the primary is unusable, at every size LUKS2
// allows); both valid: higher seqid wins.
func (d *Device) loadLUKS2(hdr []byte) (*luks2State, error) {
	if bytes.Equal(hdr[:6], luksMagic) && (hdr[6] != 0 || hdr[7] != 2) {
		return nil, &HeaderError{Path: d.path, Offset: 6, Field: "version", Msg: fmt.Sprintf("%d, want 1 or 2", int(hdr[6])<<8|int(hdr[7]))}
	}
	p := readLUKS2Copy(d.path, d.st, 0, false)
	var s *luks2Copy
	if p.csumOK {
		s = readLUKS2Copy(d.path, d.st, p.bin.hdrSize, true)
	} else {
		for _, off := range luks2Hdr2Offsets {
			if s = readLUKS2Copy(d.path, d.st, off, true); s.csumOK {
				break
			}
		}
	}
	var use *luks2Copy
	switch {
	case p.err == nil && s.err == nil:
		use = p
		if s.bin.seqid > p.bin.seqid {
			use = s
		}
	case p.err == nil:
		use = p
	case s.err == nil:
		use = s
	default:
		if errors.Is(p.err, ErrNotLUKS) && errors.Is(s.err, ErrNotLUKS) {
			return nil, fmt.Errorf("%s: %w", d.path, ErrNotLUKS)
		}
		return nil, fmt.Errorf("no valid LUKS2 header copy: primary: %w; secondary: %w", p.err, s.err)
	}
	st := &luks2State{bin: use.bin, root: use.root, meta: use.meta}
	for i, c := range []*luks2Copy{p, s} {
		if c.err == nil {
			st.salts[i] = c.bin.salt
		} else if _, err := rand.Read(st.salts[i][:]); err != nil { // as cryptsetup's recovery does
			return nil, err
		}
	}
	if err := d.readAt(make([]byte, 1), int64(st.meta.hdrAndAreas())-1, "end of the LUKS2 keyslots area"); err != nil {
		return nil, err
	}
	st.raw = make([]byte, 2*st.bin.hdrSize)
	if err := d.readAt(st.raw, 0, "LUKS2 headers"); err != nil {
		return nil, err
	}
	return st, nil
}

// Path returns the device path given to Open.
func (d *Device) Path() string { return d.path }

// Version returns 1 or 2.
func (d *Device) Version() int {
	if d.v1 != nil {
		return 1
	}
	return 2
}

// UUID returns the volume UUID, as in /dev/disk/by-uuid and
// kexec_key_devices.txt.
func (d *Device) UUID() string {
	if d.v1 != nil {
		return d.v1.uuid
	}
	return d.v2.bin.uuid
}

func (d *Device) maxSlots() int {
	if d.v1 != nil {
		return luks1Slots
	}
	return luks2MaxSlots
}

// DUKSlot is where Heads puts its TPM Disk Unlock Key: the last slot, 7 on
// LUKS1 and 31 on LUKS2 (kexec-seal-key.sh).
func (d *Device) DUKSlot() int { return d.maxSlots() - 1 }

// Slots lists keyslots: all 8 for LUKS1 (Active tells which hold keys), the
// present ones for LUKS2, by index.
func (d *Device) Slots() []Slot {
	var out []Slot
	if h := d.v1; h != nil {
		for i, s := range h.slots {
			out = append(out, Slot{Index: i, Active: s.active == luks1Enabled, Invalid: s.active != luks1Enabled && s.active != luks1Disabled,
				Type: "luks1", Priority: 1, KeySize: int(h.keyBytes),
				KDF: KDF{Type: KDFPBKDF2, Hash: h.hashSpec, Iterations: s.iterations}})
		}
		return out
	}
	for i := range luks2MaxSlots {
		if k := d.v2.meta.keyslots[i]; k != nil {
			out = append(out, Slot{Index: i, Active: true, Type: k.typ, KDF: k.kdf, Priority: k.priority, KeySize: k.keySize})
		}
	}
	return out
}

func (d *Device) active(slot int) bool {
	if d.v1 != nil {
		return d.v1.slots[slot].active == luks1Enabled
	}
	return d.v2.meta.keyslots[slot] != nil
}

func (d *Device) checkSlot(slot int) error {
	if slot < 0 || slot >= d.maxSlots() {
		return fmt.Errorf("%s: key slot %d: %w (LUKS%d has slots 0-%d)", d.path, slot, ErrBadSlot, d.Version(), d.maxSlots()-1)
	}
	return nil
}

// Unlocked holds a volume key recovered from a passphrase, for key
// management without running the (possibly slow) KDF again. Close wipes it.
type Unlocked struct {
	d      *Device
	slot   int
	digest int // LUKS2 digest that verified the key
	key    []byte
}

// Slot is the keyslot the passphrase opened: Heads' Disk Recovery Key slot.
// AddKey and RemoveSlot refuse to touch it.
func (u *Unlocked) Slot() int { return u.slot }

// VolumeKey returns a copy of the volume key; the caller wipes it.
func (u *Unlocked) VolumeKey() []byte { return bytes.Clone(u.key) }

// Close wipes the volume key.
func (u *Unlocked) Close() {
	wipe(u.key)
	u.key = nil
}

// Unlock recovers the volume key with a passphrase or key file contents
// (the bytes as-is: Heads writes the DRK passphrase with `echo -n`). Slots
// are tried in cryptsetup's order: LUKS1 0-7; LUKS2 preferred-priority slots,
// then normal ones, in metadata order; priority-0 slots are skipped.
func (d *Device) Unlock(passphrase []byte) (*Unlocked, error) {
	return d.unlock(passphrase, -1, -1)
}

// UnlockSlot tries only the given slot (any priority).
func (d *Device) UnlockSlot(passphrase []byte, slot int) (*Unlocked, error) {
	if err := d.checkSlot(slot); err != nil {
		return nil, err
	}
	return d.unlock(passphrase, slot, -1)
}

// VolumeKey recovers the volume key and says which slot opened it. The
// caller wipes the key.
func (d *Device) VolumeKey(passphrase []byte) (key []byte, slot int, err error) {
	u, err := d.Unlock(passphrase)
	if err != nil {
		return nil, -1, err
	}
	defer u.Close()
	return u.VolumeKey(), u.slot, nil
}

func (d *Device) order(only int) []int {
	var out []int
	if d.v1 != nil {
		for i := range luks1Slots {
			if (only < 0 || i == only) && d.active(i) {
				out = append(out, i)
			}
		}
		return out
	}
	m := d.v2.meta
	for _, prio := range []int{2, 1, 0} {
		for _, id := range m.slotOrder {
			k := m.keyslots[id]
			if k.priority == prio && (only == id || only < 0 && prio > 0) {
				out = append(out, id)
			}
		}
	}
	return out
}

func (d *Device) unlock(passphrase []byte, only, exclude int) (*Unlocked, error) {
	var tooBig *KDFTooExpensiveError
	var errs []error
	for _, slot := range d.order(only) {
		if slot == exclude {
			continue
		}
		if d.v2 != nil {
			k := d.v2.meta.keyslots[slot]
			if (k.kdf.Type == KDFArgon2i || k.kdf.Type == KDFArgon2id) && uint64(k.kdf.MemoryKiB) > d.limit {
				if tooBig == nil {
					tooBig = &KDFTooExpensiveError{Slot: slot, MemoryKiB: k.kdf.MemoryKiB, LimitKiB: d.limit}
				}
				continue
			}
		}
		key, digest, err := d.openSlot(slot, passphrase)
		if err == nil {
			return &Unlocked{d: d, slot: slot, digest: digest, key: key}, nil
		}
		if !errors.Is(err, ErrWrongPassphrase) {
			errs = append(errs, err)
		}
	}
	if tooBig != nil {
		return nil, fmt.Errorf("%s: %w", d.path, tooBig)
	}
	what := "any key slot"
	if only >= 0 {
		what = "key slot " + strconv.Itoa(only)
	}
	return nil, errors.Join(append([]error{fmt.Errorf("%s: the passphrase does not open %s: %w", d.path, what, ErrWrongPassphrase)}, errs...)...)
}

// openSlot runs the KDF, decrypts and merges the key material and checks
// the volume key digest. It returns ErrWrongPassphrase when the digest does
// not match.
func (d *Device) openSlot(slot int, pass []byte) (key []byte, digest int, err error) {
	if h := d.v1; h != nil {
		s := h.slots[slot]
		hf, err := hashByName(h.hashSpec)
		if err != nil {
			return nil, 0, fmt.Errorf("%s key slot %d: %w", d.path, slot, err)
		}
		if s.iterations < 1 {
			return nil, 0, &HeaderError{Path: d.path, Offset: int64(luks1SlotOff + slot*luks1SlotLen + 4), Field: fmt.Sprintf("key slot %d iterations", slot), Msg: "0"}
		}
		dk := pbkdf2Key(pass, s.salt[:], int(s.iterations), int(h.keyBytes), hf)
		defer wipe(dk)
		c, err := newSectorCipher(h.cipherName, h.cipherMode, dk)
		if err != nil {
			return nil, 0, fmt.Errorf("%s key slot %d: %w", d.path, slot, err)
		}
		vk, err := d.readMaterial(c, int64(s.offset)*sectorSize, int(h.keyBytes), hf, slot)
		if err != nil {
			return nil, 0, err
		}
		sum := pbkdf2Key(vk, h.mkDigestSalt[:], int(h.mkDigestIter), luks1DigestLen, hf)
		defer wipe(sum)
		if subtle.ConstantTimeCompare(sum, h.mkDigest[:]) != 1 {
			wipe(vk)
			return nil, 0, ErrWrongPassphrase
		}
		return vk, 0, nil
	}

	m := d.v2.meta
	k := m.keyslots[slot]
	if !k.luks2 {
		return nil, 0, fmt.Errorf("%s key slot %d: type %q: %w", d.path, slot, k.typ, ErrUnsupported)
	}
	dg := d.v2.digestFor(slot)
	if dg == nil || len(dg.segments) == 0 {
		// An unbound key (no data segment) is not a volume key.
		return nil, 0, ErrWrongPassphrase
	}
	if dg.typ != "pbkdf2" {
		return nil, 0, fmt.Errorf("%s digest %d: type %q: %w", d.path, dg.id, dg.typ, ErrUnsupported)
	}
	dhf, err := hashByName(dg.hash)
	if err != nil {
		return nil, 0, fmt.Errorf("%s digest %d: %w", d.path, dg.id, err)
	}
	afh, err := hashByName(k.afHash)
	if err != nil {
		return nil, 0, fmt.Errorf("%s key slot %d: af: %w", d.path, slot, err)
	}
	name, mode, err := splitCipherSpec(k.areaEnc)
	if err != nil {
		return nil, 0, fmt.Errorf("%s key slot %d: %w", d.path, slot, err)
	}
	dk, err := deriveKey(k.kdf, k.salt, pass, k.areaKeySize)
	if err != nil {
		return nil, 0, fmt.Errorf("%s key slot %d: %w", d.path, slot, err)
	}
	defer wipe(dk)
	c, err := newSectorCipher(name, mode, dk)
	if err != nil {
		return nil, 0, fmt.Errorf("%s key slot %d: %w", d.path, slot, err)
	}
	vk, err := d.readMaterial(c, int64(k.areaOffset), k.keySize, afh, slot)
	if err != nil {
		return nil, 0, err
	}
	sum := pbkdf2Key(vk, dg.salt, int(dg.iterations), len(dg.digest), dhf)
	defer wipe(sum)
	if subtle.ConstantTimeCompare(sum, dg.digest) != 1 {
		wipe(vk)
		return nil, 0, ErrWrongPassphrase
	}
	return vk, dg.id, nil
}

func (d *Device) readMaterial(c sectorCipher, off int64, keyLen int, hf func() hash.Hash, slot int) ([]byte, error) {
	buf := make([]byte, afSize(keyLen))
	defer wipe(buf)
	if err := d.readAt(buf, off, fmt.Sprintf("key slot %d material", slot)); err != nil {
		return nil, err
	}
	cryptSectors(c, buf, false)
	return afMerge(buf, keyLen, stripes, hf), nil
}

func (s *luks2State) digestFor(slot int) *luks2Digest {
	for _, id := range sortedKeys(s.meta.digests) {
		if contains(s.meta.digests[id].keyslots, slot) {
			return s.meta.digests[id]
		}
	}
	return nil
}

func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
