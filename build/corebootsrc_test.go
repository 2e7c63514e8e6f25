package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorebootDownload fetches the pinned coreboot and vboot into an empty
// cache, then reuses it. There is no network in CI: it runs against local
// mirrors given as COREBOOT_REPO and VBOOT_REPO (the same git fetch a
// machine with internet does from review.coreboot.org), and otherwise only
// checks that an unreachable repository fails with the manual commands
// and leaves nothing half-downloaded behind. (This project's own vboot
// mirror lacks some blobs, so here only the coreboot half ran.)
func TestCorebootDownload(t *testing.T) {
	t.Setenv("COREBOOT_SRC", "")
	repo, vrepo := os.Getenv("COREBOOT_REPO"), os.Getenv("VBOOT_REPO")

	t.Run("unreachable", func(t *testing.T) {
		cache := t.TempDir()
		t.Setenv("GOHEADS_CACHE", cache)
		t.Setenv("COREBOOT_REPO", filepath.Join(cache, "no-such-repo"))
		_, err := corebootTree(context.Background(), &bytes.Buffer{})
		var fix *fixError
		if !errors.As(err, &fix) || !strings.Contains(err.Error(), corebootCommit[:12]) || !strings.Contains(err.Error(), "git clone") {
			t.Fatalf("unreachable repository: %v", err)
		}
		if ents, _ := os.ReadDir(cache); len(ents) != 0 {
			t.Errorf("left in the cache: %v", ents)
		}
	})

	if repo == "" {
		t.Skip("download from a mirror skipped: COREBOOT_REPO is not set (no network here)")
	}
	// The pinned coreboot commit from the mirror, as corebootTree fetches
	// each repository.
	dir := filepath.Join(t.TempDir(), "coreboot")
	var log bytes.Buffer
	if err := fetchCommit(context.Background(), repo, corebootCommit, dir, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if gitHead(dir) != corebootCommit {
		t.Fatalf("%s is not at %s", dir, corebootCommit)
	}
	if _, err := os.Stat(filepath.Join(dir, "src/security/tpm/tspi/crtm.c")); err != nil {
		t.Fatal(err)
	}
	// A commit the repository does not have fails, naming it.
	if err := fetchCommit(context.Background(), repo, strings.Repeat("0", 40), filepath.Join(t.TempDir(), "x"), &log); err == nil {
		t.Fatal("fetched a commit that does not exist")
	}
	if vrepo == "" {
		t.Skip("the whole tree (coreboot + vboot) skipped: VBOOT_REPO is not set")
	}
	t.Setenv("GOHEADS_CACHE", t.TempDir())
	log.Reset()
	tree, err := corebootTree(context.Background(), &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if gitHead(tree) != corebootCommit || gitHead(filepath.Join(tree, "3rdparty/vboot")) != vbootCommit {
		t.Fatalf("%s is not at the pinned commits", tree)
	}
	log.Reset()
	again, err := corebootTree(context.Background(), &log)
	if err != nil || again != tree || !strings.Contains(log.String(), "from "+tree) {
		t.Fatalf("second call: %q %v %s", again, err, log.String())
	}
}

func TestSubmodulesPresent(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "3rdparty/libgfxinit"), 0o755)
	os.MkdirAll(filepath.Join(tree, "3rdparty/libhwbase"), 0o755)
	os.WriteFile(filepath.Join(tree, "3rdparty/libhwbase/Makefile"), []byte("all:\n"), 0o644)
	err := submodulesPresent(tree, []string{"3rdparty/libgfxinit", "3rdparty/libhwbase"})
	var fix *fixError
	if !errors.As(err, &fix) || !strings.Contains(err.Error(), "submodule update --init 3rdparty/libgfxinit") || strings.Contains(err.Error(), "libhwbase") {
		t.Fatalf("empty libgfxinit: %v", err)
	}
	os.WriteFile(filepath.Join(tree, "3rdparty/libgfxinit/Makefile"), []byte("all:\n"), 0o644)
	if err := submodulesPresent(tree, []string{"3rdparty/libgfxinit", "3rdparty/libhwbase"}); err != nil {
		t.Fatal(err)
	}
}
