package otp

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestEncodeSecretMatchesBase32Tool(t *testing.T) {
	// seal-totp.sh uses `base32` (busybox or coreutils); the output must be
	// what that tool prints, so compare with the real one when present.
	secret := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99,
		0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0xfe, 0xed, 0xfa, 0xce}
	const want = "AAISEM2EKVTHPCEZVK54ZXPO777O36WO" // Python's base64.b32encode
	if got := EncodeSecret(secret); got != want {
		t.Fatalf("EncodeSecret = %s, want %s", got, want)
	}
	// RFC 4648 section 10 vectors, for the padding Heads would print for
	// secrets that are not a multiple of 5 bytes.
	for in, out := range map[string]string{"f": "MY======", "fo": "MZXQ====", "foo": "MZXW6===",
		"foob": "MZXW6YQ=", "fooba": "MZXW6YTB", "foobar": "MZXW6YTBOI======"} {
		if got := EncodeSecret([]byte(in)); got != out {
			t.Errorf("EncodeSecret(%q) = %s, want %s", in, got, out)
		}
	}
	tool, err := exec.LookPath("base32")
	if err != nil {
		t.Skip("base32 (coreutils) not installed; hand-computed value checked only")
	}
	cmd := exec.Command(tool)
	cmd.Stdin = bytes.NewReader(secret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("base32: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("base32 tool prints %s, EncodeSecret %s", got, want)
	}
}

func TestDecodeSecret(t *testing.T) {
	secret := []byte("12345678901234567890")
	canon := EncodeSecret(secret) // GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
	good := []string{
		canon,
		strings.ToLower(canon),
		"GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
		"gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq",
	}
	for _, s := range good {
		got, err := DecodeSecret(s)
		if err != nil {
			t.Errorf("DecodeSecret(%q): %v", s, err)
			continue
		}
		if !bytes.Equal(got, secret) {
			t.Errorf("DecodeSecret(%q) = %x", s, got)
		}
	}
	// Padding, with and without.
	for _, s := range []string{"MZXW6===", "MZXW6"} {
		got, err := DecodeSecret(s)
		if err != nil || string(got) != "foo" {
			t.Errorf("DecodeSecret(%q) = %q, %v; want \"foo\"", s, got, err)
		}
	}
	bad := []struct {
		in     string
		offset int
	}{
		{"", 0},
		{"   ", 3},
		{"GEZDGNB1", 7},     // '1' is not base32
		{"GEZD=GNB", 5},     // data after padding
		{"GEZDGNBVG", 9},    // 9 letters: not whole bytes
		{"MZXW7", 5},        // trailing bits set (MZXW6 is "foo")
		{"GEZDGNBV\x00", 8}, // control character
		{"GEZDGNBVé", 8},    // non-ASCII
		{strings.Repeat("A", 1025), 1024},
	}
	for _, tt := range bad {
		_, err := DecodeSecret(tt.in)
		var se *SecretSyntaxError
		if !errors.As(err, &se) {
			t.Errorf("DecodeSecret(%q): err = %v, want *SecretSyntaxError", tt.in, err)
			continue
		}
		if se.Offset != tt.offset {
			t.Errorf("DecodeSecret(%q): offset %d, want %d (%v)", tt.in, se.Offset, tt.offset, err)
		}
	}
}

func TestURI(t *testing.T) {
	secret := []byte("12345678901234567890")
	tests := []struct {
		label, want string
	}{
		// Heads' default and a typical board: identical to seal-totp.sh.
		{"TPMTOTP", "otpauth://totp/TPMTOTP?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
		{"x230-hotp-maximized", "otpauth://totp/x230-hotp-maximized?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
		// Heads would emit the space and slash raw.
		{"Librem 13 v2/v3", "otpauth://totp/Librem%2013%20v2%2Fv3?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
	}
	for _, tt := range tests {
		got := URI(tt.label, secret)
		if got != tt.want {
			t.Errorf("URI(%q) = %s, want %s", tt.label, got, tt.want)
		}
		k, err := ParseURI(got)
		if err != nil {
			t.Fatalf("ParseURI(%s): %v", got, err)
		}
		if k.Type != "totp" || k.Label != tt.label || !bytes.Equal(k.Secret, secret) {
			t.Errorf("ParseURI(%s) = %+v", got, k)
		}
	}
	// The unescaped URI Heads prints for that board still parses to the same key.
	k, err := ParseURI("otpauth://totp/Librem 13 v2/v3?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
	if err != nil || k.Label != "Librem 13 v2/v3" || !bytes.Equal(k.Secret, secret) {
		t.Errorf("Heads' raw URI: %+v, %v", k, err)
	}
	// A short secret has padding in base32 but not in the URI.
	if got := URI("b", []byte("foo")); got != "otpauth://totp/b?secret=MZXW6" {
		t.Errorf("URI with short secret = %s", got)
	}
}

func TestParseURI(t *testing.T) {
	k, err := ParseURI("otpauth://hotp/ACME:alice?secret=MZXW6&issuer=ACME&algorithm=sha256&digits=8&counter=42")
	if err != nil {
		t.Fatal(err)
	}
	if k.Type != "hotp" || k.Label != "ACME:alice" || k.Issuer != "ACME" || string(k.Secret) != "foo" ||
		k.Params.Hash != SHA256 || k.Params.Digits != 8 || k.Counter != 42 {
		t.Errorf("ParseURI = %+v", k)
	}
	k, err = ParseURI("otpauth://totp/x?secret=MZXW6&period=60")
	if err != nil || k.Params.Period != 60*time.Second {
		t.Errorf("period: %+v, %v", k, err)
	}
	bad := []string{
		"https://totp/x?secret=MZXW6",
		"otpauth://motp/x?secret=MZXW6",
		"otpauth://totp/x",
		"otpauth://totp/x?secret=",
		"otpauth://totp/x?secret=MZXW1",
		"otpauth://totp/x?secret=MZXW6&digits=5",
		"otpauth://totp/x?secret=MZXW6&digits=x",
		"otpauth://totp/x?secret=MZXW6&algorithm=MD5",
		"otpauth://totp/x?secret=MZXW6&period=0",
		"otpauth://totp/x?secret=MZXW6&counter=3",
		"otpauth://hotp/x?secret=MZXW6&counter=-3",
		"otpauth://totp/x?secret=MZXW6&a=%zz",
		"otpauth://totp/x?secret=MZXW6" + strings.Repeat("&a=b", 2000),
		"::",
	}
	for _, s := range bad {
		if k, err := ParseURI(s); err == nil {
			t.Errorf("ParseURI(%.60q) accepted: %+v", s, k)
		}
	}
	if _, err := ParseURI("https://example.org/"); !errors.Is(err, ErrNotOTPURI) {
		t.Errorf("https URI: err = %v, want ErrNotOTPURI", err)
	}
}

func TestClockPlausible(t *testing.T) {
	build := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		now       time.Time
		build     time.Time
		wantErr   bool
		wantLimit time.Time
	}{
		{"reset RTC 2000", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, true, MinPlausibleTime},
		{"epoch", time.Unix(0, 0), build, true, MinPlausibleTime},
		{"last second of 2023", time.Date(2023, 12, 31, 23, 59, 59, 0, time.UTC), time.Time{}, true, MinPlausibleTime},
		{"2024 without build time", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, false, time.Time{}},
		{"before build", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), build, true, build},
		{"at build", build, build, false, time.Time{}},
		{"after build", build.Add(24 * time.Hour), build, false, time.Time{}},
	}
	for _, tt := range tests {
		err := ClockPlausible(tt.now, tt.build)
		if !tt.wantErr {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrClockNotSet) {
			t.Errorf("%s: err = %v, want ErrClockNotSet", tt.name, err)
			continue
		}
		var ce *ClockError
		if !errors.As(err, &ce) || !ce.Limit.Equal(tt.wantLimit) || !ce.Now.Equal(tt.now) {
			t.Errorf("%s: %#v", tt.name, err)
		}
		if !strings.Contains(err.Error(), "set the date and time") {
			t.Errorf("%s: message does not say what to do: %v", tt.name, err)
		}
	}
}

func FuzzDecodeSecret(f *testing.F) {
	for _, s := range []string{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "mzxw6===", "gezd-gnbv", "A", "", "MZXW7", "GEZD=X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeSecret(s)
		if err != nil {
			var se *SecretSyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("DecodeSecret(%q): bad error %#v", s, err)
			}
			return
		}
		if len(b) == 0 {
			t.Fatalf("DecodeSecret(%q) accepted with no bytes", s)
		}
		// Whatever was accepted must encode back to the same letters.
		canon := strings.TrimRight(EncodeSecret(b), "=")
		norm := strings.Map(func(r rune) rune {
			switch r {
			case ' ', '-', '\t', '=':
				return -1
			}
			return r
		}, strings.ToUpper(s))
		if canon != norm {
			t.Fatalf("DecodeSecret(%q) = %x, which encodes as %s", s, b, canon)
		}
	})
}

func FuzzParseURI(f *testing.F) {
	f.Add(URI("x230-hotp-maximized", []byte("12345678901234567890")))
	f.Add("otpauth://hotp/a:b?secret=MZXW6&counter=1&digits=8&algorithm=SHA512&period=30&issuer=a")
	f.Add("otpauth://totp/Librem 13 v2/v3?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
	f.Add("otpauth://totp/%zz?secret=A")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseURI(s)
		if err != nil {
			return
		}
		if len(k.Secret) == 0 || (k.Type != "totp" && k.Type != "hotp") {
			t.Fatalf("ParseURI(%q) = %+v", s, k)
		}
		// An accepted key must produce a code and survive URI round trip.
		if _, err := HOTPWith(k.Secret, k.Counter, k.Params); err != nil {
			t.Fatalf("ParseURI(%q) gave unusable params: %v", s, err)
		}
		if k.Type == "totp" {
			k2, err := ParseURI(URI(k.Label, k.Secret))
			if err != nil || k2.Label != k.Label || !bytes.Equal(k2.Secret, k.Secret) {
				t.Fatalf("round trip of %q: %+v, %v", s, k2, err)
			}
		}
	})
}
