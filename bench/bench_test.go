package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/benchlog"
	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
	"github.com/goheads/goheads/pkg/vmtest"
	"github.com/goheads/goheads/pkg/vmtest/scenario"
)

// Row is one line of the bench table (the builder reads them as JSON).
type Row struct {
	Metric, Value, Target, Note string
}

type table struct{ rows []Row }

func (tb *table) add(metric, value, target, note string) {
	tb.rows = append(tb.rows, Row{metric, value, target, note})
}

func runs() int {
	if n, err := strconv.Atoi(os.Getenv("GOHEADS_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestBench runs every measurement and writes the rows to
// $GOHEADS_BENCH_OUT.
func TestBench(t *testing.T) {
	out := os.Getenv("GOHEADS_BENCH_OUT")
	if out == "" {
		t.Skip("make bench runs this (GOHEADS_BENCH_OUT unset)")
	}
	board := os.Getenv("GOHEADS_BENCH_BOARD")
	if board == "" {
		board = "qemu-tpm2"
	}
	tb := &table{}
	benchTPM(t, tb)
	benchHashing(t, tb)
	benchVM(t, tb, board)
	b, err := json.MarshalIndent(tb.rows, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// benchTPM seals and unseals a TOTP-sized secret against swtpm as the
// TOTP flow does (PCRs 0-4 and 7, at Heads' index), counting commands.
func benchTPM(t *testing.T, tb *table) {
	owner := []byte("bench owner")
	for _, fam := range []tpm.Family{tpm.Family20, tpm.Family12} {
		sim := tpmtest.Start(t, fam)
		tp := sim.TPM()
		if err := tp.Reset(owner); err != nil {
			t.Fatalf("%s reset: %v", fam, err)
		}
		secret := make([]byte, 20)
		pcrs := map[int][]byte{0: nil, 1: nil, 2: nil, 3: nil, 4: nil, 7: nil}
		var sealT, unsealT []time.Duration
		var sealN, unsealN int64
		for i := 0; i < runs(); i++ {
			n0, start := tp.Commands(), time.Now()
			if err := tp.Seal(tpm.SealOptions{Index: tpm.IndexTOTP, Secret: secret, PCRs: pcrs, OwnerAuth: owner}); err != nil {
				t.Fatalf("%s seal: %v", fam, err)
			}
			sealT, sealN = append(sealT, time.Since(start)), tp.Commands()-n0
			n0, start = tp.Commands(), time.Now()
			if _, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: []int{0, 1, 2, 3, 4, 7}}); err != nil {
				t.Fatalf("%s unseal: %v", fam, err)
			}
			unsealT, unsealN = append(unsealT, time.Since(start)), tp.Commands()-n0
		}
		tb.add(fmt.Sprintf("%s seal (TOTP secret, swtpm)", fam), ms(median(sealT)), "", fmt.Sprintf("%d TPM commands; median of %d", sealN, runs()))
		tb.add(fmt.Sprintf("%s unseal (TOTP secret, swtpm)", fam), ms(median(unsealT)), "", fmt.Sprintf("%d TPM commands; median of %d", unsealN, runs()))
		sim.Stop()
	}
}

// benchHashing verifies a 200 MB /boot (kernels and initrds of pseudo-
// random bytes, like real ones) as the boot does, against sha256sum over
// the same files in the same run, page cache warm for both.
func benchHashing(t *testing.T, tb *table) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Fatal("sha256sum not found (coreutils)")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	buf := make([]byte, 1<<20)
	var total int64
	var names []string
	for i, mib := range []int{9, 58, 9, 58, 9, 57} {
		name := fmt.Sprintf("file%d", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < mib; j++ {
			for k := range buf {
				buf[k] = byte(rng.Uint32())
			}
			f.Write(buf)
		}
		f.Close()
		total += int64(mib) << 20
		names = append(names, name)
	}
	m, err := bootsign.Generate(dir, bootsign.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sha := func() time.Duration {
		cmd := exec.Command("sha256sum", names...)
		cmd.Dir = dir
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum: %v %s", err, out)
		}
		return time.Since(start)
	}
	goheads := func(workers int) time.Duration {
		start := time.Now()
		if _, err := bootsign.CheckHashes(dir, m.Hashes, m.Tree, bootsign.HashOptions{Workers: workers}); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	sha() // warm the page cache
	var shaT, one, all []time.Duration
	for i := 0; i < runs(); i++ {
		shaT = append(shaT, sha())
		one = append(one, goheads(1))
		all = append(all, goheads(runtime.NumCPU()))
	}
	rate := func(d time.Duration) string { return fmt.Sprintf("%.0f MB/s", float64(total)/1e6/d.Seconds()) }
	s, o, a := median(shaT), median(one), median(all)
	tb.add(fmt.Sprintf("/boot verify %d MB: sha256sum", total>>20), rate(s), "", ms(s))
	tb.add("/boot verify: goheads, 1 core", rate(o), ">= 1.0x sha256sum", fmt.Sprintf("%.2fx sha256sum; %s", s.Seconds()/o.Seconds(), ms(o)))
	tb.add(fmt.Sprintf("/boot verify: goheads, %d cores", runtime.NumCPU()), rate(a), ">= 1.7x sha256sum", fmt.Sprintf("%.2fx sha256sum; %s", s.Seconds()/a.Seconds(), ms(a)))
}

var (
	bannerRE = regexp.MustCompile(`goheads \S+ on \S+, kernel uptime ([0-9.]+) s`)
	// A mark as the kernel prints it: "[    1.234567] goheads-bench: ...".
	markRE = func(what string) *regexp.Regexp {
		return regexp.MustCompile(`\[\s*(\d+\.\d{6})\] ` + regexp.QuoteMeta(benchlog.Prefix+what) + `([^\r\n]*)\r?\n`)
	}
	countRE = regexp.MustCompile(`tpm-commands=(\d+)`)
)

func seconds(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second))
}

// benchVM boots a signed machine whose TPM holds a TOTP secret: QEMU
// start to the TOTP code, the kernel and userland shares of it and the
// TPM commands on the way; then Default boot to kexec.
func benchVM(t *testing.T, tb *table, board string) {
	m := scenario.New(t, scenario.Options{Board: board, Sign: true})
	// Seal the TOTP secret in the VM, so it is sealed to that firmware.
	vm := vmtest.StartT(t, m.Config("goheads.shell"))
	vm.MustExpect(t, "> ", 2*time.Minute)
	out := vm.Shell(t, fmt.Sprintf("echo '%s' | seal-totp; echo EXIT=$?", m.OwnerPass), 3*time.Minute)
	if !strings.Contains(out, "EXIT=0") {
		t.Fatalf("seal-totp:\n%s", out)
	}
	vm.MustSend(t, "poweroff\r")
	vm.Wait(time.Minute)

	var wall, kern, user []time.Duration
	var cmds []int
	var toKexec []time.Duration
	for i := 0; i < runs(); i++ {
		vm := vmtest.StartT(t, m.Config("goheads.bench"))
		b := vm.MustExpectRE(t, bannerRE.String(), 2*time.Minute)
		initMark := vm.MustExpectRE(t, markRE("init tpm-commands=").String(), time.Minute)
		// The unseal's mark carries the TPM command count; the time is when
		// the menu's first draw with the code has been written out.
		unsealed := vm.MustExpectRE(t, markRE("totp-unsealed").String(), time.Minute)
		totp := vm.MustExpectRE(t, markRE("totp-shown").String(), time.Minute)
		wall = append(wall, time.Since(vm.Started))
		if i == 0 {
			// Every mark of the first boot, for go test -v: where the time goes.
			for _, l := range strings.Split(vm.Console(), "\n") {
				if strings.Contains(l, "goheads-bench:") {
					t.Logf("%s", strings.TrimSpace(l))
				}
			}
		}
		kt := seconds(totp[1])
		kern = append(kern, kt)
		user = append(user, kt-seconds(b[1]))
		n := 0
		for _, s := range []string{initMark[0], unsealed[0]} {
			if c := countRE.FindStringSubmatch(s); c != nil {
				v, _ := strconv.Atoi(c[1])
				n += v
			}
		}
		cmds = append(cmds, n)
		vm.MustScreen(t, `TOTP: \d{6}`, time.Minute)
		vm.MustSend(t, "d")
		d := vm.MustExpectRE(t, markRE("default-boot").String(), time.Minute)
		k := vm.MustExpectRE(t, markRE("kexec").String(), 2*time.Minute)
		toKexec = append(toKexec, seconds(k[1])-seconds(d[1]))
		vm.MustExpect(t, "GOHEADS-TESTOS-MARKER", 2*time.Minute)
		vm.Wait(time.Minute)
	}
	sort.Ints(cmds)
	tb.add("boot: QEMU start -> TOTP code", ms(median(wall)), "", fmt.Sprintf("%s, median of %d", board, runs()))
	tb.add("boot: kernel start -> TOTP code", ms(median(kern)), "<= 1.0 s", "kernel timestamps")
	tb.add("boot: init start -> TOTP code", ms(median(user)), "<= 150 ms", "userland share")
	tb.add("boot: TPM commands init -> TOTP code", strconv.Itoa(cmds[len(cmds)/2]), "<= 10", "init's measurements + the menu's unseal")
	tb.add("Default boot -> kexec", ms(median(toKexec)), "", "verify /boot (signature, hashes, counter), load, PCR 4, finalize")
	benchICount(t, tb, m)
}

// benchICount boots the same machine with QEMU's icount: guest time then
// counts instructions (shift=0: 1 ns each, a 1-GIPS in-order CPU) instead
// of following the host, whose speed drifts by +-20% within minutes here.
// The rows are the guest's own work, comparable between runs and hosts
// (waits for swtpm and the disk still pass in real time: sleep=on). TCG
// only: KVM has no icount.
func benchICount(t *testing.T, tb *table, m *scenario.Machine) {
	if vmtest.Accel() != "tcg" {
		return
	}
	var kern, user []time.Duration
	for i := 0; i < runs(); i++ {
		cfg := m.Config("goheads.bench")
		cfg.ExtraArgs = append(cfg.ExtraArgs, "-icount", "shift=0,sleep=on")
		vm := vmtest.StartT(t, cfg)
		b := vm.MustExpectRE(t, bannerRE.String(), 2*time.Minute)
		totp := vm.MustExpectRE(t, markRE("totp-shown").String(), time.Minute)
		kern = append(kern, seconds(totp[1]))
		user = append(user, seconds(totp[1])-seconds(b[1]))
		vm.Kill()
		vm.Wait(time.Minute)
	}
	note := fmt.Sprintf("-icount shift=0 (guest instructions), median of %d", runs())
	tb.add("boot, 1-GIPS virtual CPU: kernel -> TOTP", ms(median(kern)), "", note)
	tb.add("boot, 1-GIPS virtual CPU: init -> TOTP", ms(median(user)), "", note+"; 100 ms of it is the key window")
}
