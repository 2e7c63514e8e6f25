package bootsign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
)

const (
	zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	// sha256("") and sha256("abc"), from FIPS 180-2, not computed here.
	emptySum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	abcSum   = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
)

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct {
		in    string
		paths []string
		err   bool
	}{
		{in: emptySum + "  ./empty\n" + abcSum + "  ./a b/c\n", paths: []string{"./empty", "./a b/c"}},
		{in: strings.ToUpper(emptySum) + "  ./x", paths: []string{"./x"}}, // upper case, no final newline
		{in: emptySum + " *./bin", paths: []string{"./bin"}},              // GNU binary-mode marker
		{in: ""},
		{in: emptySum + " ./one-space\n", err: true},
		{in: emptySum + "  \n", err: true},
		{in: "\\" + emptySum + "  ./esc\\\\aped\n", err: true}, // GNU escaping: never produced for signable names
		{in: emptySum[:63] + "g  ./badhex\n", err: true},
		{in: emptySum + "  ./ok\n\n", err: true}, // empty line
		{in: emptySum + "\t./tab\n", err: true},
	} {
		m, err := ParseManifest([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("ParseManifest(%q): err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedManifest) || !strings.Contains(err.Error(), "line") {
				t.Errorf("ParseManifest(%q): error %q should wrap ErrMalformedManifest and name the line", tc.in, err)
			}
			continue
		}
		var got []string
		for _, e := range m.Entries {
			got = append(got, e.Path)
		}
		if strings.Join(got, "|") != strings.Join(tc.paths, "|") {
			t.Errorf("ParseManifest(%q) paths %q, want %q", tc.in, got, tc.paths)
		}
	}
	m, _ := ParseManifest([]byte(abcSum + "  ./vmlinuz\n"))
	for _, p := range []string{"./vmlinuz", "/vmlinuz", "vmlinuz", ".//vmlinuz"} {
		if s, ok := m.Lookup(p); !ok || hex.EncodeToString(s[:]) != abcSum {
			t.Errorf("Lookup(%q) = %x, %v", p, s, ok)
		}
	}
	for _, p := range []string{"../vmlinuz", "./a/../vmlinuz", ""} {
		if _, ok := m.Lookup(p); ok {
			t.Errorf("Lookup(%q) found something", p)
		}
	}
	if got := string(m.Marshal()); got != abcSum+"  ./vmlinuz\n" {
		t.Errorf("Marshal = %q", got)
	}
}

func TestTree(t *testing.T) {
	// Byte order, as sort -z in the C locale: '-' (0x2d) < '/' (0x2f) < 'A'.
	got := MarshalTree([]string{"./a/b", "./a-b", "./", "./a", "./B", "./a b"})
	want := "./\x00./B\x00./a\x00./a b\x00./a-b\x00./a/b\x00"
	if string(got) != want {
		t.Errorf("MarshalTree = %q, want %q", got, want)
	}
	paths, err := ParseTree([]byte(want))
	if err != nil || len(paths) != 6 || paths[5] != "./a/b" {
		t.Errorf("ParseTree = %q, %v", paths, err)
	}
	for _, bad := range []string{"./\x00./a", "./\x00\x00", "\x00"} {
		if _, err := ParseTree([]byte(bad)); !errors.Is(err, ErrMalformedManifest) {
			t.Errorf("ParseTree(%q) = %v", bad, err)
		}
	}
}

// The signed message is sha256sum's output for the bare names in glob order.
func TestSignedMessageMatchesSha256sum(t *testing.T) {
	testenv.NeedTool(t, "sha256sum", "coreutils")
	dir := t.TempDir()
	files := map[string][]byte{
		"kexec_tree.txt": []byte("./\x00"), "kexec_default.1.txt": []byte("x\n"), "kexec_hashes.txt": nil,
		"kexec_default_hashes.txt": []byte("y"), "kexec_rollback.txt": []byte("z\n"),
	}
	for n, c := range files {
		os.WriteFile(filepath.Join(dir, n), c, 0o644)
	}
	cmd := exec.Command("bash", "-c", "cd \"$D\" && sha256sum kexec*.txt")
	cmd.Env = append(os.Environ(), "D="+dir, "LC_ALL=C")
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := SignedMessage(files); !bytes.Equal(got, want) {
		t.Errorf("SignedMessage:\n%s\nsha256sum kexec*.txt:\n%s", got, want)
	}
}

// Counter files exactly as Heads' tpmr writes them, and the rollback line
// the real sha256sum makes of them.
func TestRollbackHeadsFormats(t *testing.T) {
	testenv.NeedTool(t, "sha256sum", "coreutils")
	for _, tc := range []struct {
		name, id, cur, next string
	}{
		// tpmr.sh tpm2_counter_read: echo "$index: $(tpm2 nvread | xxd -pc8)"
		{"TPM 2.0", "1a2b3c4", "1a2b3c4: 0000000000000005\n", "1a2b3c4: 0000000000000006\n"},
		{"TPM 2.0 carry", "1000000", "1000000: 00000000000000ff\n", "1000000: 0000000000000100\n"},
		// tpmtotp counter_read: printf("%d: ", id) then TPM_COUNTER_VALUE %02x
		// (tag 000e, label 0xbaddecaf = 3135106223, count)
		{"TPM 1.2", "1", "1: 000ebaddecaf00000005\n", "1: 000ebaddecaf00000006\n"},
		{"TPM 1.2 carry", "12", "12: 000ebaddecaf0000ffff\n", "12: 000ebaddecaf00010000\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, err := NextCounterFile([]byte(tc.cur))
			if err != nil || string(next) != tc.next {
				t.Fatalf("NextCounterFile(%q) = %q, %v; want %q", tc.cur, next, err, tc.next)
			}
			// kexec_rollback.txt as kexec-sign-config.sh writes it.
			p := "/tmp/counter-" + tc.id
			if _, err := os.Stat(p); err == nil {
				t.Skipf("%s exists on this machine; not overwriting it", p)
			}
			os.WriteFile(p, []byte(tc.next), 0o600)
			defer os.Remove(p)
			heads, err := exec.Command("sha256sum", p).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := RollbackContent(tc.id, next); !bytes.Equal(got, heads) {
				t.Errorf("RollbackContent = %q, sha256sum = %q", got, heads)
			}
			id, sum, err := ParseRollback(heads)
			if err != nil || id != tc.id || sum != sha256.Sum256([]byte(tc.next)) {
				t.Errorf("ParseRollback(%q) = %q %x %v", heads, id, sum, err)
			}
			// Verification side: the counter's file must hash to it.
			c := staticCounter(tc.next)
			if _, err := checkRollback(c, heads); err != nil {
				t.Errorf("checkRollback: %v", err)
			}
			if _, err := checkRollback(staticCounter(tc.cur), heads); !errors.Is(err, ErrRollback) {
				t.Errorf("checkRollback with the older value: %v, want ErrRollback", err)
			}
		})
	}
	for _, bad := range []string{"1a2b: 05\n", "1a2b: 0000000000000005", "x: 0000000000000005\n", "1: 000fbaddecaf00000005\n",
		"1a2b: ffffffffffffffff\n", "1a2b 0000000000000005\n", ""} {
		if _, err := NextCounterFile([]byte(bad)); err == nil {
			t.Errorf("NextCounterFile(%q) succeeded", bad)
		}
	}
	if got, _ := NextCounterFile([]byte("1A2B: 000000000000000F\n")); string(got) != "1A2B: 0000000000000010\n" {
		t.Errorf("upper case kept: %q", got)
	}
	for _, bad := range []string{
		emptySum + "  /tmp/counter-\n", emptySum + "  /tmp/other-1\n", emptySum + "  /tmp/counter-1\n" + emptySum + "  /tmp/counter-2\n",
		emptySum + "  /tmp/counter-1/../x\n", emptySum + "  /tmp/counter-zz\n",
	} {
		if _, _, err := ParseRollback([]byte(bad)); !errors.Is(err, ErrMalformedManifest) {
			t.Errorf("ParseRollback(%q) = %v", bad, err)
		}
	}
}

// staticCounter is a TEST FAKE counter that always reads the same file.
type staticCounter string

func (c staticCounter) Read(string) ([]byte, error) { return []byte(c), nil }
func (c staticCounter) Increment(string) ([]byte, error) {
	return nil, errors.New("static test counter")
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ok      bool
		escaped string
	}{
		{"./grub/grub.cfg", true, "./grub/grub.cfg"},
		{"./with space #1", true, "./with space ##1"},
		{"./new\nline", false, "./new#nline"},
		{"./back\\slash", false, "./back#x5cslash"},
		{"./caf\xc3\xa9", false, "./caf#xc3#xa9"},
		{"./del\x7f", false, "./del#x7f"},
		{"./cr\r\t\b\v", false, "./cr#r#t#b#v"},
		{"./~tilde", true, "./~tilde"},
	} {
		err := checkName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("checkName(%q) = %v", tc.name, err)
		}
		if got := EscapeName(tc.name); got != tc.escaped {
			t.Errorf("EscapeName(%q) = %q, want %q", tc.name, got, tc.escaped)
		}
	}
}

// assert_signable in Heads is `tr -d '\001-\037\134\177-\377'`: compare the
// refused byte set with what tr deletes.
func TestSignableBytesMatchTr(t *testing.T) {
	testenv.NeedTool(t, "tr", "coreutils")
	all := make([]byte, 255)
	for i := range all {
		all[i] = byte(i + 1)
	}
	cmd := exec.Command("tr", "-d", `\001-\037\134\177-\377`)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdin = bytes.NewReader(all)
	kept, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var ours []byte
	for _, b := range all {
		if signableByte(b) {
			ours = append(ours, b)
		}
	}
	if !bytes.Equal(ours, kept) {
		t.Errorf("signable bytes differ from tr's:\n%q\n%q", ours, kept)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(emptySum + "  ./empty\n" + abcSum + " *./x"))
	f.Add([]byte(zeros + "  /tmp/counter-1a2b3c4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		// What parses re-marshals to something that parses the same.
		m2, err := ParseManifest(m.Marshal())
		if err != nil || len(m2.Entries) != len(m.Entries) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range m.Entries {
			if m.Entries[i] != m2.Entries[i] {
				t.Fatalf("round trip changed entry %d", i)
			}
			m.Lookup(m.Entries[i].Path)
		}
		_, _, _ = ParseRollback(data)
	})
}

func FuzzParseTree(f *testing.F) {
	f.Add([]byte("./\x00./a\x00./a/b\x00"))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		paths, err := ParseTree(data)
		if err != nil {
			return
		}
		for _, p := range paths {
			if p == "" || strings.ContainsRune(p, 0) {
				t.Fatalf("bad record %q", p)
			}
		}
		if len(paths) > 0 && !sameSet(paths, mustParseTree(t, MarshalTree(paths))) {
			t.Fatal("round trip changed the set")
		}
	})
}

func FuzzNextCounterFile(f *testing.F) {
	f.Add([]byte("1a2b3c4: 0000000000000005\n"))
	f.Add([]byte("1: 000ebaddecaf00000005\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		next, err := NextCounterFile(data)
		if err != nil {
			return
		}
		if len(next) != len(data) || bytes.Equal(next, data) {
			t.Fatalf("NextCounterFile(%q) = %q: width changed or value did not", data, next)
		}
		id1, _, _ := strings.Cut(string(data), ":")
		id2, _, _ := strings.Cut(string(next), ":")
		if id1 != id2 {
			t.Fatalf("id changed: %q -> %q", id1, id2)
		}
	})
}

func mustParseTree(t *testing.T, b []byte) []string {
	p, err := ParseTree(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	n := map[string]bool{}
	for _, x := range b {
		if !m[x] {
			return false
		}
		n[x] = true
	}
	return len(m) == len(n)
}
