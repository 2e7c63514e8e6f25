package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/sysinit"
	"github.com/goheads/goheads/pkg/tpm"
)

const (
	boardConfig = "/etc/config"
	shell       = "/bbin/gosh"
	console     = "/dev/console"
)

func run(ctx context.Context, out io.Writer, args []string) error {
	if err := sysinit.MountAll(sysinit.Mounts, out); err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	term := sysinit.ConsoleTerm(os.Getenv("TERM"), sysinit.SerialConsole(string(cmdline)))
	env := sysinit.Env(term)

	cfg, warns, err := config.Load(boardConfig)
	if err != nil {
		fmt.Fprintf(out, "init: %v; continuing with an empty configuration\n", err)
		cfg = config.New()
	}
	for _, w := range warns {
		fmt.Fprintf(out, "init: warning: %s\n", w)
	}

	fmt.Fprintf(out, "\ngoheads %s on %s, kernel uptime %s s\n", orUnknown(cfg.Value("CONFIG_GOHEADS_VERSION")),
		orUnknown(cfg.Value("CONFIG_BOARD_NAME")), uptime())
	fmt.Fprintf(out, "TPM: %s\n", describeTPM())

	child := sysinit.Child{Path: shell, Env: env, Console: console}
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

// describeTPM names the TPM the kernel exposes, checking that it answers.
func describeTPM() string {
	fam, path, err := tpm.Detect()
	if err != nil {
		return "none found"
	}
	t, err := tpm.Open()
	if err != nil {
		return fmt.Sprintf("%s at %s, cannot open: %v", fam, path, err)
	}
	defer t.Close()
	if _, err := t.ReadPCR(0); err != nil {
		return fmt.Sprintf("%s at %s, not answering: %v", fam, path, err)
	}
	return fmt.Sprintf("%s at %s", fam, path)
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
