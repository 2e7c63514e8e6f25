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
	if gitHead(dir) == corebootCommit && submodulesPresent(dir, downloadedSubmodules) == nil && gitHead(filepath.Join(dir, "3rdparty/vboot")) == vbootCommit {
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
	// The other submodules boards need, at the commits the coreboot commit
	// records (its gitlinks pin them), from the URLs in its .gitmodules.
	for _, sub := range downloadedSubmodules[1:] {
		commit, url, err := gitlink(ctx, tmp, sub)
		if err == nil {
			err = fetchCommit(ctx, url, commit, filepath.Join(tmp, sub), w)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return "", &fixError{what: fmt.Sprintf("download %s: %v", sub, err), fix: corebootFix}
		}
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

// downloadedSubmodules are the coreboot submodules the builder fetches:
// vboot for every board, libgfxinit and libhwbase for laptops' native
// graphics init (the X230's).
var downloadedSubmodules = []string{"3rdparty/vboot", "3rdparty/libgfxinit", "3rdparty/libhwbase"}

// gitlink returns the commit coreboot's tree records for submodule path
// and its URL from .gitmodules.
func gitlink(ctx context.Context, tree, path string) (commit, url string, err error) {
	out, err := exec.CommandContext(ctx, "git", "-C", tree, "ls-tree", "HEAD", path).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 3 || f[1] != "commit" {
		return "", "", fmt.Errorf("%s is not a submodule of this coreboot commit", path)
	}
	name := strings.TrimPrefix(path, "3rdparty/")
	u, err := exec.CommandContext(ctx, "git", "-C", tree, "config", "-f", ".gitmodules", "submodule."+name+".url").Output()
	if err != nil {
		return "", "", fmt.Errorf("no URL for %s in .gitmodules", path)
	}
	return f[2], strings.TrimSpace(string(u)), nil
}

// submodulesPresent checks that each submodule of a coreboot tree is
// checked out (an uninitialised one is an empty directory).
func submodulesPresent(tree string, subs []string) error {
	var missing []string
	for _, s := range subs {
		if ents, err := os.ReadDir(filepath.Join(tree, s)); err != nil || len(ents) == 0 {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return &fixError{what: fmt.Sprintf("%s lacks the coreboot submodules %s", tree, strings.Join(missing, ", ")),
			fix: "git -C " + tree + " submodule update --init " + strings.Join(missing, " ")}
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
