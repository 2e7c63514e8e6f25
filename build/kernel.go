package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// kernelRecipe names the build steps below; change it when they change so
// cached kernels built the old way are not reused.
const kernelRecipe = "tinyconfig+fragment+olddefconfig+bzImage v1"

// Offline source: Debian's linux-source-6.1 package. apt verified it; its
// version moves every few weeks, so it is recorded in hashes.txt, not pinned.
const debianKernelTarball = "/usr/src/linux-source-6.1.tar.xz"

// Online source: a kernel.org release pinned by SHA-256 (the same release and
// hash Heads pins in modules/linux).
var kernelOrg = pinnedSource{
	Name:   "linux-6.1.8",
	URL:    "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.8.tar.xz",
	SHA256: "b60bb53ab8ba370a270454b11e93d41af29126fc72bd6ede517673e2e57b816d",
}

type pinnedSource struct{ Name, URL, SHA256 string }

// KernelSource is the tarball a kernel is built from.
type KernelSource struct {
	Path    string
	Version string // Debian package version or kernel.org release name
	SHA256  string
}

// Kernel is a built kernel.
type Kernel struct {
	BzImage string
	Config  string
	Source  KernelSource
	Key     string
}

func cacheDir() string {
	if d := os.Getenv("GOHEADS_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "goheads")
	}
	return filepath.Join(os.TempDir(), "goheads-cache")
}

// findKernelSource picks the offline Debian tarball, or downloads the pinned
// kernel.org release when GOHEADS_KERNEL_SOURCE=kernel.org (or when the
// Debian package is missing and the network is reachable).
func findKernelSource(ctx context.Context, log io.Writer) (KernelSource, error) {
	if os.Getenv("GOHEADS_KERNEL_SOURCE") != "kernel.org" {
		if _, err := os.Stat(debianKernelTarball); err == nil {
			sum, err := fileSHA256(debianKernelTarball)
			if err != nil {
				return KernelSource{}, err
			}
			ver := "linux-source-6.1 (version unknown)"
			if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "linux-source-6.1").Output(); err == nil {
				ver = "linux-source-6.1 " + strings.TrimSpace(string(out))
			}
			return KernelSource{Path: debianKernelTarball, Version: ver, SHA256: sum}, nil
		}
	}
	dst := filepath.Join(cacheDir(), "sources", filepath.Base(kernelOrg.URL))
	if sum, err := fileSHA256(dst); err == nil && sum == kernelOrg.SHA256 {
		return KernelSource{Path: dst, Version: kernelOrg.Name, SHA256: sum}, nil
	}
	fmt.Fprintf(log, "build: downloading %s\n", kernelOrg.URL)
	if err := download(ctx, kernelOrg, dst); err != nil {
		return KernelSource{}, &fixError{
			what: fmt.Sprintf("no kernel source: %s is missing and %s could not be fetched (%v)", debianKernelTarball, kernelOrg.URL, err),
			fix:  "apt-get install linux-source-6.1",
		}
	}
	return KernelSource{Path: dst, Version: kernelOrg.Name, SHA256: kernelOrg.SHA256}, nil
}

// download fetches src.URL to dst and accepts it only if its SHA-256 matches.
func download(ctx context.Context, src pinnedSource, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return err
	}
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", src.URL, rsp.Status)
	}
	tmp := dst + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), rsp.Body); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != src.SHA256 {
		os.Remove(tmp)
		return fmt.Errorf("%s: sha256 %s, pinned %s; refusing it", src.URL, got, src.SHA256)
	}
	return os.Rename(tmp, dst)
}

// BuildKernel builds the board's kernel, or reuses the cached one built from
// the same source, fragment and recipe, and copies it to out/<board>/bzImage.
func BuildKernel(ctx context.Context, o *Options, b *Board) (*Kernel, error) {
	log := os.Stderr
	fragPath := filepath.Join(o.Root, "kernel-configs", b.KernelFamily()+".config")
	frag, err := os.ReadFile(fragPath)
	if err != nil {
		return nil, fmt.Errorf("board %s: kernel fragment: %w", b.Name, err)
	}
	if err := checkKernelTools(); err != nil {
		return nil, err
	}
	src, err := findKernelSource(ctx, log)
	if err != nil {
		return nil, err
	}
	kh := sha256.New()
	fmt.Fprintf(kh, "%s\x00%s\x00", kernelRecipe, src.SHA256)
	kh.Write(frag)
	key := hex.EncodeToString(kh.Sum(nil))[:24]
	dir := filepath.Join(cacheDir(), "kernel", b.KernelFamily()+"-"+key)
	k := &Kernel{BzImage: filepath.Join(dir, "bzImage"), Config: filepath.Join(dir, "config"), Source: src, Key: key}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(k.BzImage); err != nil {
		fmt.Fprintf(log, "build: building kernel %s (%s, fragment %s); this takes ~8 minutes on 2 cores\n", key, src.Version, fragPath)
		start := time.Now()
		if err := compileKernel(ctx, src, fragPath, frag, dir); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "build: kernel built in %s\n", time.Since(start).Round(time.Second))
	} else {
		fmt.Fprintf(log, "build: kernel %s from cache %s\n", key, dir)
	}
	outDir := o.OutDir(b)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	if err := copyFile(k.BzImage, filepath.Join(outDir, "bzImage")); err != nil {
		return nil, err
	}
	if err := copyFile(k.Config, filepath.Join(outDir, "kernel.config")); err != nil {
		return nil, err
	}
	k.BzImage = filepath.Join(outDir, "bzImage")
	k.Config = filepath.Join(outDir, "kernel.config")
	// The initramfs is zstd (InitrdName): a kernel without its
	// decompressor would not boot it.
	if cfg, err := os.ReadFile(k.Config); err != nil || !strings.Contains(string(cfg), "\nCONFIG_RD_ZSTD=y\n") {
		return nil, fmt.Errorf("kernel %s lacks CONFIG_RD_ZSTD=y, which the %s initramfs needs; fix: add it to %s", k.Config, InitrdName, fragPath)
	}
	return k, nil
}

func checkKernelTools() error {
	for _, t := range []struct{ bin, pkg string }{
		{"make", "make"}, {"gcc", "build-essential"}, {"bc", "bc"}, {"bison", "bison"},
		{"flex", "flex"}, {"xz", "xz-utils"}, {"perl", "perl"},
	} {
		if _, err := exec.LookPath(t.bin); err != nil {
			return &fixError{what: t.bin + " not found (needed to build the kernel)", fix: "apt-get install " + t.pkg}
		}
	}
	// objtool (always built on x86_64) needs libelf's headers; sign tools need OpenSSL's.
	for _, h := range []struct{ file, pkg string }{
		{"/usr/include/libelf.h", "libelf-dev"}, {"/usr/include/openssl/ssl.h", "libssl-dev"},
	} {
		if _, err := os.Stat(h.file); err != nil {
			return &fixError{what: h.file + " not found (needed to build the kernel)", fix: "apt-get install " + h.pkg}
		}
	}
	return nil
}

// compileKernel extracts src into dir/src, configures tinyconfig + fragment,
// checks every requested option survived, builds bzImage and keeps only
// bzImage and config (the tree is ~1.5 GB).
func compileKernel(ctx context.Context, src KernelSource, fragPath string, frag []byte, dir string) error {
	tree := filepath.Join(dir, "src")
	os.RemoveAll(tree)
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	absFrag, err := filepath.Abs(fragPath)
	if err != nil {
		return err
	}
	jobs := fmt.Sprint(runtime.NumCPU())
	// Fixed identity and time so the same source and config give the same bzImage.
	env := append(os.Environ(),
		"KBUILD_BUILD_TIMESTAMP=1970-01-01", "KBUILD_BUILD_USER=goheads",
		"KBUILD_BUILD_HOST=goheads", "KBUILD_BUILD_VERSION=1", "LC_ALL=C", "TZ=UTC",
		"ARCH=x86_64")
	steps := [][]string{
		{"tar", "-xf", src.Path, "-C", tree, "--strip-components=1"},
		{"make", "-C", tree, "tinyconfig"},
		{filepath.Join(tree, "scripts/kconfig/merge_config.sh"), "-m", "-O", tree, filepath.Join(tree, ".config"), absFrag},
		{"make", "-C", tree, "olddefconfig"},
	}
	for _, s := range steps {
		if err := runLogged(ctx, logf, tree, env, s...); err != nil {
			return kernelFailure(s, err, logPath)
		}
	}
	if err := checkKernelConfig(filepath.Join(tree, ".config"), frag, fragPath); err != nil {
		return err
	}
	build := []string{"make", "-C", tree, "-j" + jobs, "bzImage"}
	if err := runLogged(ctx, logf, tree, env, build...); err != nil {
		return kernelFailure(build, err, logPath)
	}
	if err := copyFile(filepath.Join(tree, "arch/x86/boot/bzImage"), filepath.Join(dir, "bzImage.tmp")); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(tree, ".config"), filepath.Join(dir, "config")); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, "bzImage.tmp"), filepath.Join(dir, "bzImage")); err != nil {
		return err
	}
	return os.RemoveAll(tree)
}

func kernelFailure(step []string, err error, logPath string) error {
	tail := lastLines(logPath, 25)
	return fmt.Errorf("kernel build step %q failed: %v\n%s\n(full log: %s)", strings.Join(step, " "), err, tail, logPath)
}

// checkKernelConfig verifies that every CONFIG_X=y / =n line of the fragment
// holds in the final .config: olddefconfig silently drops options whose
// dependencies are missing.
func checkKernelConfig(final string, frag []byte, fragPath string) error {
	have := map[string]string{}
	f, err := os.Open(final)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			have[k] = v
		} else if strings.HasPrefix(line, "# CONFIG_") && strings.HasSuffix(line, " is not set") {
			have[strings.TrimSuffix(strings.TrimPrefix(line, "# "), " is not set")] = "n"
		}
	}
	var missing []string
	for n, line := range strings.Split(string(frag), "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		got, present := have[k]
		if !present {
			got = "n"
		}
		if v != got {
			missing = append(missing, fmt.Sprintf("%s:%d: %s=%s became %s", fragPath, n+1, k, v, got))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kernel config: options did not survive olddefconfig (a dependency is missing from the fragment):\n  %s", strings.Join(missing, "\n  "))
	}
	return nil
}

func runLogged(ctx context.Context, log io.Writer, dir string, env []string, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = log
	cmd.Stderr = log
	fmt.Fprintf(log, "+ %s\n", strings.Join(argv, " "))
	return cmd.Run()
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockFile takes an exclusive flock so two builders do not build into the
// same cache entry at once.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies src to dst through a temporary file and rename, so dst is
// never half-written.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

var errNotBuilt = errors.New("not built yet")
