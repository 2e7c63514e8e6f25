package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/atomicfile"
	"github.com/goheads/goheads/pkg/cpio"
	"github.com/u-root/gobusybox/src/pkg/bb"
	"github.com/u-root/gobusybox/src/pkg/bb/findpkg"
	"github.com/u-root/gobusybox/src/pkg/golang"
)

const module = "github.com/goheads/goheads"

// bbRecipe names how the busybox binary is built; bump it when that changes.
const bbRecipe = "gobusybox v0.3.0 strip trimpath cgo=0 v1"

// urootCommands are the u-root core commands a recovery shell needs. Every
// one costs bytes in the flash: add with care (make bench shows the size).
var urootCommands = []string{
	"gosh", "ls", "cat", "cp", "mv", "rm", "mkdir", "ln", "chmod", "mount", "umount",
	"dmesg", "uname", "sync", "ps", "kill", "grep", "hexdump", "dd", "sleep", "date",
	"echo", "more", "find", "df", "free", "shasum", "head", "tail", "wc", "blkid", "hwclock",
}

// InitrdName is the compressed initramfs: zstd, not Heads' xz. Measured on
// qemu-tpm2 (TCG, 10.4 MB cpio): the kernel's async unpack is on the boot's
// critical path, and zstd brings init from 2.04 s to 1.67 s of kernel
// uptime (kernel start -> TOTP code 2.45 s -> 2.02 s) for 0.26 MB more
// (3.21 MB vs 2.95 MB xz, budget 3.5 MB). On hardware zstd decodes
// several times faster than xz too. Both kernel configs have RD_ZSTD
// (checked after each kernel build).
const InitrdName = "initrd.cpio.zst"

// RawInitrdName is the same initramfs uncompressed. The QEMU boards without
// coreboot boot it: qboot gets it from a host file through fw_cfg, so no
// flash space is at stake, and under TCG the kernel's zstd decoder is the
// slowest part of the kernel's boot (measured on qemu-tpm2: 0.28-0.42 s to
// unpack the zstd image, 0.07 s for the raw cpio; gzip 0.20, lz4 0.09).
// On a laptop's CPU zstd decodes 10 MB in ~10 ms, so ROM boards keep it.
const RawInitrdName = "initrd.cpio"

// zstdArgs are fixed so the same cpio always compresses to the same bytes:
// one thread, level 19 (a window the kernel's decompressor takes; --ultra
// -22 saves 300 bytes), with the frame checksum the kernel verifies.
var zstdArgs = []string{"-19", "-T1", "--check", "-q", "-c"}

// Initramfs is a built initramfs.
type Initramfs struct {
	Busybox string // path of bb
	CPIO    string // uncompressed archive
	Image   string // InitrdName
	Version string
	Cmds    []string // command names linked to bb
	// Flashrom is set on boards with CONFIG_FLASHROM=y.
	Flashrom *Flashrom
}

// projectCommands lists cmds/<name> directories.
func projectCommands(root string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(root, "cmds"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(root, "cmds", e.Name(), "*.go")); len(m) > 0 {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// sourceVersion is `git describe` of the tree, or "unknown" outside git.
func sourceVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// sourceDate is the commit time of HEAD in seconds (SOURCE_DATE_EPOCH
// when set), "0" outside git.
func sourceDate(root string) string {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		return v
	}
	out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err != nil {
		return "0"
	}
	return strings.TrimSpace(string(out))
}

// busyboxKey hashes everything that goes into the busybox binary: the Go
// toolchain, the module graph, every Go file under cmds/ and pkg/, the
// command list and the recipe.
func busyboxKey(root string, cmds []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", bbRecipe, runtime.Version(), strings.Join(cmds, ","), os.Getenv("GOAMD64"))
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	for _, dir := range []string{"cmds", "pkg"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// buildBusybox compiles every command into one binary with gobusybox, or
// reuses the cached binary built from identical inputs.
func buildBusybox(ctx context.Context, root string, names []string, logw io.Writer) (string, error) {
	key, err := busyboxKey(root, names)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir(), "bb", key)
	bin := filepath.Join(dir, "bb")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		fmt.Fprintf(logw, "build: busybox %s from cache\n", key)
		return bin, nil
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	var paths []string
	for _, n := range names {
		if isUroot(n) {
			paths = append(paths, "github.com/u-root/u-root/cmds/core/"+n)
		} else {
			paths = append(paths, module+"/cmds/"+n)
		}
	}
	gen := filepath.Join(dir, "gen")
	os.RemoveAll(gen)
	env := golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH("amd64"), golang.WithWorkingDir(absRoot))
	fmt.Fprintf(logw, "build: compiling busybox %s (%d commands; ~1 minute)\n", key, len(names))
	start := time.Now()
	err = bb.BuildBusybox(log.New(logw, "gobusybox: ", 0), &bb.Opts{
		Env:          env,
		LookupEnv:    &findpkg.Env{},
		GenSrcDir:    gen,
		CommandPaths: paths,
		BinaryPath:   bin + ".tmp",
		// Defaults: stripped, no build ID, -trimpath: reproducible.
		GoBuildOpts: &golang.BuildOpts{},
	})
	os.RemoveAll(gen)
	if err != nil {
		return "", fmt.Errorf("busybox build: %w", err)
	}
	fmt.Fprintf(logw, "build: busybox compiled in %s\n", time.Since(start).Round(time.Second))
	return bin, os.Rename(bin+".tmp", bin)
}

func isUroot(name string) bool {
	for _, n := range urootCommands {
		if n == name {
			return true
		}
	}
	return false
}

// BuildInitramfs builds out/<board>/initrd.cpio(.xz) for the board.
func BuildInitramfs(ctx context.Context, o *Options, b *Board) (*Initramfs, error) {
	logw := os.Stderr
	if _, err := exec.LookPath("zstd"); err != nil {
		return nil, &fixError{what: "zstd not found (it compresses the initramfs)", fix: "apt-get install zstd"}
	}
	own, err := projectCommands(o.Root)
	if err != nil {
		return nil, err
	}
	for _, n := range own {
		if isUroot(n) {
			return nil, fmt.Errorf("cmds/%s collides with the u-root command of the same name", n)
		}
	}
	names := append(append([]string(nil), own...), urootCommands...)
	sort.Strings(names)
	bin, err := buildBusybox(ctx, o.Root, names, logw)
	if err != nil {
		return nil, err
	}
	bbBytes, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	ver := sourceVersion(o.Root)
	cfg := b.Config.Clone()
	cfg.Set("CONFIG_GOHEADS_VERSION", ver)
	// The commit date: reproducible, and a clock before it is certainly
	// wrong (unseal-totp says so instead of showing a useless code).
	cfg.Set("CONFIG_GOHEADS_SOURCE_DATE", sourceDate(o.Root))

	entries := []cpio.Entry{
		cpio.Dir("bbin", 0o755),
		cpio.File("bbin/bb", 0o755, bbBytes),
		cpio.Symlink("bin", "bbin"),
		cpio.Symlink("sbin", "bbin"),
		cpio.Symlink("init", "bbin/init"),
		cpio.Dir("dev", 0o755),
		// The kernel opens /dev/console for init before anything is mounted.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
		cpio.Dir("etc", 0o755),
		cpio.File("etc/config", 0o644, cfg.SortedBytes()),
	}
	for _, d := range []string{"boot", "media", "mnt", "proc", "root", "run", "sys", "tmp", "var"} {
		entries = append(entries, cpio.Dir(d, 0o755))
	}
	for _, n := range names {
		entries = append(entries, cpio.Symlink("bbin/"+n, "bb"))
	}
	var fr *Flashrom
	if b.Config.Bool("CONFIG_FLASHROM") {
		if fr, err = BuildFlashrom(o.Root); err != nil {
			return nil, err
		}
		entries = append(entries, fr.Entries...)
	}
	var raw bytes.Buffer
	if err := cpio.WriteAll(&raw, entries); err != nil {
		return nil, err
	}
	outDir := o.OutDir(b)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	ir := &Initramfs{
		Busybox:  filepath.Join(outDir, "bb"),
		CPIO:     filepath.Join(outDir, RawInitrdName),
		Image:    filepath.Join(outDir, InitrdName),
		Version:  ver,
		Cmds:     names,
		Flashrom: fr,
	}
	if err := atomicfile.Write(ir.Busybox, bbBytes, 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(ir.CPIO, raw.Bytes(), 0o644); err != nil {
		return nil, err
	}
	comp, err := compressInitrd(ctx, raw.Bytes())
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(ir.Image, comp, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "build: %s: %d bytes (%d uncompressed, busybox %d)\n", ir.Image, len(comp), raw.Len(), len(bbBytes))
	if fr != nil {
		fmt.Fprintf(logw, "build: flashrom: %s, %d bytes\n", fr.Source, fr.Bytes)
		if len(comp) > initrdBudget {
			fmt.Fprintf(logw, "build: warning: the initramfs is %d bytes over its %d-byte budget; the static flashrom (FLASHROM_SRC and PCIUTILS_SRC: %s) adds ~0.2 MB instead of Debian's ~1.3 MB\n", len(comp)-initrdBudget, initrdBudget, flashromSrcFixes)
		}
	}
	return ir, nil
}

// compressInitrd compresses a cpio archive as the kernel unpacks it.
func compressInitrd(ctx context.Context, raw []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "zstd", zstdArgs...)
	cmd.Stdin = bytes.NewReader(raw)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("zstd: %v: %s", err, stderr.String())
	}
	return out.Bytes(), nil
}
