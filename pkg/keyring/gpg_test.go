package keyring

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/testenv"
)

// gnupg is a throw-away GnuPG home driven by the real gpg binary.
type gnupg struct {
	t    *testing.T
	home string
}

func newGnuPG(t *testing.T) *gnupg {
	t.Helper()
	testenv.NeedTool(t, "gpg", "gnupg")
	home, err := os.MkdirTemp("", "gh-gpg-") // short path: gpg-agent socket length limit
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// The agent's default S2K count costs ~100 ms of CPU per key use,
	// seconds on a loaded machine; test keys need no such protection.
	if err := os.WriteFile(filepath.Join(home, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		_ = cmd.Run()
		os.RemoveAll(home)
	})
	return &gnupg{t: t, home: home}
}

// run runs gpg in batch mode with an empty passphrase unless args set one,
// and fails the test on error.
func (g *gnupg) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (g *gnupg) try(stdin []byte, args ...string) ([]byte, error) {
	g.t.Helper()
	full := []string{"--batch", "--pinentry-mode", "loopback"}
	hasPass := false
	for _, a := range args {
		if a == "--passphrase" {
			hasPass = true
		}
	}
	if !hasPass {
		full = append(full, "--passphrase", "")
	}
	cmd := exec.Command("gpg", append(full, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C")
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), errors.New(err.Error() + ": " + stderr.String())
	}
	return stdout.Bytes(), nil
}

func (g *gnupg) fpr(uid string) string {
	for _, k := range parseColons(g.t, string(g.run(nil, "--with-colons", "--fixed-list-mode", "-k", uid))) {
		return k.fpr
	}
	g.t.Fatalf("no key %s", uid)
	return ""
}

func (g *gnupg) file(name string, data []byte) string {
	p := filepath.Join(g.home, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		g.t.Fatal(err)
	}
	return p
}

// TestRealGnuPG: keys made by this machine's gpg (RSA 3072, ed25519 with a
// signing subkey), read from the keybox gpg wrote and from its exports;
// armoured, binary and text-mode signatures verify; one changed byte and a
// foreign key are refused.
func TestRealGnuPG(t *testing.T) {
	g := newGnuPG(t)
	g.run(nil, "--quick-gen-key", "RSA Test <rsa@example.org>", "rsa3072", "sign", "never")
	g.run(nil, "--quick-gen-key", "Ed Test <ed@example.org>", "ed25519", "cert", "never")
	ed := g.fpr("ed@example.org")
	g.run(nil, "--quick-add-key", ed, "ed25519", "sign", "never")
	want := parseColons(t, string(g.run(nil, "--with-colons", "--fixed-list-mode", "-k")))
	rsa := g.fpr("rsa@example.org")
	edSub := want[1].subs[0].fpr

	rings := map[string][]byte{
		"pubring.kbx":   mustRead(t, filepath.Join(g.home, "pubring.kbx")),
		"export":        g.run(nil, "--export"),
		"armor export":  g.run(nil, "--armor", "--export"),
		"export ed+rsa": g.run(nil, "--export", ed, rsa),
	}
	data := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  kexec_hashes.txt\n")
	msg := g.file("msg", data)
	sigs := map[string][2]string{ // name -> signer fpr, signing key fpr
		"rsa.asc": {rsa, rsa}, "rsa.sig": {rsa, rsa}, "ed.asc": {ed, edSub}, "ed.sig": {ed, edSub}, "ed.txt.asc": {ed, edSub},
	}
	g.run(nil, "-u", rsa, "--detach-sign", "-a", "-o", g.home+"/rsa.asc", msg)
	g.run(nil, "-u", rsa, "--detach-sign", "-o", g.home+"/rsa.sig", msg)
	g.run(nil, "-u", ed, "--detach-sign", "-a", "-o", g.home+"/ed.asc", msg)
	g.run(nil, "-u", ed, "--detach-sign", "-o", g.home+"/ed.sig", msg)
	g.run(nil, "-u", ed, "--textmode", "--detach-sign", "-a", "-o", g.home+"/ed.txt.asc", msg)

	other := newGnuPG(t)
	other.run(nil, "--quick-gen-key", "Other <other@example.org>", "ed25519", "sign", "never")
	foreign := other.run(data, "--detach-sign", "-a")

	for name, ring := range rings {
		kr, err := Load(ring)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkListing(t, kr, want)
		for sigName, who := range sigs {
			sig := mustRead(t, filepath.Join(g.home, sigName))
			s, err := kr.VerifyDetached(bytes.NewReader(data), bytes.NewReader(sig), nil)
			if err != nil {
				t.Errorf("%s %s: %v", name, sigName, err)
				continue
			}
			if s.Fingerprint != who[0] || s.SigningKey != who[1] {
				t.Errorf("%s %s: signer %s/%s, want %s/%s", name, sigName, s.Fingerprint, s.SigningKey, who[0], who[1])
			}
			changed := append([]byte(nil), data...)
			changed[len(changed)-2] ^= 0x20
			if _, err := kr.VerifyDetached(bytes.NewReader(changed), bytes.NewReader(sig), nil); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s %s over changed data: %v, want ErrBadSignature", name, sigName, err)
			}
		}
		if _, err := kr.VerifyDetached(bytes.NewReader(data), bytes.NewReader(foreign), nil); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%s: foreign signature: %v, want ErrUnknownKey", name, err)
		}
	}
}

// TestRealGnuPGPolicy: gpg accepts good signatures by revoked and by
// expired-at-signing keys (exit 0, as Heads relies on); goheads refuses them
// and names the key.
func TestRealGnuPGPolicy(t *testing.T) {
	data := []byte("policy test\n")
	type tc struct {
		name  string
		setup func(g *gnupg) (sig []byte)
		want  error
	}
	for _, c := range []tc{
		{"revoked key", func(g *gnupg) []byte {
			g.run(nil, "--quick-gen-key", "Rev <rev@example.org>", "ed25519", "sign", "never")
			f := g.fpr("rev@example.org")
			sig := g.run(data, "--detach-sign", "-a")
			rev := mustRead(t, filepath.Join(g.home, "openpgp-revocs.d", f+".rev"))
			g.run(bytes.ReplaceAll(rev, []byte(":-----"), []byte("-----")), "--import")
			return sig
		}, ErrRevokedKey},
		{"revoked signing subkey", func(g *gnupg) []byte {
			g.run(nil, "--quick-gen-key", "Revsub <revsub@example.org>", "ed25519", "cert", "never")
			f := g.fpr("revsub@example.org")
			g.run(nil, "--quick-add-key", f, "ed25519", "sign", "never")
			sig := g.run(data, "--detach-sign")
			g.run([]byte("key 1\nrevkey\ny\n0\n\ny\nsave\n"), "--command-fd", "0", "--edit-key", f)
			return sig
		}, ErrRevokedKey},
		{"expired at signing", func(g *gnupg) []byte {
			g.run(nil, "--faked-system-time", "20200101T000000", "--quick-gen-key", "Exp <exp@example.org>", "ed25519", "sign", "never")
			f := g.fpr("exp@example.org")
			sig := g.run(data, "--faked-system-time", "20200110T000000", "--detach-sign", "-a")
			g.run(nil, "--faked-system-time", "20200102T000000", "--quick-set-expire", f, "2d")
			return sig
		}, ErrExpiredKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGnuPG(t)
			sig := c.setup(g)
			// gpg itself: "Good signature" and exit status 0.
			if _, err := g.try(data, "--verify", g.file("sig", sig), "-"); err != nil {
				t.Errorf("gpg --verify refused (test premise: gpg accepts): %v", err)
			}
			kr, err := Load(g.run(nil, "--export"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = kr.VerifyDetached(bytes.NewReader(data), bytes.NewReader(sig), nil)
			var se *SignatureError
			if !errors.Is(err, c.want) || !errors.As(err, &se) || se.Fingerprint == "" || !strings.Contains(err.Error(), se.Fingerprint) {
				t.Errorf("VerifyDetached = %v, want %v naming the key", err, c.want)
			}
		})
	}
}

// TestSigningKeyWithGnuPG: a passphrase-protected secret key exported by
// gpg signs with go-crypto; gpg verifies the result.
func TestSigningKeyWithGnuPG(t *testing.T) {
	g := newGnuPG(t)
	const pass = "correct horse"
	g.run(nil, "--passphrase", pass, "--quick-gen-key", "Signer <signer@example.org>", "ed25519", "cert", "never")
	f := g.fpr("signer@example.org")
	g.run(nil, "--passphrase", pass, "--quick-add-key", f, "ed25519", "sign", "never")
	sub := parseColons(t, string(g.run(nil, "--with-colons", "--fixed-list-mode", "-k", f)))[0].subs[0].fpr
	full := g.run(nil, "--passphrase", pass, "--s2k-count", "65536", "--armor", "--export-secret-keys", f)
	subOnly := g.run(nil, "--passphrase", pass, "--s2k-count", "65536", "--export-secret-subkeys", f) // primary is a gnu-dummy stub

	data := []byte("a /boot manifest\n")
	for name, file := range map[string][]byte{"export-secret-keys": full, "export-secret-subkeys": subOnly} {
		if _, err := LoadSigningKey(file, []byte("wrong"), time.Time{}); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s, wrong passphrase: %v, want ErrWrongPassphrase", name, err)
		}
		k, err := LoadSigningKey(file, []byte(pass), time.Time{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if k.Fingerprint() != f || k.SigningKeyFingerprint() != sub {
			t.Errorf("%s: key %s signing %s, want %s signing %s", name, k.Fingerprint(), k.SigningKeyFingerprint(), f, sub)
		}
		for _, armored := range []bool{true, false} {
			var sig bytes.Buffer
			if err := k.SignDetached(&sig, bytes.NewReader(data), armored, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if armored != bytes.HasPrefix(sig.Bytes(), []byte("-----BEGIN PGP SIGNATURE-----")) {
				t.Errorf("%s: armoured=%v but output starts %q", name, armored, sig.Bytes()[:10])
			}
			out, err := g.try(data, "--status-fd", "1", "--verify", g.file("gosig", sig.Bytes()), "-")
			if err != nil || !bytes.Contains(out, []byte("[GNUPG:] VALIDSIG "+sub)) {
				t.Errorf("%s: gpg --verify of go-crypto signature: %v\n%s", name, err, out)
			}
			if s, err := k.Public().VerifyDetached(bytes.NewReader(data), bytes.NewReader(sig.Bytes()), nil); err != nil || s.SigningKey != sub {
				t.Errorf("%s: own verification: %v", name, err)
			}
		}
	}
	if _, err := LoadSigningKey(g.run(nil, "--export", f), []byte(pass), time.Time{}); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("public key file: %v, want ErrNoSigningKey", err)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
