package otp

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/testenv"
)

// RFC 4226 Appendix D: secret "12345678901234567890", counters 0-9.
func TestHOTPRFC4226(t *testing.T) {
	secret := []byte("12345678901234567890")
	want := []string{"755224", "287082", "359152", "969429", "338314",
		"254676", "287922", "162583", "399871", "520489"}
	for c, w := range want {
		got, err := HOTP(secret, uint64(c))
		if err != nil {
			t.Fatalf("HOTP(counter %d): %v", c, err)
		}
		if got != w {
			t.Errorf("HOTP(counter %d) = %s, want %s", c, got, w)
		}
	}
}

// RFC 6238 Appendix B: 8 digits, 30 s, one key per hash.
func TestTOTPRFC6238(t *testing.T) {
	keys := map[Hash][]byte{
		SHA1:   []byte("12345678901234567890"),
		SHA256: []byte("12345678901234567890123456789012"),
		SHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	tests := []struct {
		unix int64
		want map[Hash]string
	}{
		{59, map[Hash]string{SHA1: "94287082", SHA256: "46119246", SHA512: "90693936"}},
		{1111111109, map[Hash]string{SHA1: "07081804", SHA256: "68084774", SHA512: "25091201"}},
		{1111111111, map[Hash]string{SHA1: "14050471", SHA256: "67062674", SHA512: "99943326"}},
		{1234567890, map[Hash]string{SHA1: "89005924", SHA256: "91819424", SHA512: "93441116"}},
		{2000000000, map[Hash]string{SHA1: "69279037", SHA256: "90698825", SHA512: "38618901"}},
		{20000000000, map[Hash]string{SHA1: "65353130", SHA256: "77737706", SHA512: "47863826"}},
	}
	for _, tt := range tests {
		for h, w := range tt.want {
			got, err := TOTPWith(keys[h], time.Unix(tt.unix, 0), Params{Digits: 8, Hash: h})
			if err != nil {
				t.Fatalf("TOTP(%d, %s): %v", tt.unix, h, err)
			}
			if got != w {
				t.Errorf("TOTP(%d, %s) = %s, want %s", tt.unix, h, got, w)
			}
		}
	}
}

// The same counter as a number and as text: the token compares numbers.
func TestHOTPValueMatchesText(t *testing.T) {
	secret := []byte("12345678901234567890")
	// Counter 7 gives 162583; find a leading-zero code among the first
	// thousand counters to make sure padding is right.
	sawLeadingZero := false
	for c := uint64(0); c < 1000; c++ {
		s, err := HOTP(secret, c)
		if err != nil {
			t.Fatal(err)
		}
		v, err := HOTPValue(secret, c, Params{})
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 6 || fmt.Sprintf("%06d", v) != s {
			t.Fatalf("counter %d: text %q, value %d", c, s, v)
		}
		if s[0] == '0' {
			sawLeadingZero = true
		}
	}
	if !sawLeadingZero {
		t.Fatal("no code with a leading zero in 1000 counters; padding untested")
	}
}

func TestBadParams(t *testing.T) {
	if _, err := HOTP(nil, 1); !errors.Is(err, ErrEmptySecret) {
		t.Errorf("empty secret: err = %v, want ErrEmptySecret", err)
	}
	for _, d := range []int{-1, 5, 9, 10} {
		if _, err := HOTPWith([]byte("k"), 1, Params{Digits: d}); err == nil {
			t.Errorf("digits %d accepted", d)
		}
	}
	if _, err := HOTPWith([]byte("k"), 1, Params{Hash: Hash(7)}); err == nil {
		t.Error("unknown hash accepted")
	}
	if _, err := TOTP([]byte("k"), time.Unix(-1, 0)); err == nil {
		t.Error("time before the epoch accepted")
	}
	if _, err := TOTPWith([]byte("k"), time.Unix(100, 0), Params{Period: 1500 * time.Millisecond}); err == nil {
		t.Error("fractional period accepted")
	}
}

func TestNextStep(t *testing.T) {
	tests := []struct {
		now    int64
		period time.Duration
		want   int64
	}{
		{0, 0, 30},
		{29, 0, 30},
		{30, 0, 60},
		{1700000001, 30 * time.Second, 1700000010},
		// 7 does not divide the offset between Go's zero time and the Unix
		// epoch, so this catches time.Truncate.
		{100, 7 * time.Second, 105},
	}
	for _, tt := range tests {
		got, err := NextStep(time.Unix(tt.now, 0), tt.period)
		if err != nil {
			t.Fatal(err)
		}
		if got.Unix() != tt.want {
			t.Errorf("NextStep(%d, %s) = %d, want %d", tt.now, tt.period, got.Unix(), tt.want)
		}
		// The code must change exactly there and not one second earlier.
		c1, _ := TimeCounter(got.Add(-time.Second), tt.period)
		c2, _ := TimeCounter(got, tt.period)
		if c2 != c1+1 {
			t.Errorf("NextStep(%d, %s): counter %d before, %d at the step", tt.now, tt.period, c1, c2)
		}
	}
}

// oathtool is the reference implementation the design names; random keys,
// counters and times, each answer computed by the real tool.
func TestCrossCheckOathtool(t *testing.T) {
	oathtool := testenv.NeedTool(t, "oathtool", "oathtool")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(oathtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("oathtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for i := 0; i < 8; i++ {
		secret := make([]byte, SecretSize)
		if _, err := rand.Read(secret); err != nil {
			t.Fatal(err)
		}
		b32 := EncodeSecret(secret)
		var cb [8]byte
		rand.Read(cb[:])
		counter := uint64(cb[0]) | uint64(cb[1])<<8 | uint64(cb[2])<<16 // any 24-bit counter
		if i == 0 {
			counter = 1 // Heads seals at counter 1
		}
		want := run("--hotp", "-b", b32, "-c", fmt.Sprint(counter))
		got, err := HOTP(secret, counter)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("HOTP(%s, %d) = %s, oathtool says %s", b32, counter, got, want)
		}

		unix := int64(1700000000) + (int64(cb[3])<<16 | int64(cb[4])<<8 | int64(cb[5]))
		want = run("--totp", "-b", b32, "-N", fmt.Sprintf("@%d", unix))
		got, err = TOTP(secret, time.Unix(unix, 0))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("TOTP(%s, @%d) = %s, oathtool says %s", b32, unix, got, want)
		}

		want = run("--totp=sha256", "-d", "8", "-b", b32, "-N", fmt.Sprintf("@%d", unix))
		got, err = TOTPWith(secret, time.Unix(unix, 0), Params{Digits: 8, Hash: SHA256})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("TOTP-SHA256(%s, @%d) = %s, oathtool says %s", b32, unix, got, want)
		}
	}
}
