package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		old   []byte // nil: no file before
		stale bool   // a temporary file left by a crash
		data  []byte
		perm  os.FileMode
	}{
		{"new file", nil, false, []byte("1\n"), 0o644},
		{"replace", []byte("old content that is longer\n"), false, []byte("2\n"), 0o644},
		{"private", []byte("x"), false, []byte("secret-free but private"), 0o600},
		{"empty", []byte("x"), false, nil, 0o644},
		{"stale temporary file", []byte("x"), true, []byte("3\n"), 0o640},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kexec_hotp_counter")
			if tc.old != nil {
				if err := os.WriteFile(p, tc.old, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if tc.stale {
				if err := os.WriteFile(p+TempSuffix, bytes.Repeat([]byte("z"), 100), 0o777); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(p, tc.data, tc.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("content %q, %v; want %q", got, err, tc.data)
			}
			st, _ := os.Stat(p)
			if st.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tc.perm)
			}
			if _, err := os.Stat(p + TempSuffix); !os.IsNotExist(err) {
				t.Errorf("temporary file left behind: %v", err)
			}
		})
	}
}

// TestWriteFailureKeepsOld: when the new content cannot be put in place,
// the old file is intact, no temporary file remains and the error names
// the file.
func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory: the rename fails after the
	// temporary file was written in full.
	target := filepath.Join(dir, "boot")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Write(target, []byte("new"), 0o644)
	if err == nil || !strings.Contains(err.Error(), target) {
		t.Fatalf("Write over a directory: %v; want an error naming %s", err, target)
	}
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		t.Errorf("target changed: %v %v", st, err)
	}
	if _, err := os.Stat(target + TempSuffix); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}

	// A missing directory fails before anything is written.
	missing := filepath.Join(dir, "nope", "file")
	if err := Write(missing, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Write into a missing directory: %v", err)
	}
}
