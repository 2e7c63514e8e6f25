package luks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/xts"
)

const (
	sectorSize = 512  // keyslot areas are always encrypted in 512-byte sectors
	stripes    = 4000 // anti-forensic stripes; cryptsetup accepts nothing else
	saltSize   = 32   // keyslot and digest salts
)

// wipe overwrites a secret. Go may have copied the bytes elsewhere (the GC
// moves nothing, but library internals such as AES key schedules and HMAC
// pads keep their own copies we cannot reach); we wipe every buffer we own.
func wipe(b []byte) { clear(b) }

// hashByName maps the hash names cryptsetup writes (LUKS1 hashSpec, LUKS2
// af.hash / kdf.hash / digest hash) to Go constructors. The rare ones
// (ripemd160, whirlpool, stribog, sm3) are refused by name.
func hashByName(name string) (func() hash.Hash, error) {
	switch strings.ToLower(name) {
	case "sha1":
		return sha1.New, nil
	case "sha224":
		return sha256.New224, nil
	case "sha256":
		return sha256.New, nil
	case "sha384":
		return sha512.New384, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("hash %q: %w (goheads supports sha1, sha224, sha256, sha384, sha512)", name, ErrUnsupported)
}

// pbkdf2Key is PBKDF2-HMAC (RFC 8018). Our own because both
// golang.org/x/crypto/pbkdf2 and crypto/pbkdf2 take the password as a Go
// string, an immutable copy of the passphrase that can never be wiped.
func pbkdf2Key(password, salt []byte, iter, keyLen int, h func() hash.Hash) []byte {
	prf := hmac.New(h, password)
	hLen := prf.Size()
	n := (keyLen + hLen - 1) / hLen
	out := make([]byte, 0, n*hLen)
	u := make([]byte, 0, hLen)
	t := make([]byte, hLen)
	var ctr [4]byte
	for block := 1; block <= n; block++ {
		binary.BigEndian.PutUint32(ctr[:], uint32(block))
		prf.Reset()
		prf.Write(salt)
		prf.Write(ctr[:])
		u = prf.Sum(u[:0])
		copy(t, u)
		for i := 1; i < iter; i++ {
			prf.Reset()
			prf.Write(u)
			u = prf.Sum(u[:0])
			for j := range t {
				t[j] ^= u[j]
			}
		}
		out = append(out, t...)
	}
	wipe(u[:hLen])
	wipe(t)
	wipe(out[keyLen:cap(out)])
	return out[:keyLen]
}

// deriveKey runs a keyslot KDF. Costs were checked against the caller's
// limits before we get here.
func deriveKey(k KDF, salt, password []byte, keyLen int) ([]byte, error) {
	if len(salt) == 0 {
		return nil, fmt.Errorf("kdf %s: empty salt", k.Type)
	}
	switch k.Type {
	case KDFPBKDF2:
		h, err := hashByName(k.Hash)
		if err != nil {
			return nil, err
		}
		if k.Iterations < 1 {
			return nil, fmt.Errorf("pbkdf2: iterations %d < 1", k.Iterations)
		}
		return pbkdf2Key(password, salt, int(k.Iterations), keyLen, h), nil
	case KDFArgon2i, KDFArgon2id:
		if k.Time < 1 || k.Threads < 1 || k.Threads > 255 || k.MemoryKiB < 8*k.Threads {
			return nil, fmt.Errorf("%s: invalid cost time=%d memory=%d KiB threads=%d", k.Type, k.Time, k.MemoryKiB, k.Threads)
		}
		if k.Type == KDFArgon2i {
			return argon2.Key(password, salt, k.Time, k.MemoryKiB, uint8(k.Threads), uint32(keyLen)), nil
		}
		return argon2.IDKey(password, salt, k.Time, k.MemoryKiB, uint8(k.Threads), uint32(keyLen)), nil
	}
	return nil, fmt.Errorf("kdf %q: %w (goheads supports pbkdf2, argon2i, argon2id)", k.Type, ErrUnsupported)
}

// Anti-forensic information splitter (cryptsetup lib/luks1/af.c). The volume
// key is spread over `stripes` blocks so that destroying any small part of the
// keyslot area destroys the key.

func afHashBuf(h hash.Hash, src, dst []byte, iv uint32, sum []byte) []byte {
	var ivb [4]byte
	binary.BigEndian.PutUint32(ivb[:], iv)
	h.Reset()
	h.Write(ivb[:])
	h.Write(src)
	sum = h.Sum(sum[:0])
	copy(dst, sum) // truncated for the final partial block
	return sum
}

// afDiffuse hashes buf in place, digest-sized block by block.
func afDiffuse(h hash.Hash, buf, sum []byte) []byte {
	ds := h.Size()
	var i int
	for i = 0; i < len(buf)/ds; i++ {
		sum = afHashBuf(h, buf[i*ds:(i+1)*ds], buf[i*ds:(i+1)*ds], uint32(i), sum)
	}
	if pad := len(buf) % ds; pad != 0 {
		sum = afHashBuf(h, buf[i*ds:], buf[i*ds:], uint32(i), sum)
	}
	return sum
}

// afSplit fills dst (len(key)*n bytes, prefilled with n-1 random blocks in its
// first part) so that afMerge(dst) == key.
func afSplit(key, dst []byte, n int, hf func() hash.Hash) {
	bs := len(key)
	h := hf()
	buf := make([]byte, bs)
	sum := make([]byte, 0, h.Size())
	for i := 0; i < n-1; i++ {
		xorInto(buf, dst[i*bs:(i+1)*bs])
		sum = afDiffuse(h, buf, sum)
	}
	last := dst[(n-1)*bs : n*bs]
	for j := range last {
		last[j] = key[j] ^ buf[j]
	}
	wipe(buf)
	wipe(sum[:cap(sum)])
}

func afMerge(src []byte, bs, n int, hf func() hash.Hash) []byte {
	h := hf()
	buf := make([]byte, bs)
	sum := make([]byte, 0, h.Size())
	for i := 0; i < n-1; i++ {
		xorInto(buf, src[i*bs:(i+1)*bs])
		sum = afDiffuse(h, buf, sum)
	}
	xorInto(buf, src[(n-1)*bs:n*bs])
	wipe(sum[:cap(sum)])
	return buf
}

func xorInto(dst, src []byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// afSize is the keyslot material size: key * stripes rounded up to a sector
// (AF_split_sectors).
func afSize(keyLen int) int {
	return (keyLen*stripes + sectorSize - 1) / sectorSize * sectorSize
}

// sectorCipher encrypts keyslot material in 512-byte sectors numbered from 0
// at the start of the keyslot area (cryptsetup's crypt_storage with
// iv_offset 0).
type sectorCipher interface {
	encrypt(sector []byte, n uint64)
	decrypt(sector []byte, n uint64)
}

// newSectorCipher supports the ciphers Heads users have: aes-xts-plain64
// (every cryptsetup default since 1.6), aes-xts-plain, and the pre-1.6
// LUKS1 default aes-cbc-essiv:sha256 (plus cbc-plain/plain64).
func newSectorCipher(cipherName, mode string, key []byte) (sectorCipher, error) {
	if cipherName != "aes" {
		return nil, fmt.Errorf("cipher %s-%s: %w (goheads supports aes-xts-plain64, aes-xts-plain, aes-cbc-essiv:<hash>, aes-cbc-plain64, aes-cbc-plain)", cipherName, mode, ErrUnsupported)
	}
	switch {
	case mode == "xts-plain64" || mode == "xts-plain":
		if len(key) != 32 && len(key) != 64 {
			return nil, fmt.Errorf("cipher aes-%s: key of %d bytes, want 32 or 64", mode, len(key))
		}
		c, err := xts.NewCipher(aes.NewCipher, key)
		if err != nil {
			return nil, fmt.Errorf("cipher aes-%s: %w", mode, err)
		}
		return &xtsCipher{c: c, trunc32: mode == "xts-plain"}, nil
	case mode == "cbc-plain64" || mode == "cbc-plain" || strings.HasPrefix(mode, "cbc-essiv:"):
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("cipher aes-%s: %w", mode, err)
		}
		c := &cbcCipher{b: b, trunc32: mode == "cbc-plain"}
		if hn, ok := strings.CutPrefix(mode, "cbc-essiv:"); ok {
			hf, err := hashByName(hn)
			if err != nil {
				return nil, fmt.Errorf("cipher aes-%s: %w", mode, err)
			}
			h := hf()
			h.Write(key)
			salt := h.Sum(nil)
			c.essiv, err = aes.NewCipher(salt)
			wipe(salt)
			if err != nil {
				return nil, fmt.Errorf("cipher aes-%s: ESSIV key: %w", mode, err)
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("cipher %s-%s: %w (goheads supports aes-xts-plain64, aes-xts-plain, aes-cbc-essiv:<hash>, aes-cbc-plain64, aes-cbc-plain)", cipherName, mode, ErrUnsupported)
}

// splitCipherSpec splits a LUKS2 "encryption" value the way
// crypt_parse_name_and_mode does: cipher, then everything after the first
// '-' as the mode.
func splitCipherSpec(spec string) (name, mode string, err error) {
	name, mode, ok := strings.Cut(spec, "-")
	if !ok || name == "" || mode == "" || strings.HasPrefix(spec, "capi:") {
		return "", "", fmt.Errorf("encryption %q: %w (want cipher-mode-iv, e.g. aes-xts-plain64)", spec, ErrUnsupported)
	}
	return name, mode, nil
}

type xtsCipher struct {
	c       *xts.Cipher
	trunc32 bool
}

func (x *xtsCipher) iv(n uint64) uint64 {
	if x.trunc32 {
		return n & 0xffffffff
	}
	return n
}

// xts.Cipher's sector number is the little-endian 64-bit tweak, which is
// exactly dm-crypt's plain64 IV.
func (x *xtsCipher) encrypt(s []byte, n uint64) { x.c.Encrypt(s, s, x.iv(n)) }
func (x *xtsCipher) decrypt(s []byte, n uint64) { x.c.Decrypt(s, s, x.iv(n)) }

type cbcCipher struct {
	b       cipher.Block
	essiv   cipher.Block
	trunc32 bool
}

func (c *cbcCipher) ivFor(n uint64) []byte {
	iv := make([]byte, aes.BlockSize)
	if c.trunc32 {
		binary.LittleEndian.PutUint32(iv, uint32(n))
	} else {
		binary.LittleEndian.PutUint64(iv, n)
	}
	if c.essiv != nil {
		c.essiv.Encrypt(iv, iv)
	}
	return iv
}

func (c *cbcCipher) encrypt(s []byte, n uint64) {
	cipher.NewCBCEncrypter(c.b, c.ivFor(n)).CryptBlocks(s, s)
}

func (c *cbcCipher) decrypt(s []byte, n uint64) {
	cipher.NewCBCDecrypter(c.b, c.ivFor(n)).CryptBlocks(s, s)
}

func cryptSectors(c sectorCipher, buf []byte, enc bool) {
	for i := 0; i < len(buf)/sectorSize; i++ {
		s := buf[i*sectorSize : (i+1)*sectorSize]
		if enc {
			c.encrypt(s, uint64(i))
		} else {
			c.decrypt(s, uint64(i))
		}
	}
}
