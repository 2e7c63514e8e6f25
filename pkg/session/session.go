// Package session is one boot of goheads as the menu sees it: the TPM, the
// OS's /boot, the ROM keyring, what attestation showed, and the integrity
// gate. Every security decision the menu offers is made here; pkg/ui only
// shows the results and asks the owner.
package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/goheads/goheads/pkg/atomicfile"
	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/benchlog"
	"github.com/goheads/goheads/pkg/bootdisk"
	"github.com/goheads/goheads/pkg/bootentry"
	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/hotpkey"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/tpm"
	"golang.org/x/sys/unix"
)

// KeyringDir is where cbfs-init puts the ROM keyring.
var KeyringDir = "/.gnupg"

// Session holds one boot's state.
type Session struct {
	Config *config.Config
	TPM    *tpm.TPM
	// TPMErr says why there is no TPM (tpm.ErrNoTPM, or worse).
	TPMErr  error
	Boot    *bootdisk.Mounted
	BootErr error
	Keyring *keyring.Keyring
	// KeyringErr: the ROM keyring could not be read.
	KeyringErr error
	Now        func() time.Time

	mu    sync.Mutex
	gate  string // non-empty: integrity gate armed, and why
	owner []byte // TPM owner passphrase, kept for this boot once given
	// counterID is a rollback counter created by a TPM reset, used by the
	// next signing of /boot.
	counterID string
	benchTOTP sync.Once
	// prefetched is the TOTP code OpenWith computed while it mounted
	// /boot; the first TOTP call takes it.
	prefetched *prefetchedTOTP
}

type prefetchedTOTP struct {
	code *attest.Code
	err  error
}

// Open gathers the session's state. It never fails: what is missing is
// recorded and shown.
func Open(cfg *config.Config) *Session { return OpenWith(cfg, OpenOptions{}) }

// OpenOptions adjust OpenWith.
type OpenOptions struct {
	// BootDir is an already mounted /boot (commands' -p); empty: find
	// and mount it as the menu does.
	BootDir string
	// PrefetchTOTP unseals the TOTP code while /boot is found and
	// mounted and the keyring loaded (the menu shows it first thing):
	// the TPM and the disk work at the same time. Only the TPM is
	// touched concurrently, by that one goroutine, and OpenWith waits
	// for it before it returns.
	PrefetchTOTP bool
}

// OpenWith is Open with options.
func OpenWith(cfg *config.Config, o OpenOptions) *Session {
	s := &Session{Config: cfg, Now: time.Now}
	if cfg.Bool("CONFIG_TPM") {
		s.TPM, s.TPMErr = tpm.Open()
	} else {
		s.TPMErr = tpm.ErrNoTPM
	}
	benchlog.Mark("session tpm-open")
	var pre chan prefetchedTOTP
	if o.PrefetchTOTP && s.TPM != nil {
		pre = make(chan prefetchedTOTP, 1)
		go func() {
			c, err := s.totp().Code()
			benchlog.Mark("session totp-prefetched")
			pre <- prefetchedTOTP{c, err}
		}()
	}
	if o.BootDir != "" {
		s.Boot = &bootdisk.Mounted{Dir: o.BootDir}
	} else {
		s.Boot, s.BootErr = bootdisk.Find(bootdisk.Options{Dev: cfg.Value("CONFIG_BOOT_DEV")})
	}
	benchlog.Mark("session boot-found")
	s.Keyring, s.KeyringErr = keyring.LoadGnuPGHome(KeyringDir)
	benchlog.Mark("session keyring")
	if pre != nil {
		r := <-pre
		s.prefetched = &r
	}
	return s
}

// Close releases the TPM and forgets the owner passphrase.
func (s *Session) Close() {
	s.mu.Lock()
	wipe(s.owner)
	s.owner = nil
	s.mu.Unlock()
	if s.TPM != nil {
		s.TPM.Close()
	}
}

// Board is the board's name.
func (s *Session) Board() string { return s.Config.Value("CONFIG_BOARD_NAME") }

// HasTPM reports whether a TPM answered.
func (s *Session) HasTPM() bool { return s.TPM != nil }

// KeyringEmpty reports whether the ROM has no public key (Heads' "GPG
// keyring empty"): /boot cannot be verified.
func (s *Session) KeyringEmpty() bool { return s.Keyring == nil || s.Keyring.Len() == 0 }

// ---- attestation ----

// ErrNoTPM is returned by TPM operations on a machine without one.
var ErrNoTPM = tpm.ErrNoTPM

func (s *Session) needTPM() error {
	if s.TPM == nil {
		if s.TPMErr != nil {
			return s.TPMErr
		}
		return ErrNoTPM
	}
	return nil
}

func (s *Session) totp() *attest.TOTP {
	return &attest.TOTP{TPM: s.TPM, Firmware: attest.FirmwarePCRs{}, Board: s.Board(), Now: s.Now, SourceDate: s.sourceDate()}
}

func (s *Session) sourceDate() time.Time {
	var sec int64
	if _, err := fmt.Sscan(s.Config.Value("CONFIG_GOHEADS_SOURCE_DATE"), &sec); err != nil {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// TOTP unseals the secret and returns the current code. A failure other
// than a wrong clock arms the integrity gate: no new secret can be sealed
// until /boot is verified and the owner confirms (Heads' gate).
func (s *Session) TOTP() (*attest.Code, error) {
	if err := s.needTPM(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	pre := s.prefetched
	s.prefetched = nil
	s.mu.Unlock()
	var c *attest.Code
	var err error
	if pre != nil && (pre.err != nil || s.Now().Before(pre.code.Until)) {
		c, err = pre.code, pre.err
	} else {
		c, err = s.totp().Code()
	}
	if err != nil && !errors.Is(err, attestClockErr) {
		s.arm(fmt.Sprintf("TOTP unseal failed: %v", err))
	}
	if err == nil {
		s.benchTOTP.Do(func() { benchlog.Mark("totp-unsealed tpm-commands=%d", s.TPM.Commands()) })
	}
	return c, err
}

// HOTPStatus is what the menu header shows after "HOTP:".
type HOTPStatus string

const (
	HOTPSuccess       HOTPStatus = "Success"
	HOTPInvalid       HOTPStatus = "Invalid code"
	HOTPError         HOTPStatus = "Error checking code"
	HOTPNoToken       HOTPStatus = "No token"
	HOTPNotConfigured HOTPStatus = "Not configured"
)

// HOTPEnabled reports whether the board uses a HOTP token.
func (s *Session) HOTPEnabled() bool { return s.Config.Bool("CONFIG_HOTPKEY") }

// HOTP computes the next HOTP code, advances /boot's counter and asks the
// token to check it. A wrong code arms the integrity gate.
func (s *Session) HOTP(ctx context.Context) (HOTPStatus, error) {
	return s.HOTPWith(ctx, hotpkey.FindOptions{})
}

// HOTPWith is HOTP with explicit token discovery paths.
func (s *Session) HOTPWith(ctx context.Context, find hotpkey.FindOptions) (HOTPStatus, error) {
	if !s.HOTPEnabled() {
		return HOTPNotConfigured, nil
	}
	if err := s.needTPM(); err != nil {
		return HOTPError, err
	}
	if s.Boot == nil {
		return HOTPError, fmt.Errorf("no /boot for %s: %w", attest.HOTPCounterFile, s.BootErr)
	}
	tok, err := hotpkey.OpenFirst(find, hotpkey.Options{})
	if err != nil {
		return HOTPNoToken, err
	}
	defer tok.Close()
	var code string
	store := attest.FileCounter{Path: s.Boot.Dir + "/kexec_hotp_counter"}
	if err := s.Boot.Writable(func() error {
		var err error
		code, _, err = s.totp().HOTPCode(store)
		return err
	}); err != nil {
		return HOTPError, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = tok.Check(ctx, code)
	switch {
	case err == nil:
		return HOTPSuccess, nil
	case errors.Is(err, hotpkey.ErrWrongCode), errors.Is(err, hotpkey.ErrInvalidCode):
		s.arm(fmt.Sprintf("HOTP code rejected by the %s", tok.Model()))
		return HOTPInvalid, err
	case errors.Is(err, hotpkey.ErrSlotNotProgrammed):
		return HOTPNotConfigured, err
	}
	return HOTPError, err
}

// ---- integrity gate ----

// ErrGateArmed: a new secret may not be sealed yet.
var ErrGateArmed = errors.New("attestation failed in this boot: check /boot's integrity and confirm before sealing a new secret")

func (s *Session) arm(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == "" {
		s.gate = reason
	}
}

// Gate reports whether the integrity gate is armed, and why.
func (s *Session) Gate() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gate != "", s.gate
}

// Integrity is the integrity report: what was measured, how /boot
// verified, in plain words.
type Integrity struct {
	PCRs         map[int][]byte
	PCRErr       error
	Measurements []tpm.Measurement
	Boot         *selectboot.State
	// Problems are the findings, in plain words; empty means all is well.
	Problems []string
}

// CheckIntegrity verifies /boot and gathers measurements.
func (s *Session) CheckIntegrity() *Integrity {
	ig := &Integrity{}
	if s.TPM != nil {
		ig.PCRs, ig.PCRErr = s.TPM.ReadPCRs(0, 1, 2, 3, 4, 5, 6, 7)
		if f, err := os.Open(tpm.RuntimeLogPath); err == nil {
			ig.Measurements, _ = tpm.ReadMeasurementLog(f)
			f.Close()
		}
	} else {
		ig.Problems = append(ig.Problems, "No TPM: nothing was measured, and no secret can prove this firmware is untampered.")
	}
	if s.Boot == nil {
		ig.Problems = append(ig.Problems, fmt.Sprintf("No /boot: %v", s.BootErr))
		return ig
	}
	ig.Boot = s.Inspect()
	if !ig.Boot.Verified() {
		ig.Problems = append(ig.Problems, Explain(ig.Boot.VerifyErr).Summary)
	}
	for _, m := range ig.Measurements {
		if m.PCR == measure.PCRBootMode {
			ig.Problems = append(ig.Problems, fmt.Sprintf("PCR 4 was extended in this boot (%s): secrets stay sealed until a reboot.", m.Desc))
		}
	}
	return ig
}

// ReleaseGate lifts the integrity gate after the owner reviewed a report
// whose /boot verified. A report with problems does not release it.
func (s *Session) ReleaseGate(ig *Integrity) error {
	if ig == nil || ig.Boot == nil || !ig.Boot.Verified() {
		return fmt.Errorf("/boot did not verify: %w", ErrGateArmed)
	}
	s.mu.Lock()
	s.gate = ""
	s.mu.Unlock()
	return nil
}

// ---- TPM owner operations ----

// OwnerPassphrase returns the cached TPM owner passphrase (nil if none yet).
func (s *Session) OwnerPassphrase() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owner
}

func (s *Session) remember(owner []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.owner) == 0 {
		s.owner = append([]byte(nil), owner...)
	}
}

// NewTOTPSecret seals a fresh TOTP/HOTP secret, refusing while the
// integrity gate is armed. The caller shows the secret once and wipes it.
func (s *Session) NewTOTPSecret(owner []byte) (*attest.NewSecret, error) {
	if err := s.needTPM(); err != nil {
		return nil, err
	}
	if armed, why := s.Gate(); armed {
		return nil, fmt.Errorf("%s: %w", why, ErrGateArmed)
	}
	sec, err := s.totp().Seal(owner)
	if err != nil {
		return nil, err
	}
	s.remember(owner)
	return sec, nil
}

// ResetTPM clears the TPM and takes ownership with a new passphrase, then
// creates a new rollback counter for the next signing of /boot. Everything
// sealed before is gone: /boot must be signed again and a new secret
// generated. Resetting is allowed with the gate armed (a reset is how an
// owner recovers from a failed attestation), but sealing afterwards is not.
func (s *Session) ResetTPM(owner []byte) error {
	if err := s.needTPM(); err != nil {
		return err
	}
	if err := s.TPM.Reset(owner); err != nil {
		return err
	}
	s.mu.Lock()
	wipe(s.owner)
	s.owner = append([]byte(nil), owner...)
	s.mu.Unlock()
	id, err := s.TPM.CounterCreate(owner)
	if err != nil {
		return fmt.Errorf("TPM reset, but the rollback counter could not be created: %w", err)
	}
	s.mu.Lock()
	s.counterID = id
	s.mu.Unlock()
	return nil
}

// ---- /boot ----

// Inspect verifies /boot and lists its entries.
func (s *Session) Inspect() *selectboot.State {
	return selectboot.Inspect(s.env())
}

func (s *Session) env() *selectboot.Env {
	dir := ""
	if s.Boot != nil {
		dir = s.Boot.Dir
	}
	return &selectboot.Env{BootDir: dir, Keyring: s.Keyring, TPM: s.TPM, Config: s.Config, Now: s.Now}
}

// Prepare loads a verified entry for booting.
func (s *Session) Prepare(st *selectboot.State, i int) (*selectboot.Image, error) {
	if i < 0 || i >= len(st.Entries) {
		return nil, errors.New("no such boot entry")
	}
	return st.Prepare(s.env(), st.Entries[i], selectboot.PrepareOptions{})
}

// PrepareForced loads an entry without verification (the menu warned).
func (s *Session) PrepareForced(st *selectboot.State, i int) (*selectboot.Image, error) {
	if i < 0 || i >= len(st.Entries) {
		return nil, errors.New("no such boot entry")
	}
	return selectboot.ForcedBoot(s.env(), st.Entries[i], selectboot.PrepareOptions{})
}

// BootImage kexecs the image. It returns only on failure.
func (s *Session) BootImage(img *selectboot.Image) error {
	s.mu.Lock()
	wipe(s.owner)
	s.owner = nil
	s.mu.Unlock()
	return selectboot.Boot(s.env(), img, selectboot.BootOptions{Exec: true})
}

// SignOptions are the owner's inputs to signing /boot.
type SignOptions struct {
	KeyFile    string
	Passphrase []byte
	// Key, when set, is the already unlocked signing key (KeyFile and
	// Passphrase are then not used).
	Key *keyring.SigningKey
	// SaveDefault, when > 0, saves that entry (1-based) as the default.
	SaveDefault int
	// Files adds or replaces kexec*.txt files in the signed set.
	Files map[string][]byte
}

// SignBoot regenerates the manifests, advances the rollback counter and
// signs /boot, staged and crash-safe (pkg/bootsign).
func (s *Session) SignBoot(o SignOptions) error {
	if s.Boot == nil {
		return fmt.Errorf("no /boot: %w", s.BootErr)
	}
	key := o.Key
	if key == nil {
		var err error
		if key, err = s.LoadSigningKey(o.KeyFile, o.Passphrase); err != nil {
			return err
		}
	}
	opts := bootsign.SignOptions{BootDir: s.Boot.Dir, Key: key, UpdateHashes: true, Now: s.Now()}
	if !s.KeyringEmpty() {
		opts.Keyring = s.Keyring
	}
	if s.TPM != nil && !s.Config.Bool("CONFIG_IGNORE_ROLLBACK") {
		opts.Counter = bootsign.TPMCounter{T: s.TPM}
		s.mu.Lock()
		opts.CounterID = s.counterID
		s.mu.Unlock()
	}
	if o.SaveDefault > 0 {
		st := s.Inspect()
		if o.SaveDefault > len(st.Entries) {
			return errors.New("no such boot entry")
		}
		e := st.Entries[o.SaveDefault-1]
		files, remove, err := bootsign.DefaultFiles(s.Boot.Dir, o.SaveDefault, e.String(), e.Files())
		if err != nil {
			return err
		}
		opts.Files, opts.Remove = files, remove
	}
	for name, data := range o.Files {
		if opts.Files == nil {
			opts.Files = map[string][]byte{}
		}
		opts.Files[name] = data
	}
	return s.Boot.Writable(func() error {
		_, err := bootsign.Sign(opts)
		return err
	})
}

// LoadSigningKey unlocks the owner's exported secret key (on a USB stick).
func (s *Session) LoadSigningKey(file string, passphrase []byte) (*keyring.SigningKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	key, err := keyring.LoadSigningKey(data, passphrase, s.Now())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return key, nil
}

// BootProblem says why there is no /boot (nil when it was found).
func (s *Session) BootProblem() error {
	if s.Boot != nil {
		return nil
	}
	return s.BootErr
}

// ConfigValue returns a configuration value.
func (s *Session) ConfigValue(key string) string { return s.Config.Value(key) }

// SystemInfo describes the machine for the System Info screen.
func (s *Session) SystemInfo() []string {
	out := []string{
		"Board:    " + s.Board(),
		"goheads:  " + s.Config.Value("CONFIG_GOHEADS_VERSION"),
	}
	if s.TPM != nil {
		out = append(out, "TPM:      "+s.TPM.Family().String())
		if v, err := s.TPM.ReadPCRs(0, 1, 2, 3, 4, 5, 6, 7); err == nil {
			for _, i := range SortedPCRs(v) {
				out = append(out, fmt.Sprintf("  PCR %d: %x", i, v[i]))
			}
		}
	} else {
		out = append(out, fmt.Sprintf("TPM:      none (%v)", s.TPMErr))
	}
	if s.Boot != nil {
		out = append(out, fmt.Sprintf("/boot:    %s (%s)", s.Boot.Dev, s.Boot.FS))
	} else {
		out = append(out, fmt.Sprintf("/boot:    not found (%v)", s.BootErr))
	}
	out = append(out, fmt.Sprintf("Keyring:  %d keys in the ROM", len(s.Keys())))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			out = append(out, "Memory:   "+strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:")))
		}
	}
	return out
}

// Keys lists the ROM keyring.
func (s *Session) Keys() []keyring.KeyInfo {
	if s.Keyring == nil {
		return nil
	}
	return s.Keyring.Keys()
}

// ConfigItems are the settings the menu lets the owner change.
var ConfigItems = []string{"CONFIG_BOOT_DEV", "CONFIG_AUTO_BOOT_TIMEOUT", "CONFIG_BOOT_KERNEL_ADD", "CONFIG_BOOT_KERNEL_REMOVE", "CONFIG_RESTRICTED_BOOT"}

// SetConfig records a setting in /etc/config.user and the runtime config.
// Persisting it in the ROM (CBFS heads/initrd/etc/config.user) needs a
// flash; until then it lasts for this boot.
func (s *Session) SetConfig(key, value string) error {
	if !config.ValidName(key) {
		return fmt.Errorf("%q is not a configuration name", key)
	}
	user, _, err := config.Load(config.UserPath)
	if err != nil {
		user = config.New()
	}
	user.Set(key, value)
	if err := atomicfile.Write(config.UserPath, user.Bytes(), 0o644); err != nil {
		return err
	}
	s.Config.Set(key, value)
	return atomicfile.Write(config.RuntimePath, s.Config.Bytes(), 0o644)
}

// SortedPCRs lists PCR indices in order.
func SortedPCRs(m map[int][]byte) []int {
	var k []int
	for i := range m {
		k = append(k, i)
	}
	sort.Ints(k)
	return k
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// ---- USB boot ----

// USBMedia is a bootable disk other than /boot, mounted read-only.
type USBMedia struct {
	Dev, Dir string
	Entries  []bootentry.Entry
	mounted  *bootdisk.Mounted
}

// USBMountDir is where USB boot media are mounted.
var USBMountDir = "/media"

// FindUSB mounts the first disk other than /boot that holds a boot loader
// configuration (a live or installer USB stick) and lists its entries.
func (s *Session) FindUSB() (*USBMedia, error) {
	var exclude []string
	if s.Boot != nil && s.Boot.Dev != "" {
		exclude = append(exclude, s.Boot.Dev)
	}
	unix.Unmount(USBMountDir, 0) // a previous scan's
	m, err := bootdisk.Find(bootdisk.Options{Dir: USBMountDir, Exclude: exclude})
	if err != nil {
		return nil, fmt.Errorf("no bootable USB disk: %w", err)
	}
	res, err := bootentry.Scan(m.Dir, nil)
	if err != nil {
		m.Unmount()
		return nil, fmt.Errorf("%s: %w", m.Dev, err)
	}
	return &USBMedia{Dev: m.Dev, Dir: m.Dir, Entries: res.Entries, mounted: m}, nil
}

// BootUSB extends PCR 4 with "usb" (nothing sealed to this firmware
// unseals afterwards, in this boot or in the OS) and kexecs entry i of
// the USB disk, unverified, as Heads' USB boot. It returns only on failure.
func (s *Session) BootUSB(m *USBMedia, i int) error {
	if i < 0 || i >= len(m.Entries) {
		return errors.New("no such boot entry")
	}
	env := &selectboot.Env{BootDir: m.Dir, TPM: s.TPM, Config: s.Config, Now: s.Now}
	img, err := selectboot.USBBoot(env, m.Entries[i])
	if err != nil {
		return err
	}
	if s.TPM != nil {
		if err := measure.BootMode(s.TPM, measure.ModeUSB); err != nil {
			return err
		}
	}
	s.mu.Lock()
	wipe(s.owner)
	s.owner = nil
	s.mu.Unlock()
	return selectboot.Boot(env, img, selectboot.BootOptions{SkipGeneric: true, Exec: true})
}
