package tpm_test

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
)

var ownerPass = []byte("owner-passphrase")

// provisioned starts an swtpm and resets it as Heads' "Reset the TPM" does.
func provisioned(t *testing.T, fam tpm.Family) (*tpmtest.Sim, *tpm.TPM) {
	t.Helper()
	sim := tpmtest.Start(t, fam)
	tp := sim.TPM()
	if err := tp.Reset(ownerPass); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if err := tp.Provisioned(); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	return sim, tp
}

func totpPolicy() map[int][]byte {
	m := map[int][]byte{}
	for _, p := range tpm.TOTPPCRs {
		m[p] = nil
	}
	return m
}

func TestSealUnseal(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			sim, tp := provisioned(t, fam)
			secret := []byte("0123456789abcdefghij")
			if err := tp.Seal(tpm.SealOptions{Index: tpm.IndexTOTP, Secret: secret, PCRs: totpPolicy(), OwnerAuth: ownerPass}); err != nil {
				t.Fatal(err)
			}
			before := tp.Commands()
			got, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s unseal: %d TPM commands", fam, tp.Commands()-before)
			if !bytes.Equal(got, secret) {
				t.Fatalf("unsealed %q, want %q", got, secret)
			}
			// Extending a PCR of the policy breaks the seal, and the error names it.
			if err := tp.Measure(7, []byte("another config.user"), "test"); err != nil {
				t.Fatal(err)
			}
			_, err = tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs})
			var pe *tpm.PolicyError
			if !errors.Is(err, tpm.ErrPolicyMismatch) || !errors.As(err, &pe) {
				t.Fatalf("after PCR 7 extend: err = %v, want ErrPolicyMismatch", err)
			}
			if len(pe.PCRs) != 1 || pe.PCRs[0] != 7 || !strings.Contains(err.Error(), "PCR 7") {
				t.Errorf("policy error %q names %v, want PCR 7", err, pe.PCRs)
			}
			// A PCR outside the policy does not matter.
			tp = sim.Restart()
			if err := tp.Measure(5, []byte("module"), "test"); err != nil {
				t.Fatal(err)
			}
			if got, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs}); err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("after reboot: %q, %v", got, err)
			}
			// Destroy, then nothing to unseal.
			if err := tp.Destroy(tpm.IndexTOTP, ownerPass); err != nil {
				t.Fatal(err)
			}
			if _, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs}); !errors.Is(err, tpm.ErrNotProvisioned) {
				t.Errorf("after destroy: %v, want ErrNotProvisioned", err)
			}
		})
	}
}

func TestSealToPredictedValue(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			_, tp := provisioned(t, fam)
			cur, err := tp.ReadPCR(4)
			if err != nil {
				t.Fatal(err)
			}
			// Seal to PCR 4 as it will be after extending "generic".
			future := fold(fam, cur, hashOf(fam, []byte("generic")))
			pcrs := map[int][]byte{0: nil, 4: future}
			secret := []byte("disk unlock key material")
			if err := tp.Seal(tpm.SealOptions{Index: tpm.IndexDUK, Secret: secret, PCRs: pcrs, OwnerAuth: ownerPass}); err != nil {
				t.Fatal(err)
			}
			if _, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: []int{0, 4}}); !errors.Is(err, tpm.ErrPolicyMismatch) {
				t.Fatalf("before the extend: %v, want ErrPolicyMismatch", err)
			}
			if err := tp.Measure(4, []byte("generic"), "boot mode"); err != nil {
				t.Fatal(err)
			}
			got, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: []int{0, 4}})
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("after the extend: %q, %v", got, err)
			}
		})
	}
}

func TestPassphrase(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			_, tp := provisioned(t, fam)
			secret := bytes.Repeat([]byte{0xd0}, 128) // a DUK is 128 bytes
			pass := []byte("correct horse battery")
			pcrs := map[int][]byte{0: nil, 1: nil, 2: nil, 3: nil, 4: nil, 5: nil, 6: nil, 7: nil}
			if err := tp.Seal(tpm.SealOptions{Index: tpm.IndexDUK, Secret: secret, PCRs: pcrs, Passphrase: pass, OwnerAuth: ownerPass}); err != nil {
				t.Fatal(err)
			}
			all := []int{0, 1, 2, 3, 4, 5, 6, 7}
			// Three wrong tries, as Heads allows: each is ErrBadAuth, never a lockout.
			for i := 0; i < 3; i++ {
				_, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: all, Passphrase: []byte("wrong horse")})
				if !errors.Is(err, tpm.ErrBadAuth) || errors.Is(err, tpm.ErrLockout) {
					t.Fatalf("wrong passphrase try %d: %v, want ErrBadAuth", i+1, err)
				}
			}
			if _, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: all}); err == nil {
				t.Fatal("unsealed without the passphrase")
			}
			got, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: all, Passphrase: pass})
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("right passphrase: %v", err)
			}
		})
	}
}

func TestLockoutReportsWait(t *testing.T) {
	_, tp := provisioned(t, tpm.Family20)
	pass := []byte("right")
	if err := tp.Seal(tpm.SealOptions{Index: tpm.IndexDUK, Secret: []byte("k"), PCRs: map[int][]byte{0: nil}, Passphrase: pass, OwnerAuth: ownerPass}); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 12 && !errors.Is(err, tpm.ErrLockout); i++ {
		_, err = tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: []int{0}, Passphrase: []byte("wrong")})
	}
	var le *tpm.LockoutError
	if !errors.As(err, &le) {
		t.Fatalf("after repeated failures: %v, want a lockout (Heads sets 10 tries)", err)
	}
	if le.Wait.Seconds() != 3600 || !strings.Contains(err.Error(), "1h0m0s") {
		t.Errorf("lockout %q: wait %v, want 1h (Heads' recovery time)", err, le.Wait)
	}
}

func TestNotProvisioned(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			tp := tpmtest.Start(t, fam).TPM()
			if err := tp.Provisioned(); !errors.Is(err, tpm.ErrNotProvisioned) {
				t.Errorf("fresh TPM: Provisioned() = %v", err)
			}
			if _, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexTOTP, PCRs: tpm.TOTPPCRs}); !errors.Is(err, tpm.ErrNotProvisioned) {
				t.Errorf("unseal on a fresh TPM: %v, want ErrNotProvisioned", err)
			}
		})
	}
}

var counterFile = map[tpm.Family]*regexp.Regexp{
	tpm.Family20: regexp.MustCompile(`^(1[0-9a-f]{6}): ([0-9a-f]{16})\n$`),
	tpm.Family12: regexp.MustCompile(`^([0-9]+): (000e[0-9a-f]{16})\n$`),
}

func TestCountersOnlyGoUp(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			sim, tp := provisioned(t, fam)
			id, err := tp.CounterCreate(ownerPass)
			if err != nil {
				t.Fatal(err)
			}
			first, err := tp.CounterIncrement(id)
			if err != nil {
				t.Fatal(err)
			}
			if !counterFile[fam].Match(first.File) {
				t.Errorf("counter file %q is not in Heads' format", first.File)
			}
			next, err := tpm.NextCounterFile(fam, first)
			if err != nil {
				t.Fatal(err)
			}
			second, err := tp.CounterIncrement(id)
			if err != nil {
				t.Fatal(err)
			}
			if second.Value != first.Value+1 || !bytes.Equal(second.File, next) {
				t.Errorf("increment: %d -> %d, file %q, predicted %q", first.Value, second.Value, second.File, next)
			}
			// A reboot keeps the value.
			tp = sim.Restart()
			after, err := tp.CounterRead(id)
			if err != nil {
				t.Fatal(err)
			}
			if after.Value != second.Value {
				t.Errorf("after reboot: %d, want %d", after.Value, second.Value)
			}
			third, err := tp.CounterIncrement(id)
			if err != nil || third.Value <= after.Value {
				t.Errorf("increment after reboot: %v %v", third, err)
			}
			if _, err := tp.CounterRead("zz"); err == nil {
				t.Error("bad counter id accepted")
			}
		})
	}
}

// TestPCRsMatchTPM2Tools cross-checks goheads' extends with tpm2-tools, an
// independent TPM client, on the same swtpm.
func TestPCRsMatchTPM2Tools(t *testing.T) {
	needTool(t, "tpm2_pcrread", "tpm2-tools")
	sim := tpmtest.Start(t, tpm.Family20)
	tp := sim.TPM()
	for _, s := range []string{"/.gnupg/pubring.kbx", "keyring", "recovery"} {
		if err := tp.Measure(7, []byte(s), s); err != nil {
			t.Fatal(err)
		}
	}
	ours, err := tp.ReadPCRs(7)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sim.Tool("tpm2_pcrread", "sha256:7,16+sha1:7")
	if err != nil {
		t.Fatalf("tpm2_pcrread: %v\n%s", err, out)
	}
	want := strings.ToUpper(hexs(ours[7]))
	if !strings.Contains(out, "7 : 0x"+want) {
		t.Errorf("tpm2_pcrread sha256:7 disagrees with goheads (%s):\n%s", want, out)
	}
	// The SHA-1 bank was extended too (every active bank, not only SHA-256).
	if strings.Contains(out, "7 : 0x0000000000000000000000000000000000000000") {
		t.Errorf("SHA-1 bank of PCR 7 was not extended:\n%s", out)
	}
}

// TestHeadsSealCompatibility seals with Heads' tpm2-tools recipe (tpmr.sh
// tpm2_seal) and unseals with goheads, and the reverse.
func TestHeadsSealCompatibility(t *testing.T) {
	needTool(t, "tpm2_startauthsession", "tpm2-tools")
	sim, tp := provisioned(t, tpm.Family20)
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := sim.Tool(args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// goheads seals, Heads unseals (tpmr.sh tpm2_unseal).
	secret := []byte("20-byte-totp-secret!")
	if err := tp.Seal(tpm.SealOptions{Index: tpm.IndexTOTP, Secret: secret, PCRs: totpPolicy(), OwnerAuth: ownerPass}); err != nil {
		t.Fatal(err)
	}
	run("tpm2_startauthsession", "-Q", "-g", "sha256", "-S", dir+"/pol.session", "--policy-session")
	run("tpm2_policypcr", "-Q", "-l", "sha256:0,1,2,3,4,7", "-S", dir+"/pol.session")
	out, err := sim.Tool("tpm2_unseal", "-Q", "-c", "0x81004d47", "-p", "session:"+dir+"/pol.session", "-o", dir+"/out")
	if err != nil {
		t.Fatalf("Heads' unseal of a goheads seal: %v\n%s", err, out)
	}
	if got := readFile(t, dir+"/out"); !bytes.Equal(got, secret) {
		t.Fatalf("Heads unsealed %q", got)
	}

	// Heads seals with a passphrase (DUK recipe), goheads unseals.
	pcrf := dir + "/pcrs"
	vals, err := tp.ReadPCRs(0, 1, 2, 3, 4, 5, 6, 7)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for i := 0; i < 8; i++ {
		all = append(all, vals[i]...)
	}
	writeFile(t, pcrf, all)
	writeFile(t, dir+"/key", bytes.Repeat([]byte{0x42}, 128))
	run("tpm2_startauthsession", "-g", "sha256", "-S", dir+"/trial.session")
	run("tpm2_policypcr", "-Q", "-l", "sha256:0,1,2,3,4,5,6,7", "-f", pcrf, "-S", dir+"/trial.session", "-L", dir+"/policy")
	run("tpm2_policyauthvalue", "-Q", "-S", dir+"/trial.session", "-L", dir+"/policy")
	run("tpm2_flushcontext", dir+"/trial.session")
	run("tpm2_create", "-Q", "-C", "0x81000000", "-i", dir+"/key", "-u", dir+"/key.pub", "-r", dir+"/key.priv",
		"-L", dir+"/policy", "-a", "fixedtpm|fixedparent|adminwithpolicy", "-p", "hex:"+hexs([]byte("duk passphrase")))
	run("tpm2_load", "-Q", "-C", "0x81000000", "-u", dir+"/key.pub", "-r", dir+"/key.priv", "-c", dir+"/key.ctx")
	run("tpm2_evictcontrol", "-Q", "-C", "o", "-P", "hex:"+hexs(ownerPass), "-c", dir+"/key.ctx", "0x81000003")
	got, err := tp.Unseal(tpm.UnsealOptions{Index: tpm.IndexDUK, PCRs: []int{0, 1, 2, 3, 4, 5, 6, 7}, Passphrase: []byte("duk passphrase")})
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0x42}, 128)) {
		t.Fatalf("goheads' unseal of a Heads seal: %v", err)
	}
}
