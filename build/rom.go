package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/atomicfile"
	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/pcrpredict"
)

// The coreboot the ROMs are built from: the pinned commit, downloaded on
// first use (corebootTree), or a tree the owner brings (COREBOOT_SRC=),
// e.g. offline; a tree at another commit still builds, with a warning,
// because the ROM's hashes then differ from everyone else's.
const (
	corebootRepo   = "https://review.coreboot.org/coreboot.git"
	corebootCommit = "f0f911824b823362aa423335cb10e337cb0ea818" // main, 26.06-978
	vbootCommit    = "5c360ef458b0a013d8a6d47724bb0fffb5accbcf" // its 3rdparty/vboot gitlink
)

// corebootFix is how to get the pinned tree, in one line.
var corebootFix = fmt.Sprintf("git clone %s coreboot && git -C coreboot checkout %s && git -C coreboot submodule update --init 3rdparty/vboot, then COREBOOT_SRC=$PWD/coreboot",
	corebootRepo, corebootCommit[:12])

// errNoCoreboot means no coreboot tree was given: ROM builds and their tests
// are skipped (tests say so).
var errNoCoreboot = errors.New("no coreboot tree (COREBOOT_SRC is not set)")

// CorebootSource returns the coreboot tree from $COREBOOT_SRC, checked.
func CorebootSource() (string, error) {
	src := os.Getenv("COREBOOT_SRC")
	if src == "" {
		return "", &fixError{what: errNoCoreboot.Error(), fix: corebootFix}
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	for _, f := range []string{"Makefile", "src/security/tpm/tspi/crtm.c", "3rdparty/vboot/Makefile"} {
		if _, err := os.Stat(filepath.Join(abs, f)); err != nil {
			what := fmt.Sprintf("COREBOOT_SRC=%s is not a coreboot tree with vboot (%s missing)", src, f)
			if strings.HasPrefix(f, "3rdparty") {
				return "", &fixError{what: what, fix: "git -C " + src + " submodule update --init 3rdparty/vboot"}
			}
			return "", &fixError{what: what, fix: corebootFix}
		}
	}
	return abs, nil
}

// gitHead is the commit a tree is at, or "" if it is not a git checkout.
func gitHead(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--verify", "-q", "HEAD^{commit}").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// ROM is a built coreboot image.
type ROM struct {
	Path       string // out/<b>/<b>.rom
	Prediction *pcrpredict.Prediction
}

// romPath is out/<b>/<b>.rom.
func (o *Options) romPath(b *Board) string { return filepath.Join(o.OutDir(b), b.Name+".rom") }

// measuredFiles are the CBFS files the board's coreboot loads, in order
// (CONFIG_COREBOOT_MEASURED, else coreboot's x86 default).
func measuredFiles(b *Board) []string {
	if v := b.Config.Value("CONFIG_COREBOOT_MEASURED"); v != "" {
		return strings.Fields(v)
	}
	return pcrpredict.DefaultFiles
}

// BuildROM builds the kernel and initramfs, then coreboot with them as its
// Linux payload, and writes out/<b>/<b>.rom, expected-pcrs.json and the
// ROM's lines in hashes.txt and sizes.txt. The owner's CBFS files
// (inject_gpg) are carried over from the previous ROM.
func BuildROM(ctx context.Context, o *Options, b *Board, w io.Writer) (*ROM, error) {
	if !b.Config.Bool("CONFIG_COREBOOT") {
		return nil, &fixError{what: "board " + b.Name + " has no coreboot ROM", fix: "use a coreboot board, e.g. make BOARD=qemu-coreboot-tpm2 rom"}
	}
	// Blobs first: they are the owner's to supply and no tree fixes that.
	blobLines, err := corebootBlobs(o, b)
	if err != nil {
		return nil, err
	}
	src, err := corebootTree(ctx, w)
	if err != nil {
		return nil, err
	}
	if miss := missingCorebootTools(); len(miss) > 0 {
		return nil, &fixError{what: "coreboot needs " + strings.Join(miss, ", "), fix: "sudo apt-get install -y gcc-multilib acpica-tools bison flex m4 make"}
	}
	if h := gitHead(src); h != "" && h != corebootCommit {
		fmt.Fprintf(w, "build: warning: %s is at %s, not the pinned %s: the ROM will not match published hashes\n", src, h[:12], corebootCommit[:12])
	}
	frag := b.Config.Value("CONFIG_COREBOOT_CONFIG")
	if frag == "" {
		frag = b.Name
	}
	fragPath := filepath.Join(o.Root, "coreboot-configs", frag+".config")
	fragment, err := os.ReadFile(fragPath)
	if err != nil {
		return nil, fmt.Errorf("board %s: coreboot config: %w", b.Name, err)
	}
	if err := ensureCorebootToolchain(ctx, src, b.Name, string(fragment), filepath.Join(o.OutDir(b), "crossgcc.log"), w); err != nil {
		return nil, err
	}
	if subs := strings.Fields(b.Config.Value("CONFIG_COREBOOT_SUBMODULES")); len(subs) > 0 {
		if err := submodulesPresent(src, subs); err != nil {
			return nil, err
		}
	}
	bd, err := BuildAll(ctx, o, b)
	if err != nil {
		return nil, err
	}

	// coreboot reads the payload from a stable copy in its build directory.
	// The paths do not reach the ROM: the .config is left out of CBFS
	// (CONFIG_INCLUDE_CONFIG_FILE below), so two checkouts build the same
	// bytes (TestROM checks it).
	obj, err := filepath.Abs(filepath.Join(o.OutDir(b), "coreboot"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(obj, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{"bzImage", InitrdName} {
		data, err := os.ReadFile(filepath.Join(bd.Dir, f))
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(filepath.Join(obj, "payload-"+f), data, 0o644); err != nil {
			return nil, err
		}
	}
	var def bytes.Buffer
	def.Write(fragment)
	fmt.Fprintf(&def, "\n# Added by the goheads builder.\n")
	fmt.Fprintf(&def, "CONFIG_PAYLOAD_FILE=%q\n", filepath.Join(obj, "payload-bzImage"))
	fmt.Fprintf(&def, "CONFIG_LINUX_INITRD=%q\n", filepath.Join(obj, "payload-"+InitrdName))
	fmt.Fprintf(&def, "CONFIG_LINUX_COMMAND_LINE=%q\n", b.Cmdline())
	def.WriteString(blobLines)
	// The .config in CBFS would record those paths; the board name and
	// fragment go in as goheads/* files instead.
	fmt.Fprintf(&def, "# CONFIG_INCLUDE_CONFIG_FILE is not set\n")
	defPath := filepath.Join(obj, "defconfig")
	if err := atomicfile.Write(defPath, def.Bytes(), 0o644); err != nil {
		return nil, err
	}

	if err := checkPayloadFits(b, fragment, bd.Dir); err != nil {
		return nil, err
	}

	makeArgs := []string{"-C", src, "obj=" + filepath.Join(obj, "build"), "DOTCONFIG=" + filepath.Join(obj, ".config")}
	env := append(os.Environ(), "BUILD_TIMELESS=1", "KCONFIG_NOSILENTUPDATE=1")
	logPath := filepath.Join(obj, "build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	start := time.Now()
	fmt.Fprintf(w, "build: coreboot %s for %s (log: %s)\n", frag, b.Name, logPath)
	for _, args := range [][]string{
		append(append([]string{}, makeArgs...), "defconfig", "KBUILD_DEFCONFIG="+defPath),
		append(append([]string{}, makeArgs...), fmt.Sprintf("-j%d", runtime.NumCPU())),
	} {
		cmd := exec.CommandContext(ctx, "make", args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("coreboot build for %s failed (%v); the end of %s:\n%s", b.Name, err, logPath, tail(logPath, 25))
		}
	}
	fmt.Fprintf(w, "build: coreboot built in %s\n", time.Since(start).Round(time.Second))

	built, err := os.ReadFile(filepath.Join(obj, "build", "coreboot.rom"))
	if err != nil {
		return nil, err
	}
	img, err := cbfs.Open(built)
	if err != nil {
		return nil, fmt.Errorf("coreboot.rom: %w", err)
	}
	defer img.Close()
	if err := img.Add(cbfs.BoardFile, []byte(b.Name+"\n"), cbfs.TypeRaw); err != nil {
		return nil, fmt.Errorf("coreboot.rom: add %s: %w", cbfs.BoardFile, err)
	}
	// The owner's files (inject_gpg) survive a rebuild, as a flash keeps them.
	out := o.romPath(b)
	if prev, err := cbfs.OpenFile(out); err == nil {
		files, err := cbfs.UserFiles(prev)
		prev.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", out, err)
		}
		for _, f := range files {
			if err := img.Add(f.Name, f.Data, cbfs.TypeRaw); err != nil {
				return nil, fmt.Errorf("%s: keep %s: %w", out, f.Name, err)
			}
		}
	}
	return writeROM(o, b, img)
}

// writeROM writes img as out/<b>/<b>.rom (atomically), its PCR prediction
// and the ROM lines of hashes.txt and sizes.txt.
func writeROM(o *Options, b *Board, img *cbfs.Image) (*ROM, error) {
	data, err := img.Bytes()
	if err != nil {
		return nil, err
	}
	p, err := pcrpredict.Predict(data, pcrpredict.Options{Files: measuredFiles(b)})
	if err != nil {
		return nil, fmt.Errorf("%s: predict PCRs: %w", b.Name, err)
	}
	out := o.romPath(b)
	if err := atomicfile.Write(out, data, 0o644); err != nil {
		return nil, err
	}
	if err := p.WriteFile(filepath.Join(o.OutDir(b), "expected-pcrs.json")); err != nil {
		return nil, err
	}
	largest, total := img.Free()
	var s bytes.Buffer
	fmt.Fprintf(&s, "%10d  %s (ROM)\n", len(data), filepath.Base(out))
	fmt.Fprintf(&s, "%10d  CBFS free (largest free entry %d)\n", total, largest)
	if err := appendSection(filepath.Join(o.OutDir(b), "sizes.txt"), "rom", s.String()); err != nil {
		return nil, err
	}
	h := fmt.Sprintf("%s  %s\n%s  expected-pcrs.json (PCR 2 sha256 %s)\n", p.ROMSHA256, filepath.Base(out), fileSHA256OrEmpty(filepath.Join(o.OutDir(b), "expected-pcrs.json")), p.PCRs["sha256"]["2"])
	if err := appendSection(filepath.Join(o.OutDir(b), "hashes.txt"), "rom", h); err != nil {
		return nil, err
	}
	return &ROM{Path: out, Prediction: p}, nil
}

func fileSHA256OrEmpty(p string) string {
	s, _ := fileSHA256(p)
	return s
}

// appendSection replaces the lines between "# begin <name>" and "# end
// <name>" in path (or appends them), so rebuilding the ROM does not pile up
// lines in hashes.txt and sizes.txt.
func appendSection(path, name, body string) error {
	old, _ := os.ReadFile(path)
	begin, end := "# begin "+name+"\n", "# end "+name+"\n"
	s := string(old)
	if i := strings.Index(s, begin); i >= 0 {
		if j := strings.Index(s[i:], end); j >= 0 {
			s = s[:i] + s[i+j+len(end):]
		}
	}
	s += begin + body + end
	return atomicfile.Write(path, []byte(s), 0o644)
}

// checkPayloadFits fails before a long build when the payload cannot fit
// the ROM size the fragment chose, with the numbers.
func checkPayloadFits(b *Board, fragment []byte, dir string) error {
	romKB := 0
	for _, l := range strings.Split(string(fragment), "\n") {
		var kb int
		if n, _ := fmt.Sscanf(strings.TrimSpace(l), "CONFIG_COREBOOT_ROMSIZE_KB_%d=y", &kb); n == 1 {
			romKB = kb
		}
	}
	if romKB == 0 {
		return nil // coreboot's board default; its own check will speak
	}
	// What coreboot itself needs on q35 (bootblock, stages, FMAP, ACPI),
	// measured: ~250 KiB. Keep a margin.
	const corebootBytes = 384 << 10
	payload := statSize(filepath.Join(dir, "bzImage")) + statSize(filepath.Join(dir, InitrdName))
	if room := int64(romKB)<<10 - corebootBytes; payload > room {
		return &fixError{
			what: fmt.Sprintf("board %s: payload %d bytes (bzImage + initramfs) does not fit the %d KiB ROM (room for about %d bytes beside coreboot)", b.Name, payload, romKB, room),
			fix:  "shrink the kernel config or initramfs, or choose a larger CONFIG_COREBOOT_ROMSIZE_KB_* in coreboot-configs/",
		}
	}
	return nil
}

// missingCorebootTools lists what coreboot's build needs beyond the kernel
// build's tools: the 32-bit libgcc (gcc-multilib) and iasl.
func missingCorebootTools() []string {
	var miss []string
	if _, err := exec.LookPath("iasl"); err != nil {
		miss = append(miss, "iasl (acpica-tools)")
	}
	if libs, _ := filepath.Glob("/usr/lib/gcc/x86_64-linux-gnu/*/32/libgcc.a"); len(libs) == 0 {
		miss = append(miss, "32-bit libgcc (gcc-multilib)")
	}
	for _, t := range []string{"make", "gcc", "bison", "flex", "m4"} {
		if _, err := exec.LookPath(t); err != nil {
			miss = append(miss, t)
		}
	}
	return miss
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// blobConfig maps a blob file name to the coreboot option that takes its path.
var blobConfig = map[string]string{
	"ifd.bin": "CONFIG_IFD_BIN_PATH",
	"me.bin":  "CONFIG_ME_BIN_PATH",
	"gbe.bin": "CONFIG_GBE_BIN_PATH",
}

// corebootBlobs checks the board's binary blobs (CONFIG_COREBOOT_BLOBS in
// CONFIG_COREBOOT_BLOBS_DIR) and returns the defconfig lines pointing
// coreboot at them. Like Heads, the build stops when one is missing, naming
// it and where it comes from.
func corebootBlobs(o *Options, b *Board) (string, error) {
	names := strings.Fields(b.Config.Value("CONFIG_COREBOOT_BLOBS"))
	if len(names) == 0 {
		return "", nil
	}
	dir := b.Config.Value("CONFIG_COREBOOT_BLOBS_DIR")
	if dir == "" {
		dir = filepath.Join("blobs", b.Name)
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(o.Root, dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var lines strings.Builder
	var missing []string
	for _, n := range names {
		p := filepath.Join(abs, n)
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			missing = append(missing, p)
			continue
		}
		opt, ok := blobConfig[n]
		if !ok {
			return "", fmt.Errorf("board %s: blob %s: no coreboot option known for it", b.Name, n)
		}
		fmt.Fprintf(&lines, "%s=%q\n", opt, p)
	}
	if len(missing) > 0 {
		return "", &fixError{
			what: fmt.Sprintf("board %s needs binary blobs that are not there: %s", b.Name, strings.Join(missing, ", ")),
			fix:  fmt.Sprintf("extract them from a backup of this machine's original flash (ifdtool -x backup.rom; me_cleaner -S -O me.bin on the ME region) into %s; goheads does not ship them", abs),
		}
	}
	return lines.String(), nil
}

// crossgcc is coreboot's own toolchain for x86 boards, as `make
// crossgcc-i386` leaves it in the tree.
const crossgcc = "util/crossgcc/xgcc/bin/i386-elf-gcc"

// ensureCorebootToolchain: a board whose fragment does not allow the host
// toolchain (CONFIG_ANY_TOOLCHAIN) builds only with coreboot's crossgcc.
// Real boards use it, as Heads does: it is the compiler coreboot supports
// for native RAM init, it has the Ada front end libgfxinit needs (Debian's
// gcc has none), and it gives the same ROM on every host. The QEMU boards
// build with the host's gcc. A missing crossgcc is built once, in the tree,
// as coreboot's `make crossgcc-i386` does (it downloads the GNU sources).
func ensureCorebootToolchain(ctx context.Context, src, board, fragment, logPath string, w io.Writer) error {
	if strings.Contains("\n"+fragment, "\nCONFIG_ANY_TOOLCHAIN=y") {
		return nil
	}
	if _, err := os.Stat(filepath.Join(src, crossgcc)); err == nil {
		return nil
	}
	manual := fmt.Sprintf("make -C %s crossgcc-i386 CPUS=%d (needs the internet for the GNU sources, ~40 minutes)", src, runtime.NumCPU())
	if _, err := exec.LookPath("gnatbind"); err != nil {
		return &fixError{what: fmt.Sprintf("board %s builds with coreboot's own toolchain, which needs GNAT to build its Ada support (libgfxinit)", board), fix: "apt-get install gnat"}
	}
	fmt.Fprintf(w, "build: board %s needs coreboot's own toolchain: building it in %s once (make crossgcc-i386, ~40 minutes; log %s)\n", board, src, logPath)
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	log, err := os.Create(logPath)
	if err != nil {
		return &fixError{what: fmt.Sprintf("board %s needs coreboot's toolchain: %v", board, err), fix: manual}
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, "make", "-C", src, "crossgcc-i386", fmt.Sprintf("CPUS=%d", runtime.NumCPU()))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return &fixError{what: fmt.Sprintf("building coreboot's toolchain for %s failed (%v; log %s): %s", board, err, logPath, lastMessage(logPath)), fix: manual}
	}
	if _, err := os.Stat(filepath.Join(src, crossgcc)); err != nil {
		return &fixError{what: fmt.Sprintf("coreboot's toolchain build left no %s (log %s)", crossgcc, logPath), fix: manual}
	}
	return nil
}

// lastMessage is the last line of a build log that is not make's own
// bookkeeping, without terminal colours.
func lastMessage(logPath string) string {
	b, _ := os.ReadFile(logPath)
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(ansiRE.ReplaceAllString(lines[i], ""))
		if l != "" && !strings.HasPrefix(l, "make") {
			return l
		}
	}
	return ""
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)
