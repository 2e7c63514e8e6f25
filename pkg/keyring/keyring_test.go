package keyring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// colonKey is a key as gpg --with-colons lists it: the expected values,
// computed by GnuPG, not by this package.
type colonKey struct {
	fpr, algo, usage string
	bits             int
	created, expires time.Time
	revoked          bool
	uids             []string
	subs             []colonKey
}

// parseColons reads `gpg --with-colons --fixed-list-mode -k` output.
func parseColons(t testing.TB, out string) []colonKey {
	t.Helper()
	var keys []colonKey
	var cur *colonKey // pub or sub receiving the next fpr
	unix := func(s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("colons: bad time %q", s)
		}
		return time.Unix(n, 0)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 10 || (f[0] == "pub" || f[0] == "sub") && len(f) < 12 {
			continue
		}
		switch f[0] {
		case "pub", "sub":
			k := colonKey{created: unix(f[5]), expires: unix(f[6]), revoked: f[1] == "r"}
			k.bits, _ = strconv.Atoi(f[2])
			// Capabilities: lower case letters are the key's own.
			for _, c := range f[11] {
				if c >= 'a' && c <= 'z' {
					k.usage += strings.ToUpper(string(c))
				}
			}
			if len(f) > 16 && f[16] != "" {
				k.algo = f[16]
			} else {
				k.algo = "rsa" + f[2]
			}
			if f[0] == "pub" {
				keys = append(keys, k)
				cur = &keys[len(keys)-1]
			} else {
				p := &keys[len(keys)-1]
				p.subs = append(p.subs, k)
				cur = &p.subs[len(p.subs)-1]
			}
		case "fpr":
			if cur != nil && cur.fpr == "" {
				cur.fpr = f[9]
			}
		case "uid":
			keys[len(keys)-1].uids = append(keys[len(keys)-1].uids, f[9])
		}
	}
	return keys
}

// normUsage sorts usage letters so "SC" and "CS" compare equal.
func normUsage(s string) string {
	b := []byte(s)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return string(b)
}

// checkListing compares Keys() with gpg's own listing.
func checkListing(t *testing.T, kr *Keyring, want []colonKey) {
	t.Helper()
	got := kr.Keys()
	if len(got) != len(want) {
		t.Fatalf("Keys() = %d keys, gpg lists %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Fingerprint != w.fpr || g.Algorithm != w.algo || g.Bits != w.bits || normUsage(g.Usage.String()) != normUsage(w.usage) ||
			!g.Created.Equal(w.created) || !g.Expires.Equal(w.expires) || g.Revoked != w.revoked {
			t.Errorf("key %d = %s %s [%s] created %v expires %v revoked %v; gpg: %s %s [%s] created %v expires %v revoked %v",
				i, g.Fingerprint, g.Algorithm, g.Usage, g.Created, g.Expires, g.Revoked,
				w.fpr, w.algo, w.usage, w.created, w.expires, w.revoked)
		}
		var names []string
		for _, u := range g.UserIDs {
			names = append(names, u.Name)
		}
		if strings.Join(names, "|") != strings.Join(w.uids, "|") {
			t.Errorf("key %s user IDs = %q, gpg: %q", w.fpr, names, w.uids)
		}
		if len(g.Subkeys) != len(w.subs) {
			t.Fatalf("key %s: %d subkeys, gpg lists %d", w.fpr, len(g.Subkeys), len(w.subs))
		}
		for j, ws := range w.subs {
			gs := g.Subkeys[j]
			if gs.Fingerprint != ws.fpr || gs.Algorithm != ws.algo || gs.Bits != ws.bits || normUsage(gs.Usage.String()) != normUsage(ws.usage) ||
				!gs.Created.Equal(ws.created) || !gs.Expires.Equal(ws.expires) || gs.Revoked != ws.revoked {
				t.Errorf("subkey %s %s [%s] exp %v rev %v; gpg: %s %s [%s] exp %v rev %v",
					gs.Fingerprint, gs.Algorithm, gs.Usage, gs.Expires, gs.Revoked, ws.fpr, ws.algo, ws.usage, ws.expires, ws.revoked)
			}
		}
	}
}

// TestLoadFormats reads the same keys from a gpg 2.2 keybox, a binary
// export and an armoured export, and compares each with gpg's listing.
func TestLoadFormats(t *testing.T) {
	want := parseColons(t, string(readTestdata(t, "keys.colons")))
	if len(want) != 2 {
		t.Fatalf("fixture listing has %d keys, want 2", len(want))
	}
	for _, tc := range []struct {
		file   string
		format Format
	}{
		{"pubring.kbx", FormatKeybox},
		{"pub.gpg", FormatPackets},
		{"pub.asc", FormatArmored},
	} {
		t.Run(tc.file, func(t *testing.T) {
			kr, format, err := load(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if format != tc.format {
				t.Errorf("format = %s, want %s", format, tc.format)
			}
			if len(kr.Skipped) != 0 {
				t.Errorf("Skipped = %q", kr.Skipped)
			}
			checkListing(t, kr, want)
		})
	}
}

func TestLoadGnuPGHome(t *testing.T) {
	dir := t.TempDir()
	kr, err := LoadGnuPGHome(dir)
	if err != nil || kr.Len() != 0 {
		t.Fatalf("empty home: %d keys, %v; want an empty keyring", kr.Len(), err)
	}
	// Legacy pubring.gpg alone.
	if err := os.WriteFile(filepath.Join(dir, "pubring.gpg"), readTestdata(t, "pub.gpg"), 0o644); err != nil {
		t.Fatal(err)
	}
	if kr, err = LoadGnuPGHome(dir); err != nil || kr.Len() != 2 {
		t.Fatalf("pubring.gpg: %d keys, %v", kr.Len(), err)
	}
	// pubring.kbx wins over pubring.gpg, as in Heads.
	if err := os.WriteFile(filepath.Join(dir, "pubring.kbx"), readTestdata(t, "revoked.asc"), 0o644); err != nil {
		t.Fatal(err)
	}
	kr, err = LoadGnuPGHome(dir)
	if err != nil || kr.Len() != 1 || !kr.Keys()[0].Revoked {
		t.Fatalf("pubring.kbx preferred: %d keys, %v", kr.Len(), err)
	}
}

func TestLoadEmptyAndBad(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("\n \n"), readTestdata(t, "pubring.kbx")[:32]} {
		kr, err := Load(in)
		if err != nil || kr.Len() != 0 {
			t.Errorf("Load(%q) = %d keys, %v; want an empty keyring", in, kr.Len(), err)
		}
	}
	if _, err := Load([]byte("hello")); !errors.Is(err, ErrNotKeyring) {
		t.Errorf("Load(text) = %v, want ErrNotKeyring", err)
	}
	if _, err := Load([]byte("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n")); err == nil {
		t.Error("Load(armoured signature) succeeded")
	}
}

// kbxBlob builds one keybox blob with the given type and payload placed at
// the keyblock offset.
func kbxBlob(typ byte, keyblock []byte) []byte {
	const hdr = 20
	b := make([]byte, hdr+len(keyblock)+20)
	binary.BigEndian.PutUint32(b[0:], uint32(len(b)))
	b[4] = typ
	b[5] = 1
	binary.BigEndian.PutUint32(b[8:], hdr)
	binary.BigEndian.PutUint32(b[12:], uint32(len(keyblock)))
	copy(b[hdr:], keyblock)
	return b
}

func kbxHeader() []byte {
	b := make([]byte, 32)
	binary.BigEndian.PutUint32(b, 32)
	b[4] = kbxBlobHeader
	b[5] = 1
	copy(b[8:], "KBXf")
	return b
}

func TestParseKeybox(t *testing.T) {
	key := readTestdata(t, "pub.gpg")
	good := append(kbxHeader(), kbxBlob(kbxBlobOpenPGP, key)...)
	blocks, notes, err := parseKeybox(good)
	if err != nil || len(blocks) != 1 || !bytes.Equal(blocks[0].data, key) || len(notes) != 0 {
		t.Fatalf("good keybox: %d blocks, notes %q, %v", len(blocks), notes, err)
	}
	// Unknown and X.509 blobs are skipped; unknown ones are noted.
	mixed := append(append(append(kbxHeader(), kbxBlob(kbxBlobX509, []byte{1})...), kbxBlob(9, []byte{1})...), kbxBlob(kbxBlobOpenPGP, key)...)
	if blocks, notes, err = parseKeybox(mixed); err != nil || len(blocks) != 1 || len(notes) != 1 {
		t.Fatalf("mixed keybox: %d blocks, notes %q, %v", len(blocks), notes, err)
	}

	corrupt := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	for name, in := range map[string][]byte{
		"no magic":          corrupt(func(b []byte) []byte { b[8] = 'X'; return b }),
		"truncated":         good[:len(good)-1],
		"trailing bytes":    append(append([]byte(nil), good...), 0, 0),
		"blob too short":    corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[32:], 3); return b }),
		"blob too long":     corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[32:], 1<<30); return b }),
		"keyblock overflow": corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[32+12:], 1<<31); return b }),
		"keyblock in hdr":   corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[32+8:], 4); return b }),
		"empty keyblock":    corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[32+12:], 0); return b }),
		"second header":     append(append([]byte(nil), good...), kbxHeader()...),
	} {
		if _, _, err := parseKeybox(in); err == nil {
			t.Errorf("%s: parseKeybox succeeded", name)
		} else if !strings.Contains(err.Error(), "keybox") {
			t.Errorf("%s: error %q does not name the keybox", name, err)
		}
	}
}

// A broken key inside an otherwise good keyring is skipped, named, and does
// not hide the other keys.
func TestLoadSkipsBrokenKey(t *testing.T) {
	key := readTestdata(t, "pub.gpg")
	broken := append([]byte(nil), key...)
	// Flip a byte in the middle of the first key's self-signature area.
	broken[300] ^= 0xff
	kr, err := Load(append(kbxHeader(), append(kbxBlob(kbxBlobOpenPGP, broken), kbxBlob(kbxBlobOpenPGP, key)...)...))
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() < 2 || len(kr.Skipped) == 0 {
		t.Fatalf("got %d keys, skipped %q; want the intact copies and a note", kr.Len(), kr.Skipped)
	}
	if !strings.Contains(kr.Skipped[0], "offset 32") {
		t.Errorf("skip note %q does not name the blob offset", kr.Skipped[0])
	}
}

func FuzzParseKeybox(f *testing.F) {
	f.Add(readTestdata(f, "pubring.kbx"))
	f.Add(append(kbxHeader(), kbxBlob(kbxBlobOpenPGP, []byte{0x99, 0, 1, 4})...))
	f.Add(kbxHeader())
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, _, err := parseKeybox(data)
		if err != nil {
			return
		}
		for _, b := range blocks {
			if b.offset < 0 || b.offset >= len(data) || len(b.data) == 0 {
				t.Fatalf("block at %d with %d bytes escapes the input", b.offset, len(b.data))
			}
		}
		// The full loader must not panic on anything the parser accepts.
		_, _ = Load(data)
	})
}

func FuzzLoad(f *testing.F) {
	for _, n := range []string{"pubring.kbx", "pub.gpg", "pub.asc", "revsub.asc", "expired.asc"} {
		f.Add(readTestdata(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kr, err := Load(data)
		if err != nil {
			return
		}
		_ = kr.Keys()
		_, _ = kr.VerifyDetached(bytes.NewReader(nil), bytes.NewReader(readTestdataFuzz), nil)
	})
}

var readTestdataFuzz = func() []byte {
	b, _ := os.ReadFile(filepath.Join("testdata", "ed.sig"))
	return b
}()

// Revocation and expiry as the listing shows them (dates from gen.sh).
func TestKeysRevokedAndExpiry(t *testing.T) {
	rev := mustLoad(t, "revoked.asc").Keys()[0]
	if !rev.Revoked || rev.RevocationReason == "" {
		t.Errorf("revoked key: revoked %v reason %q", rev.Revoked, rev.RevocationReason)
	}
	sub := mustLoad(t, "revsub.asc").Keys()[0]
	if sub.Revoked || len(sub.Subkeys) != 1 || !sub.Subkeys[0].Revoked || sub.Subkeys[0].Usage.String() != "S" {
		t.Errorf("revoked subkey listing: %+v", sub)
	}
	exp := mustLoad(t, "expired-after.asc").Keys()[0]
	if want := time.Date(2020, 1, 4, 0, 0, 0, 0, time.UTC); !exp.Expires.Equal(want) || !exp.Expired(want.Add(time.Second)) || exp.Expired(want) {
		t.Errorf("expiry %v, want %v", exp.Expires, want)
	}
}
