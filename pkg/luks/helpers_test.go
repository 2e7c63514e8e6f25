package luks

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/testenv"
)

// Volumes are made by the real cryptsetup on plain files (no loop device or
// device-mapper needed for luksFormat, luksDump, luksAddKey,
// luksHeaderBackup and open --test-passphrase). KDF costs are forced low so
// the suite stays fast; the DRK is passed on stdin as a key file (-d -),
// i.e. exactly the bytes Heads writes with `echo -n`.

var drk = []byte("drk: disk recovery key")

type volSpec struct {
	name string
	size int64
	args []string
}

var (
	specLUKS1 = volSpec{"luks1", 16 << 20, []string{"--type", "luks1", "--pbkdf-force-iterations", "1000"}}
	specPBKDF = volSpec{"luks2-pbkdf2", 32 << 20, []string{"--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}}
	specArgon = volSpec{"luks2-argon2id", 32 << 20, []string{"--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "65536", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2"}}
	// The crash tests run cryptsetup after every cut; on 2 shared cores a
	// 64 MiB Argon2 DRK makes that minutes, so they use 8 MiB. What they
	// test (write order, headers) does not depend on the KDF cost.
	specArgonCrash = volSpec{"luks2-argon2id-8M", 32 << 20, []string{"--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "8192", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}}
	// The pre-2013 LUKS1 default, to exercise cbc-essiv and sha1.
	specESSIV = volSpec{"luks1-cbc-essiv", 16 << 20, []string{"--type", "luks1", "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256", "--hash", "sha1", "--pbkdf-force-iterations", "1000"}}

	allSpecs = []volSpec{specLUKS1, specPBKDF, specArgon}
)

var (
	imgCacheMu  sync.Mutex
	imgCacheDir string
	imgCache    = map[string]string{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imgCacheDir != "" {
		os.RemoveAll(imgCacheDir)
	}
	os.Exit(code)
}

func needCryptsetup(t testing.TB) {
	t.Helper()
	testenv.NeedTool(t, "cryptsetup", "cryptsetup-bin")
}

// run runs cryptsetup with stdin and returns combined output.
// A 2-minute timeout keeps a mistaken KDF setting (cryptsetup's default
// 1 GiB Argon2) from outliving the test.
func run(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "cryptsetup", args...)
	cmd.WaitDelay = 5 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cryptsetup %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustRun(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	out, err := run(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// volume returns a fresh copy (in t.TempDir) of a volume made by cryptsetup
// luksFormat with the DRK in slot 0. Formats are cached per spec.
func volume(t testing.TB, s volSpec) string {
	t.Helper()
	needCryptsetup(t)
	imgCacheMu.Lock()
	src, ok := imgCache[s.name]
	if !ok {
		if imgCacheDir == "" {
			d, err := os.MkdirTemp("", "goheads-luks-test-")
			if err != nil {
				imgCacheMu.Unlock()
				t.Fatal(err)
			}
			imgCacheDir = d
		}
		src = filepath.Join(imgCacheDir, s.name+".img")
		if err := os.WriteFile(src, nil, 0o600); err == nil {
			err = os.Truncate(src, s.size)
		}
		args := append([]string{"luksFormat", "--batch-mode"}, s.args...)
		if _, err := run(drk, append(args, src, "-d", "-")...); err != nil {
			imgCacheMu.Unlock()
			t.Fatal(err)
		}
		imgCache[s.name] = src
	}
	imgCacheMu.Unlock()
	dst := filepath.Join(t.TempDir(), s.name+".img")
	copyFile(t, src, dst)
	return dst
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func randomKey(t testing.TB) []byte {
	k := make([]byte, 128) // Heads' DUK: 128 bytes from /dev/urandom
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func writeKeyFile(t testing.TB, key []byte) string {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// csTestKey reports whether cryptsetup opens img with key (optionally only
// in slot).
func csTestKey(img string, key []byte, slot int) error {
	args := []string{"open", "--test-passphrase", img, "-d", "-"}
	if slot >= 0 {
		args = append(args, "--key-slot", fmt.Sprint(slot))
	}
	_, err := run(key, args...)
	return err
}

func openT(t testing.TB, img string, opts Options) *Device {
	t.Helper()
	d, err := Open(img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// cryptsetupSlots parses the active slot numbers from `cryptsetup luksDump`.
func cryptsetupSlots(t testing.TB, img string) []int {
	t.Helper()
	out := mustRun(t, nil, "luksDump", img)
	var slots []int
	for _, line := range strings.Split(out, "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "Key Slot %d: ENABLED", &n); err == nil {
			slots = append(slots, n)
			continue
		}
		if f := strings.Fields(line); len(f) == 2 && strings.HasSuffix(f[0], ":") && f[1] == "luks2" {
			if _, err := fmt.Sscanf(f[0], "%d:", &n); err == nil {
				slots = append(slots, n)
			}
		}
	}
	return slots
}

var errCut = errors.New("simulated power cut")

type writeOp struct {
	off int64
	n   int
}

// cutStorage persists only the first budget bytes written (budget < 0:
// everything), then fails every write and sync, like a disk losing power.
// It records each write so a recording run can learn the write sequence.
type cutStorage struct {
	f      *os.File
	budget int64
	cut    bool
	log    []writeOp
}

func (c *cutStorage) ReadAt(b []byte, off int64) (int, error) { return c.f.ReadAt(b, off) }

func (c *cutStorage) WriteAt(b []byte, off int64) (int, error) {
	if c.cut {
		return 0, errCut
	}
	c.log = append(c.log, writeOp{off, len(b)})
	n := len(b)
	if c.budget >= 0 && int64(n) > c.budget {
		n = int(c.budget)
		c.cut = true
	}
	if n > 0 {
		if _, err := c.f.WriteAt(b[:n], off); err != nil {
			return 0, err
		}
	}
	if c.budget >= 0 {
		c.budget -= int64(n)
	}
	if c.cut {
		return n, errCut
	}
	return n, nil
}

func (c *cutStorage) Sync() error {
	if c.cut {
		return errCut
	}
	return nil
}

// unlockedWithKey builds an Unlocked from a known volume key, so the fault
// tests do not rerun the DRK's KDF for every cut point.
func unlockedWithKey(d *Device, key []byte, slot, digest int) *Unlocked {
	return &Unlocked{d: d, slot: slot, digest: digest, key: bytes.Clone(key)}
}
