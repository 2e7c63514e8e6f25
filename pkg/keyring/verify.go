package keyring

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Signature outcomes. Heads' integrity report classifies gpgv's output as
// MALFORMED, BAD or UNKNOWN_KEY (gui_functions.sh,
// detached_kexec_signature_failure_status); goheads adds the cases gpgv lets
// through. Every error VerifyDetached returns for a signature that does not
// verify is a *SignatureError wrapping exactly one of these.
var (
	// ErrMalformedSignature: not an OpenPGP detached signature, or one that
	// cannot be checked (unsupported algorithm, no issuer). Heads: MALFORMED.
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrBadSignature: the key is known but the signature does not match
	// the data. Heads: BAD.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKey: no key in the keyring made this signature.
	// Heads: UNKNOWN_KEY.
	ErrUnknownKey = errors.New("signed by a key that is not in the keyring")
	// ErrRevokedKey: a good signature by a revoked key or revoked signing
	// subkey. gpgv (and so Heads) accepts it with a warning; goheads
	// refuses, whatever the revocation date: a key revoked because it
	// leaked can backdate signatures at will.
	ErrRevokedKey = errors.New("signing key is revoked")
	// ErrExpiredKey: the key or signing subkey had expired when the
	// signature was made. gpgv accepts it; goheads refuses. A key that
	// expired after signing is accepted with a note (the firmware clock
	// may be wrong, and the signature was valid when made).
	ErrExpiredKey = errors.New("signing key had expired when the signature was made")
	// ErrExpiredSignature: the signature carries an expiry time that has
	// passed.
	ErrExpiredSignature = errors.New("signature has expired")
	// ErrUnusableKey: the key may not make this signature (no signing
	// capability, or the signature predates the key).
	ErrUnusableKey = errors.New("key is not valid for this signature")
)

// MaxSignatureSize bounds a detached signature file.
const MaxSignatureSize = 1 << 20

// maxSignatures bounds the signature packets in one detached signature.
const maxSignatures = 16

// SignatureError says why a signature was refused, naming the key.
type SignatureError struct {
	Err         error     // one of the Err* sentinels above
	Reason      string    // what exactly was wrong, for the UI
	IssuerKeyID string    // key ID named by the signature, if any
	Issuer      string    // issuer fingerprint named by the signature, if any
	Fingerprint string    // primary key fingerprint, when the key is in the keyring
	SigningKey  string    // fingerprint of the (sub)key that signed, when known
	UserID      string    // primary user ID, when the key is in the keyring
	Created     time.Time // signature creation time, zero if unparsed
}

func (e *SignatureError) Error() string {
	msg := e.Err.Error()
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	switch {
	case e.Fingerprint != "" && e.UserID != "":
		msg += fmt.Sprintf(" (key %s %q)", e.Fingerprint, e.UserID)
	case e.Fingerprint != "":
		msg += fmt.Sprintf(" (key %s)", e.Fingerprint)
	case e.Issuer != "":
		msg += fmt.Sprintf(" (key %s)", e.Issuer)
	case e.IssuerKeyID != "":
		msg += fmt.Sprintf(" (key ID %s)", e.IssuerKeyID)
	}
	if !e.Created.IsZero() {
		msg += ", signed " + e.Created.UTC().Format(time.RFC3339)
	}
	return msg
}

func (e *SignatureError) Unwrap() error { return e.Err }

// Signer describes a verified signature.
type Signer struct {
	Fingerprint string    // primary key
	SigningKey  string    // the key that signed: the primary key or a subkey
	Subkey      bool      // SigningKey is a subkey
	UserID      string    // primary user ID
	Algorithm   string    // of the signing key, gpg style
	Hash        string    // digest algorithm, e.g. "SHA256"
	Created     time.Time // signature creation time
	// Notes are warnings that did not refuse the signature (the key has
	// expired since it signed, SHA-1 digest).
	Notes []string
}

// VerifyOptions tune VerifyDetached. The zero value is fine.
type VerifyOptions struct {
	// Now is the current time, for the signature's own expiry; zero means
	// time.Now(). Key expiry is judged at the signature's creation time.
	Now time.Time
}

// VerifyDetached checks a detached OpenPGP signature (ASCII-armoured or
// binary) over data and returns who made it.
//
// The checks, and how they differ from go-crypto's CheckDetachedSignature
// (which judges revocation and expiry at "now", ignores revocations that
// post-date the signature unless the reason is "compromised", and refuses
// keys that expired after signing):
//   - every signature packet in sig must verify (gpgv semantics);
//   - the issuer must be a key or subkey in the keyring, else ErrUnknownKey;
//   - the signature must match data, else ErrBadSignature;
//   - a revoked primary key or revoked signing subkey: ErrRevokedKey, always;
//   - the key or subkey expired at the signature's creation time:
//     ErrExpiredKey;
//   - the signature's own expiry passed (at opts.Now): ErrExpiredSignature;
//   - a key without the sign flag, or created after the signature:
//     ErrUnusableKey;
//   - a signing subkey must carry key flags (so go-crypto checked its
//     cross-signature when the keyring was read);
//   - a revoked user ID is not a refusal: the key itself is still valid
//     (gpg does the same);
//   - MD5 and RIPEMD-160 digests are refused (as gpg does by default); SHA-1
//     is accepted with a note, as gpg 2.2 does, so /boot signatures from
//     old Heads releases still verify.
//
// Refusals are *SignatureError values; errors.Is matches the sentinels. An
// I/O error reading data or sig is returned as is.
func (kr *Keyring) VerifyDetached(data, sig io.Reader, opts *VerifyOptions) (*Signer, error) {
	if kr == nil {
		kr = &Keyring{}
	}
	now := time.Now()
	if opts != nil && !opts.Now.IsZero() {
		now = opts.Now
	}
	raw, err := io.ReadAll(io.LimitReader(sig, MaxSignatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("read signature: %w", err)
	}
	if len(raw) > MaxSignatureSize {
		return nil, &SignatureError{Err: ErrMalformedSignature, Reason: fmt.Sprintf("signature larger than %d bytes", MaxSignatureSize)}
	}
	sigs, err := parseSignatures(raw)
	if err != nil {
		return nil, err
	}

	type pending struct {
		sig *packet.Signature
		h   hash.Hash // receives the hash suffix in VerifySignature
	}
	var ps []pending
	var ws []io.Writer
	for _, s := range sigs {
		base := sigErr(ErrMalformedSignature, "", s)
		if s.SigType != packet.SigTypeBinary && s.SigType != packet.SigTypeText {
			base.Reason = fmt.Sprintf("signature type 0x%02x is not a document signature", uint8(s.SigType))
			return nil, base
		}
		switch s.Hash {
		case crypto.MD5, crypto.RIPEMD160:
			base.Reason = fmt.Sprintf("digest %v is refused as too weak", s.Hash)
			return nil, base
		}
		h, err := s.PrepareVerify()
		if err != nil {
			base.Reason = fmt.Sprintf("cannot check: %v", err)
			return nil, base
		}
		w := io.Writer(h)
		if s.SigType == packet.SigTypeText {
			w = openpgp.NewCanonicalTextHash(h)
		}
		ps = append(ps, pending{s, h})
		ws = append(ws, w)
	}
	if _, err := io.Copy(io.MultiWriter(ws...), data); err != nil {
		return nil, fmt.Errorf("read signed data: %w", err)
	}

	var first *Signer
	for _, p := range ps {
		signer, err := kr.check(p.sig, p.h, now)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = signer
		}
	}
	return first, nil
}

// parseSignatures decodes armour if present and returns the signature
// packets, refusing anything else.
func parseSignatures(raw []byte) ([]*packet.Signature, error) {
	malformed := func(format string, a ...any) error {
		return &SignatureError{Err: ErrMalformedSignature, Reason: fmt.Sprintf(format, a...)}
	}
	body := raw
	if trimmed := bytes.TrimLeft(raw, " \t\r\n"); bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP ")) {
		blk, err := armor.Decode(bytes.NewReader(trimmed))
		if err != nil {
			return nil, malformed("bad armour: %v", err)
		}
		if blk.Type != openpgp.SignatureType {
			return nil, malformed("armour type %q, want %q", blk.Type, openpgp.SignatureType)
		}
		body, err = io.ReadAll(blk.Body)
		if err != nil {
			return nil, malformed("bad armour: %v", err)
		}
	}
	if len(body) == 0 || body[0]&0x80 == 0 {
		// gpg's wording, which Heads greps for.
		return nil, malformed("no valid OpenPGP data found")
	}
	pr := packet.NewReader(bytes.NewReader(body))
	var sigs []*packet.Signature
	for {
		p, err := pr.NextWithUnsupported()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, malformed("unreadable packet: %v", err)
		}
		switch p := p.(type) {
		case *packet.Signature:
			sigs = append(sigs, p)
		case *packet.UnsupportedPacket:
			return nil, malformed("unsupported signature: %v", p.Error)
		default:
			return nil, malformed("not a detached signature: found a %T packet", p)
		}
		if len(sigs) > maxSignatures {
			return nil, malformed("more than %d signatures", maxSignatures)
		}
	}
	if len(sigs) == 0 {
		return nil, malformed("no signature packet")
	}
	return sigs, nil
}

func sigErr(kind error, reason string, s *packet.Signature) *SignatureError {
	e := &SignatureError{Err: kind, Reason: reason, Created: s.CreationTime}
	if s.IssuerKeyId != nil {
		e.IssuerKeyID = keyID(*s.IssuerKeyId)
	}
	if len(s.IssuerFingerprint) > 0 {
		e.Issuer = fmt.Sprintf("%X", s.IssuerFingerprint)
	}
	return e
}

// issuerKeyID returns the 64-bit key ID a signature names, from the issuer
// subpacket or else the issuer fingerprint (v4: its low 64 bits; v6: high).
func issuerKeyID(s *packet.Signature) (uint64, bool) {
	if s.IssuerKeyId != nil {
		return *s.IssuerKeyId, true
	}
	fp := s.IssuerFingerprint
	var id uint64
	switch len(fp) {
	case 20:
		fp = fp[12:]
	case 32:
		fp = fp[:8]
	default:
		return 0, false
	}
	for _, b := range fp {
		id = id<<8 | uint64(b)
	}
	return id, true
}

func (kr *Keyring) check(s *packet.Signature, h hash.Hash, now time.Time) (*Signer, error) {
	id, ok := issuerKeyID(s)
	if !ok {
		return nil, sigErr(ErrMalformedSignature, "the signature names no issuer key", s)
	}
	var keys []openpgp.Key
	for _, k := range kr.entities.KeysById(id) {
		if len(s.IssuerFingerprint) > 0 && !bytes.Equal(s.IssuerFingerprint, k.PublicKey.Fingerprint) {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, sigErr(ErrUnknownKey, "no key with this ID in the ROM keyring", s)
	}

	var key *openpgp.Key
	var verr error
	for i := range keys {
		// VerifySignature consumes the hash state (it appends the
		// signature's hash suffix), so retries on key-ID collisions need a
		// clone of the data hash.
		hk := h
		if i < len(keys)-1 {
			if c, err := cloneHash(h); err == nil {
				hk = c
			}
		}
		if verr = keys[i].PublicKey.VerifySignature(hk, s); verr == nil {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		e := describeErr(sigErr(ErrBadSignature, fmt.Sprintf("%v", verr), s), &keys[0])
		return nil, e
	}
	return policy(key, s, now)
}

func cloneHash(h hash.Hash) (hash.Hash, error) {
	type cloner interface{ Clone() (hash.Hash, error) }
	if c, ok := h.(cloner); ok {
		return c.Clone()
	}
	return nil, errors.New("hash cannot be cloned")
}

func describeErr(e *SignatureError, k *openpgp.Key) *SignatureError {
	e.Fingerprint = fingerprint(k.Entity.PrimaryKey)
	e.SigningKey = fingerprint(k.PublicKey)
	if id := k.Entity.PrimaryIdentity(); id != nil {
		e.UserID = id.Name
	}
	return e
}

// policy applies goheads' refusals to a cryptographically good signature.
func policy(k *openpgp.Key, s *packet.Signature, now time.Time) (*Signer, error) {
	e := k.Entity
	subkey := k.PublicKey != e.PrimaryKey
	at := s.CreationTime
	fail := func(kind error, format string, a ...any) (*Signer, error) {
		return nil, describeErr(sigErr(kind, fmt.Sprintf(format, a...), s), k)
	}
	day := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }

	if len(e.Revocations) > 0 {
		return fail(ErrRevokedKey, "primary key %s is revoked (%s)", fingerprint(e.PrimaryKey), reasonOrUnknown(e.Revocations[0]))
	}
	if subkey && len(k.Revocations) > 0 {
		return fail(ErrRevokedKey, "signing subkey %s is revoked (%s)", fingerprint(k.PublicKey), reasonOrUnknown(k.Revocations[0]))
	}
	self, _ := e.PrimarySelfSignature()
	if self == nil {
		return fail(ErrUnusableKey, "the key has no valid self-signature")
	}
	for _, pk := range []*packet.PublicKey{e.PrimaryKey, k.PublicKey} {
		if pk.CreationTime.After(at) {
			return fail(ErrUnusableKey, "signature made %s, before key %s was created (%s); was the clock wrong when signing?", day(at), fingerprint(pk), day(pk.CreationTime))
		}
	}
	if u := usage(k.SelfSignature, k.PublicKey); !u.Sign {
		return fail(ErrUnusableKey, "key %s is not a signing key (usage %q)", fingerprint(k.PublicKey), u.String())
	}
	if subkey && !k.SelfSignature.FlagsValid {
		// go-crypto checks the subkey's cross-signature only when the
		// binding carries the sign flag; without flags it would not have,
		// and someone else's key could pose as this one's subkey.
		return fail(ErrUnusableKey, "subkey %s has no key flags, so it is not certified for signing", fingerprint(k.PublicKey))
	}
	if exp := expiry(e.PrimaryKey, self); !exp.IsZero() && at.After(exp) {
		return fail(ErrExpiredKey, "primary key %s expired %s, signature made %s", fingerprint(e.PrimaryKey), day(exp), day(at))
	}
	if subkey {
		if exp := expiry(k.PublicKey, k.SelfSignature); !exp.IsZero() && at.After(exp) {
			return fail(ErrExpiredKey, "signing subkey %s expired %s, signature made %s", fingerprint(k.PublicKey), day(exp), day(at))
		}
	}
	if s.SigLifetimeSecs != nil && *s.SigLifetimeSecs != 0 {
		if exp := at.Add(time.Duration(*s.SigLifetimeSecs) * time.Second); now.After(exp) {
			return fail(ErrExpiredSignature, "signature expired %s", day(exp))
		}
	}
	for _, n := range s.Notations {
		if n.IsCritical {
			return fail(ErrMalformedSignature, "critical notation %q is not understood", n.Name)
		}
	}

	signer := &Signer{
		Fingerprint: fingerprint(e.PrimaryKey),
		SigningKey:  fingerprint(k.PublicKey),
		Subkey:      subkey,
		Algorithm:   algorithm(k.PublicKey),
		Hash:        hashName(s.Hash),
		Created:     at,
	}
	if id := e.PrimaryIdentity(); id != nil {
		signer.UserID = id.Name
	}
	if exp := expiry(e.PrimaryKey, self); !exp.IsZero() && now.After(exp) {
		signer.Notes = append(signer.Notes, fmt.Sprintf("key %s has expired since (%s); the signature was made before", signer.Fingerprint, day(exp)))
	}
	if subkey {
		if exp := expiry(k.PublicKey, k.SelfSignature); !exp.IsZero() && now.After(exp) {
			signer.Notes = append(signer.Notes, fmt.Sprintf("signing subkey %s has expired since (%s); the signature was made before", signer.SigningKey, day(exp)))
		}
	}
	if s.Hash == crypto.SHA1 {
		signer.Notes = append(signer.Notes, "signature uses the SHA-1 digest; re-sign to upgrade to SHA-256")
	}
	return signer, nil
}

func reasonOrUnknown(sig *packet.Signature) string {
	if r := revocationReason(sig); r != "" {
		return r
	}
	return "no reason given"
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "SHA1"
	case crypto.SHA224:
		return "SHA224"
	case crypto.SHA256:
		return "SHA256"
	case crypto.SHA384:
		return "SHA384"
	case crypto.SHA512:
		return "SHA512"
	case crypto.SHA3_256:
		return "SHA3-256"
	case crypto.SHA3_512:
		return "SHA3-512"
	}
	return h.String()
}
