package hotpkey

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/otp"
)

// fastOptions poll the models without the real token's 200 ms pauses.
var fastOptions = Options{PollInterval: time.Nanosecond, PollAttempts: 40}

func newSecret(t *testing.T) []byte {
	t.Helper()
	s := make([]byte, otp.SecretSize)
	if _, err := rand.Read(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func code(t *testing.T, secret []byte, counter uint64) string {
	t.Helper()
	c, err := otp.HOTP(secret, counter)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func proToken(t *testing.T, model Model) (*Token, *proFirmware) {
	t.Helper()
	fw := newProFirmware()
	tok, err := New(fw, model, fastOptions)
	if err != nil {
		t.Fatal(err)
	}
	return tok, fw
}

// The CRC must be the STM32's: check it against the catalogue CRC-32/MPEG-2
// (same polynomial and init, MSB first, no XOR) over the words' big-endian
// bytes, whose check value for "123456789" is 0x0376E6E7.
func TestSTMCRC32(t *testing.T) {
	mpeg2 := func(b []byte) uint32 {
		crc := uint32(0xffffffff)
		for _, x := range b {
			crc ^= uint32(x) << 24
			for i := 0; i < 8; i++ {
				if crc&0x80000000 != 0 {
					crc = crc<<1 ^ 0x04c11db7
				} else {
					crc <<= 1
				}
			}
		}
		return crc
	}
	if got := mpeg2([]byte("123456789")); got != 0x0376e6e7 {
		t.Fatalf("reference CRC-32/MPEG-2 check value %08x, want 0376e6e7", got)
	}
	for _, n := range []int{4, 8, 60} {
		le := make([]byte, n)
		rand.Read(le)
		be := make([]byte, n)
		for i := 0; i < n; i += 4 {
			binary.BigEndian.PutUint32(be[i:], binary.LittleEndian.Uint32(le[i:]))
		}
		want := mpeg2(be)
		if got := stmCRC32(le); got != want {
			t.Errorf("stmCRC32(%x) = %08x, want %08x", le, got, want)
		}
		if got := fwCRC(le); got != want {
			t.Errorf("model fwCRC(%x) = %08x, want %08x", le, got, want)
		}
	}
}

func TestProProgramThenCheck(t *testing.T) {
	ctx := context.Background()
	for _, m := range []Model{NitrokeyPro, LibremKey, NitrokeyStorage} {
		t.Run(m.String(), func(t *testing.T) {
			tok, fw := proToken(t, m)
			secret := newSecret(t)
			// Heads: seal-hotpkey.sh programs counter 1, then writes 2.
			if err := tok.Program(ctx, secret, 1, []byte("12345678")); err != nil {
				t.Fatalf("Program: %v", err)
			}
			if got := fw.slots[3].counter; got != 2 {
				t.Fatalf("token counter after Program = %d, want 2", got)
			}
			if string(fw.slots[3].secret[:20]) != string(secret) || fw.slots[3].typ != 'H' {
				t.Fatal("slot 3 does not hold the secret")
			}
			if got := string(fw.slots[3].name[:]); got != "HEADS Validatio" {
				t.Errorf("slot name %q, want the firmware's 15-byte cut of %q", got, proSlotName)
			}
			// Every boot: unseal-hotp.sh computes HOTP(file counter).
			for c := uint64(2); c < 30; c++ {
				if err := tok.Check(ctx, code(t, secret, c)); err != nil {
					t.Fatalf("Check(counter %d): %v", c, err)
				}
			}
			// A replayed code is refused.
			err := tok.Check(ctx, code(t, secret, 29))
			if !errors.Is(err, ErrWrongCode) || ExitCode(err) != 4 {
				t.Fatalf("replayed code: err = %v (exit %d), want ErrWrongCode (4)", err, ExitCode(err))
			}
			// A code from another secret is refused.
			if err := tok.Check(ctx, code(t, newSecret(t), 30)); !errors.Is(err, ErrWrongCode) {
				t.Fatalf("code of another secret: err = %v, want ErrWrongCode", err)
			}
		})
	}
}

func TestProWindow(t *testing.T) {
	ctx := context.Background()
	tok, fw := proToken(t, NitrokeyPro)
	secret := newSecret(t)
	if err := tok.Program(ctx, secret, 1, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	// Token expects 2. Boots without the token (counter file advanced,
	// token not asked) leave a gap; up to 9 ahead is accepted.
	if err := tok.Check(ctx, code(t, secret, 2+9)); err != nil {
		t.Fatalf("code 9 ahead: %v", err)
	}
	if fw.slots[3].counter != 12 {
		t.Fatalf("counter after offset-9 match = %d, want 12", fw.slots[3].counter)
	}
	// 10 ahead is outside: refused, and the token's counter stays.
	if err := tok.Check(ctx, code(t, secret, 12+10)); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("code 10 ahead: err = %v, want ErrWrongCode", err)
	}
	if fw.slots[3].counter != 12 {
		t.Fatalf("counter moved on a failed check: %d", fw.slots[3].counter)
	}
	if err := tok.Check(ctx, code(t, secret, 12)); err != nil {
		t.Fatalf("code at the token's counter after a failure: %v", err)
	}
}

func TestProWrongPIN(t *testing.T) {
	ctx := context.Background()
	tok, fw := proToken(t, NitrokeyPro)
	secret := newSecret(t)
	st, err := tok.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PINRetries != 3 || st.UserPINRetries != 3 || st.Serial != 0x000a1b2c || st.Firmware != (Version{0, 15, 0}) {
		t.Fatalf("Status = %+v", st)
	}
	if st.Firmware.String() != "v0.15" {
		t.Errorf("firmware prints %s, hotp_verification says v0.15", st.Firmware)
	}
	for want := 2; want >= 0; want-- {
		err := tok.Program(ctx, secret, 1, []byte("87654321"))
		var pe *PINError
		if !errors.As(err, &pe) || !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("wrong PIN: err = %v, want *PINError", err)
		}
		if pe.Retries != want {
			t.Fatalf("retries reported %d, want %d", pe.Retries, want)
		}
		if ExitCode(err) != 2 {
			t.Errorf("exit code %d, want 2", ExitCode(err))
		}
		st, err := tok.Status(ctx)
		if err != nil || st.PINRetries != want {
			t.Fatalf("Status after wrong PIN: %+v, %v; want %d retries", st, err, want)
		}
	}
	// Blocked: the right PIN no longer works.
	err = tok.Program(ctx, secret, 1, []byte("12345678"))
	if !errors.Is(err, ErrPINBlocked) {
		t.Fatalf("right PIN on a blocked card: err = %v, want ErrPINBlocked", err)
	}
	if fw.slots[3].typ != 0xff {
		t.Fatal("slot written without authentication")
	}
}

func TestProPINResetsCounter(t *testing.T) {
	ctx := context.Background()
	tok, fw := proToken(t, LibremKey)
	if err := tok.Program(ctx, newSecret(t), 1, []byte("bad")); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("err = %v", err)
	}
	if err := tok.Program(ctx, newSecret(t), 1, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	if fw.adminRetries != 3 {
		t.Fatalf("retries after a good PIN = %d, want 3", fw.adminRetries)
	}
	// Too long for the 25-byte field, empty, or with a NUL: refused
	// before any traffic, so no retry is burnt.
	before := fw.processed
	for _, pin := range []string{"", "1234\x005678"} {
		if err := tok.Program(ctx, newSecret(t), 1, []byte(pin)); !errors.Is(err, ErrBadInput) {
			t.Fatalf("PIN %q: err = %v, want ErrBadInput", pin, err)
		}
	}
	if err := tok.Program(ctx, newSecret(t), 1, []byte("12345678901234567890123456")); !errors.Is(err, ErrBadInput) || ExitCode(err) != 7 {
		t.Fatalf("26-byte PIN: err = %v", err)
	}
	if fw.processed != before {
		t.Fatal("a too-long PIN reached the token")
	}
}

func TestProUnprogrammedSlot(t *testing.T) {
	tok, _ := proToken(t, NitrokeyPro)
	err := tok.Check(context.Background(), "123456")
	if !errors.Is(err, ErrSlotNotProgrammed) || ExitCode(err) != 6 {
		t.Fatalf("err = %v (exit %d), want ErrSlotNotProgrammed (6)", err, ExitCode(err))
	}
}

// The token must not act on a report whose CRC is wrong, and the host must
// not believe an answer whose CRC is wrong.
func TestProCRC(t *testing.T) {
	ctx := context.Background()
	secret := newSecret(t)

	t.Run("token rejects corrupted query", func(t *testing.T) {
		tok, fw := proToken(t, NitrokeyPro)
		if err := tok.Program(ctx, secret, 1, []byte("12345678")); err != nil {
			t.Fatal(err)
		}
		fw.corruptIn = 1
		err := tok.Check(ctx, code(t, secret, 2))
		if !errors.Is(err, ErrConnectionLost) || !Transient(err) {
			t.Fatalf("corrupted query: err = %v, want ErrConnectionLost (transient)", err)
		}
		if fw.slots[3].counter != 2 {
			t.Fatalf("token acted on a corrupted report: counter %d", fw.slots[3].counter)
		}
		if fw.getReport[fwOutCmdStatus] != 1 {
			t.Fatalf("token status %d for a corrupted report, want 1 (wrong CRC)", fw.getReport[fwOutCmdStatus])
		}
		// Heads retries: the same code then passes.
		if err := tok.Check(ctx, code(t, secret, 2)); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})

	t.Run("host rejects corrupted answer", func(t *testing.T) {
		tok, fw := proToken(t, NitrokeyPro)
		if err := tok.Program(ctx, secret, 1, []byte("12345678")); err != nil {
			t.Fatal(err)
		}
		// One corrupted answer, then a good one on the next poll.
		fw.corruptOut = 1
		if err := tok.Check(ctx, code(t, secret, 2)); err != nil {
			t.Fatalf("one corrupted answer: %v", err)
		}
		// A wrong code whose answer is corrupted into "correct" must
		// not pass: the answer is refused until attempts run out.
		fw.corruptOut = 1000
		err := tok.Check(ctx, "000000")
		if err == nil || errors.Is(err, ErrWrongCode) {
			t.Fatalf("corrupted answers: err = %v, want a connection error", err)
		}
	})

	t.Run("raw report with bad CRC", func(t *testing.T) {
		fw := newProFirmware()
		q, _, err := buildProQuery(proCmdVerifyOTPCode, []byte{1, 2, 3, 4})
		if err != nil {
			t.Fatal(err)
		}
		q[proQueryCRC] ^= 1
		fw.SetFeature(q[:])
		buf := make([]byte, proReportSize)
		fw.GetFeature(buf)
		r, err := parseProResponse(buf)
		if err != nil || !r.CRCOK || r.Status != proStatusWrongCRC {
			t.Fatalf("answer to bad CRC: %+v, %v; want status 1 (wrong CRC)", r, err)
		}
	})
}

func TestProBusyToken(t *testing.T) {
	ctx := context.Background()
	tok, fw := proToken(t, NitrokeyPro)
	fw.busyPolls = 5 // a slow smart card during authentication
	secret := newSecret(t)
	if err := tok.Program(ctx, secret, 1, []byte("12345678")); err != nil {
		t.Fatalf("Program with a busy token: %v", err)
	}
	if err := tok.Check(ctx, code(t, secret, 2)); err != nil {
		t.Fatalf("Check with a busy token: %v", err)
	}
	// Busy longer than the host waits: a transient error, not a verdict.
	fw.busyPolls = 100
	err := tok.Check(ctx, code(t, secret, 3))
	if !errors.Is(err, ErrConnectionLost) || ExitCode(err) != 8 {
		t.Fatalf("token busy for 100 polls: err = %v, want ErrConnectionLost (8)", err)
	}
}

func TestProContextCancel(t *testing.T) {
	fw := newProFirmware()
	fw.busyPolls = 1000
	tok, err := New(fw, NitrokeyPro, Options{PollInterval: time.Millisecond, PollAttempts: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tok.Check(ctx, "123456"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestParseCode(t *testing.T) {
	good := map[string]uint32{"123456": 123456, "000042": 42, "99999999": 99999999, "0": 0,
		"0000000000000000000000000012": 12}
	for s, want := range good {
		got, err := ParseCode(s)
		if err != nil || got != want {
			t.Errorf("ParseCode(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "12345a", "-12345", " 123456", "100000000", "1234567890", "１２３"} {
		_, err := ParseCode(s)
		if !errors.Is(err, ErrInvalidCode) || ExitCode(err) != 7 {
			t.Errorf("ParseCode(%q): err = %v (exit %d), want ErrInvalidCode (7)", s, err, ExitCode(err))
		}
	}
	// An invalid code never reaches the token.
	tok, fw := proToken(t, NitrokeyPro)
	if err := tok.Check(context.Background(), "12x456"); !errors.Is(err, ErrInvalidCode) {
		t.Fatal(err)
	}
	if fw.processed != 0 {
		t.Fatal("invalid code sent to the token")
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{ErrNoDevice, 1},
		{&PINError{Retries: 2}, 2},
		{fmt.Errorf("x: %w", &PINError{Retries: 0}), 2},
		{&DeviceError{Op: "x", Status: 5}, 3},
		{ErrNotConfirmed, 3},
		{fmt.Errorf("check: %w", ErrWrongCode), 4},
		{ErrUnsupported, 5},
		{ErrSlotNotProgrammed, 6},
		{ErrInvalidCode, 7},
		{ErrBadInput, 7},
		{ErrConnectionLost, 8},
		{errors.New("anything else"), 3},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if !errors.Is(&PINError{Retries: 0}, ErrPINBlocked) || errors.Is(&PINError{Retries: 1}, ErrPINBlocked) {
		t.Error("PINError.Is(ErrPINBlocked) wrong")
	}
}

func TestHidiocFeature(t *testing.T) {
	// linux/hidraw.h on x86: _IOC(_IOC_WRITE|_IOC_READ, 'H', 0x06, len)
	// = 0xC0000000 | len<<16 | 0x4806. powerpc's encoding gives the same
	// value for read|write (6<<29 == 3<<30).
	if got := hidiocFeature(0x06, 65); got != 0xc0414806 {
		t.Errorf("HIDIOCSFEATURE(65) = %#x, want 0xc0414806", got)
	}
	if got := hidiocFeature(0x07, 65); got != 0xc0414807 {
		t.Errorf("HIDIOCGFEATURE(65) = %#x, want 0xc0414807", got)
	}
}

func FuzzParseProResponse(f *testing.F) {
	fw := newProFirmware()
	q, _, _ := buildProQuery(proCmdGetStatus, nil)
	fw.SetFeature(q[:])
	good := make([]byte, proReportSize)
	fw.GetFeature(good)
	f.Add(good)
	f.Add(make([]byte, proReportSize))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseProResponse(b)
		if err != nil {
			if len(b) == proReportSize {
				t.Fatalf("65-byte report refused: %v", err)
			}
			return
		}
		if len(b) != proReportSize {
			t.Fatalf("report of %d bytes accepted", len(b))
		}
		// CRCOK must be exactly the CRC relation, whatever the bytes.
		want := fwCRC(b[1:61]) == binary.LittleEndian.Uint32(b[61:])
		if r.CRCOK != want {
			t.Fatalf("CRCOK = %v, want %v", r.CRCOK, want)
		}
	})
}
