package hotpkey

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/goheads/goheads/pkg/otp"
)

// Options tune a Token. The zero value is what hotp_verification does.
type Options struct {
	// OnTouch is called when a Nitrokey 3 waits for its button, so the
	// screen can say "touch your Nitrokey 3". It runs on the caller's
	// goroutine, once per request that needs a touch.
	OnTouch func()
	// PollInterval is the pause before each poll of a Pro-family token's
	// answer; 0 means hotp_verification's 200 ms.
	PollInterval time.Duration
	// PollAttempts bounds the polls per command; 0 means 40.
	PollAttempts int
	// ReadTimeout is the longest a Nitrokey 3 may stay silent during a
	// request (it sends keepalives while it waits for a touch); 0 means
	// 2 s.
	ReadTimeout time.Duration
	// Rand supplies temporary passwords and CTAPHID nonces; nil means
	// crypto/rand.
	Rand io.Reader
}

// Version is a firmware version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string {
	if v.Patch != 0 {
		return fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
	}
	return fmt.Sprintf("v%d.%d", v.Major, v.Minor)
}

// Status is what `hotp_verification info` reports.
type Status struct {
	Model Model
	// Serial is the smart card (Pro family) or device serial; 0 if hidden.
	Serial uint32
	// Firmware is the token firmware version (Nitrokey 3: the firmware
	// image; 0 if it did not say).
	Firmware Version
	// SecretsApp is the Nitrokey 3 Secrets app version.
	SecretsApp Version
	// PINSet is false for a Nitrokey 3 whose Secrets app has no PIN yet;
	// Program sets the given PIN then.
	PINSet bool
	// PINRetries are the attempts left for the PIN Program needs: the GPG
	// Admin PIN (Pro, Storage, Librem Key; 3 when unused) or the Secrets
	// app PIN (Nitrokey 3; 8 when unused). -1 if unknown.
	PINRetries int
	// UserPINRetries is the GPG User PIN counter (Pro family; -1 on a
	// Nitrokey 3, whose OpenPGP app is not reachable over CTAPHID).
	UserPINRetries int
}

// Token is an open HOTP token.
type Token struct {
	mu    sync.Mutex
	model Model
	dev   HID
	rand  io.Reader
	pro   *proConn
	nk3   *ctapConn
}

// New wraps an open HID device as a token of the given model. Tests pass a
// firmware model here; Open passes a hidraw node.
func New(dev HID, model Model, opt Options) (*Token, error) {
	t := &Token{model: model, dev: dev, rand: opt.Rand}
	if t.rand == nil {
		t.rand = rand.Reader
	}
	switch model {
	case NitrokeyPro, NitrokeyStorage, LibremKey:
		poll, attempts := opt.PollInterval, opt.PollAttempts
		if poll == 0 {
			poll = 200 * time.Millisecond
		}
		if attempts <= 0 {
			attempts = 40
		}
		t.pro = &proConn{dev: dev, model: model, poll: poll, attempts: attempts}
	case Nitrokey3:
		rt := opt.ReadTimeout
		if rt <= 0 {
			rt = 2 * time.Second
		}
		t.nk3 = &ctapConn{dev: dev, timeout: rt, rand: t.rand, onTouch: opt.OnTouch}
	default:
		return nil, fmt.Errorf("token model %d: %w", int(model), ErrUnsupported)
	}
	return t, nil
}

// Open opens a token found by Find.
func Open(info DeviceInfo, opt Options) (*Token, error) {
	dev, err := OpenHidraw(info.Path)
	if err != nil {
		return nil, fmt.Errorf("open %s (%s): %w", info.Model, info.Path, err)
	}
	t, err := New(dev, info.Model, opt)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return t, nil
}

// OpenFirst opens the first token Find lists, or fails with ErrNoDevice.
func OpenFirst(find FindOptions, opt Options) (*Token, error) {
	devs, err := Find(find)
	if err != nil {
		return nil, err
	}
	if len(devs) == 0 {
		return nil, ErrNoDevice
	}
	return Open(devs[0], opt)
}

// Model is the token's model.
func (t *Token) Model() Model { return t.model }

// Close releases the device.
func (t *Token) Close() error { return t.dev.Close() }

// Status reads the firmware version, serial and PIN retry counters.
func (t *Token) Status(ctx context.Context) (*Status, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nk3 != nil {
		return t.nk3.status(ctx)
	}
	return t.pro.status(ctx)
}

// Program stores secret in the token's HOTP slot, authenticated with pin
// (GPG Admin PIN, or the Nitrokey 3 Secrets app PIN, which is set to pin if
// the app has none yet), and then checks the code for counter, as Heads'
// hotp_initialize does after `hotp_verification set`. That check proves the
// token holds this secret and leaves it expecting counter+1: Heads seals at
// counter 1 and writes 2 to /boot/kexec_hotp_counter.
//
// The secret is at most otp.SecretSize bytes (Heads truncates to 20). The
// PIN is a byte slice so the caller can overwrite it afterwards; Program
// overwrites its own copies of PIN and secret.
func (t *Token) Program(ctx context.Context, secret []byte, counter uint64, pin []byte) error {
	if len(secret) == 0 || len(secret) > otp.SecretSize {
		return fmt.Errorf("program HOTP token: secret of %d bytes, want 1 to %d: %w", len(secret), otp.SecretSize, ErrBadInput)
	}
	if len(pin) == 0 {
		// No token has an empty PIN; sending one would only burn a retry.
		return fmt.Errorf("program HOTP token: empty %s: %w", t.model.PINName(), ErrBadInput)
	}
	code, err := otp.HOTPValue(secret, counter, otp.Params{})
	if err != nil {
		return fmt.Errorf("program HOTP token: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nk3 != nil {
		err = t.nk3.program(ctx, secret, counter, pin)
	} else {
		tmp := make([]byte, proTempPasswordLen)
		defer clear(tmp)
		if _, err := io.ReadFull(t.rand, tmp); err != nil {
			return fmt.Errorf("program HOTP token: temporary password: %w", err)
		}
		err = t.pro.program(ctx, secret, counter, pin, tmp)
	}
	if err != nil {
		return err
	}
	if err := t.verify(ctx, code); err != nil {
		return fmt.Errorf("program HOTP token: the %s does not accept the code for counter %d after writing the secret: %w", t.model, counter, err)
	}
	return nil
}

// Check asks the token whether code is the HOTP code of its secret at its
// current counter or up to 9 counters ahead (both firmware families compute
// 10 codes); on success the token moves past the matched counter. code is
// decimal text as Heads passes it to `hotp_verification check`; text that
// is not a code fails with ErrInvalidCode before the token is asked.
func (t *Token) Check(ctx context.Context, code string) error {
	v, err := ParseCode(code)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.verify(ctx, v)
}

func (t *Token) verify(ctx context.Context, code uint32) error {
	if t.nk3 != nil {
		return t.nk3.verify(ctx, code)
	}
	return t.pro.verify(ctx, code)
}

// ParseCode validates an HOTP code as hotp_verification's check command does
// (validate_number and the range check in src/operations.c): decimal digits
// only, value below 10^8. Unlike it, empty text is refused (it would parse
// as code 0).
func ParseCode(code string) (uint32, error) {
	if code == "" {
		return 0, fmt.Errorf("HOTP code is empty: %w", ErrInvalidCode)
	}
	if len(code) > 30 {
		return 0, fmt.Errorf("HOTP code of %d characters: %w", len(code), ErrInvalidCode)
	}
	var v uint64
	for i := 0; i < len(code); i++ {
		c := code[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("HOTP code %q: character %d is not a digit: %w", code, i+1, ErrInvalidCode)
		}
		v = v*10 + uint64(c-'0')
		if v >= 100000000 {
			return 0, fmt.Errorf("HOTP code %q: more than 8 significant digits: %w", code, ErrInvalidCode)
		}
	}
	return uint32(v), nil
}
