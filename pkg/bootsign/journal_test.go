package bootsign

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

var errCrash = errors.New("simulated power cut")

// journalFixture is a Heads-signed /boot (the old state) and the options of
// a new signing that changes only kexec files (a new default entry, one
// removed), so that both states are complete and either may verify.
func journalFixture(t *testing.T, withCounter bool) (*signedBoot, SignOptions) {
	return journalFixtureFrom(t, newSignedBoot(t), withCounter)
}

// journalFixtureFrom copies a signed /boot and its counter, so that the many
// crash runs need only one (slow, gpg) Heads-style signing.
func journalFixtureFrom(t *testing.T, tmpl *signedBoot, withCounter bool) (*signedBoot, SignOptions) {
	s := &signedBoot{k: tmpl.k, boot: filepath.Join(t.TempDir(), "boot"), id: tmpl.id}
	copyTree(t, tmpl.boot, s.boot)
	s.ctr = newFakeCounter(s.id, tmpl.ctr.value(tmpl.id))
	opts := SignOptions{
		BootDir: s.boot,
		Key:     signingKey(t, s.k.userSecret),
		Files:   map[string][]byte{"kexec_default.3.txt": []byte("Debian (recovery)|elf|kernel /vmlinuz-6.1.0-13-amd64|append single\n")},
		Remove:  []string{DefaultEntryPattern},
	}
	if withCounter {
		opts.Counter = s.ctr
	}
	return s, opts
}

// steps runs a signing without crashing and returns the journal steps it
// passed through.
func journalSteps(t *testing.T, tmpl *signedBoot, withCounter bool) []string {
	_, opts := journalFixtureFrom(t, tmpl, withCounter)
	var steps []string
	opts.crash = func(step string) error { steps = append(steps, step); return nil }
	if _, err := Sign(opts); err != nil {
		t.Fatal(err)
	}
	return steps
}

// TestCrashAtEveryStep cuts the power (the crash hook aborts Sign) before
// every step of the journal, including halfway through writing each file
// into /boot, and checks that afterwards exactly one of the old and the new
// signed states verifies (in full: signature, rollback counter, hashes),
// never neither; then that Recover settles /boot on that same state.
func TestCrashAtEveryStep(t *testing.T) {
	for _, withCounter := range []bool{true, false} {
		t.Run(fmt.Sprintf("counter=%v", withCounter), func(t *testing.T) {
			tmpl := newSignedBoot(t)
			steps := journalSteps(t, tmpl, withCounter)
			for _, want := range []string{"stage:kexec.sig", "commit", "copy-partial:kexec.sig", "rename:kexec_tree.txt", "delete:kexec_default.1.txt", "unstage"} {
				if !contains(steps, want) {
					t.Fatalf("journal steps %q lack %q", steps, want)
				}
			}
			if withCounter && !contains(steps, "increment") {
				t.Fatalf("no increment step in %q", steps)
			}
			states := map[string]int{}
			for i, step := range steps {
				s, opts := journalFixtureFrom(t, tmpl, withCounter)
				oldState := kexecState(t, s.boot)
				oldCounter := s.ctr.value(s.id)
				n := 0
				opts.crash = func(string) error {
					n++
					if n == i+1 {
						return errCrash
					}
					return nil
				}
				if _, err := Sign(opts); !errors.Is(err, errCrash) {
					t.Fatalf("crash at %s: Sign returned %v", step, err)
				}
				vopts := VerifyOptions{BootDir: s.boot, Keyring: s.k.romRing}
				if withCounter {
					vopts.Counter = s.ctr
				}
				r, err := Verify(vopts)
				if err != nil {
					t.Fatalf("crash at %s (counter %d->%d): neither state verifies: %v", step, oldCounter, s.ctr.value(s.id), err)
				}
				got := map[string]string{}
				for n, c := range r.Files {
					got[n] = string(c)
				}
				isOld := reflect.DeepEqual(got, without(oldState, SigFile))
				isNew := got["kexec_default.3.txt"] != "" && got["kexec_default.1.txt"] == ""
				if isOld == isNew {
					t.Fatalf("crash at %s: verified set is neither exactly the old nor the new one: %v", step, sortedKeys(got))
				}
				state := "old"
				if isNew {
					state = "new"
				}
				states[state]++
				// With a counter the state follows the increment.
				if withCounter && (s.ctr.value(s.id) > oldCounter) != isNew {
					t.Fatalf("crash at %s: state %s but counter %d->%d", step, state, oldCounter, s.ctr.value(s.id))
				}

				if err := Recover(vopts); err != nil {
					t.Fatalf("crash at %s: Recover: %v", step, err)
				}
				r2, err := Verify(vopts)
				if err != nil {
					t.Fatalf("crash at %s: after Recover: %v", step, err)
				}
				if r2.Set != "live" || !reflect.DeepEqual(r2.Files, r.Files) {
					t.Fatalf("crash at %s: Recover changed the state (set %s)", step, r2.Set)
				}
				if leftovers := kexecLeftovers(t, s.boot); len(leftovers) != 0 {
					t.Fatalf("crash at %s: Recover left %q", step, leftovers)
				}
			}
			if states["old"] == 0 || states["new"] == 0 {
				t.Errorf("crash points covered only %v", states)
			}
			t.Logf("%d crash points: %v", len(steps), states)
		})
	}
}

// After a crash, the next Sign settles the interrupted one and succeeds.
func TestSignAfterCrash(t *testing.T) {
	s, opts := journalFixture(t, true)
	opts.Keyring = s.k.romRing
	opts.crash = func(step string) error {
		if step == "copy-partial:kexec_hashes.txt" {
			return errCrash
		}
		return nil
	}
	if _, err := Sign(opts); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	opts.crash = nil
	opts.Files = map[string][]byte{"kexec_default.4.txt": []byte("x|elf|kernel /vmlinuz\n")}
	r, err := Sign(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Files["kexec_default.4.txt"]; !ok || len(kexecLeftovers(t, s.boot)) != 0 {
		t.Errorf("second signing: files %v, leftovers %q", sortedKeys(r.Files), kexecLeftovers(t, s.boot))
	}
}

// An uncommitted staging directory is ignored by Verify and removed by
// Recover; a committed one that fails verification is left alone when the
// live set fails too.
func TestRecoverStagingStates(t *testing.T) {
	s := newSignedBoot(t)
	vopts := VerifyOptions{BootDir: s.boot, Keyring: s.k.romRing, Counter: s.ctr}
	dir := filepath.Join(s.boot, StagingDir)
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "kexec_hashes.txt"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(s.boot, "kexec.sig.tmp"), []byte("junk"), 0o644)
	r, err := Verify(vopts)
	if err != nil || r.Set != "live" || len(r.Notes) == 0 {
		t.Fatalf("uncommitted staging: %v, %+v", err, r)
	}
	if err := Recover(vopts); err != nil {
		t.Fatal(err)
	}
	if l := kexecLeftovers(t, s.boot); len(l) != 0 {
		t.Fatalf("leftovers %q", l)
	}
	// A file where the staging directory belongs is ignored, then removed.
	os.WriteFile(dir, []byte("not a dir"), 0o644)
	if r, err := Verify(vopts); err != nil || r.Set != "live" {
		t.Fatalf("staging file: %v", err)
	}
	if err := Recover(vopts); err != nil {
		t.Fatal(err)
	}
	// A committed but forged staged set does not win over the live set.
	os.Mkdir(dir, 0o700)
	forged := map[string][]byte{"kexec_hashes.txt": []byte("x"), SigFile: mustRead(t, filepath.Join(s.boot, SigFile))}
	if err := writeStaging(s.boot, forged, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if r, err := Verify(vopts); err != nil || r.Set != "live" {
		t.Fatalf("forged staging: %v", err)
	}
	if err := Recover(vopts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("forged staging not removed")
	}
	// Neither valid: Recover touches nothing.
	if err := writeStaging(s.boot, forged, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.boot, SigFile), []byte("garbage"), 0o644)
	if err := Recover(vopts); !errors.Is(err, ErrMalformedSignature) {
		t.Fatalf("Recover with nothing valid: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, commitFile)); err != nil {
		t.Fatal("Recover removed the staging dir although nothing verified")
	}
}

// The TPM moves further than predicted: Sign binds the real value.
func TestCounterMisprediction(t *testing.T) {
	s := newSignedBoot(t)
	s.ctr.skip = 5
	r, err := Sign(SignOptions{BootDir: s.boot, Key: signingKey(t, s.k.userSecret), Keyring: s.k.romRing, Counter: s.ctr})
	if err != nil {
		t.Fatal(err)
	}
	if s.ctr.value(s.id) != 107 || r.Rollback != RollbackVerified {
		t.Errorf("counter %d, rollback %s", s.ctr.value(s.id), r.Rollback)
	}
}

// A TPM 2.0 counter that was never incremented cannot be read; Sign
// increments it once first.
func TestCounterUnwrittenIsPrimed(t *testing.T) {
	k := sharedKeys(t)
	boot := makeBoot(t)
	id := randCounterID(t)
	ctr := newFakeCounter(id, 3)
	ctr.unwritten[id] = true
	r, err := Sign(SignOptions{BootDir: boot, Key: signingKey(t, k.userSecret), Keyring: k.romRing, UpdateHashes: true, Counter: ctr, CounterID: id})
	if err != nil {
		t.Fatal(err)
	}
	if ctr.value(id) != 5 || r.CounterID != id {
		t.Errorf("counter %d (want 5: prime + signing), id %q", ctr.value(id), r.CounterID)
	}
	// No counter id anywhere: a clear error, nothing written.
	boot2 := makeBoot(t)
	_, err = Sign(SignOptions{BootDir: boot2, Key: signingKey(t, k.userSecret), UpdateHashes: true, Counter: ctr})
	if !errors.Is(err, ErrCounter) {
		t.Errorf("no counter id: %v", err)
	}
	if l := kexecLeftovers(t, boot2); len(l) != 0 {
		t.Errorf("left %q", l)
	}
}

// Package-trigger logs are deleted after signing and are not in the
// signed set; the result verifies (in Heads the signed set would include
// them and break after their deletion).
func TestPackageTriggersRemoved(t *testing.T) {
	s := newSignedBoot(t)
	for _, n := range []string{"kexec_package_trigger_pre.txt", "kexec_package_trigger_post.txt"} {
		os.WriteFile(filepath.Join(s.boot, n), []byte("CHANGED_FILES=\"/boot/vmlinuz\"\n"), 0o644)
	}
	if _, err := s.verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("trigger files present: %v (unsigned kexec*.txt must break the signature)", err)
	}
	r, err := Sign(SignOptions{BootDir: s.boot, Key: signingKey(t, s.k.userSecret), Keyring: s.k.romRing, UpdateHashes: true, Counter: s.ctr})
	if err != nil {
		t.Fatal(err)
	}
	for n := range r.Files {
		if strings.HasPrefix(n, triggerPrefix) {
			t.Errorf("%s signed", n)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(s.boot, "kexec_package_trigger*")); len(m) != 0 {
		t.Errorf("not deleted: %q", m)
	}
}

// Sign refuses a key the ROM keyring would not accept, before writing.
func TestSignRefusesForeignKey(t *testing.T) {
	s := newSignedBoot(t)
	before := snapshot(t, s.boot)
	_, err := Sign(SignOptions{BootDir: s.boot, Key: signingKey(t, s.k.otherSec), Keyring: s.k.romRing, UpdateHashes: true, Counter: s.ctr})
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("foreign key: %v", err)
	}
	if !reflect.DeepEqual(before, snapshot(t, s.boot)) || s.ctr.value(s.id) != 101 {
		t.Error("/boot or the counter changed")
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func without(m map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// kexecLeftovers lists journal debris: the staging dir and *.tmp files.
func kexecLeftovers(t testing.TB, boot string) []string {
	var out []string
	entries, err := os.ReadDir(boot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == StagingDir || strings.HasSuffix(e.Name(), ".tmp") {
			out = append(out, e.Name())
		}
	}
	return out
}
