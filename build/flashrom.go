package main

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goheads/goheads/pkg/cpio"
)

// Flashrom is the flashrom a board's initramfs carries (CONFIG_FLASHROM=y)
// for the menu's firmware update and the flash command.
type Flashrom struct {
	// Source says where it came from, for sizes.txt and hashes.txt.
	Source string
	// Entries go into the initramfs: bbin/flashrom and, for a dynamic
	// binary, its loader and libraries.
	Entries []cpio.Entry
	// Bytes is the uncompressed size of the files.
	Bytes int
}

// debianFlashrom is the Debian package the builder takes flashrom from
// when no static build is given: Debian 12's, the version the dummy
// programmer tests run against.
const (
	debianFlashrom        = "/usr/sbin/flashrom"
	debianFlashromVersion = "1.3.0-2.1"
)

// The pinned sources of the static build: flashrom 1.3.0 (Debian 12's
// version) and pciutils 3.9.0 for libpci, which flashrom's internal
// programmer needs.
const (
	flashromRepo     = "https://github.com/flashrom/flashrom"
	flashromCommit   = "7247435eb0be5506a2869c5c863dba3fa55ddc69" // v1.3.0
	flashromVersion  = "1.3.0"
	flashromManDate  = "2023-01-21"
	pciutilsRepo     = "https://github.com/pciutils/pciutils"
	pciutilsCommit   = "5abf19113f5fa88817d6f6e3f190c40205c46b8d" // v3.9.0
	flashromRecipeV  = "1"                                        // bump when staticFlashromScript changes
	flashromSrcFixes = "git clone " + flashromRepo + " flashrom && git -C flashrom checkout v1.3.0; git clone " + pciutilsRepo + " pciutils && git -C pciutils checkout v3.9.0; then FLASHROM_SRC=$PWD/flashrom PCIUTILS_SRC=$PWD/pciutils"
)

// staticFlashromScript builds a static flashrom with musl and only the
// programmers firmware needs (internal for the board's own flash, dummy
// for tests, linux_mtd and linux_spi), against a static libpci without
// zlib, DNS, hwdb or kmod. Measured: 728 KB stripped, 149 KB xz, the same
// bytes from two directories. musl-gcc has no kernel headers, so kinc
// exposes Debian's UAPI headers. git archive drops flashrom's version
// script; versioninfo.inc pins the version as release tarballs do.
const staticFlashromScript = `set -eu
B=$1
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=1674286327
export PKG_CONFIG_LIBDIR=$B/prefix/lib/pkgconfig
unset PKG_CONFIG_PATH || true
mkdir -p $B/kinc
for d in linux asm-generic mtd; do ln -sfn /usr/include/$d $B/kinc/$d; done
ln -sfn /usr/include/x86_64-linux-gnu/asm $B/kinc/asm
INC="-idirafter $B/kinc"
OPTF="-Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -ffile-prefix-map=$B=."
PCIOPTS="CC=musl-gcc ZLIB=no DNS=no HWDB=no LIBKMOD=no SHARED=no HOST=x86_64-linux RELEASE=generic PREFIX=$B/prefix IDSDIR=/usr/share/misc"
make -C $B/pciutils -j2 $PCIOPTS OPT="$OPTF $INC" lib/libpci.a
make -C $B/pciutils $PCIOPTS OPT="$OPTF $INC" install-lib
printf 'VERSION = ` + flashromVersion + `\nMAN_DATE = ` + flashromManDate + `\n' > $B/flashrom/versioninfo.inc
make -C $B/flashrom -j2 flashrom CC=musl-gcc CONFIG_NOTHING=yes CONFIG_INTERNAL=yes CONFIG_INTERNAL_X86=yes \
  CONFIG_DUMMY=yes CONFIG_LINUX_MTD=yes CONFIG_LINUX_SPI=yes CONFIG_STATIC=yes \
  CPPFLAGS="$OPTF $INC" LDFLAGS="-Wl,--gc-sections"
strip --strip-all -R .comment -o $B/flashrom.static $B/flashrom/flashrom
`

// sourceTree checks a source tree from env var name and says at which
// commit it is ("" when not a git checkout).
func sourceTree(name, marker, want string) (string, string, error) {
	src := os.Getenv(name)
	if src == "" {
		return "", "", &fixError{what: "static flashrom needs both FLASHROM_SRC and PCIUTILS_SRC (" + name + " is not set)", fix: flashromSrcFixes}
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(filepath.Join(abs, marker)); err != nil {
		return "", "", &fixError{what: fmt.Sprintf("%s=%s is not the expected tree (%s missing)", name, src, marker), fix: flashromSrcFixes}
	}
	head := gitHead(abs)
	if head != want {
		fmt.Fprintf(os.Stderr, "build: warning: %s is at %q, pinned %s: the flashrom binary will differ from other builds\n", name, head, want[:12])
	}
	return abs, head, nil
}

// buildStaticFlashrom builds (or takes from the cache) the static flashrom
// from FLASHROM_SRC and PCIUTILS_SRC and returns its path and a description.
func buildStaticFlashrom() (string, string, error) {
	fr, frHead, err := sourceTree("FLASHROM_SRC", "flashchips.c", flashromCommit)
	if err != nil {
		return "", "", err
	}
	pci, pciHead, err := sourceTree("PCIUTILS_SRC", "lib/pci.h", pciutilsCommit)
	if err != nil {
		return "", "", err
	}
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		return "", "", &fixError{what: "musl-gcc not found (the static flashrom is built with musl)", fix: "apt-get install musl-tools"}
	}
	if frHead == "" || pciHead == "" {
		// Not git checkouts: no key to cache under.
		frHead, pciHead = "uncached", fmt.Sprint(os.Getpid())
	}
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(flashromRecipeV+staticFlashromScript+frHead+pciHead)))[:24]
	dir := filepath.Join(cacheDir(), "flashrom", key)
	bin := filepath.Join(dir, "flashrom.static")
	desc := fmt.Sprintf("static flashrom %s (%.12s, pciutils %.12s, musl)", flashromVersion, frHead, pciHead)
	if _, err := os.Stat(bin); err == nil && frHead != "uncached" {
		return bin, desc, nil
	}
	os.RemoveAll(dir)
	for sub, src := range map[string]string{"flashrom": fr, "pciutils": pci} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", "", err
		}
		// A copy: the owner's trees stay clean, and every build starts
		// from the same files.
		cp := exec.Command("sh", "-c", `cd "$1" && tar --exclude=.git -cf - . | tar -xf - -C "$2"`, "sh", src, filepath.Join(dir, sub))
		if out, err := cp.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("copy %s: %v: %s", src, err, out)
		}
	}
	fmt.Fprintf(os.Stderr, "build: compiling %s\n", desc)
	cmd := exec.Command("sh", "-c", staticFlashromScript, "sh", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		logPath := filepath.Join(dir, "build.log")
		os.WriteFile(logPath, out, 0o644)
		return "", "", fmt.Errorf("static flashrom build failed (log %s): %v\n%s", logPath, err, lastLines(logPath, 15))
	}
	return bin, desc, nil
}

// libDirs are where the Debian loader finds libraries (its built-in
// multiarch search path); the initramfs uses the same paths, so no
// ld.so.cache is needed.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"}

// BuildFlashrom returns the flashrom for the initramfs. FLASHROM is a
// flashrom binary to use (a static build: it goes in alone); without it,
// Debian's package and the shared libraries it needs are copied in.
//
// A static, internal-programmer-only build is ~0.3 MB xz; Debian's with
// its libraries is ~1.2 MB, which puts the initramfs over its 3.5 MB
// budget (sizes.txt says so). Heads builds flashrom from source too.
func BuildFlashrom(root string) (*Flashrom, error) {
	if p := os.Getenv("FLASHROM"); p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		return flashromFrom(p, "FLASHROM="+p)
	}
	if os.Getenv("FLASHROM_SRC") != "" || os.Getenv("PCIUTILS_SRC") != "" {
		p, src, err := buildStaticFlashrom()
		if err != nil {
			return nil, err
		}
		return flashromFrom(p, src)
	}
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "flashrom").Output()
	if err != nil {
		return nil, &fixError{what: "flashrom not installed (CONFIG_FLASHROM=y puts it in the initramfs)", fix: "apt-get install flashrom (or FLASHROM=<static flashrom binary>)"}
	}
	if v := string(out); v != debianFlashromVersion {
		// Another version works the same for the owner but makes a
		// different initramfs: say so rather than break reproducibility
		// silently.
		fmt.Fprintf(os.Stderr, "build: warning: Debian flashrom %s, pinned %s: the initramfs will differ from other builds of this commit\n", v, debianFlashromVersion)
	}
	return flashromFrom(debianFlashrom, "Debian flashrom "+strings.TrimSpace(string(out)))
}

// flashromFrom packs the binary at p with the libraries its ELF headers
// name (none for a static build).
func flashromFrom(p, source string) (*Flashrom, error) {
	bin, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("flashrom: %w", err)
	}
	interp, libs, err := elfDeps(p)
	if err != nil {
		return nil, fmt.Errorf("flashrom %s: %w", p, err)
	}
	fr := &Flashrom{Source: source, Bytes: len(bin)}
	fr.Entries = append(fr.Entries, cpio.File("bbin/flashrom", 0o755, bin))
	if interp == "" {
		return fr, nil
	}
	dirs := map[string]bool{}
	files := map[string][]byte{}
	add := func(dst, src string) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		files[dst] = b
		fr.Bytes += len(b)
		for d := filepath.Dir(dst); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
		return nil
	}
	if err := add(strings.TrimPrefix(interp, "/"), interp); err != nil {
		return nil, fmt.Errorf("flashrom loader: %w", err)
	}
	for _, l := range libs {
		if err := add(strings.TrimPrefix(l, "/"), l); err != nil {
			return nil, fmt.Errorf("flashrom library: %w", err)
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds) // parents before children
	for _, d := range ds {
		fr.Entries = append(fr.Entries, cpio.Dir(d, 0o755))
	}
	var fs []string
	for f := range files {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	for _, f := range fs {
		fr.Entries = append(fr.Entries, cpio.File(f, 0o755, files[f]))
	}
	fr.Source += fmt.Sprintf(" with %d shared libraries", len(libs))
	return fr, nil
}

// elfDeps returns the ELF interpreter of p and the paths of every shared
// library it needs, transitively, as the loader would find them in
// libDirs. A static binary has neither.
func elfDeps(p string) (string, []string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	var interp string
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return "", nil, err
			}
			interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	if interp == "" {
		return "", nil, nil
	}
	seen := map[string]string{}
	var walk func(file *elf.File) error
	walk = func(file *elf.File) error {
		needed, err := file.ImportedLibraries()
		if err != nil {
			return err
		}
		for _, n := range needed {
			if _, ok := seen[n]; ok {
				continue
			}
			found := ""
			for _, d := range libDirs {
				if _, err := os.Stat(filepath.Join(d, n)); err == nil {
					found = filepath.Join(d, n)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("needs %s, not found in %s", n, strings.Join(libDirs, " "))
			}
			seen[n] = found
			lf, err := elf.Open(found)
			if err != nil {
				return err
			}
			err = walk(lf)
			lf.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(f); err != nil {
		return "", nil, err
	}
	var libs []string
	for n, path := range seen {
		if filepath.Base(interp) == n {
			continue // the loader itself, already added
		}
		libs = append(libs, path)
	}
	sort.Strings(libs)
	return interp, libs, nil
}
