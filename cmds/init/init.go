package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/goheads/goheads/pkg/benchlog"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
	"github.com/goheads/goheads/pkg/sysinit"
	"github.com/goheads/goheads/pkg/tpm"
)

const (
	shell    = "/bbin/gosh"
	recovery = "/bbin/recovery"
	console  = "/dev/console"
)

// run is Heads' initrd/init: mount, measure the user's CBFS files into PCR
// 7, assemble the configuration, offer the 0.1 s recovery key window, then
// keep the boot script alive.
func run(ctx context.Context, out io.Writer, args []string) error {
	if err := sysinit.MountAll(sysinit.Mounts, out); err != nil {
		return err
	}
	benchlog.Mark("init mounted")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	term := sysinit.ConsoleTerm(os.Getenv("TERM"), sysinit.SerialConsole(string(cmdline)))
	os.MkdirAll(sysinit.SecretDir, 0o700)

	board, warns, err := config.Load(config.BoardPath)
	if err != nil {
		fmt.Fprintf(out, "init: %v; continuing with an empty configuration\n", err)
		board = config.New()
	}
	printWarnings(out, warns)
	fmt.Fprintf(out, "\ngoheads %s on %s, kernel uptime %s s\n", orUnknown(board.Value("CONFIG_GOHEADS_VERSION")),
		orUnknown(board.Value("CONFIG_BOARD_NAME")), uptime())

	// Heads' 0.1 s window for 'r' (recovery shell) and 'o' (OEM factory
	// reset) opens with the banner and stays open while init measures
	// and assembles the configuration, at least 0.1 s: the same chance to
	// press a key, without 0.1 s added to every boot. The key is acted on
	// only after the measurements, as in Heads.
	busy := make(chan struct{})
	keyc := make(chan byte, 1)
	go func() {
		k, _ := sysinit.KeyWindow(console, 100*time.Millisecond, busy)
		keyc <- k
	}()

	t, tpmDesc := openTPM(board)
	fmt.Fprintf(out, "TPM: %s\n", tpmDesc)
	benchlog.Mark("init tpm-open")

	// cbfs-init: the owner's files from the ROM, measured into PCR 7 in CBFS
	// order before anything reads them.
	pcr := measure.PCRConfig
	if v := board.Value("CONFIG_PCR"); v != "" {
		fmt.Sscan(v, &pcr)
	}
	files, src, err := userFiles(board)
	switch {
	case err != nil:
		fmt.Fprintf(out, "init: no CBFS user files: %v\n", err)
	case len(files) > 0:
		var ext measure.Extender
		if t != nil {
			ext = t
		}
		if err := measure.CBFSInit(ext, files, "/", pcr); err != nil {
			fmt.Fprintf(out, "init: cbfs-init: %v\n", err)
		}
		for _, f := range files {
			p, _ := f.Path()
			fmt.Fprintf(out, "Loaded %s from %s\n", p, src)
		}
	}
	if t != nil {
		benchlog.Mark("init tpm-commands=%d", t.Commands())
		t.Close()
	}

	// /tmp/config: board config, then config.user (later wins), then what
	// init found at run time (a board built with a TPM whose TPM is gone).
	cfg, warns, err := config.LoadLayers(config.BoardPath, config.UserPath)
	if err != nil {
		cfg = board
	}
	printWarnings(out, warns)
	if t == nil && cfg.Bool("CONFIG_TPM") {
		cfg.Set("CONFIG_TPM", "n")
		cfg.Set("CONFIG_TPM2_TOOLS", "n")
	}
	if err := os.WriteFile(config.RuntimePath, cfg.Bytes(), 0o644); err != nil {
		fmt.Fprintf(out, "init: write %s: %v\n", config.RuntimePath, err)
	}

	env := append(sysinit.Env(term), "CONFIG_BOARD_NAME="+cfg.Value("CONFIG_BOARD_NAME"))
	if sysinit.SerialConsole(string(cmdline)) {
		env = append(env, fmt.Sprintf("COLUMNS=%d", sysinit.SerialCols), fmt.Sprintf("LINES=%d", sysinit.SerialLines))
	}
	close(busy)
	key := <-keyc
	benchlog.Mark("init key-window")
	if key == 'r' || key == 'R' {
		fmt.Fprintln(out, "Recovery shell requested.")
		sysinit.Supervise(sysinit.Child{Path: recovery, Env: env, Console: console}, out)
	} else if key == 'o' || key == 'O' {
		fmt.Fprintln(out, "OEM factory reset requested: use the menu's Options -> OEM Factory Reset (not available from the key window yet).")
	}

	child := sysinit.Child{Path: shell, Env: env, Console: console}
	if cfg.Bool("CONFIG_BOARD_QEMU") && slices.Contains(strings.Fields(string(cmdline)), "goheads.shell") {
		// Development and VM tests on QEMU boards: a plain shell instead of
		// the menu, without poisoning PCR 4. Real boards ignore it (their
		// command line is inside the measured ROM anyway).
		fmt.Fprintln(out, "init: goheads.shell: starting a shell instead of the boot menu")
		sysinit.Supervise(child, out)
	}
	if bs := cfg.Value("CONFIG_BOOTSCRIPT"); bs != "" {
		if _, err := os.Stat(bs); err == nil {
			child.Path = bs
		} else {
			fmt.Fprintf(out, "init: CONFIG_BOOTSCRIPT %s: %v; starting a shell\n", bs, err)
		}
	}
	sysinit.Supervise(child, out)
	return nil
}

// openTPM opens the TPM when the board has one. A board built with a TPM
// that has none at run time says so; nothing is measured then.
func openTPM(board *config.Config) (*tpm.TPM, string) {
	t, err := tpm.Open()
	if err != nil {
		if errors.Is(err, tpm.ErrNoTPM) {
			if board.Bool("CONFIG_TPM") {
				return nil, "none found (this board expects one: no measurements, no sealed secrets)"
			}
			return nil, "none"
		}
		return nil, fmt.Sprintf("cannot open: %v", err)
	}
	if err := t.Ping(); err != nil {
		t.Close()
		return nil, fmt.Sprintf("%s not answering: %v", t.Family(), err)
	}
	path := tpm.DevTPMRM
	if t.Family() == tpm.Family12 {
		path = tpm.DevTPM
	}
	return t, fmt.Sprintf("%s at %s", t.Family(), path)
}

func printWarnings(out io.Writer, warns []config.Warning) {
	for _, w := range warns {
		fmt.Fprintf(out, "init: warning: %s\n", w)
	}
}

// uptime is the kernel's uptime in seconds (/proc/uptime's first field).
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(unknown)"
	}
	return s
}

// rescue keeps PID 1 alive with a shell when init itself failed early.
func rescue(out io.Writer) {
	sysinit.Supervise(sysinit.Child{Path: shell, Env: sysinit.Env("linux"), Console: console}, out)
}
