package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goheads/goheads/pkg/atomicfile"
)

// Build is the set of outputs for one board.
type Build struct {
	Kernel    *Kernel
	Initramfs *Initramfs
	Dir       string
}

// BuildAll builds kernel and initramfs and writes hashes.txt and sizes.txt.
func BuildAll(ctx context.Context, o *Options, b *Board) (*Build, error) {
	k, err := BuildKernel(ctx, o, b)
	if err != nil {
		return nil, err
	}
	ir, err := BuildInitramfs(ctx, o, b)
	if err != nil {
		return nil, err
	}
	out := &Build{Kernel: k, Initramfs: ir, Dir: o.OutDir(b)}
	if !b.Config.Bool("CONFIG_COREBOOT") {
		if _, err := ensureUserCBFS(o, b); err != nil {
			return nil, err
		}
	}
	if err := writeHashes(out); err != nil {
		return nil, err
	}
	if err := writeSizes(out); err != nil {
		return nil, err
	}
	return out, nil
}

// writeHashes writes out/<b>/hashes.txt: sha256sum lines for every output,
// then the inputs that are not pinned in the tree (the Debian kernel source
// version and hash, the Go and xz versions) as comments.
func writeHashes(bd *Build) error {
	var b bytes.Buffer
	for _, f := range []string{"bzImage", RawInitrdName, InitrdName, "bb", "kernel.config"} {
		sum, err := fileSHA256(filepath.Join(bd.Dir, f))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, f)
	}
	fmt.Fprintf(&b, "# kernel source: %s sha256 %s (%s)\n", bd.Kernel.Source.Version, bd.Kernel.Source.SHA256, bd.Kernel.Source.Path)
	fmt.Fprintf(&b, "# kernel cache key: %s\n", bd.Kernel.Key)
	fmt.Fprintf(&b, "# goheads: %s\n", bd.Initramfs.Version)
	fmt.Fprintf(&b, "# go: %s\n", runtime.Version())
	if fr := bd.Initramfs.Flashrom; fr != nil {
		fmt.Fprintf(&b, "# flashrom: %s\n", fr.Source)
	}
	if out, err := exec.Command("zstd", "--version").Output(); err == nil {
		fmt.Fprintf(&b, "# zstd: %s\n", strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	}
	return atomicfile.Write(filepath.Join(bd.Dir, "hashes.txt"), b.Bytes(), 0o644)
}

// Sizes are the byte counts of a build's outputs.
type Sizes struct {
	Busybox, InitrdRaw, Initrd, BzImage int64
}

func statSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return st.Size()
}

func readSizes(dir string) Sizes {
	return Sizes{
		Busybox:   statSize(filepath.Join(dir, "bb")),
		InitrdRaw: statSize(filepath.Join(dir, RawInitrdName)),
		Initrd:    statSize(filepath.Join(dir, InitrdName)),
		BzImage:   statSize(filepath.Join(dir, "bzImage")),
	}
}

// initrdBudget is the initramfs size target: at most 3.5 MB compressed with
// every Heads feature (Heads' own is ~5 MB xz).
const initrdBudget = 3_500_000

func writeSizes(bd *Build) error {
	s := readSizes(bd.Dir)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%10d  bb (busybox binary, %d commands)\n", s.Busybox, len(bd.Initramfs.Cmds))
	fmt.Fprintf(&b, "%10d  initrd.cpio\n", s.InitrdRaw)
	fmt.Fprintf(&b, "%10d  %s (budget %d, %.0f%% used)\n", s.Initrd, InitrdName, initrdBudget, 100*float64(s.Initrd)/initrdBudget)
	if fr := bd.Initramfs.Flashrom; fr != nil {
		fmt.Fprintf(&b, "%10d  flashrom in the initramfs (%s)\n", fr.Bytes, fr.Source)
	}
	if s.Initrd > initrdBudget {
		fmt.Fprintf(&b, "%10s  OVER BUDGET by %d bytes\n", "", s.Initrd-initrdBudget)
	}
	fmt.Fprintf(&b, "%10d  bzImage\n", s.BzImage)
	fmt.Fprintf(&b, "%10d  payload (bzImage + %s)\n", s.BzImage+s.Initrd, InitrdName)
	return atomicfile.Write(filepath.Join(bd.Dir, "sizes.txt"), b.Bytes(), 0o644)
}
