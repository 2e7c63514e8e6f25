package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// vbootRepo is where coreboot's 3rdparty/vboot submodule comes from.
const vbootRepo = "https://review.coreboot.org/vboot.git"

// corebootTree is the coreboot tree a ROM is built from: COREBOOT_SRC when
// set, else the pinned commit, downloaded once into the cache (a machine
// with internet needs no setup). COREBOOT_REPO and VBOOT_REPO point the
// download at mirrors. Tests call CorebootSource instead: they never
// download.
func corebootTree(ctx context.Context, w io.Writer) (string, error) {
	if os.Getenv("COREBOOT_SRC") != "" {
		return CorebootSource()
	}
	dir := filepath.Join(cacheDir(), "coreboot-"+corebootCommit[:12])
	if gitHead(dir) == corebootCommit && gitHead(filepath.Join(dir, "3rdparty/vboot")) == vbootCommit {
		fmt.Fprintf(w, "build: coreboot %s from %s\n", corebootCommit[:12], dir)
		return dir, nil
	}
	repo, vrepo := envOr("COREBOOT_REPO", corebootRepo), envOr("VBOOT_REPO", vbootRepo)
	fmt.Fprintf(w, "build: COREBOOT_SRC is not set: downloading coreboot %s from %s (once, into %s)\n", corebootCommit[:12], repo, dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := fetchCommit(ctx, repo, corebootCommit, tmp, w); err != nil {
		os.RemoveAll(tmp)
		return "", &fixError{what: fmt.Sprintf("download coreboot %s: %v", corebootCommit[:12], err), fix: corebootFix}
	}
	if err := fetchCommit(ctx, vrepo, vbootCommit, filepath.Join(tmp, "3rdparty/vboot"), w); err != nil {
		os.RemoveAll(tmp)
		return "", &fixError{what: fmt.Sprintf("download vboot %s: %v", vbootCommit[:12], err), fix: corebootFix}
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// fetchCommit checks out commit of repo into dir. The commit id is the
// pin: git verifies that the content hashes to it, so no other checksum is
// needed. A shallow fetch of just that commit is tried first; servers that
// refuse a want by id get a full fetch.
func fetchCommit(ctx context.Context, repo, commit, dir string, w io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, lastLine(string(out)))
		}
		return nil
	}
	if err := git("init", "-q"); err != nil {
		return err
	}
	if err := git("fetch", "-q", "--depth", "1", repo, commit); err != nil {
		fmt.Fprintf(w, "build: shallow fetch refused (%v); fetching the whole history\n", err)
		if err := git("fetch", "-q", repo); err != nil {
			return err
		}
	}
	if err := git("-c", "advice.detachedHead=false", "checkout", "-q", commit); err != nil {
		return err
	}
	if h := gitHead(dir); h != commit {
		return errors.New("checked out " + h + ", want " + commit)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
