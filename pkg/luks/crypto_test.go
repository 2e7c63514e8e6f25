package luks

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	stdpbkdf2 "crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
	"testing"
)

// Our PBKDF2 exists only to avoid the string copy in the standard one; it
// must agree with it bit for bit.
func TestPBKDF2MatchesStdlib(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    func() hash.Hash
	}{{"sha1", sha1.New}, {"sha256", sha256.New}, {"sha512", sha512.New}} {
		for _, keyLen := range []int{16, 20, 32, 64, 65, 100} {
			for _, iter := range []int{1, 2, 1000} {
				pw, salt := []byte("correct horse"), []byte("0123456789abcdef0123456789abcdef")
				want, err := stdpbkdf2.Key(tc.h, string(pw), salt, iter, keyLen)
				if err != nil {
					t.Fatal(err)
				}
				if got := pbkdf2Key(pw, salt, iter, keyLen, tc.h); !bytes.Equal(got, want) {
					t.Errorf("%s keyLen=%d iter=%d: got %x, want %x", tc.name, keyLen, iter, got, want)
				}
			}
		}
	}
}

// RFC 6070 test vector, independent of any Go implementation.
func TestPBKDF2RFC6070(t *testing.T) {
	got := pbkdf2Key([]byte("password"), []byte("salt"), 4096, 20, sha1.New)
	want := []byte{0x4b, 0x00, 0x79, 0x01, 0xb7, 0x65, 0x48, 0x9a, 0xbe, 0xad, 0x49, 0xd9, 0x26, 0xf7, 0x21, 0xd0, 0x65, 0xa4, 0x29, 0xc1}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestAFRoundTrip(t *testing.T) {
	for _, keyLen := range []int{16, 32, 33, 64} {
		for _, hn := range []string{"sha1", "sha256", "sha512"} {
			hf, _ := hashByName(hn)
			key := make([]byte, keyLen)
			rand.Read(key)
			buf := make([]byte, keyLen*stripes)
			rand.Read(buf[:(stripes-1)*keyLen])
			afSplit(key, buf, stripes, hf)
			if got := afMerge(buf, keyLen, stripes, hf); !bytes.Equal(got, key) {
				t.Errorf("keyLen %d %s: merge gave %x, want %x", keyLen, hn, got, key)
			}
			// Destroying one stripe must destroy the key.
			buf[keyLen*100] ^= 1
			if got := afMerge(buf, keyLen, stripes, hf); bytes.Equal(got, key) {
				t.Errorf("keyLen %d %s: a flipped stripe bit did not change the key", keyLen, hn)
			}
		}
	}
}

// ESSIV: IV = AES_{H(key)}(le64(sector)); checked against a direct
// construction with crypto/cipher.
func TestCBCEssivIV(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c, err := newSectorCipher("aes", "cbc-essiv:sha256", key)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, sectorSize)
	rand.Read(plain)
	got := bytes.Clone(plain)
	c.encrypt(got, 5)

	salt := sha256.Sum256(key)
	eb, _ := aes.NewCipher(salt[:])
	iv := make([]byte, 16)
	binary.LittleEndian.PutUint64(iv, 5)
	eb.Encrypt(iv, iv)
	b, _ := aes.NewCipher(key)
	want := bytes.Clone(plain)
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(want, want)
	if !bytes.Equal(got, want) {
		t.Fatal("cbc-essiv:sha256 sector 5 differs from the reference construction")
	}
	c.decrypt(got, 5)
	if !bytes.Equal(got, plain) {
		t.Fatal("decrypt(encrypt(x)) != x")
	}
}

func TestUnsupportedCipher(t *testing.T) {
	for _, tc := range [][2]string{{"serpent", "xts-plain64"}, {"aes", "ecb"}, {"aes", "lrw-benbi"}} {
		if _, err := newSectorCipher(tc[0], tc[1], make([]byte, 32)); err == nil {
			t.Errorf("%s-%s: accepted", tc[0], tc[1])
		}
	}
}
