package bootsign

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/testenv"
)

// benchBoot writes files of the given sizes (MiB) into a temporary /boot and
// returns the jobs to hash and the total size. Contents are pseudo-random
// (incompressible, like kernels and initrds).
func benchBoot(tb testing.TB, sizesMiB []int) (string, []hashJob, int64) {
	tb.Helper()
	dir := tb.TempDir()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	var jobs []hashJob
	var total int64
	buf := make([]byte, 1<<20)
	for i, mib := range sizesMiB {
		name := fmt.Sprintf("f%02d", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		for j := 0; j < mib; j++ {
			for k := 0; k < len(buf); k += 8 {
				v := rng.Uint64()
				for b := 0; b < 8; b++ {
					buf[k+b] = byte(v >> (8 * b))
				}
			}
			if _, err := f.Write(buf); err != nil {
				tb.Fatal(err)
			}
		}
		f.Close()
		size := int64(mib) << 20
		jobs = append(jobs, hashJob{"./" + name, size})
		total += size
	}
	return dir, jobs, total
}

// A /boot-like mix: two kernels, two big initrds, smaller files.
var bootMixMiB = []int{70, 55, 30, 20, 10, 8, 5, 2} // 200 MiB

// BenchmarkHashFiles: go test -bench HashFiles ./pkg/bootsign
func BenchmarkHashFiles(b *testing.B) {
	dir, jobs, total := benchBoot(b, []int{24, 16, 12, 8, 4}) // 64 MiB
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				for _, r := range hashFiles(dir, jobs, workers) {
					if r.err != nil {
						b.Fatal(r.err)
					}
				}
			}
		})
	}
}

// TestHashThroughputVsSha256sum compares hashFiles with the real sha256sum
// (one process, so one core) on ~200 MiB of files, warm page cache, best of
// three runs each, and logs the ratios. It asserts nothing about timing
// (the machine is shared); it is opt-in because it writes 200 MiB:
//
//	GOHEADS_HASH_BENCH=1 go test -run HashThroughput -v ./pkg/bootsign
//
// Target: >= 1.0x sha256sum with one worker, >= 1.7x with two cores.
func TestHashThroughputVsSha256sum(t *testing.T) {
	if os.Getenv("GOHEADS_HASH_BENCH") != "1" {
		t.Skip("set GOHEADS_HASH_BENCH=1 to compare hashing speed with sha256sum on 200 MiB")
	}
	testenv.NeedTool(t, "sha256sum", "coreutils")
	dir, jobs, total := benchBoot(t, bootMixMiB)
	var args []string
	for _, j := range jobs {
		args = append(args, filepath.Join(dir, j.rel))
	}
	// Warm the page cache and check both agree.
	out, err := exec.Command("sha256sum", args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	res := hashFiles(dir, jobs, 1)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		sum, file, _ := strings.Cut(line, "  ")
		r := res["./"+filepath.Base(file)]
		if r.err != nil || fmt.Sprintf("%x", r.sum) != sum {
			t.Fatalf("%s: sha256sum %s, goheads %x %v", file, sum, r.sum, r.err)
		}
	}
	best := func(f func()) time.Duration {
		var min time.Duration
		for i := 0; i < 3; i++ {
			start := time.Now()
			f()
			if d := time.Since(start); min == 0 || d < min {
				min = d
			}
		}
		return min
	}
	tSum := best(func() {
		if err := exec.Command("sha256sum", args...).Run(); err != nil {
			t.Fatal(err)
		}
	})
	t1 := best(func() { hashFiles(dir, jobs, 1) })
	t2 := best(func() { hashFiles(dir, jobs, 2) })
	mbps := func(d time.Duration) float64 { return float64(total) / d.Seconds() / 1e6 }
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%d MiB in %d files, %d CPUs, load %s", total>>20, len(jobs), runtime.NumCPU(), strings.TrimSpace(string(load)))
	t.Logf("sha256sum:          %v (%.0f MB/s)", tSum, mbps(tSum))
	t.Logf("goheads, 1 worker:  %v (%.0f MB/s) = %.2fx sha256sum", t1, mbps(t1), tSum.Seconds()/t1.Seconds())
	t.Logf("goheads, 2 workers: %v (%.0f MB/s) = %.2fx sha256sum", t2, mbps(t2), tSum.Seconds()/t2.Seconds())
}
