package otp

import (
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EncodeSecret returns the secret as Heads shows it for manual entry:
// seal-totp.sh runs `base32 < totp.key`, i.e. RFC 4648 base32, upper case,
// with '=' padding (none for a 20-byte secret, which is exactly 32 letters).
func EncodeSecret(secret []byte) string {
	return base32.StdEncoding.EncodeToString(secret)
}

// maxSecretText bounds DecodeSecret's input: 1 KiB of base32 is 640 bytes of
// key, far beyond any OTP secret; longer input is a mistake, not a key.
const maxSecretText = 1024

// SecretSyntaxError says where base32 text stops being base32.
type SecretSyntaxError struct {
	// Offset is the byte offset in the text given to DecodeSecret.
	Offset int
	// Char is the offending character, 0 for a length problem.
	Char rune
	Msg  string
}

func (e *SecretSyntaxError) Error() string {
	if e.Char != 0 {
		return fmt.Sprintf("base32 secret: offset %d: %q: %s", e.Offset, e.Char, e.Msg)
	}
	return fmt.Sprintf("base32 secret: offset %d: %s", e.Offset, e.Msg)
}

// DecodeSecret parses a base32 secret typed by a person or read from a QR
// code: letters of either case, optional '=' padding, and spaces or hyphens
// between groups (as authenticator apps display it) are accepted. Anything
// else is an error naming the offset.
func DecodeSecret(text string) ([]byte, error) {
	if len(text) > maxSecretText {
		return nil, &SecretSyntaxError{Offset: maxSecretText, Msg: fmt.Sprintf("longer than %d characters; this is not an OTP secret", maxSecretText)}
	}
	var b strings.Builder
	pad := -1 // offset of the first '='
	for i, r := range text {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			continue
		case r == '=':
			if pad < 0 {
				pad = i
			}
			continue
		case pad >= 0:
			return nil, &SecretSyntaxError{Offset: i, Char: r, Msg: "character after '=' padding"}
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case (r >= 'A' && r <= 'Z') || (r >= '2' && r <= '7'):
			b.WriteRune(r)
		default:
			hint := "not a base32 letter (A-Z, 2-7)"
			switch r {
			case '0', '1', '8', '9':
				hint = "digits 0, 1, 8 and 9 do not occur in base32 (did you mean O, I or L?)"
			}
			return nil, &SecretSyntaxError{Offset: i, Char: r, Msg: hint}
		}
	}
	s := b.String()
	if s == "" {
		return nil, &SecretSyntaxError{Offset: len(text), Msg: "no base32 letters"}
	}
	// Lengths of 1, 3 and 6 (mod 8) letters cannot come from whole bytes.
	switch len(s) % 8 {
	case 1, 3, 6:
		return nil, &SecretSyntaxError{Offset: len(text), Msg: fmt.Sprintf("%d letters is not a whole number of bytes; a letter is missing or extra", len(s))}
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	out, err := enc.DecodeString(s)
	if err != nil {
		return nil, &SecretSyntaxError{Offset: len(text), Msg: err.Error()}
	}
	// The last letter may carry bits beyond the final byte; the decoder
	// drops them silently. Non-zero ones mean the text was mistyped, and
	// guessing the intended key would be wrong, so refuse.
	if enc.EncodeToString(out) != s {
		clear(out)
		return nil, &SecretSyntaxError{Offset: len(text), Msg: "last letter has bits set beyond the final byte; check the last letters"}
	}
	return out, nil
}

// URI is the otpauth:// Key URI that Heads puts in the QR code:
// otpauth://totp/<label>?secret=<base32>.
//
// Heads (seal-totp.sh) pastes the board name in unescaped, so names with
// spaces or a '/' ("Librem 13 v2/v3") give a malformed URI that only lenient
// apps accept. goheads percent-encodes the label as the Key URI format
// requires; plain board names ("x230-hotp-maximized", "TPMTOTP") come out
// byte-identical to Heads'. Padding is dropped from the secret as the format
// asks (a 20-byte secret has none anyway).
func URI(label string, secret []byte) string {
	return "otpauth://totp/" + url.PathEscape(label) + "?secret=" +
		strings.TrimRight(EncodeSecret(secret), "=")
}

// Key is a parsed otpauth:// URI.
type Key struct {
	// Type is "totp" or "hotp".
	Type string
	// Label is the unescaped label ("issuer:account" or a board name).
	Label  string
	Issuer string
	Secret []byte
	Params Params
	// Counter is the initial counter of an HOTP key.
	Counter uint64
}

// maxURI bounds ParseURI's input; a QR code holds at most 2953 bytes.
const maxURI = 4096

// ErrNotOTPURI is returned (wrapped) when the text is not an otpauth:// URI.
var ErrNotOTPURI = errors.New("not an otpauth:// URI")

// ParseURI parses an otpauth:// Key URI, e.g. text decoded from a QR code.
// Unknown parameters are ignored, as authenticator apps do; known ones are
// validated, and a missing or malformed secret is an error.
func ParseURI(s string) (*Key, error) {
	if len(s) > maxURI {
		return nil, fmt.Errorf("otpauth URI: %d bytes, longer than any QR code holds (%d): %w", len(s), maxURI, ErrNotOTPURI)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("otpauth URI: %v: %w", err, ErrNotOTPURI)
	}
	if !strings.EqualFold(u.Scheme, "otpauth") {
		return nil, fmt.Errorf("otpauth URI: scheme %q: %w", u.Scheme, ErrNotOTPURI)
	}
	k := &Key{Type: strings.ToLower(u.Host)}
	if k.Type != "totp" && k.Type != "hotp" {
		return nil, fmt.Errorf("otpauth URI: type %q: want totp or hotp", u.Host)
	}
	k.Label = strings.TrimPrefix(u.Path, "/")
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("otpauth URI: query: %v", err)
	}
	sec := q.Get("secret")
	if sec == "" {
		return nil, errors.New("otpauth URI: no secret= parameter")
	}
	if k.Secret, err = DecodeSecret(sec); err != nil {
		return nil, fmt.Errorf("otpauth URI: secret=: %w", err)
	}
	k.Issuer = q.Get("issuer")
	if v := q.Get("algorithm"); v != "" {
		switch strings.ToUpper(v) {
		case "SHA1":
			k.Params.Hash = SHA1
		case "SHA256":
			k.Params.Hash = SHA256
		case "SHA512":
			k.Params.Hash = SHA512
		default:
			return nil, fmt.Errorf("otpauth URI: algorithm=%q: want SHA1, SHA256 or SHA512", v)
		}
	}
	if v := q.Get("digits"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 6 || n > 8 {
			return nil, fmt.Errorf("otpauth URI: digits=%q: want 6, 7 or 8", v)
		}
		k.Params.Digits = n
	}
	if v := q.Get("period"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("otpauth URI: period=%q: want a positive number of seconds", v)
		}
		k.Params.Period = secondsDuration(n)
	}
	if v := q.Get("counter"); v != "" {
		if k.Type != "hotp" {
			return nil, fmt.Errorf("otpauth URI: counter= on a %s key", k.Type)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("otpauth URI: counter=%q: want a non-negative integer", v)
		}
		k.Counter = n
	}
	return k, nil
}

func secondsDuration(n uint64) time.Duration { return time.Duration(n) * time.Second }
