package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// hostTool is a program (or file) the build or the tests need, with the
// Debian package that provides it.
type hostTool struct {
	name string // program on PATH, or an absolute file path
	pkg  string
	why  string
}

// hostTools is everything `make test` needs on a Debian 12 machine. .ci/run
// installs the same packages (TestCIInstallsHostTools keeps them in step).
var hostTools = []hostTool{
	{"qemu-system-x86_64", "qemu-system-x86", "boot the VM tests and make run"},
	{"swtpm", "swtpm", "software TPM for tests and VMs"},
	{"swtpm_setup", "swtpm-tools", "swtpm state tools"},
	{"zstd", "zstd", "compress the initramfs (and OS initrds in tests)"},
	{"xz", "xz-utils", "unpack the kernel source"},
	{"cpio", "cpio", "cross-check initramfs archives"},
	{"bzip2", "bzip2", "compress OS initrds in tests"},
	{"lz4", "lz4", "compress OS initrds in tests"},
	{"mkfs.ext4", "e2fsprogs", "make test disks"},
	{"gpg", "gnupg", "make real signatures in tests"},
	{"cryptsetup", "cryptsetup-bin", "make real LUKS volumes in tests"},
	{"tpm2_pcrread", "tpm2-tools", "cross-check PCRs with an independent TPM client"},
	{"oathtool", "oathtool", "cross-check TOTP/HOTP codes"},
	{"zbarimg", "zbar-tools", "decode QR codes in tests"},
	{"cbfstool", "coreboot-utils", "cross-check CBFS images"},
	{"flashrom", "flashrom", "ROM update tests with the dummy programmer"},
	{"make", "make", "build the kernel"},
	{"gcc", "build-essential", "build the kernel"},
	{"bc", "bc", "build the kernel"},
	{"bison", "bison", "build the kernel"},
	{"flex", "flex", "build the kernel"},
	{"/usr/include/libelf.h", "libelf-dev", "build the kernel (objtool)"},
	{"/usr/include/openssl/ssl.h", "libssl-dev", "build the kernel"},
	{debianKernelTarball, "linux-source-6.1", "kernel source (offline build)"},
	{"git", "git", "version stamp and reproducibility check"},
}

// missingTools returns the tools that are not installed.
func missingTools() []hostTool {
	var miss []hostTool
	for _, t := range hostTools {
		if strings.HasPrefix(t.name, "/") {
			if _, err := os.Stat(t.name); err != nil {
				miss = append(miss, t)
			}
			continue
		}
		if _, err := exec.LookPath(t.name); err != nil {
			miss = append(miss, t)
		}
	}
	return miss
}

// checkHost prints what is missing, one line each, and a single command
// that installs all of it.
func checkHost(b *Board, w io.Writer) error {
	miss := missingTools()
	if len(miss) == 0 {
		fmt.Fprintln(w, "build: host tools: all present")
		return nil
	}
	var pkgs []string
	seen := map[string]bool{}
	for _, t := range miss {
		fmt.Fprintf(w, "build: missing %s (%s), from package %s\n", t.name, t.why, t.pkg)
		if !seen[t.pkg] {
			seen[t.pkg] = true
			pkgs = append(pkgs, t.pkg)
		}
	}
	return &fixError{what: fmt.Sprintf("%d host tools missing", len(miss)), fix: "sudo apt-get install -y " + strings.Join(pkgs, " ")}
}
