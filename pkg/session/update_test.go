package session

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestListUpdates(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"heads-x230.zip", "x230.rom", "notes.txt", "rel/v2/UPDATE.ROM", "rel/v2/deeper/skip.rom", ".Trash/old.rom", "chip.bin"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink could point anywhere in the initramfs: not listed.
	os.Symlink("/etc/config", filepath.Join(dir, "link.rom"))
	got := listUpdates(dir)
	want := []string{"heads-x230.zip", "rel/v2/UPDATE.ROM", "x230.rom"}
	if !slices.Equal(got, want) {
		t.Fatalf("listUpdates = %q, want %q", got, want)
	}
	if got := listUpdates(filepath.Join(dir, "missing")); len(got) != 0 {
		t.Fatalf("missing dir: %q", got)
	}
}
