package bootsign

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/testenv"
)

// A /boot signed the way Heads' scripts do it (real find, sort -z,
// sha256sum, gpg --detach-sign -a) verifies under goheads, with the RSA
// key and with the ed25519 signing subkey, with and without a rollback
// counter, for TPM 2.0 and TPM 1.2 counter files.
func TestHeadsSignedBootVerifies(t *testing.T) {
	k := sharedKeys(t)
	for _, tc := range []struct {
		name, uid string
		tpm12     bool
		noCounter bool
		gpgArgs   []string
	}{
		{name: "ed25519 subkey, TPM2 counter", uid: "user@example.org"},
		{name: "rsa3072, TPM1 counter", uid: "rsa@example.org", tpm12: true},
		{name: "OEM reset digest", uid: "user@example.org", gpgArgs: []string{"--digest-algo", "SHA256"}},
		{name: "no rollback (CONFIG_IGNORE_ROLLBACK)", uid: "rsa@example.org", noCounter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			boot := makeBoot(t)
			id := randCounterID(t)
			if tc.tpm12 {
				id = "4"
			}
			ctr := newFakeCounter(id, 41)
			ctr.tpm12 = tc.tpm12
			// Heads increments, then hashes the new counter file.
			cf, _ := ctr.Increment(id)
			if tc.noCounter {
				headsSign(t, k.rom, boot, tc.uid, "", nil, tc.gpgArgs...)
			} else {
				headsSign(t, k.rom, boot, tc.uid, id, cf, tc.gpgArgs...)
			}
			opts := VerifyOptions{BootDir: boot, Keyring: k.romRing, Counter: ctr}
			if tc.noCounter {
				opts.Counter = nil
			}
			r, err := Verify(opts)
			if err != nil {
				t.Fatal(err)
			}
			want := k.user
			if tc.uid == "rsa@example.org" {
				want = k.rsa
			}
			if r.Signer.Fingerprint != want || r.Set != "live" || r.LegacyPaths {
				t.Errorf("report: signer %s set %s legacy %v; want signer %s, live", r.Signer.Fingerprint, r.Set, r.LegacyPaths, want)
			}
			wantRB := RollbackVerified
			if tc.noCounter {
				wantRB = RollbackNotChecked
			}
			if r.Rollback != wantRB || (!tc.noCounter && r.CounterID != id) {
				t.Errorf("rollback %s counter %q, want %s %q", r.Rollback, r.CounterID, wantRB, id)
			}
			// 11 regular files outside ./kexec*.
			if r.FilesChecked != 11 {
				t.Errorf("FilesChecked = %d, want 11", r.FilesChecked)
			}
			// And goheads' own generator agrees with find|sort|sha256sum up
			// to line order.
			m, err := Generate(boot, GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Tree, r.Files[TreeFile]) {
				t.Errorf("tree differs from Heads':\n%q\n%q", m.Tree, r.Files[TreeFile])
			}
			if !sameLines(m.Hashes, r.Files[HashesFile]) {
				t.Errorf("hashes differ from Heads' (beyond order):\n%s\n%s", m.Hashes, r.Files[HashesFile])
			}
		})
	}
}

func sameLines(a, b []byte) bool {
	la := strings.Split(strings.TrimSuffix(string(a), "\n"), "\n")
	lb := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(la) != len(lb) {
		return false
	}
	seen := map[string]int{}
	for _, l := range la {
		seen[l]++
	}
	for _, l := range lb {
		seen[l]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// What goheads writes is byte-identical to what the real tools produce for
// the same tree (sorted find output, as sha256sum prints it), and gpg
// verifies kexec.sig over `sha256sum kexec*.txt`.
func TestGoheadsSignedBootMatchesTools(t *testing.T) {
	k := sharedKeys(t)
	boot := makeBoot(t)
	id := randCounterID(t)
	ctr := newFakeCounter(id, 7)
	r, err := Sign(SignOptions{
		BootDir: boot, Key: signingKey(t, k.userSecret), Keyring: k.romRing,
		UpdateHashes: true, Counter: ctr, CounterID: id,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Signer.Fingerprint != k.user || ctr.value(id) != 8 {
		t.Errorf("signer %s, counter %d; want %s, 8", r.Signer.Fingerprint, ctr.value(id), k.user)
	}
	sh := func(script string, env ...string) []byte {
		t.Helper()
		cmd := exec.Command("bash", "-c", "set -e -o pipefail; cd \"$BOOT\"; "+script)
		cmd.Env = append(append(k.rom.env(), "BOOT="+boot), env...)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("%s: %v\n%s", script, err, ee.Stderr)
			}
			t.Fatalf("%s: %v", script, err)
		}
		return out
	}
	read := func(n string) []byte { return mustRead(t, filepath.Join(boot, n)) }
	if want := sh(`find ./ -type f ! -path './kexec*' -print0 | sort -z | xargs -0 sha256sum`); !bytes.Equal(read(HashesFile), want) {
		t.Errorf("kexec_hashes.txt:\n%s\nsha256sum:\n%s", read(HashesFile), want)
	}
	if want := sh(`find ./ ! -path './kexec*' -print0 | sort -z`); !bytes.Equal(read(TreeFile), want) {
		t.Errorf("kexec_tree.txt:\n%q\nfind|sort -z:\n%q", read(TreeFile), want)
	}
	// The counter file as tpmr writes it, hashed by sha256sum.
	cf, _ := ctr.Read(id)
	want := sh(`printf '%s' "$C" >/tmp/counter-$ID; sha256sum /tmp/counter-$ID; rm /tmp/counter-$ID`, "C="+string(cf), "ID="+id)
	if !bytes.Equal(read(RollbackFile), want) {
		t.Errorf("kexec_rollback.txt %q, sha256sum %q", read(RollbackFile), want)
	}
	// Heads' check_config: (cd /boot && sha256sum kexec*.txt) | gpgv kexec.sig -
	sh(`sha256sum kexec*.txt | gpg --batch --verify kexec.sig -`)
	if !bytes.HasPrefix(read(SigFile), []byte("-----BEGIN PGP SIGNATURE-----\n")) {
		t.Errorf("kexec.sig is not ASCII-armoured: %q", read(SigFile)[:20])
	}
	if _, err := os.Stat(filepath.Join(boot, StagingDir)); !os.IsNotExist(err) {
		t.Errorf("staging dir left behind: %v", err)
	}
}

// Legacy Heads signatures over "/boot/kexec_*.txt" names still verify.
func TestLegacyAbsolutePathSignature(t *testing.T) {
	k := sharedKeys(t)
	boot := makeBoot(t)
	m, err := Generate(boot, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{HashesFile: m.Hashes, TreeFile: m.Tree}
	for n, c := range files {
		os.WriteFile(filepath.Join(boot, n), c, 0o644)
	}
	// Old check_config: sha256sum $(find /boot/kexec*.txt) | gpgv ...
	sig := k.rom.run(t, legacySignedMessage(files), "-u", k.rsa, "--detach-sign", "-a")
	os.WriteFile(filepath.Join(boot, SigFile), sig, 0o644)
	r, err := Verify(VerifyOptions{BootDir: boot, Keyring: k.romRing})
	if err != nil {
		t.Fatal(err)
	}
	if !r.LegacyPaths {
		t.Error("LegacyPaths not reported")
	}
}

// fixture: a /boot signed Heads-style with rollback, and its counter.
type signedBoot struct {
	k    *keys
	boot string
	id   string
	ctr  *fakeCounter
}

func newSignedBoot(t *testing.T) *signedBoot {
	k := sharedKeys(t)
	s := &signedBoot{k: k, boot: makeBoot(t), id: randCounterID(t)}
	s.ctr = newFakeCounter(s.id, 100)
	os.WriteFile(filepath.Join(s.boot, "kexec_default.1.txt"), []byte("Debian|elf|kernel /vmlinuz-6.1.0-13-amd64|initrd /initrd.img-6.1.0-13-amd64|append root=/dev/sda2\n"), 0o644)
	cf, _ := s.ctr.Increment(s.id)
	headsSign(t, k.rom, s.boot, "user@example.org", s.id, cf)
	return s
}

func (s *signedBoot) verify() (*Report, error) {
	return Verify(VerifyOptions{BootDir: s.boot, Keyring: s.k.romRing, Counter: s.ctr})
}

// Every refusal has its own typed outcome.
func TestRefusals(t *testing.T) {
	t.Run("one byte changed in any file", func(t *testing.T) {
		s := newSignedBoot(t)
		for _, f := range []string{"grub/grub.cfg", "vmlinuz-6.1.0-13-amd64", "initrd.img-6.1.0-13-amd64", "a/b", "with space.txt", "grub/fonts/unicode.pf2"} {
			p := filepath.Join(s.boot, f)
			orig := mustRead(t, p)
			changed := append([]byte(nil), orig...)
			changed[len(changed)/2] ^= 0x01
			os.WriteFile(p, changed, 0o644)
			_, err := s.verify()
			var he *HashError
			if !errors.As(err, &he) || !errors.Is(err, ErrHashMismatch) || len(he.Changed) != 1 || he.Changed[0] != "./"+f || len(he.Added)+len(he.Missing) != 0 {
				t.Errorf("%s changed: %v, want HashError{Changed: [./%s]}", f, err, f)
			}
			os.WriteFile(p, orig, 0o644)
		}
		// The empty file gains a byte.
		os.WriteFile(filepath.Join(s.boot, "empty"), []byte{0}, 0o644)
		_, err := s.verify()
		var he *HashError
		if !errors.As(err, &he) || len(he.Changed) != 1 || he.Changed[0] != "./empty" {
			t.Errorf("empty file changed: %v", err)
		}
	})
	t.Run("added file and directory", func(t *testing.T) {
		s := newSignedBoot(t)
		os.WriteFile(filepath.Join(s.boot, "grub", "evil.cfg"), []byte("x"), 0o644)
		os.Mkdir(filepath.Join(s.boot, "newdir"), 0o755)
		_, err := s.verify()
		var he *HashError
		if !errors.As(err, &he) || strings.Join(he.Added, ",") != "./grub/evil.cfg,./newdir" || len(he.Changed)+len(he.Missing) != 0 {
			t.Fatalf("added: %v", err)
		}
	})
	t.Run("removed file", func(t *testing.T) {
		s := newSignedBoot(t)
		os.Remove(filepath.Join(s.boot, "config-6.1.0-13-amd64"))
		os.Remove(filepath.Join(s.boot, "vmlinuz")) // a symlink: only in the tree
		_, err := s.verify()
		var he *HashError
		if !errors.As(err, &he) || strings.Join(he.Missing, ",") != "./config-6.1.0-13-amd64,./vmlinuz" || len(he.Changed)+len(he.Added) != 0 {
			t.Fatalf("removed: %v", err)
		}
	})
	t.Run("file replaced by a symlink to the same content", func(t *testing.T) {
		// Heads' sha256sum -c follows the link and its tree only has
		// names: it passes. goheads does not.
		s := newSignedBoot(t)
		p := filepath.Join(s.boot, "config-6.1.0-13-amd64")
		os.Rename(p, filepath.Join(s.boot, "efi", "moved"))
		os.Symlink("efi/moved", p)
		_, err := s.verify()
		var he *HashError
		if !errors.As(err, &he) || strings.Join(he.Changed, ",") != "./config-6.1.0-13-amd64" {
			t.Fatalf("symlinked: %v", err)
		}
	})
	t.Run("swapped kexec.sig", func(t *testing.T) {
		s := newSignedBoot(t)
		other := newSignedBoot(t) // same key, different /boot
		os.WriteFile(filepath.Join(s.boot, SigFile), mustRead(t, filepath.Join(other.boot, SigFile)), 0o644)
		_, err := s.verify()
		mustIs(t, err, ErrBadSignature)
		if !strings.Contains(err.Error(), s.k.user) {
			t.Errorf("error %q does not name the key", err)
		}
	})
	t.Run("kexec txt added, removed, changed", func(t *testing.T) {
		for _, f := range []func(boot string){
			func(b string) { os.WriteFile(filepath.Join(b, "kexec_extra.txt"), []byte("x\n"), 0o644) },
			func(b string) { os.Remove(filepath.Join(b, TreeFile)) },
			func(b string) {
				os.WriteFile(filepath.Join(b, "kexec_default.1.txt"), []byte("Evil|elf|kernel /vmlinuz\n"), 0o644)
			},
		} {
			s := newSignedBoot(t)
			f(s.boot)
			_, err := s.verify()
			mustIs(t, err, ErrBadSignature)
		}
	})
	t.Run("kexec file replaced by a symlink", func(t *testing.T) {
		s := newSignedBoot(t)
		p := filepath.Join(s.boot, TreeFile)
		os.Rename(p, filepath.Join(s.boot, "efi", "tree"))
		os.Symlink("efi/tree", p)
		_, err := s.verify()
		mustIs(t, err, ErrMalformedManifest)
	})
	t.Run("key not in the ROM keyring", func(t *testing.T) {
		s := newSignedBoot(t)
		headsSign(t, s.k.other, s.boot, "other@example.org", s.id, s.ctr.file(s.id))
		_, err := s.verify()
		mustIs(t, err, ErrUnknownKey)
		var se *keyring.SignatureError
		if !errors.As(err, &se) || se.IssuerKeyID == "" {
			t.Errorf("unknown key error does not carry the issuer: %v", err)
		}
	})
	t.Run("revoked key", func(t *testing.T) {
		g := newGnuPG(t)
		g.run(t, nil, "--quick-gen-key", "Revoked <rev@example.org>", "ed25519", "sign", "never")
		f := g.fpr(t, "rev@example.org")
		boot := makeBoot(t)
		headsSign(t, g, boot, "rev@example.org", "", nil)
		rev := mustRead(t, filepath.Join(g.home, "openpgp-revocs.d", f+".rev"))
		g.run(t, bytes.ReplaceAll(rev, []byte(":-----"), []byte("-----")), "--import")
		// gpg (and so Heads) still accepts the signature...
		cmd := exec.Command("bash", "-c", `cd "$BOOT" && sha256sum kexec*.txt | gpg --batch --verify kexec.sig -`)
		cmd.Env = append(g.env(), "BOOT="+boot)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("premise: gpg accepts a revoked key's signature: %v\n%s", err, out)
		}
		kr, err := keyring.LoadFile(filepath.Join(g.home, "pubring.kbx"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(VerifyOptions{BootDir: boot, Keyring: kr})
		mustIs(t, err, ErrRevokedKey)
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name the key", err)
		}
	})
	t.Run("key expired when it signed", func(t *testing.T) {
		g := newGnuPG(t)
		g.run(t, nil, "--faked-system-time", "20200101T000000", "--quick-gen-key", "Expired <exp@example.org>", "ed25519", "sign", "never")
		f := g.fpr(t, "exp@example.org")
		boot := makeBoot(t)
		headsSign(t, g, boot, "exp@example.org", "", nil, "--faked-system-time", "20200110T000000")
		g.run(t, nil, "--faked-system-time", "20200102T000000", "--quick-set-expire", f, "2d")
		kr, err := keyring.Load(g.run(t, nil, "--export"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(VerifyOptions{BootDir: boot, Keyring: kr})
		mustIs(t, err, ErrExpiredKey)
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name the key", err)
		}
	})
	t.Run("malformed signature", func(t *testing.T) {
		s := newSignedBoot(t)
		sig := mustRead(t, filepath.Join(s.boot, SigFile))
		for _, bad := range [][]byte{[]byte("garbage\n"), sig[:len(sig)/2], {}} {
			os.WriteFile(filepath.Join(s.boot, SigFile), bad, 0o644)
			_, err := s.verify()
			mustIs(t, err, ErrMalformedSignature)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		s := newSignedBoot(t)
		os.Remove(filepath.Join(s.boot, SigFile))
		_, err := s.verify()
		mustIs(t, err, ErrUnsigned)
		for _, other := range []error{ErrBadSignature, ErrMalformedSignature, ErrHashMismatch} {
			if errors.Is(err, other) {
				t.Errorf("unsigned also matches %v", other)
			}
		}
		// The UI can still show whether the unsigned files match.
		files, sig, err := ReadUnverified(s.boot)
		if err != nil || sig != nil {
			t.Fatalf("ReadUnverified: sig %q, %v", sig, err)
		}
		if _, err := CheckHashes(s.boot, files[HashesFile], files[TreeFile], HashOptions{}); err != nil {
			t.Errorf("unsigned but unchanged /boot: %v", err)
		}
	})
	t.Run("rollback: older signed /boot replayed", func(t *testing.T) {
		s := newSignedBoot(t)
		old := filepath.Join(t.TempDir(), "old")
		copyTree(t, s.boot, old)
		// A later signing (goheads) moves the counter on.
		if _, err := Sign(SignOptions{BootDir: s.boot, Key: signingKey(t, s.k.userSecret), Keyring: s.k.romRing, UpdateHashes: true, Counter: s.ctr}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.verify(); err != nil {
			t.Fatalf("new signing: %v", err)
		}
		// The attacker restores the old, validly signed /boot.
		os.RemoveAll(s.boot)
		copyTree(t, old, s.boot)
		_, err := s.verify()
		mustIs(t, err, ErrRollback)
		var re *RollbackError
		if !errors.As(err, &re) || re.CounterID != s.id || re.Signed == re.Current {
			t.Errorf("rollback error %+v", re)
		}
		// Without a counter the replay is invisible (CONFIG_IGNORE_ROLLBACK).
		if _, err := Verify(VerifyOptions{BootDir: s.boot, Keyring: s.k.romRing}); err != nil {
			t.Errorf("without counter: %v", err)
		}
	})
	t.Run("rollback file missing or counter unreadable", func(t *testing.T) {
		s := newSignedBoot(t)
		s.ctr.failRead = true
		_, err := s.verify()
		mustIs(t, err, ErrCounter)
		s.ctr.failRead = false
		boot := makeBoot(t)
		headsSign(t, s.k.rom, boot, "user@example.org", "", nil) // signed without -r
		_, err = Verify(VerifyOptions{BootDir: boot, Keyring: s.k.romRing, Counter: s.ctr})
		mustIs(t, err, ErrRollback)
	})
	t.Run("missing manifest", func(t *testing.T) {
		k := sharedKeys(t)
		boot := makeBoot(t)
		// Signed set with only a default entry (no -u ever ran).
		os.WriteFile(filepath.Join(boot, "kexec_default.1.txt"), []byte("x\n"), 0o644)
		if _, err := Sign(SignOptions{BootDir: boot, Key: signingKey(t, k.userSecret)}); err != nil {
			t.Fatal(err)
		}
		_, err := Verify(VerifyOptions{BootDir: boot, Keyring: k.romRing})
		mustIs(t, err, ErrMissingManifest)
	})
	t.Run("unsignable file name", func(t *testing.T) {
		k := sharedKeys(t)
		for _, name := range []string{"new\nline", "back\\slash", "caf\xc3\xa9", "tab\there", "del\x7f"} {
			boot := makeBoot(t)
			os.WriteFile(filepath.Join(boot, "grub", name), []byte("x"), 0o644)
			_, err := Sign(SignOptions{BootDir: boot, Key: signingKey(t, k.userSecret), UpdateHashes: true})
			var ue *UnsignableError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnsignable) || ue.Path != "./grub/"+name {
				t.Errorf("%q: %v, want UnsignableError naming ./grub/%q", name, err, name)
			}
			if _, err := os.Stat(filepath.Join(boot, SigFile)); !os.IsNotExist(err) {
				t.Errorf("%q: /boot was signed anyway", name)
			}
			if _, err := Generate(boot, GenerateOptions{}); !errors.Is(err, ErrUnsignable) {
				t.Errorf("%q: Generate: %v", name, err)
			}
		}
		// A refused name inside ./kexec* is refused too (Heads checks all of
		// `find /boot`).
		boot := makeBoot(t)
		os.WriteFile(filepath.Join(boot, "kexecdir", "bad\x01"), nil, 0o644)
		if err := AssertSignable(boot); !errors.Is(err, ErrUnsignable) {
			t.Errorf("kexecdir/bad\\x01: %v", err)
		}
	})
}

// The same refusal checks seen by gpg's verification of the Heads message,
// so the test premise (what Heads would do) is itself checked.
func TestHeadsWouldAccept(t *testing.T) {
	s := newSignedBoot(t)
	testenv.NeedTool(t, "sha256sum", "coreutils")
	cmd := exec.Command("bash", "-c", `cd "$BOOT" && sha256sum kexec*.txt | gpg --batch --verify kexec.sig - && sha256sum -c --quiet kexec_hashes.txt`)
	cmd.Env = append(s.k.rom.env(), "BOOT="+s.boot)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Heads' own checks fail on the Heads-signed fixture: %v\n%s", err, out)
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
