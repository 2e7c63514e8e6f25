package bootsign

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
)

// Saving a default entry: the files match what kexec-save-default.sh
// writes (echo "$entry"; kexec-boot.sh -f | xargs sha256sum from /boot),
// they are signed, and the kexec path loads files only through the
// verified manifests.
func TestDefaultEntryAndLoadVerified(t *testing.T) {
	s := newSignedBoot(t)
	entry := "Debian GNU/Linux|elf|kernel /vmlinuz|initrd /initrd.img-6.1.0-13-amd64|append root=/dev/sda2 ro quiet"
	paths := []string{"/vmlinuz", "/initrd.img-6.1.0-13-amd64"}
	files, remove, err := DefaultFiles(s.boot, 2, entry, paths)
	if err != nil {
		t.Fatal(err)
	}
	// Heads: `kexec-boot.sh -f` prints ".$path" per file, xargs sha256sum.
	testenv.NeedTool(t, "sha256sum", "coreutils")
	cmd := exec.Command("bash", "-c", `cd "$BOOT" && printf '%s\n' ./vmlinuz ./initrd.img-6.1.0-13-amd64 | xargs sha256sum`)
	cmd.Env = append(os.Environ(), "BOOT="+s.boot)
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(files[DefaultHashesFile]) != string(want) {
		t.Errorf("kexec_default_hashes.txt:\n%s\nxargs sha256sum:\n%s", files[DefaultHashesFile], want)
	}
	if string(files["kexec_default.2.txt"]) != entry+"\n" {
		t.Errorf("kexec_default.2.txt = %q", files["kexec_default.2.txt"])
	}
	r, err := Sign(SignOptions{BootDir: s.boot, Key: signingKey(t, s.k.userSecret), Keyring: s.k.romRing, Counter: s.ctr, Files: files, Remove: remove})
	if err != nil {
		t.Fatal(err)
	}
	idx, got, ok, err := DefaultEntry(r.Files)
	if err != nil || !ok || idx != 2 || got != entry {
		t.Fatalf("DefaultEntry = %d %q %v %v", idx, got, ok, err)
	}
	if _, err := os.Stat(filepath.Join(s.boot, "kexec_default.1.txt")); !os.IsNotExist(err) {
		t.Error("old default kept")
	}
	if err := CheckDefaultHashes(s.boot, r.DefaultHashes); err != nil {
		t.Error(err)
	}

	// ./vmlinuz is a symlink: kexec_hashes.txt lists its target,
	// kexec_default_hashes.txt the link; both paths load.
	for _, p := range []string{"/vmlinuz", "./vmlinuz-6.1.0-13-amd64", "/initrd.img-6.1.0-13-amd64", "grub/grub.cfg"} {
		data, err := r.LoadVerified(p, 0)
		if err != nil {
			t.Errorf("LoadVerified(%s): %v", p, err)
			continue
		}
		rel, _ := bootRel(p)
		onDisk, _ := os.ReadFile(filepath.Join(s.boot, rel))
		if string(data) != string(onDisk) {
			t.Errorf("LoadVerified(%s) returned other bytes", p)
		}
	}
	// Changed after verification: refused.
	k := filepath.Join(s.boot, "vmlinuz-6.1.0-13-amd64")
	orig := mustRead(t, k)
	os.WriteFile(k, append(orig[:len(orig)-1:len(orig)-1], orig[len(orig)-1]^1), 0o644)
	for _, p := range []string{"/vmlinuz", "/vmlinuz-6.1.0-13-amd64"} {
		if _, err := r.LoadVerified(p, 0); !errors.Is(err, ErrHashMismatch) {
			t.Errorf("LoadVerified(%s) after change: %v", p, err)
		}
	}
	if err := CheckDefaultHashes(s.boot, r.DefaultHashes); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("CheckDefaultHashes after change: %v", err)
	}
	os.WriteFile(k, orig, 0o644)
	// Not in any manifest, escaping links, size limit.
	os.WriteFile(filepath.Join(s.boot, "new"), []byte("x"), 0o644)
	if _, err := r.LoadVerified("/new", 0); !errors.Is(err, ErrNotInManifest) {
		t.Errorf("unlisted file: %v", err)
	}
	os.Symlink("../../etc/passwd", filepath.Join(s.boot, "escape"))
	if _, err := r.LoadVerified("/escape", 0); err == nil || !strings.Contains(err.Error(), "leaves /boot") {
		t.Errorf("escaping symlink: %v", err)
	}
	if _, err := r.LoadVerified("/initrd.img-6.1.0-13-amd64", 1000); err == nil {
		t.Error("size limit not applied")
	}
	if _, err := r.LoadVerified("../boot/vmlinuz", 0); err == nil {
		t.Error("path with .. accepted")
	}
}

func TestDefaultEntryParsing(t *testing.T) {
	for _, tc := range []struct {
		files map[string][]byte
		idx   int
		entry string
		ok    bool
		err   bool
	}{
		{files: map[string][]byte{"kexec_hashes.txt": nil}},
		{files: map[string][]byte{"kexec_default.3.txt": []byte("a|elf\n"), "kexec_default_hashes.txt": nil}, idx: 3, entry: "a|elf", ok: true},
		// Several: the first in glob order, as `find ... | head -1`.
		{files: map[string][]byte{"kexec_default.2.txt": []byte("two\n"), "kexec_default.10.txt": []byte("ten\n")}, idx: 10, entry: "ten", ok: true},
		{files: map[string][]byte{"kexec_default.x.txt": []byte("x\n")}, err: true},
		{files: map[string][]byte{"kexec_default.0.txt": []byte("x\n")}, err: true},
	} {
		idx, entry, ok, err := DefaultEntry(tc.files)
		if (err != nil) != tc.err || idx != tc.idx || entry != tc.entry || ok != tc.ok {
			t.Errorf("DefaultEntry(%v) = %d %q %v %v", sortedKeys(tc.files), idx, entry, ok, err)
		}
	}
	if _, err := DefaultEntryContent("two\nlines"); err == nil {
		t.Error("multi-line entry accepted")
	}
	if DefaultEntryName(7) != "kexec_default.7.txt" {
		t.Error(DefaultEntryName(7))
	}
}
