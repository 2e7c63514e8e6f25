package initrd

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/cpio"
	"github.com/goheads/goheads/pkg/testenv"
)

func archive(t testing.TB, entries ...cpio.Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := cpio.WriteAll(&b, entries); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// compress runs the real tool, with the options distributions' initramfs
// generators use.
func compress(t testing.TB, tool, pkg string, data []byte, args ...string) []byte {
	t.Helper()
	testenv.NeedTool(t, tool, pkg)
	cmd := exec.Command(tool, args...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return out
}

func wantCrypttab(name string) bool { return strings.Contains(name, "crypttab") }

// debianLike is an initrd as initramfs-tools builds it: an uncompressed
// early archive with microcode, then the compressed main archive.
func debianLike(t testing.TB, main []byte) []byte {
	early := archive(t,
		cpio.Dir("kernel", 0o755), cpio.Dir("kernel/x86", 0o755), cpio.Dir("kernel/x86/microcode", 0o755),
		cpio.File("kernel/x86/microcode/GenuineIntel.bin", 0o644, bytes.Repeat([]byte{0xaa}, 5000)),
		// A crypttab in the early archive that the main one replaces.
		cpio.File("cryptroot/crypttab", 0o644, []byte("stale\n")))
	return append(early, main...)
}

func TestFindCompressions(t *testing.T) {
	tab := []byte("sda3_crypt UUID=0b5e5c0e-1111-4222-8333-944444444444 none luks,discard\n")
	main := archive(t,
		cpio.Dir("cryptroot", 0o755), cpio.File("cryptroot/crypttab", 0o644, tab),
		cpio.Dir("etc", 0o755), cpio.File("etc/fstab", 0o644, []byte("# nothing\n")),
		cpio.File("usr/lib/big.bin", 0o644, bytes.Repeat([]byte("x"), 300000)))
	// Two archives inside the compressed stream, as dracut's --include can
	// make, with zero padding between them.
	second := archive(t, cpio.Dir("etc", 0o755), cpio.File("etc/crypttab", 0o600, []byte("other UUID=x none\n")))
	stream := append(append(append([]byte{}, main...), make([]byte, 512)...), second...)
	for _, tc := range []struct {
		name, tool, pkg string
		args            []string
	}{
		{"uncompressed", "", "", nil},
		{"gzip", "gzip", "gzip", []string{"-9", "-n"}},
		{"bzip2", "bzip2", "bzip2", []string{"-9"}},
		{"xz", "xz", "xz-utils", []string{"--check=crc32", "-9"}},
		{"lzma", "xz", "xz-utils", []string{"--format=lzma", "-9"}},
		{"zstd", "zstd", "zstd", []string{"-q", "-19", "-c"}},
		// A 128 MiB window with matches 9 MiB back (farData): past the
		// 8 MiB RFC 8878 lets a decoder stop at (Go's own internal/zstd
		// does), but the kernel unpacks it, so Find must too.
		{"zstd-long", "zstd", "zstd", []string{"-q", "-1", "--long=27", "-c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := stream
			if tc.name == "zstd-long" {
				body = append(append([]byte{}, farData(t)...), stream...)
			}
			if tc.tool != "" {
				body = compress(t, tc.tool, tc.pkg, body, tc.args...)
			}
			files, err := Find(debianLike(t, body), Options{Want: wantCrypttab})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.Name] = string(f.Data)
			}
			want := map[string]string{"cryptroot/crypttab": string(tab), "etc/crypttab": "other UUID=x none\n"}
			if len(got) != len(want) {
				t.Fatalf("found %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// farData is an archive of 9 MiB of random bytes whose first MiB repeats
// at its end, so a compressor with a long window refers 9 MiB back.
func farData(t *testing.T) []byte {
	r := make([]byte, 9<<20)
	rand.NewChaCha8([32]byte{1}).Read(r)
	return archive(t, cpio.File("usr/lib/far.bin", 0o644, append(r, r[:1<<20]...)))
}

func TestFindLimits(t *testing.T) {
	big := archive(t, cpio.File("etc/crypttab", 0o644, bytes.Repeat([]byte("#"), 2000)), cpio.File("pad", 0o644, make([]byte, 100000)))
	files, err := Find(big, Options{Want: wantCrypttab, MaxFile: 1000})
	if err != nil || len(files) != 0 {
		t.Errorf("a wanted file over MaxFile: got %v, %v; want it skipped", files, err)
	}
	z := compress(t, "gzip", "gzip", big, "-n")
	if _, err := Find(z, Options{Want: wantCrypttab, MaxUnpacked: 50000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("unpacking past MaxUnpacked: %v, want ErrTooLarge", err)
	}
}

func TestFindRejects(t *testing.T) {
	main := archive(t, cpio.File("cryptroot/crypttab", 0o644, []byte("x none\n")))
	lz4 := compress(t, "lz4", "lz4", main, "-l", "-9", "-c")
	for name, data := range map[string][]byte{
		"lz4":        debianLike(t, lz4),
		"garbage":    []byte("this is not an initramfs at all"),
		"truncated":  debianLike(t, main[:150]),
		"misaligned": append([]byte{0}, main...),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Find(data, Options{Want: wantCrypttab}); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
		})
	}
	if _, err := Find(debianLike(t, lz4), Options{}); !errors.Is(err, ErrCompression) {
		t.Errorf("lz4: %v, want ErrCompression", err)
	}
}

func FuzzFind(f *testing.F) {
	main := archive(f, cpio.File("cryptroot/crypttab", 0o644, []byte("a UUID=b none luks\n")))
	f.Add(main)
	f.Add(debianLike(f, main))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := Find(data, Options{Want: wantCrypttab, MaxUnpacked: 1 << 20})
		for _, fl := range files {
			if !wantCrypttab(fl.Name) {
				t.Fatalf("returned unwanted %q", fl.Name)
			}
		}
		_ = err
	})
}

// TestFindAppended: an archive appended after the compressed stream (what
// kexec-insert-key does to hand the OS its key) replaces the OS's files,
// as the kernel unpacks it.
func TestFindAppended(t *testing.T) {
	main := archive(t, cpio.File("cryptroot/crypttab", 0o644, []byte("os\n")), cpio.File("init", 0o755, bytes.Repeat([]byte("i"), 70000)))
	appended := archive(t, cpio.File("cryptroot/crypttab", 0o644, []byte("override\n")), cpio.File("secret.key", 0o400, []byte("k")))
	for _, tc := range []struct {
		name, tool, pkg string
		args            []string
	}{
		{"gzip", "gzip", "gzip", []string{"-9", "-n"}},
		{"xz", "xz", "xz-utils", []string{"--check=crc32"}},
		{"zstd", "zstd", "zstd", []string{"-q", "-c"}},
		{"zstd-checksum", "zstd", "zstd", []string{"-q", "-c", "--check", "--content-size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := debianLike(t, compress(t, tc.tool, tc.pkg, main, tc.args...))
			if r := len(img) % 512; r != 0 {
				img = append(img, make([]byte, 512-r)...)
			}
			img = append(img, appended...)
			files, err := Find(img, Options{Want: func(n string) bool { return n == "secret.key" || wantCrypttab(n) }})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.Name] = string(f.Data)
			}
			if got["cryptroot/crypttab"] != "override\n" || got["secret.key"] != "k" {
				t.Errorf("got %q", got)
			}
		})
	}
}
