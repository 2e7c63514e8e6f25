package bootsign

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// hashBufSize is the read size per worker. Large reads keep syscall
// overhead negligible next to SHA-256 (which uses the SHA-NI instructions
// where the CPU has them).
const hashBufSize = 1 << 20

type hashJob struct {
	rel  string
	size int64 // scheduling hint only
}

type hashResult struct {
	sum [32]byte
	err error // *os.PathError from open/read; errNotRegular
}

var errNotRegular = errors.New("not a regular file")

// hashFiles hashes each file once, streaming, on a bounded pool of workers
// (default: one per CPU). Jobs start largest first so that on two cores one
// big initrd does not finish alone at the end. Files are opened with
// O_NOFOLLOW and checked to be regular after opening, so a file swapped for
// a symlink between listing and hashing is not followed.
func hashFiles(root string, jobs []hashJob, workers int) map[string]hashResult {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers > len(jobs) {
		workers = len(jobs)
	}
	order := append([]hashJob(nil), jobs...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].size > order[j].size })

	results := make(map[string]hashResult, len(jobs))
	var mu sync.Mutex
	next := make(chan hashJob)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, hashBufSize)
			for j := range next {
				sum, err := hashOne(filepath.Join(root, j.rel), buf)
				mu.Lock()
				results[j.rel] = hashResult{sum, err}
				mu.Unlock()
			}
		}()
	}
	for _, j := range order {
		next <- j
	}
	close(next)
	wg.Wait()
	return results
}

func hashOne(path string, buf []byte) (sum [32]byte, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return sum, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
		}
		return sum, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sum, err
	}
	if !fi.Mode().IsRegular() {
		return sum, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	// Sequential read-ahead helps a cold /boot on a slow disk; failure
	// only costs speed.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, readerOnly{f}, buf); err != nil {
		return sum, fmt.Errorf("read %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// readerOnly hides *os.File's WriterTo/ReaderFrom so io.CopyBuffer uses the
// caller's large buffer.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }
