package cbfs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestUserFiles(t *testing.T) {
	img := mustCreate(t, 0x8000, LayoutRegion)
	adds := []struct {
		name string
		typ  Type
		data string
	}{
		{"heads/initrd/.gnupg/pubring.kbx", TypeRaw, "keys"},
		{"heads/initrd", TypeRaw, "no slash: not a user file"},
		{"heads/initrdX/etc/config", TypeRaw, "other prefix"},
		{"heads/initrd/etc/config.user", TypeRaw, "export CONFIG_TPM=y\n"},
		{"heads/initrd/bootsplash.jpg", TypeBootsplash, "not raw: Heads lists -t 50 only"},
		{"serial_number", TypeRaw, "123"},
		{"heads/initrd/", TypeRaw, "names nothing"},
		{"heads/initrd/.gnupg/trustdb.gpg", TypeRaw, ""},
	}
	for _, a := range adds {
		if err := img.Add(a.name, []byte(a.data), a.typ); err != nil {
			t.Fatal(err)
		}
	}
	// Replacing config.user with content too big for its old slot moves it
	// to the end: CBFS order is storage order, which is what Heads
	// measures, not name or first-insertion order.
	newCfg := "export CONFIG_TPM=n\n" + strings.Repeat("#", 180)
	if err := img.Replace(ConfigUserName, []byte(newCfg), TypeRaw); err != nil {
		t.Fatal(err)
	}
	uf, err := UserFiles(img)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ path, data string }{
		{"/.gnupg/pubring.kbx", "keys"},
		{"/", "names nothing"},
		{"/.gnupg/trustdb.gpg", ""},
		{"/etc/config.user", newCfg},
	}
	if len(uf) != len(want) {
		t.Fatalf("UserFiles = %+v", uf)
	}
	for i, w := range want {
		if uf[i].Path != w.path || string(uf[i].Data) != w.data || uf[i].Name != UserPrefix+strings.TrimPrefix(w.path, "/") {
			t.Errorf("UserFiles[%d] = %q %q %q, want %q %q", i, uf[i].Name, uf[i].Path, uf[i].Data, w.path, w.data)
		}
	}
	// Measured order equals CBFS order.
	var last int64 = -1
	for _, u := range uf {
		if u.File.Offset <= last {
			t.Errorf("UserFiles not in CBFS order at %s", u.Name)
		}
		last = u.File.Offset
	}

	// A corrupted hashed user file is an error, not silently measured.
	img2 := mustCreate(t, 0x4000, LayoutRegion)
	img2.Add(ConfigUserName, []byte("abc"), TypeRaw)
	b, _ := img2.Bytes()
	f, _ := img2.Lookup(ConfigUserName)
	// Turn its name padding into nothing and give it a SHA-1 hash
	// attribute over different content by rebuilding the metadata.
	meta := make([]byte, 0, 256)
	meta = append(meta, b[f.Offset:f.Offset+HeaderSize]...)
	name := append([]byte(ConfigUserName), 0, 0, 0, 0)[:alignUp(int64(len(ConfigUserName))+1, 4)]
	meta = append(meta, name...)
	attrOff := len(meta)
	meta = append(meta, 0x68, 0x73, 0x61, 0x48, 0, 0, 0, 32, 0, 0, 0, byte(HashSHA1))
	meta = append(meta, make([]byte, 20)...) // wrong digest
	meta[16], meta[17], meta[18], meta[19] = 0, 0, 0, byte(attrOff)
	meta[20], meta[21], meta[22], meta[23] = 0, 0, 0, byte(len(meta))
	c := bytes.Clone(b)
	copy(c[f.Offset:], meta)
	copy(c[f.Offset+int64(len(meta)):], "abc")
	bad, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UserFiles(bad); !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), ConfigUserName) {
		t.Errorf("UserFiles with a bad hash = %v", err)
	}
}

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/etc/config.user", true},
		{"/.gnupg/pubring.kbx", true},
		{"/a-b_c.d/e", true},
		{"/", false},
		{"/../etc/passwd", false},
		{"/etc/../etc/x", false},
		{"//etc/x", false},
		{"/etc/", false},
		{"/./x", false},
		{"/etc/a b", false},
		{"/etc/a\tb", false},
		{"/etc/a\nb", false},
		{"/etc/\x7f", false},
		{"/etc/\xff", false},
	} {
		err := UserFile{Name: "heads/initrd" + tc.path, Path: tc.path}.CheckPath()
		if (err == nil) != tc.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

func TestCheckBoard(t *testing.T) {
	tests := []struct {
		name     string
		recorded string // "" = no goheads/board file
		want     string
		err      string // "" = accepted
	}{
		{"same board", "x230", "x230", ""},
		{"trailing newline", "x230\n", "x230", ""},
		{"other board", "t430", "x230", "built for t430, this is x230"},
		{"not goheads", "", "x230", "none recorded"},
		// A board that does not know its own name must not accept a ROM
		// that records none.
		{"both empty", "", "", "none recorded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := mustCreate(t, 0x8000, LayoutRegion)
			if tt.recorded != "" {
				if err := img.Add(BoardFile, []byte(tt.recorded), TypeRaw); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckBoard(img, tt.want)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("CheckBoard = %v, want nil", err)
			case tt.err != "" && (!errors.Is(err, ErrWrongBoard) || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("CheckBoard = %v, want ErrWrongBoard with %q", err, tt.err)
			}
		})
	}
}
