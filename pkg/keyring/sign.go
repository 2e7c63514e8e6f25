package keyring

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Signing errors.
var (
	// ErrWrongPassphrase: the passphrase does not decrypt the secret key.
	ErrWrongPassphrase = errors.New("wrong passphrase for the secret key")
	// ErrNoSigningKey: the file holds no secret key that may sign now
	// (public keys only, keys stubbed out to a smartcard, or only revoked
	// or expired signing keys).
	ErrNoSigningKey = errors.New("no usable secret signing key")
)

// SigningKey is a decrypted OpenPGP secret signing key, loaded from a key
// file the user provides (for instance `gpg --export-secret-keys --armor`
// or `--export-secret-subkeys` on a USB stick).
//
// go-crypto keeps the decrypted key material in big.Int and byte slices it
// does not offer to wipe; drop the SigningKey as soon as signing is done.
type SigningKey struct {
	entity *openpgp.Entity
	key    openpgp.Key
}

// LoadSigningKey reads a secret key file (armoured or binary) and decrypts
// the key that will sign: the newest valid signing subkey with secret
// material, else the primary key. now is the time the key must be valid at
// (zero: time.Now()). If the file holds several keys, the first usable one is
// taken. The caller should overwrite passphrase after the call.
func LoadSigningKey(data, passphrase []byte, now time.Time) (*SigningKey, error) {
	if now.IsZero() {
		now = time.Now()
	}
	if len(data) > MaxKeyringSize {
		return nil, fmt.Errorf("secret key file of %d bytes exceeds the %d-byte limit", len(data), MaxKeyringSize)
	}
	var el openpgp.EntityList
	var err error
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PGP ")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(bytes.TrimLeft(data, " \t\r\n")))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	var why []string
	for _, e := range el {
		k, reason := pickSigningKey(e, now)
		if k == nil {
			why = append(why, fmt.Sprintf("%s: %s", fingerprint(e.PrimaryKey), reason))
			continue
		}
		if k.PrivateKey.Encrypted {
			if err := k.PrivateKey.Decrypt(passphrase); err != nil {
				// go-crypto reports a wrong passphrase as a failed
				// checksum (CFB) or authentication (AEAD); anything else
				// is a key it cannot handle.
				if msg := err.Error(); strings.Contains(msg, "checksum") || strings.Contains(msg, "authentication failed") {
					return nil, fmt.Errorf("decrypt key %s: %w", fingerprint(k.PublicKey), ErrWrongPassphrase)
				}
				return nil, fmt.Errorf("decrypt key %s: %w", fingerprint(k.PublicKey), err)
			}
		}
		return &SigningKey{entity: e, key: *k}, nil
	}
	if len(why) == 0 {
		why = append(why, "no keys in the file")
	}
	return nil, fmt.Errorf("%w: %s", ErrNoSigningKey, joinLines(why))
}

func joinLines(s []string) string { return strings.Join(s, "; ") }

// pickSigningKey chooses like gpg: the newest valid signing subkey that has
// secret material, else the primary key if it may sign.
func pickSigningKey(e *openpgp.Entity, now time.Time) (*openpgp.Key, string) {
	if len(e.Revocations) > 0 {
		return nil, "key is revoked"
	}
	self, _ := e.PrimarySelfSignature()
	if self == nil {
		return nil, "no valid self-signature"
	}
	if exp := expiry(e.PrimaryKey, self); !exp.IsZero() && now.After(exp) {
		return nil, "key expired " + exp.UTC().Format(time.RFC3339)
	}
	if e.PrimaryKey.CreationTime.After(now) {
		return nil, "key created in the future (" + e.PrimaryKey.CreationTime.UTC().Format(time.RFC3339) + "); set the clock"
	}
	reason := "no signing key with secret material (on a smartcard, or a public key only)"
	var best *openpgp.Key
	for i := range e.Subkeys {
		sk := &e.Subkeys[i]
		if !usage(sk.Sig, sk.PublicKey).Sign || len(sk.Revocations) > 0 || sk.PublicKey.CreationTime.After(now) {
			continue
		}
		if exp := expiry(sk.PublicKey, sk.Sig); !exp.IsZero() && now.After(exp) {
			continue
		}
		if sk.PrivateKey == nil || sk.PrivateKey.Dummy() {
			continue
		}
		if best == nil || sk.Sig.CreationTime.After(best.SelfSignature.CreationTime) {
			best = &openpgp.Key{Entity: e, PublicKey: sk.PublicKey, PrivateKey: sk.PrivateKey, SelfSignature: sk.Sig, Revocations: sk.Revocations}
		}
	}
	if best != nil {
		return best, ""
	}
	if usage(self, e.PrimaryKey).Sign && e.PrivateKey != nil && !e.PrivateKey.Dummy() {
		return &openpgp.Key{Entity: e, PublicKey: e.PrimaryKey, PrivateKey: e.PrivateKey, SelfSignature: self, Revocations: e.Revocations}, ""
	}
	return nil, reason
}

// Fingerprint is the primary key's fingerprint.
func (k *SigningKey) Fingerprint() string { return fingerprint(k.entity.PrimaryKey) }

// SigningKeyFingerprint is the fingerprint of the key that signs (primary or
// subkey).
func (k *SigningKey) SigningKeyFingerprint() string { return fingerprint(k.key.PublicKey) }

// UserID is the primary user ID.
func (k *SigningKey) UserID() string {
	if id := k.entity.PrimaryIdentity(); id != nil {
		return id.Name
	}
	return ""
}

// Public returns the public part of the key as a one-key Keyring, e.g. to
// check that it is the key in the ROM.
func (k *SigningKey) Public() *Keyring {
	return &Keyring{entities: openpgp.EntityList{k.entity}}
}

// SignDetached writes a detached signature over message, ASCII-armoured (as
// `gpg --detach-sign -a`, the kexec.sig format) or binary, with SHA-256 (as
// Heads' OEM reset: --digest-algo SHA256) and creation time now (zero:
// time.Now()).
func (k *SigningKey) SignDetached(w io.Writer, message io.Reader, armored bool, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	if k.key.PublicKey.CreationTime.After(now) || k.entity.PrimaryKey.CreationTime.After(now) {
		return fmt.Errorf("sign with key %s: the clock (%s) is before the key's creation; set the time first", k.SigningKeyFingerprint(), now.UTC().Format(time.RFC3339))
	}
	cfg := &packet.Config{
		DefaultHash:  crypto.SHA256,
		Time:         func() time.Time { return now },
		SigningKeyId: k.key.PublicKey.KeyId,
	}
	var err error
	if armored {
		err = openpgp.ArmoredDetachSign(w, k.entity, message, cfg)
	} else {
		err = openpgp.DetachSign(w, k.entity, message, cfg)
	}
	if err != nil {
		return fmt.Errorf("sign with key %s: %w", k.SigningKeyFingerprint(), err)
	}
	return nil
}
