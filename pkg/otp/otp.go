// Package otp computes the one-time codes Heads shows and checks: TOTP
// (RFC 6238) for the phone, HOTP (RFC 4226) for the USB security token, both
// from the same 20-byte secret sealed in the TPM. It also encodes that secret
// the way Heads presents it (base32 text and an otpauth:// URI), renders the
// URI as a QR code a phone can scan from a text console, and tells the caller
// when the clock is too wrong for a TOTP code to mean anything.
//
// Heads' defaults (tpmtotp's totp/hotp tools) are the package defaults:
// SHA-1, 6 digits, 30-second steps from the Unix epoch.
package otp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Heads' parameters.
const (
	// SecretSize is the length of the shared secret Heads generates and
	// seals (seal-totp.sh: 20 bytes from /dev/urandom). Longer secrets are
	// truncated to this size before they reach the USB token.
	SecretSize = 20
	// Digits is the code length shown by Heads and checked by the token.
	Digits = 6
	// Period is the TOTP time step.
	Period = 30 * time.Second
)

// Hash selects the HMAC hash. Heads uses SHA1; the others exist for the RFC
// 6238 test vectors and for tokens that support them.
type Hash int

const (
	SHA1 Hash = iota
	SHA256
	SHA512
)

func (h Hash) String() string {
	switch h {
	case SHA1:
		return "SHA1"
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return fmt.Sprintf("Hash(%d)", int(h))
}

func (h Hash) newFunc() (func() hash.Hash, error) {
	switch h {
	case SHA1:
		return sha1.New, nil
	case SHA256:
		return sha256.New, nil
	case SHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown OTP hash %d (want SHA1, SHA256 or SHA512)", int(h))
}

// Params are the code parameters. The zero value means Heads' parameters.
type Params struct {
	// Digits is the code length, 6 to 8 (RFC 4226 section 5.3); 0 means 6.
	Digits int
	// Hash is the HMAC hash; the zero value is SHA1.
	Hash Hash
	// Period is the TOTP time step; 0 means 30 s. Unused by HOTP.
	Period time.Duration
}

func (p Params) withDefaults() Params {
	if p.Digits == 0 {
		p.Digits = Digits
	}
	if p.Period == 0 {
		p.Period = Period
	}
	return p
}

// ErrEmptySecret is returned for a zero-length secret: every code would be
// predictable, so it is refused rather than computed.
var ErrEmptySecret = errors.New("OTP secret is empty")

var pow10 = [...]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// HOTP returns the RFC 4226 code for counter with Heads' parameters (SHA-1,
// 6 digits), zero-padded as Heads' `hotp` tool prints it.
func HOTP(secret []byte, counter uint64) (string, error) {
	return HOTPWith(secret, counter, Params{})
}

// HOTPWith returns the RFC 4226 code for counter with the given parameters.
func HOTPWith(secret []byte, counter uint64, p Params) (string, error) {
	v, digits, err := hotpValue(secret, counter, p)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", digits, v), nil
}

// HOTPValue is the numeric value of the HOTP code, as a token compares it
// (leading zeros carry no information there).
func HOTPValue(secret []byte, counter uint64, p Params) (uint32, error) {
	v, _, err := hotpValue(secret, counter, p)
	return v, err
}

func hotpValue(secret []byte, counter uint64, p Params) (uint32, int, error) {
	p = p.withDefaults()
	if len(secret) == 0 {
		return 0, 0, ErrEmptySecret
	}
	if p.Digits < 6 || p.Digits > 8 {
		return 0, 0, fmt.Errorf("OTP code length %d digits: want 6 to 8 (RFC 4226 section 5.3)", p.Digits)
	}
	newHash, err := p.Hash.newFunc()
	if err != nil {
		return 0, 0, err
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac := hmac.New(newHash, secret)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	// Dynamic truncation, RFC 4226 section 5.3: the low nibble of the last
	// byte picks 4 bytes; the top bit is masked so the value is positive.
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	clear(sum)
	return bin % pow10[p.Digits], p.Digits, nil
}

// TimeCounter is the RFC 6238 step counter T = floor(unix(t) / period).
func TimeCounter(t time.Time, period time.Duration) (uint64, error) {
	if period == 0 {
		period = Period
	}
	if period < time.Second || period%time.Second != 0 {
		return 0, fmt.Errorf("TOTP period %s: want a whole number of seconds", period)
	}
	sec := t.Unix()
	if sec < 0 {
		return 0, fmt.Errorf("time %s is before the Unix epoch: no TOTP step exists for it", t.UTC().Format(time.RFC3339))
	}
	return uint64(sec) / uint64(period/time.Second), nil
}

// TOTP returns the RFC 6238 code at t with Heads' parameters (SHA-1, 6
// digits, 30 s), as `totp -q` prints it in unseal-totp.sh. Check the clock
// with ClockPlausible first: with a wrong clock the code is well formed and
// useless.
func TOTP(secret []byte, t time.Time) (string, error) {
	return TOTPWith(secret, t, Params{})
}

// TOTPWith returns the RFC 6238 code at t with the given parameters.
func TOTPWith(secret []byte, t time.Time, p Params) (string, error) {
	p = p.withDefaults()
	c, err := TimeCounter(t, p.Period)
	if err != nil {
		return "", err
	}
	return HOTPWith(secret, c, p)
}

// NextStep is the time at which the TOTP code shown at t changes, so a screen
// can redraw exactly then instead of polling.
func NextStep(t time.Time, period time.Duration) (time.Time, error) {
	if period == 0 {
		period = Period
	}
	c, err := TimeCounter(t, period)
	if err != nil {
		return time.Time{}, err
	}
	// Steps count from the Unix epoch, not from Go's zero time, so
	// time.Truncate would be wrong for periods that do not divide both.
	step := int64(period / time.Second)
	return time.Unix(int64(c+1)*step, 0).In(t.Location()), nil
}
