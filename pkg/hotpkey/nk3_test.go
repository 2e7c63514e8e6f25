package hotpkey

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

func nk3Token(t *testing.T) (*Token, *nk3Firmware, *int) {
	t.Helper()
	fw := newNK3Firmware()
	touches := new(int)
	opt := fastOptions
	opt.OnTouch = func() { *touches++ }
	tok, err := New(fw, Nitrokey3, opt)
	if err != nil {
		t.Fatal(err)
	}
	return tok, fw, touches
}

func TestNK3ProgramThenCheck(t *testing.T) {
	ctx := context.Background()
	tok, fw, touches := nk3Token(t)

	st, err := tok.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PINSet || st.Serial != 0x12345678 || st.Firmware != (Version{1, 8, 3}) || st.SecretsApp != (Version{4, 13, 0}) {
		t.Fatalf("Status of a fresh token = %+v", st)
	}
	if st.Firmware.String() != "v1.8.3" {
		t.Errorf("firmware prints %s", st.Firmware)
	}

	secret := newSecret(t)
	// No Secrets app PIN yet: Program sets it (as hotp_verification does).
	if err := tok.Program(ctx, secret, 1, []byte("123456")); err != nil {
		t.Fatalf("Program: %v", err)
	}
	if !fw.app.pinSet || string(fw.app.pin) != "123456" {
		t.Fatal("Program did not set the Secrets app PIN")
	}
	c := fw.app.creds[nk3Label]
	if c == nil || c.kind != 0x30 || c.algo != 1 || c.digits != 6 || !bytes.Equal(c.secret, secret) || c.touchRequired || c.pinEncrypted {
		t.Fatalf("credential = %+v", c)
	}
	if *c.counter != 2 {
		t.Fatalf("token counter after Program = %d, want 2", *c.counter)
	}
	// Delete, set PIN, verify PIN: three touches, each announced.
	if fw.app.touches != 3 || *touches != 3 {
		t.Fatalf("touches: token asked %d, OnTouch called %d; want 3", fw.app.touches, *touches)
	}
	st, err = tok.Status(ctx)
	if err != nil || !st.PINSet || st.PINRetries != 8 {
		t.Fatalf("Status after Program = %+v, %v", st, err)
	}

	*touches = 0
	for ctr := uint64(2); ctr < 30; ctr++ {
		if err := tok.Check(ctx, code(t, secret, ctr)); err != nil {
			t.Fatalf("Check(counter %d): %v", ctr, err)
		}
	}
	if *touches != 0 {
		t.Fatal("checking asked for a touch; Heads' boot must not need one")
	}
	if err := tok.Check(ctx, code(t, secret, 29)); !errors.Is(err, ErrWrongCode) || ExitCode(err) != 4 {
		t.Fatalf("replayed code: err = %v, want ErrWrongCode", err)
	}

	// Reprogramming replaces the credential (delete + put) with the PIN
	// that now exists.
	secret2 := newSecret(t)
	if err := tok.Program(ctx, secret2, 1, []byte("123456")); err != nil {
		t.Fatalf("reprogram: %v", err)
	}
	if err := tok.Check(ctx, code(t, secret2, 2)); err != nil {
		t.Fatalf("check after reprogram: %v", err)
	}
}

func TestNK3Window(t *testing.T) {
	ctx := context.Background()
	tok, fw, _ := nk3Token(t)
	secret := newSecret(t)
	if err := tok.Program(ctx, secret, 1, []byte("123456")); err != nil {
		t.Fatal(err)
	}
	if err := tok.Check(ctx, code(t, secret, 2+9)); err != nil {
		t.Fatalf("code 9 ahead: %v", err)
	}
	if got := *fw.app.creds[nk3Label].counter; got != 12 {
		t.Fatalf("counter = %d, want 12", got)
	}
	if err := tok.Check(ctx, code(t, secret, 12+10)); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("code 10 ahead: err = %v, want ErrWrongCode", err)
	}
	if err := tok.Check(ctx, code(t, secret, 12)); err != nil {
		t.Fatalf("code at counter after a failure: %v", err)
	}
}

func TestNK3WrongPIN(t *testing.T) {
	ctx := context.Background()
	tok, fw, _ := nk3Token(t)
	secret := newSecret(t)
	if err := tok.Program(ctx, secret, 1, []byte("123456")); err != nil {
		t.Fatal(err)
	}
	for want := 7; want >= 0; want-- {
		err := tok.Program(ctx, newSecret(t), 1, []byte("654321"))
		var pe *PINError
		if !errors.As(err, &pe) || pe.Retries != want || ExitCode(err) != 2 {
			t.Fatalf("wrong PIN: err = %v, want *PINError with %d retries", err, want)
		}
	}
	if err := tok.Program(ctx, newSecret(t), 1, []byte("123456")); !errors.Is(err, ErrPINBlocked) {
		t.Fatalf("right PIN when blocked: err = %v, want ErrPINBlocked", err)
	}
	// The failed attempts deleted the old credential (hotp_verification
	// deletes before it authenticates); the slot is now unprogrammed.
	if err := tok.Check(ctx, code(t, secret, 2)); !errors.Is(err, ErrSlotNotProgrammed) {
		t.Fatalf("check after failed reprogramming: err = %v", err)
	}
	if fw.app.retriesLeft != 0 {
		t.Fatalf("model retries %d", fw.app.retriesLeft)
	}
}

func TestNK3Unprogrammed(t *testing.T) {
	tok, _, _ := nk3Token(t)
	err := tok.Check(context.Background(), "123456")
	if !errors.Is(err, ErrSlotNotProgrammed) || ExitCode(err) != 6 {
		t.Fatalf("err = %v (exit %d), want ErrSlotNotProgrammed (6)", err, ExitCode(err))
	}
}

func TestNK3NoTouch(t *testing.T) {
	ctx := context.Background()
	tok, fw, touches := nk3Token(t)
	fw.app.userPresent = func() bool { return false } // 15 s passed, no touch
	err := tok.Program(ctx, newSecret(t), 1, []byte("123456"))
	if !errors.Is(err, ErrNotConfirmed) || !Transient(err) {
		t.Fatalf("no touch: err = %v, want ErrNotConfirmed", err)
	}
	if *touches != 1 {
		t.Fatalf("OnTouch called %d times, want 1", *touches)
	}
	if fw.app.pinSet {
		t.Fatal("PIN set without a touch")
	}
}

// The Put must directly follow the PIN check: the model's authorization
// lasts one command, so a Put on its own is refused.
func TestNK3PutNeedsAuthorization(t *testing.T) {
	ctx := context.Background()
	tok, fw, _ := nk3Token(t)
	fw.app.pinSet, fw.app.pin, fw.app.retriesLeft = true, []byte("123456"), 8
	body := append(tlv(tagName, []byte(nk3Label)), tlv(tagKey, append([]byte{0x31, 6}, newSecret(t)...))...)
	sw, _, err := tok.nk3.secrets(ctx, insPut, 0, 0, body)
	if err != nil || sw != swSecurityStatus {
		t.Fatalf("unauthorized Put: sw %#x, %v; want 0x6982", sw, err)
	}
	// Verify, then any other command, then Put: still refused.
	if sw, _, _ := tok.nk3.secrets(ctx, insVerifyPIN, 0, 0, tlv(tagPassword, []byte("123456"))); sw != swOK {
		t.Fatalf("verify PIN: %#x", sw)
	}
	tok.nk3.secrets(ctx, insSelect, 4, 0, secretsAID)
	if sw, _, _ := tok.nk3.secrets(ctx, insPut, 0, 0, body); sw != swSecurityStatus {
		t.Fatalf("Put one command too late: sw %#x, want 0x6982", sw)
	}
}

func TestNK3BruteForceDelay(t *testing.T) {
	ctx := context.Background()
	tok, fw, _ := nk3Token(t)
	secret := newSecret(t)
	if err := tok.Program(ctx, secret, 1, []byte("123456")); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	fw.app.bruteForceDelay = true
	fw.app.now = func() time.Time { return now }
	if err := tok.Check(ctx, "000000"); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	// Within 5 s the token refuses to check at all. hotp_verification
	// reports that as a wrong code (exit 4, tamper warning); it is not.
	err := tok.Check(ctx, code(t, secret, 2))
	if errors.Is(err, ErrWrongCode) || !Transient(err) {
		t.Fatalf("check during back-off: err = %v, want a transient error", err)
	}
	now = now.Add(6 * time.Second)
	if err := tok.Check(ctx, code(t, secret, 2)); err != nil {
		t.Fatalf("check after back-off: %v", err)
	}
}

// A long PIN makes a multi-packet CTAPHID message; other channels' packets
// and keepalives in the answer stream are skipped.
func TestNK3Framing(t *testing.T) {
	ctx := context.Background()
	tok, fw, _ := nk3Token(t)
	fw.foreignNoise = true
	long := strings.Repeat("p", 120) // APDU of 127 bytes: 3 packets
	secret := newSecret(t)
	if err := tok.Program(ctx, secret, 1, []byte(long)); err != nil {
		t.Fatalf("Program with a 120-byte PIN: %v", err)
	}
	if string(fw.app.pin) != long {
		t.Fatalf("token got PIN of %d bytes, want 120", len(fw.app.pin))
	}
	if err := tok.Check(ctx, code(t, secret, 2)); err != nil {
		t.Fatal(err)
	}
	if err := tok.Program(ctx, secret, 1, []byte(strings.Repeat("p", 129))); !errors.Is(err, ErrBadInput) {
		t.Fatalf("129-byte PIN: err = %v, want ErrBadInput", err)
	}
}

func TestNK3Channel(t *testing.T) {
	ctx := context.Background()
	tok, fw, _ := nk3Token(t)
	fw.strayInit = true
	secret := newSecret(t)
	if err := tok.Program(ctx, secret, 1, []byte("123456")); err != nil {
		t.Fatalf("Program with another program's INIT answer in the way: %v", err)
	}
	first := tok.nk3.cid
	if first == 0 || first == 0x0e0e0e0e {
		t.Fatalf("channel 0x%08x: took another program's channel", first)
	}
	// The token forgets its channels (replugged): one new INIT, then on.
	fw.cids = map[uint32]bool{}
	if err := tok.Check(ctx, code(t, secret, 2)); err != nil {
		t.Fatalf("Check after the token forgot the channel: %v", err)
	}
	if tok.nk3.cid == first {
		t.Fatal("channel not re-allocated")
	}
}

func TestNK3CounterLimits(t *testing.T) {
	tok, _, _ := nk3Token(t)
	if err := tok.Program(context.Background(), newSecret(t), 1<<32, []byte("123456")); !errors.Is(err, ErrBadInput) {
		t.Fatalf("counter 2^32: err = %v, want ErrBadInput", err)
	}
}

func TestNK3ErrorsAndTimeouts(t *testing.T) {
	ctx := context.Background()
	tok, fw, _ := nk3Token(t)
	// An unknown vendor command gets CTAPHID_ERROR.
	_, err := tok.nk3.call(ctx, 0x7f, nil)
	var de *DeviceError
	if !errors.As(err, &de) || de.Status != 0x01 {
		t.Fatalf("unknown command: err = %v, want CTAPHID error 1", err)
	}
	// A silent token is a lost connection, not a verdict.
	fw.closed = true
	err = tok.Check(ctx, "123456")
	if !errors.Is(err, ErrConnectionLost) || ExitCode(err) != 8 {
		t.Fatalf("closed device: err = %v, want ErrConnectionLost", err)
	}
}

func TestCTAPFrameAssemble(t *testing.T) {
	for _, n := range []int{0, 1, 57, 58, 116, 117, 300, ctapMaxMessage} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		pkts, err := ctapFrame(0x01020304, 0x70, data)
		if err != nil {
			t.Fatal(err)
		}
		wantPkts := 1
		if n > ctapInitData {
			wantPkts += (n - ctapInitData + ctapContData - 1) / ctapContData
		}
		if len(pkts) != wantPkts {
			t.Fatalf("%d bytes: %d packets, want %d", n, len(pkts), wantPkts)
		}
		a := &ctapAssembler{cid: 0x01020304, cmd: 0x70}
		var done bool
		for i, p := range pkts {
			if done {
				t.Fatalf("%d bytes: complete before packet %d", n, i)
			}
			if done, err = a.add(p); err != nil {
				t.Fatalf("%d bytes, packet %d: %v", n, i, err)
			}
		}
		if !done || !bytes.Equal(a.buf, data) {
			t.Fatalf("%d bytes: reassembly failed (done %v, %d bytes)", n, done, len(a.buf))
		}
	}
	if _, err := ctapFrame(1, 0x70, make([]byte, ctapMaxMessage+1)); err == nil {
		t.Fatal("oversized message framed")
	}
	// Out-of-order continuation is an error.
	pkts, _ := ctapFrame(7, 0x70, make([]byte, 200))
	a := &ctapAssembler{cid: 7, cmd: 0x70}
	a.add(pkts[0])
	if _, err := a.add(pkts[2]); err == nil {
		t.Fatal("skipped sequence number accepted")
	}
}

func TestParseTLVs(t *testing.T) {
	m, err := parseTLVs([]byte{0x79, 3, 4, 13, 0, 0x82, 1, 8, 0x8f, 4, 1, 2, 3, 4, 0x71, 0x81, 2, 9, 9})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m[0x79], []byte{4, 13, 0}) || !bytes.Equal(m[0x82], []byte{8}) ||
		binary.BigEndian.Uint32(m[0x8f]) != 0x01020304 || !bytes.Equal(m[0x71], []byte{9, 9}) {
		t.Fatalf("parseTLVs = %v", m)
	}
	for _, bad := range [][]byte{{0x79}, {0x79, 3, 1}, {0x79, 0x81}, {0x79, 0x82, 1}, {0x79, 0x83, 0, 0, 1}} {
		if _, err := parseTLVs(bad); err == nil {
			t.Errorf("parseTLVs(%x) accepted", bad)
		}
	}
}

func FuzzCTAPAssembler(f *testing.F) {
	pkts, _ := ctapFrame(5, 0x70, bytes.Repeat([]byte{0xab}, 150))
	f.Add(bytes.Join(pkts, nil))
	ka := make([]byte, 64)
	binary.BigEndian.PutUint32(ka, 5)
	ka[4], ka[6], ka[7] = 0xbb, 1, 2
	f.Add(append(ka, pkts[0]...))
	f.Add([]byte{0, 0, 0, 5, 0xf0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, stream []byte) {
		a := &ctapAssembler{cid: 5, cmd: 0x70}
		for len(stream) >= ctapPacket {
			done, err := a.add(stream[:ctapPacket])
			stream = stream[ctapPacket:]
			if err != nil {
				return
			}
			if done {
				if len(a.buf) != a.need || a.need > ctapMaxMessage {
					t.Fatalf("done with %d of %d bytes", len(a.buf), a.need)
				}
				return
			}
			if len(a.buf) > a.need {
				t.Fatalf("buffer %d bytes beyond the announced %d", len(a.buf), a.need)
			}
		}
	})
}

func FuzzParseTLVs(f *testing.F) {
	f.Add([]byte{0x79, 3, 4, 13, 0, 0x82, 1, 8, 0x8f, 4, 1, 2, 3, 4})
	f.Add([]byte{0x71, 0x82, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseTLVs(b)
		if err != nil {
			return
		}
		total := 0
		for _, v := range m {
			total += len(v)
		}
		if total > len(b) {
			t.Fatalf("values total %d bytes from %d bytes of input", total, len(b))
		}
	})
}
