package diskkey

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/cpio"
	"github.com/goheads/goheads/pkg/eventlog"
	"github.com/goheads/goheads/pkg/initrd"
	"github.com/goheads/goheads/pkg/testenv"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
)

const drk = "disk recovery key"

func luksImage(t *testing.T, typ string) string {
	t.Helper()
	testenv.NeedTool(t, "cryptsetup", "cryptsetup-bin")
	p := filepath.Join(t.TempDir(), "luks.img")
	f, _ := os.Create(p)
	f.Truncate(20 << 20)
	f.Close()
	cmd := exec.Command("cryptsetup", "luksFormat", "--batch-mode", "--type", typ, "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", p, "-d", "-")
	if typ == "luks1" {
		cmd = exec.Command("cryptsetup", "luksFormat", "--batch-mode", "--type", typ, "--pbkdf-force-iterations", "1000", p, "-d", "-")
	}
	cmd.Stdin = strings.NewReader(drk)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksFormat: %v %s", err, out)
	}
	return p
}

func cryptsetupOpens(t *testing.T, img string, key []byte) bool {
	kf := filepath.Join(t.TempDir(), "key")
	os.WriteFile(kf, key, 0o600)
	return exec.Command("cryptsetup", "open", "--test-passphrase", "--key-file", kf, img).Run() == nil
}

func TestSealUnsealAndHeaderChange(t *testing.T) {
	for _, fam := range tpmtest.Families {
		for _, typ := range []string{"luks2", "luks1"} {
			t.Run(fam.String()+"/"+typ, func(t *testing.T) {
				img := luksImage(t, typ)
				sim := tpmtest.Start(t, fam)
				tp := sim.TPM()
				owner := []byte("owner")
				if err := tp.Reset(owner); err != nil {
					t.Fatal(err)
				}
				runtime := filepath.Join(t.TempDir(), "measurements.log")
				tp.Log = &tpm.MeasurementLog{Path: runtime}
				fw := attest.FirmwarePCRs{ReadLog: func() (*eventlog.Log, error) { return nil, eventlog.ErrNoLog }, RuntimeLog: runtime}
				if _, err := Seal(SealOptions{TPM: tp, Devices: []string{img}, RecoveryKey: []byte(drk), Passphrase: []byte("short"), OwnerAuth: owner, Firmware: fw}); !errors.Is(err, ErrPassphrase) {
					t.Fatalf("short passphrase: %v", err)
				}
				dukPass := []byte("a long disk key passphrase")
				sealed, err := Seal(SealOptions{TPM: tp, Devices: []string{img}, RecoveryKey: []byte(drk), Passphrase: dukPass, OwnerAuth: owner, Firmware: fw})
				if err != nil {
					t.Fatal(err)
				}
				// The dump hashes exactly what cryptsetup luksHeaderBackup writes.
				hb := filepath.Join(t.TempDir(), "hdr")
				if out, err := exec.Command("cryptsetup", "luksHeaderBackup", "--header-backup-file", hb, img).CombinedOutput(); err != nil {
					t.Fatalf("luksHeaderBackup: %v %s", err, out)
				}
				raw, _ := os.ReadFile(hb)
				sum := sha256.Sum256(raw)
				want := hex.EncodeToString(sum[:]) + "  /tmp/lukshdr-" + strings.ReplaceAll(img, "/", "_") + "\n"
				if got := string(sealed.Files[HeaderHashFile]); got != want {
					t.Errorf("header dump %q, want %q", got, want)
				}
				devs, err := ParseKeyDevices(sealed.Files[KeyDevicesFile])
				if err != nil || len(devs) != 1 || devs[0].Path != img {
					t.Fatalf("key devices %q: %v", sealed.Files[KeyDevicesFile], err)
				}

				// Boot: three wrong passphrases give up without a lockout.
				tp = sim.Restart()
				tp.Log = &tpm.MeasurementLog{Path: runtime}
				os.Remove(runtime)
				tries := 0
				_, err = Unseal(UnsealOptions{TPM: tp, Devices: devs, SignedDump: sealed.Files[HeaderHashFile],
					Ask: func(int) ([]byte, error) { tries++; return []byte("wrong passphrase!"), nil }})
				if !errors.Is(err, ErrNotUnsealed) || !errors.Is(err, tpm.ErrBadAuth) || tries != Tries {
					t.Fatalf("wrong passphrase: %v after %d tries", err, tries)
				}
				// The right one (PCR 6 was measured once only, on the first attempt).
				key, err := Unseal(UnsealOptions{TPM: tp, Devices: devs, SignedDump: sealed.Files[HeaderHashFile],
					Ask: func(int) ([]byte, error) { return append([]byte(nil), dukPass...), nil }})
				if err != nil {
					t.Fatal(err)
				}
				if len(key) != KeySize || !cryptsetupOpens(t, img, key) {
					t.Fatal("cryptsetup does not open the volume with the unsealed key")
				}
				if !cryptsetupOpens(t, img, []byte(drk)) {
					t.Fatal("the recovery key no longer opens the volume")
				}

				// A keyslot added on the host changes the header: refused.
				kf := filepath.Join(t.TempDir(), "new")
				os.WriteFile(kf, []byte("another passphrase"), 0o600)
				add := exec.Command("cryptsetup", "luksAddKey", "--batch-mode", "--pbkdf-force-iterations", "1000", img, kf)
				if typ == "luks2" {
					add = exec.Command("cryptsetup", "luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img, kf)
				}
				add.Stdin = strings.NewReader(drk)
				if out, err := add.CombinedOutput(); err != nil {
					t.Fatalf("luksAddKey: %v %s", err, out)
				}
				_, err = Unseal(UnsealOptions{TPM: tp, Devices: devs, SignedDump: sealed.Files[HeaderHashFile],
					Ask: func(int) ([]byte, error) { return append([]byte(nil), dukPass...), nil }})
				if !errors.Is(err, ErrHeadersChanged) {
					t.Fatalf("changed header: %v, want ErrHeadersChanged", err)
				}
			})
		}
	}
}

func TestKeyInitrd(t *testing.T) {
	osInitrd := bytes.Repeat([]byte{7}, 1000)
	key := bytes.Repeat([]byte{0xaa}, KeySize)
	devs := []Device{{"/dev/sda2", "1111-2222"}}
	out, err := KeyInitrd(osInitrd, key, devs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[:1000], osInitrd) || !bytes.Equal(out[1000:1024], make([]byte, 24)) {
		t.Fatal("the OS initrd is not kept and zero-padded to 512 bytes")
	}
	entries, err := cpio.ReadAll(bytes.NewReader(out[1024:]))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Name] = string(e.Data)
	}
	line := "luks-1111-2222 UUID=1111-2222 /secret.key luks,discard\n"
	if got["secret.key"] != string(key) || got["etc/crypttab"] != line || got["cryptroot/crypttab"] != line {
		t.Errorf("appended archive: %q", got)
	}
	out, err = KeyInitrd(osInitrd, key, devs, []byte("cryptroot/crypttab:sda2_crypt UUID=1111-2222 /secret.key luks,keyscript=decrypt_keyctl\n"))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ = cpio.ReadAll(bytes.NewReader(out[1024:]))
	for _, e := range entries {
		if e.Name == "cryptroot/crypttab" && string(e.Data) != "sda2_crypt UUID=1111-2222 /secret.key luks,keyscript=decrypt_keyctl\n" {
			t.Errorf("override: %q", e.Data)
		}
	}
	if _, err := ParseKeyDevices([]byte("notadevice uuid\n")); err == nil {
		t.Error("bad key devices file accepted")
	}
}

// TestCrypttabOverrides follows an OS initrd shaped like Debian's (an
// early archive, then a zstd-compressed main one made by the real zstd)
// through sealing (the overrides file) and booting (the key initrd the
// kernel unpacks): the OS's crypttab comes out with /secret.key as the key
// file of the key's volume only, under the OS's own volume names.
func TestCrypttabOverrides(t *testing.T) {
	testenv.NeedTool(t, "zstd", "zstd")
	const uuid = "0b5e5c0e-1111-4222-8333-944444444444"
	devs := []Device{{"/dev/vda3", uuid}}
	tab := "# <target> <source> <key> <options>\n" +
		"vda3_crypt UUID=" + uuid + " none luks,discard\n" +
		"data_crypt UUID=77777777-0000-4000-8000-000000000000 none luks\n" +
		"cswap /dev/vdb2 /dev/urandom swap,cipher=aes-xts-plain64\n"
	osInitrd := func(tab string) []byte {
		var early, main bytes.Buffer
		cpio.WriteAll(&early, []cpio.Entry{cpio.File("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("ucode"))})
		cpio.WriteAll(&main, []cpio.Entry{cpio.Dir("cryptroot", 0o755), cpio.File("cryptroot/crypttab", 0o644, []byte(tab)), cpio.File("init", 0o755, []byte("#!/bin/sh\n"))})
		cmd := exec.Command("zstd", "-q", "-c")
		cmd.Stdin = &main
		z, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return append(early.Bytes(), z...)
	}
	for _, tc := range []struct {
		name, tab string
		want      string
		changed   int
	}{
		{"by UUID", tab, "/cryptroot/crypttab:vda3_crypt UUID=" + uuid + " /secret.key luks,discard\n" +
			"/cryptroot/crypttab:data_crypt UUID=77777777-0000-4000-8000-000000000000 none luks\n" +
			"/cryptroot/crypttab:cswap /dev/vdb2 /dev/urandom swap,cipher=aes-xts-plain64\n", 1},
		// Nothing names the key's volume: every entry without a key file
		// gets it, as Heads does.
		{"fallback", "root_crypt LABEL=root none luks\n", "/cryptroot/crypttab:root_crypt LABEL=root /secret.key luks\n", 1},
		{"by path, no key field", "c /dev/vda3\n", "/cryptroot/crypttab:c /dev/vda3 /secret.key\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := osInitrd(tc.tab)
			o, err := CrypttabOverrides(img, devs)
			if err != nil {
				t.Fatal(err)
			}
			if string(o.File) != tc.want || len(o.Changed) != tc.changed {
				t.Fatalf("overrides:\n%s\nchanged %q\nwant:\n%s", o.File, o.Changed, tc.want)
			}
			key := bytes.Repeat([]byte{0x5a}, KeySize)
			boot, err := KeyInitrd(img, key, devs, o.File)
			if err != nil {
				t.Fatal(err)
			}
			// What the kernel ends up with: the last archive's files win.
			files, err := initrd.Find(boot, initrd.Options{Want: func(n string) bool { return n == "secret.key" || strings.Contains(n, "crypttab") }})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.Name] = string(f.Data)
			}
			var wantTab strings.Builder
			for _, l := range strings.SplitAfter(tc.want, "\n") {
				_, e, _ := strings.Cut(l, ":")
				wantTab.WriteString(e)
			}
			if got["secret.key"] != string(key) || got["cryptroot/crypttab"] != wantTab.String() || len(got) != 2 {
				t.Errorf("the booted OS sees %q", got)
			}
		})
	}
	// No crypttab in the initrd: no overrides file.
	var plain bytes.Buffer
	cpio.WriteAll(&plain, []cpio.Entry{cpio.File("init", 0o755, []byte("x"))})
	if o, err := CrypttabOverrides(plain.Bytes(), devs); err != nil || o.File != nil {
		t.Errorf("initrd without crypttab: %+v, %v", o, err)
	}
	for _, bad := range []string{"../etc/crypttab:x", ":x", "/etc/passwd:root::0:0::/:/bin/sh", "noseparator"} {
		if _, err := KeyInitrd(nil, []byte("k"), devs, []byte(bad+"\n")); err == nil {
			t.Errorf("override line %q accepted", bad)
		}
	}
}
