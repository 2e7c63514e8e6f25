// Package atomicfile replaces files so that a crash or a power cut at any
// moment leaves either the old content or the new one, never a mix: the
// data goes to a temporary file beside the target, is fsynced, renamed over
// the target, and the directory is fsynced so that the rename itself
// survives. goheads writes the HOTP counter in /boot, the runtime and user
// configuration, CBFS images and the ROM backups this way.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// TempSuffix names the temporary file: path + TempSuffix. A fixed name, so
// that a crash leaves at most one stale temporary file, which the next
// write replaces.
const TempSuffix = ".tmp"

// Write replaces path with data, with permissions perm. On error the old
// file is untouched and the temporary file removed.
func Write(path string, data []byte, perm fs.FileMode) error {
	tmp := path + TempSuffix
	if err := writeSynced(tmp, data, perm); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeSynced(name string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	// OpenFile's mode is filtered by the umask and ignored for an existing
	// stale temporary file: set it exactly.
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
// A filesystem that cannot fsync directories (EINVAL) is not an error:
// there is nothing more to do there.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
