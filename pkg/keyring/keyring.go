// Package keyring reads the OpenPGP public keyring Heads keeps in the ROM
// (CBFS heads/initrd/.gnupg/pubring.kbx, or the legacy pubring.gpg), lists its
// keys for the UI and verifies detached signatures against it.
//
// Formats read: a GnuPG keybox (pubring.kbx, gpg 2.1+), a plain OpenPGP
// packet stream (legacy pubring.gpg, `gpg --export`) and ASCII-armoured
// exports (`gpg --armor --export`, possibly several blocks). Trust is "the
// key is in the ROM keyring", as in Heads; trustdb.gpg is not read.
//
// Where Heads (gpgv) is wrong, VerifyDetached refuses: a good signature by a
// revoked key or revoked signing subkey, and a signature made while the key
// or subkey had already expired. See VerifyDetached.
package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxKeyringSize bounds what Load reads: the ROM keyring of a firmware is a
// few KiB; a larger file is refused rather than parsed.
const MaxKeyringSize = 16 << 20

// ErrNotKeyring is returned when the input is none of the supported formats.
var ErrNotKeyring = errors.New("not an OpenPGP keyring (keybox, packet stream or armoured export)")

// Keyring is a set of OpenPGP public keys. The zero value is an empty keyring.
type Keyring struct {
	entities openpgp.EntityList
	// Skipped lists keys or blobs that could not be read (unsupported
	// algorithm, broken self-signature, ...), one human-readable line each.
	// They are not used for verification.
	Skipped []string
	format  Format
}

// Format names the container a keyring was read from.
type Format string

// Formats recognised by Load.
const (
	FormatKeybox  Format = "keybox"
	FormatPackets Format = "packets"
	FormatArmored Format = "armored"
)

// LoadFile reads a keyring file (see Load) and names it in errors.
func LoadFile(path string) (*Keyring, error) {
	data, err := readLimited(path, MaxKeyringSize)
	if err != nil {
		return nil, fmt.Errorf("read keyring %s: %w", path, err)
	}
	kr, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return kr, nil
}

// LoadGnuPGHome reads the public keyring of a GnuPG home directory as Heads
// does: pubring.kbx, else the legacy pubring.gpg. A directory with neither is
// an empty keyring (Heads' "GPG keyring empty!" state), not an error.
func LoadGnuPGHome(dir string) (*Keyring, error) {
	for _, name := range []string{"pubring.kbx", "pubring.gpg"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return LoadFile(p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("keyring %s: %w", p, err)
		}
	}
	return &Keyring{}, nil
}

// Load parses a keyring in any supported format, detected from its first
// bytes. Empty input (or a keybox with only its header) is an empty keyring.
// Keys that cannot be read are skipped and listed in Skipped; a container
// that is itself corrupt is an error naming the offset.
func Load(data []byte) (*Keyring, error) {
	kr, format, err := load(data)
	if kr != nil {
		kr.format = format
	}
	return kr, err
}

// Format is the container the keyring was read from (empty for the zero
// Keyring).
func (kr *Keyring) Format() Format { return kr.format }

func load(data []byte) (*Keyring, Format, error) {
	if len(data) > MaxKeyringSize {
		return nil, "", fmt.Errorf("keyring of %d bytes exceeds the %d-byte limit", len(data), MaxKeyringSize)
	}
	kr := &Keyring{}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return kr, FormatPackets, nil
	case isKeybox(data):
		blocks, notes, err := parseKeybox(data)
		if err != nil {
			return nil, FormatKeybox, err
		}
		kr.Skipped = append(kr.Skipped, notes...)
		for _, b := range blocks {
			if err := kr.addPackets(b.data, fmt.Sprintf("keybox blob at offset %d", b.offset)); err != nil {
				return nil, FormatKeybox, err
			}
		}
		return kr, FormatKeybox, nil
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP ")):
		if err := kr.addArmored(trimmed); err != nil {
			return nil, FormatArmored, err
		}
		return kr, FormatArmored, nil
	case data[0]&0x80 != 0:
		if err := kr.addPackets(data, "packet stream"); err != nil {
			return nil, FormatPackets, err
		}
		return kr, FormatPackets, nil
	default:
		return nil, "", ErrNotKeyring
	}
}

// addArmored reads one or more concatenated armoured key blocks.
func (kr *Keyring) addArmored(data []byte) error {
	r := bytes.NewReader(data)
	for n := 0; ; n++ {
		blk, err := armor.Decode(r)
		if err == io.EOF {
			if n == 0 {
				return fmt.Errorf("armoured keyring: %w", ErrNotKeyring)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("armoured keyring block %d: %v", n+1, err)
		}
		if blk.Type != openpgp.PublicKeyType && blk.Type != openpgp.PrivateKeyType {
			return fmt.Errorf("armoured keyring block %d: type %q, want %q", n+1, blk.Type, openpgp.PublicKeyType)
		}
		body, err := io.ReadAll(io.LimitReader(blk.Body, MaxKeyringSize+1))
		if err != nil {
			return fmt.Errorf("armoured keyring block %d: %v", n+1, err)
		}
		if len(body) > MaxKeyringSize {
			return fmt.Errorf("armoured keyring block %d exceeds the %d-byte limit", n+1, MaxKeyringSize)
		}
		if err := kr.addPackets(body, fmt.Sprintf("armoured block %d", n+1)); err != nil {
			return err
		}
	}
}

// addPackets reads every key of an OpenPGP packet stream. Unlike
// openpgp.ReadKeyRing, a key that cannot be read is recorded in Skipped
// instead of vanishing silently, so the UI can say why a key is missing.
func (kr *Keyring) addPackets(data []byte, where string) error {
	pr := packet.NewReader(bytes.NewReader(data))
	// Every round consumes at least one packet header; the bound only
	// guards against a parser bug turning hostile input into a hang.
	for round := 0; round <= len(data); round++ {
		e, err := openpgp.ReadEntity(pr)
		if err == nil {
			kr.entities = append(kr.entities, e)
			continue
		}
		if err == io.EOF {
			return nil
		}
		kr.Skipped = append(kr.Skipped, fmt.Sprintf("%s: key skipped: %v", where, err))
		// Resynchronise on the next primary key, as ReadKeyRing does.
		if err := skipToNextKey(pr); err == io.EOF {
			return nil
		} else if err != nil {
			// The packet framing itself is broken: nothing after this
			// point can be trusted to be aligned.
			kr.Skipped = append(kr.Skipped, fmt.Sprintf("%s: rest of the data unreadable: %v", where, err))
			return nil
		}
	}
	return fmt.Errorf("%s: keyring parser made no progress", where)
}

func skipToNextKey(pr *packet.Reader) error {
	for {
		p, err := pr.Next()
		if err != nil {
			return err
		}
		if pk, ok := p.(*packet.PublicKey); ok && !pk.IsSubkey {
			pr.Unread(p)
			return nil
		}
		if sk, ok := p.(*packet.PrivateKey); ok && !sk.IsSubkey {
			pr.Unread(p)
			return nil
		}
	}
}

// Len is the number of usable keys (primary keys) in the keyring.
func (kr *Keyring) Len() int {
	if kr == nil {
		return 0
	}
	return len(kr.entities)
}

// Entities exposes the parsed keys for callers that need go-crypto directly
// (tests, tools). The slice must not be modified.
func (kr *Keyring) Entities() openpgp.EntityList { return kr.entities }

// Usage is what a key may be used for, from its self-signature key flags.
type Usage struct {
	Certify, Sign, Encrypt, Authenticate bool
}

// String renders the usage like gpg's listing: "SC", "E", "A".
func (u Usage) String() string {
	var b strings.Builder
	if u.Sign {
		b.WriteByte('S')
	}
	if u.Certify {
		b.WriteByte('C')
	}
	if u.Encrypt {
		b.WriteByte('E')
	}
	if u.Authenticate {
		b.WriteByte('A')
	}
	return b.String()
}

// UserID is one identity of a key.
type UserID struct {
	Name    string
	Primary bool
	Revoked bool
}

// SubkeyInfo describes a subkey.
type SubkeyInfo struct {
	Fingerprint string // upper-case hex
	KeyID       string // 16 upper-case hex digits
	Algorithm   string // gpg style: rsa3072, ed25519, cv25519, nistp256
	Bits        int    // key size as gpg lists it: 3072, 255 (curve25519), 256 (P-256)
	Created     time.Time
	Expires     time.Time // zero: never
	Revoked     bool
	Usage       Usage
}

// KeyInfo describes a primary key and its subkeys, for listing in the UI.
type KeyInfo struct {
	Fingerprint      string
	KeyID            string
	Algorithm        string
	Bits             int
	Created          time.Time
	Expires          time.Time // zero: never
	Revoked          bool
	RevocationReason string // empty when not revoked or no reason given
	Usage            Usage
	UserIDs          []UserID // primary first, then by name
	Subkeys          []SubkeyInfo
}

// Expired reports whether the key had expired at t.
func (k KeyInfo) Expired(t time.Time) bool { return !k.Expires.IsZero() && t.After(k.Expires) }

// Keys lists the keyring, in keyring order.
func (kr *Keyring) Keys() []KeyInfo {
	if kr == nil {
		return nil
	}
	out := make([]KeyInfo, 0, len(kr.entities))
	for _, e := range kr.entities {
		out = append(out, describe(e))
	}
	return out
}

func describe(e *openpgp.Entity) KeyInfo {
	self, primaryID := e.PrimarySelfSignature()
	ki := KeyInfo{
		Fingerprint: fingerprint(e.PrimaryKey),
		KeyID:       keyID(e.PrimaryKey.KeyId),
		Algorithm:   algorithm(e.PrimaryKey),
		Bits:        keyBits(e.PrimaryKey),
		Created:     e.PrimaryKey.CreationTime,
		Expires:     expiry(e.PrimaryKey, self),
		Usage:       usage(self, e.PrimaryKey),
	}
	if len(e.Revocations) > 0 {
		ki.Revoked = true
		ki.RevocationReason = revocationReason(e.Revocations[0])
	}
	for name, id := range e.Identities {
		ki.UserIDs = append(ki.UserIDs, UserID{Name: name, Primary: id == primaryID, Revoked: len(id.Revocations) > 0})
	}
	sortUserIDs(ki.UserIDs)
	for _, sk := range e.Subkeys {
		ki.Subkeys = append(ki.Subkeys, SubkeyInfo{
			Fingerprint: fingerprint(sk.PublicKey),
			KeyID:       keyID(sk.PublicKey.KeyId),
			Algorithm:   algorithm(sk.PublicKey),
			Bits:        keyBits(sk.PublicKey),
			Created:     sk.PublicKey.CreationTime,
			Expires:     expiry(sk.PublicKey, sk.Sig),
			Revoked:     len(sk.Revocations) > 0,
			Usage:       usage(sk.Sig, sk.PublicKey),
		})
	}
	return ki
}

func sortUserIDs(ids []UserID) {
	// Small n: insertion sort keeps this dependency-free and stable.
	less := func(a, b UserID) bool {
		if a.Primary != b.Primary {
			return a.Primary
		}
		return a.Name < b.Name
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && less(ids[j], ids[j-1]); j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

func fingerprint(pk *packet.PublicKey) string { return fmt.Sprintf("%X", pk.Fingerprint) }

func keyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// expiry is the key's expiry time per sig (its latest self- or binding
// signature), zero if it never expires.
func expiry(pk *packet.PublicKey, sig *packet.Signature) time.Time {
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}
	}
	return pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
}

// usage follows GnuPG: without a key-flags subpacket a key may do whatever
// its algorithm allows.
func usage(sig *packet.Signature, pk *packet.PublicKey) Usage {
	if sig == nil || !sig.FlagsValid {
		can := pk.PubKeyAlgo.CanSign()
		enc := pk.PubKeyAlgo.CanEncrypt()
		return Usage{Certify: can, Sign: can, Encrypt: enc}
	}
	return Usage{
		Certify:      sig.FlagCertify,
		Sign:         sig.FlagSign,
		Encrypt:      sig.FlagEncryptCommunications || sig.FlagEncryptStorage,
		Authenticate: sig.FlagAuthenticate,
	}
}

func revocationReason(sig *packet.Signature) string {
	var r string
	if sig.RevocationReason != nil {
		switch *sig.RevocationReason {
		case packet.KeySuperseded:
			r = "key superseded"
		case packet.KeyCompromised:
			r = "key compromised"
		case packet.KeyRetired:
			r = "key retired"
		case packet.NoReason:
			r = "no reason specified"
		default:
			r = fmt.Sprintf("reason %d", *sig.RevocationReason)
		}
	}
	if sig.RevocationReasonText != "" {
		if r != "" {
			r += ": "
		}
		r += sig.RevocationReasonText
	}
	return r
}

// keyBits is the key size as gpg lists it: the modulus or group size for
// RSA, DSA and ElGamal, the curve's size for ECC (255 for curve25519, where
// go-crypto's BitLength would count the encoded point).
func keyBits(pk *packet.PublicKey) int {
	if curve, err := pk.Curve(); err == nil {
		switch curve {
		case packet.Curve25519:
			return 255
		case packet.Curve448:
			return 448
		case packet.CurveNistP256, packet.CurveSecP256k1, packet.CurveBrainpoolP256:
			return 256
		case packet.CurveNistP384, packet.CurveBrainpoolP384:
			return 384
		case packet.CurveNistP521:
			return 521
		case packet.CurveBrainpoolP512:
			return 512
		}
	}
	bits, _ := pk.BitLength()
	return int(bits)
}

// algorithm names a key the way gpg lists it.
func algorithm(pk *packet.PublicKey) string {
	bits, _ := pk.BitLength()
	curve, _ := pk.Curve()
	curveName := map[packet.Curve]string{
		packet.CurveNistP256: "nistp256", packet.CurveNistP384: "nistp384", packet.CurveNistP521: "nistp521",
		packet.CurveSecP256k1: "secp256k1", packet.CurveBrainpoolP256: "brainpoolP256r1",
		packet.CurveBrainpoolP384: "brainpoolP384r1", packet.CurveBrainpoolP512: "brainpoolP512r1",
	}[curve]
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly, packet.PubKeyAlgoRSAEncryptOnly:
		return fmt.Sprintf("rsa%d", bits)
	case packet.PubKeyAlgoDSA:
		return fmt.Sprintf("dsa%d", bits)
	case packet.PubKeyAlgoElGamal:
		return fmt.Sprintf("elg%d", bits)
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoECDSA:
		switch curve {
		case packet.Curve25519:
			return "ed25519"
		case packet.Curve448:
			return "ed448"
		}
		if curveName != "" {
			return curveName
		}
	case packet.PubKeyAlgoECDH:
		switch curve {
		case packet.Curve25519:
			return "cv25519"
		case packet.Curve448:
			return "cv448"
		}
		if curveName != "" {
			return curveName
		}
	case packet.PubKeyAlgoEd25519:
		return "ed25519"
	case packet.PubKeyAlgoEd448:
		return "ed448"
	case packet.PubKeyAlgoX25519:
		return "cv25519"
	case packet.PubKeyAlgoX448:
		return "cv448"
	}
	return fmt.Sprintf("algo%d", pk.PubKeyAlgo)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than the %d-byte limit", limit)
	}
	return data, nil
}
