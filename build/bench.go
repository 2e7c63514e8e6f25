package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goheads/goheads/pkg/vmtest"
)

// benchRow is one line of the bench table.
type benchRow struct {
	metric, value, target, note string
}

// Bench builds the board and prints sizes and boot timings as a table.
// Timings are medians over -runs boots; they are reported, never asserted.
func Bench(ctx context.Context, o *Options, b *Board, w io.Writer) error {
	bd, err := BuildAll(ctx, o, b)
	if err != nil {
		return err
	}
	s := readSizes(bd.Dir)
	rows := []benchRow{
		{"initrd.cpio (raw)", bytesStr(s.InitrdRaw), "", ""},
		{InitrdName, bytesStr(s.Initrd), "<= 3.5 MB", "Heads: ~5 MB (xz)"},
		{"busybox binary", bytesStr(s.Busybox), "", fmt.Sprintf("%d commands", len(bd.Initramfs.Cmds))},
		{"bzImage", bytesStr(s.BzImage), "", ""},
	}
	boot, err := benchBoot(ctx, o, b, o.BenchRuns)
	if err != nil {
		return err
	}
	rows = append(rows, boot...)
	lk, err := benchLUKS(o.BenchRuns)
	if err != nil {
		return err
	}
	rows = append(rows, lk...)
	fx, err := benchFixtures(ctx, o, b)
	if err != nil {
		return err
	}
	rows = append(rows, fx...)
	fmt.Fprintf(w, "goheads bench: board %s, %s, QEMU accel %s\n\n", b.Name, bd.Initramfs.Version, vmtest.Accel())
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue\ttarget\tnote")
	fmt.Fprintln(tw, "------\t-----\t------\t----")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.metric, r.value, r.target, r.note)
	}
	return tw.Flush()
}

func bytesStr(n int64) string {
	return fmt.Sprintf("%d (%.2f MB)", n, float64(n)/1e6)
}

// benchBoot boots the board n times and reports the median time from QEMU
// start to the goheads banner, and the kernel's uptime when init started
// (printed in the banner).
func benchBoot(ctx context.Context, o *Options, b *Board, n int) ([]benchRow, error) {
	var wall, kern []time.Duration
	for i := 0; i < n; i++ {
		cfg := vmConfig(o, b, "")
		cfg.TPMState = ""
		if cfg.TPM != vmtest.NoTPM {
			dir, cleanup, err := tempDir()
			if err != nil {
				return nil, err
			}
			defer cleanup()
			cfg.TPMState = dir
		}
		vm, err := vmtest.Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		m, err := vm.ExpectRE(bannerRE, 2*time.Minute)
		elapsed := time.Since(vm.Started)
		vm.Kill()
		if err != nil {
			return nil, fmt.Errorf("bench boot %d: %w\n%s", i+1, err, tailStr(vm.Console(), 20))
		}
		wall = append(wall, elapsed)
		if d, err := time.ParseDuration(m[1] + "s"); err == nil {
			kern = append(kern, d)
		}
	}
	return []benchRow{
		{"boot: QEMU start -> banner", median(wall).Round(time.Millisecond).String(), "~3 s", fmt.Sprintf("median of %d: %s", n, durs(wall))},
		{"boot: kernel start -> init", median(kern).Round(time.Millisecond).String(), "", "kernel uptime when init ran"},
	}, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func durs(ds []time.Duration) string {
	var p []string
	for _, d := range ds {
		p = append(p, d.Round(10*time.Millisecond).String())
	}
	return strings.Join(p, " ")
}

func tailStr(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// bannerRE matches init's banner: "goheads <version> on <board>, kernel uptime <s> s".
var bannerRE = regexp.MustCompile(`goheads \S+ on \S+, kernel uptime ([0-9.]+) s`)

// benchFixtures runs the measurements that need the test fixtures (swtpm,
// signed machines, VMs): ./bench's TestBench, which writes its rows as JSON.
func benchFixtures(ctx context.Context, o *Options, b *Board) ([]benchRow, error) {
	dir, cleanup, err := tempDir()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	out := filepath.Join(dir, "rows.json")
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^TestBench$", "-timeout", "40m", "./bench")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "GOHEADS_BENCH_OUT="+out, "GOHEADS_BENCH_BOARD="+b.Name, fmt.Sprintf("GOHEADS_BENCH_RUNS=%d", o.BenchRuns))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	fmt.Fprintln(os.Stderr, "build: bench: TPM, /boot hashing and VM flows (go test ./bench; a few minutes)")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go test ./bench: %w", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var rows []struct{ Metric, Value, Target, Note string }
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("%s: %w", out, err)
	}
	var res []benchRow
	for _, r := range rows {
		res = append(res, benchRow{r.Metric, r.Value, r.Target, r.Note})
	}
	return res, nil
}
