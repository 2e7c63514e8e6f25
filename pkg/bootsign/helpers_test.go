package bootsign

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/testenv"
)

// fakeCounter is a TEST FAKE of the TPM rollback counter, not a TPM: it
// keeps values in memory. pkg/tpm implements the real Counter against a TPM
// (tested there with swtpm). Its counter files are formatted exactly as
// Heads' tpmr writes them, so what bootsign hashes is what it would hash on
// a real machine.
type fakeCounter struct {
	mu        sync.Mutex
	vals      map[string]uint64
	tpm12     bool // TPM 1.2 format: "<decimal id>: 000e<label><count>"
	failRead  bool
	unwritten map[string]bool // TPM 2.0 counter defined but never incremented
	skip      uint64          // extra amount added by the next Increment (a TPM that misbehaves)
}

func newFakeCounter(id string, v uint64) *fakeCounter {
	return &fakeCounter{vals: map[string]uint64{id: v}, unwritten: map[string]bool{}}
}

func (c *fakeCounter) file(id string) []byte {
	if c.tpm12 {
		// Label 3135106223 = 0xbaddecaf, Heads' counter label.
		return fmt.Appendf(nil, "%s: 000ebaddecaf%08x\n", id, uint32(c.vals[id]))
	}
	return fmt.Appendf(nil, "%s: %016x\n", id, c.vals[id])
}

func (c *fakeCounter) Read(id string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.vals[id]; !ok || c.failRead || c.unwritten[id] {
		return nil, fmt.Errorf("fake counter %s: cannot read", id)
	}
	return c.file(id), nil
}

func (c *fakeCounter) Increment(id string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.vals[id]; !ok {
		return nil, fmt.Errorf("fake counter %s: no such counter", id)
	}
	c.vals[id] += 1 + c.skip
	c.skip = 0
	delete(c.unwritten, id)
	return c.file(id), nil
}

func (c *fakeCounter) value(id string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vals[id]
}

// gnupg is a throw-away GnuPG home driven by the real gpg binary.
type gnupg struct {
	home string
}

const testPass = "heads test passphrase"

func newGnuPG(t testing.TB) *gnupg {
	t.Helper()
	testenv.NeedTool(t, "gpg", "gnupg")
	home, err := os.MkdirTemp("", "gh-gpg-") // short: gpg-agent socket path limit
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	t.Cleanup(func() { killAgent(home) })
	fastS2K(t, home)
	return &gnupg{home: home}
}

// fastS2K makes gpg-agent protect keys with a small S2K count: the default
// is calibrated to ~100 ms of CPU per use, which on a loaded 2-core machine
// turns each gpg call into seconds. Test keys only.
func fastS2K(t testing.TB, home string) {
	if err := os.WriteFile(filepath.Join(home, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func killAgent(home string) {
	cmd := exec.Command("gpgconf", "--kill", "all")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	_ = cmd.Run()
	os.RemoveAll(home)
}

func (g *gnupg) env() []string { return append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C") }

func (g *gnupg) run(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	out, err := g.try(stdin, args...)
	if err != nil {
		t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (g *gnupg) try(stdin []byte, args ...string) ([]byte, error) {
	full := append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", testPass}, args...)
	cmd := exec.Command("gpg", full...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func (g *gnupg) fpr(t testing.TB, uid string) string {
	out := g.run(t, nil, "--with-colons", "--fixed-list-mode", "-k", uid)
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && len(f) > 9 {
			return f[9]
		}
	}
	t.Fatalf("no key %s", uid)
	return ""
}

// keys is the shared key material: the user's key (ed25519 certify-only
// primary with an ed25519 signing subkey, as a Heads OEM reset makes in
// memory) and an RSA 3072 key, in one gpg home whose pubring.kbx (written
// by gpg itself) is the ROM keyring; and a key the ROM does not have.
type keys struct {
	rom, other *gnupg
	user, rsa  string // fingerprints
	romRing    *keyring.Keyring
	userSecret []byte // gpg --armor --export-secret-keys, passphrase-protected
	otherSec   []byte
}

var (
	keysOnce sync.Once
	keysVal  *keys
	keysErr  error
	homes    []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, h := range homes {
		killAgent(h)
	}
	os.Exit(code)
}

// sharedKeys makes the keys once per test binary (gpg key generation is
// the slow part of these tests).
func sharedKeys(t testing.TB) *keys {
	t.Helper()
	testenv.NeedTool(t, "gpg", "gnupg")
	keysOnce.Do(func() { keysVal, keysErr = makeKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

func makeKeys() (*keys, error) {
	mk := func() (*gnupg, error) {
		home, err := os.MkdirTemp("", "gh-gpg-")
		if err != nil {
			return nil, err
		}
		homes = append(homes, home)
		if err := os.WriteFile(filepath.Join(home, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
			return nil, err
		}
		return &gnupg{home: home}, os.Chmod(home, 0o700)
	}
	k := &keys{}
	var err error
	if k.rom, err = mk(); err != nil {
		return nil, err
	}
	if k.other, err = mk(); err != nil {
		return nil, err
	}
	steps := []struct {
		g    *gnupg
		args []string
	}{
		{k.rom, []string{"--quick-gen-key", "Heads User <user@example.org>", "ed25519", "cert", "never"}},
		{k.rom, []string{"--quick-gen-key", "Heads RSA <rsa@example.org>", "rsa3072", "sign", "never"}},
		{k.other, []string{"--quick-gen-key", "Other <other@example.org>", "ed25519", "sign", "never"}},
	}
	for _, s := range steps {
		if _, err := s.g.try(nil, s.args...); err != nil {
			return nil, err
		}
	}
	fpr := func(g *gnupg, uid string) string {
		out, _ := g.try(nil, "--with-colons", "--fixed-list-mode", "-k", uid)
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Split(l, ":"); f[0] == "fpr" && len(f) > 9 {
				return f[9]
			}
		}
		return ""
	}
	k.user, k.rsa = fpr(k.rom, "user@example.org"), fpr(k.rom, "rsa@example.org")
	if _, err := k.rom.try(nil, "--quick-add-key", k.user, "ed25519", "sign", "never"); err != nil {
		return nil, err
	}
	if k.userSecret, err = k.rom.try(nil, "--s2k-count", "65536", "--armor", "--export-secret-keys", k.user); err != nil {
		return nil, err
	}
	if k.otherSec, err = k.other.try(nil, "--s2k-count", "65536", "--armor", "--export-secret-keys"); err != nil {
		return nil, err
	}
	if k.romRing, err = keyring.LoadFile(filepath.Join(k.rom.home, "pubring.kbx")); err != nil {
		return nil, err
	}
	if k.romRing.Len() != 2 {
		return nil, fmt.Errorf("ROM keybox has %d keys, want 2", k.romRing.Len())
	}
	return k, nil
}

var signingKeys sync.Map // secret bytes -> *keyring.SigningKey

// signingKey decrypts a gpg secret key export with go-crypto (cached: the
// S2K derivation is deliberately slow).
func signingKey(t testing.TB, secret []byte) *keyring.SigningKey {
	t.Helper()
	if k, ok := signingKeys.Load(string(secret)); ok {
		return k.(*keyring.SigningKey)
	}
	k, err := keyring.LoadSigningKey(secret, []byte(testPass), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	signingKeys.Store(string(secret), k)
	return k
}

// makeBoot lays out a /boot like a Debian install, with the corner cases
// the formats must get right: nested directories, a symlink, an empty
// file and an empty directory, a space in a name, "a-b" next to "a/b"
// (byte order differs from directory order), a kexec_hotp_counter (excluded,
// not signed) and a directory whose name starts with kexec.
func makeBoot(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "boot")
	files := map[string][]byte{
		"grub/grub.cfg":              []byte("set default=0\nmenuentry 'Debian' {\n linux /vmlinuz-6.1.0-13-amd64 root=/dev/sda2\n initrd /initrd.img-6.1.0-13-amd64\n}\n"),
		"grub/fonts/unicode.pf2":     randBytes(t, 3000),
		"vmlinuz-6.1.0-13-amd64":     randBytes(t, 300_000),
		"initrd.img-6.1.0-13-amd64":  randBytes(t, 700_000),
		"config-6.1.0-13-amd64":      []byte("CONFIG_X=y\n"),
		"System.map-6.1.0-13-amd64":  []byte("ffffffff81000000 T _text\n"),
		"a-b":                        []byte("dash\n"),
		"a/b":                        []byte("slash\n"),
		"with space.txt":             []byte("space\n"),
		"empty":                      nil,
		"kexec_hotp_counter":         []byte("2\n"),
		"kexecdir/inside":            []byte("excluded too\n"),
		"grub/x86_64-efi/normal.mod": randBytes(t, 5000),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"lost+found", "efi"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("vmlinuz-6.1.0-13-amd64", filepath.Join(dir, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randCounterID(t testing.TB) string {
	// TPM 2.0 style: "1" and 6 hex digits, like tpmr's random index.
	return "1" + hex.EncodeToString(randBytes(t, 3))
}

// headsSign signs bootDir exactly as Heads' kexec-sign-config.sh -u -r does
// (staging dir, find | xargs sha256sum, find | sort -z, sha256sum of
// /tmp/counter-<id>, (cd stage; sha256sum kexec*.txt) | gpg --detach-sign
// -a, mv, rm kexec_package_trigger*), with the real tools. counterFile is
// the counter file after the increment (nil: no rollback file, as without
// -r). uid picks the key; extra gpg options go in gpgArgs.
func headsSign(t testing.TB, g *gnupg, bootDir, uid, counterID string, counterFile []byte, gpgArgs ...string) {
	t.Helper()
	for _, tool := range []string{"bash", "find", "sort", "xargs", "sha256sum"} {
		testenv.NeedTool(t, tool, "coreutils findutils bash")
	}
	script := `set -e -o pipefail
cd "$BOOT"
stage=$(mktemp -d)
for f in "$BOOT"/kexec*.txt; do [ -e "$f" ] && cp "$f" "$stage/"; done
find ./ -type f ! -path './kexec*' -print0 | xargs -0 sha256sum >"$stage/kexec_hashes.txt"
find ./ ! -path './kexec*' -print0 | sort -z >"$stage/kexec_tree.txt"
if [ -n "$COUNTER_ID" ]; then
	printf '%s' "$COUNTER_FILE" >"/tmp/counter-$COUNTER_ID"
	sha256sum "/tmp/counter-$COUNTER_ID" >"$stage/kexec_rollback.txt"
	rm -f "/tmp/counter-$COUNTER_ID"
fi
param_files=()
for f in "$stage"/kexec*.txt; do param_files+=("$(basename "$f")"); done
(cd "$stage" && sha256sum "${param_files[@]}") |
	gpg --batch --pinentry-mode=loopback --passphrase "$PASS" --local-user "$KEY" $GPGARGS --detach-sign -a >"$stage/kexec.sig"
for f in "$stage"/*; do mv "$f" "$BOOT/$(basename "$f")"; done
rmdir "$stage"
rm -f "$BOOT"/kexec_package_trigger*
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(g.env(), "BOOT="+bootDir, "KEY="+uid, "PASS="+testPass, "GPGARGS="+strings.Join(gpgArgs, " "),
		"COUNTER_ID="+counterID, "COUNTER_FILE="+string(counterFile))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Heads-style signing: %v\n%s", err, out)
	}
}

// snapshot returns every file under dir (path -> content; symlinks as
// "-> target"), to compare states.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			m[rel] = "-> " + l
		case d.IsDir():
			m[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// copyTree copies a directory (files, dirs, symlinks).
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	cmd := exec.Command("cp", "-a", src+"/.", dst)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
}

// kexecState returns the signed set in the live /boot, to compare old and
// new states.
func kexecState(t testing.TB, dir string) map[string]string {
	t.Helper()
	s, err := readLiveSet(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{SigFile: string(s.sig)}
	for n, c := range s.files {
		m[n] = string(c)
	}
	return m
}

func mustIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}
