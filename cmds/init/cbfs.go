package main

import (
	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/measure"
)

// userFiles reads the CBFS heads/initrd/* raw files, in CBFS order, from the
// running ROM (memory-mapped flash) on coreboot boards, or from the CBFS
// image QEMU boards without coreboot receive through fw_cfg.
func userFiles(board *config.Config) ([]measure.UserFile, string, error) {
	opts := cbfs.Options{}
	src := "the ROM's CBFS"
	if board.Bool("CONFIG_COREBOOT") {
		// Only the flash counts where there is one: a fw_cfg file must not
		// stand in for the measured ROM.
		opts.FwCfg = cbfs.Skip
	} else {
		opts.DevMem = cbfs.Skip
		src = "CBFS (QEMU fw_cfg)"
	}
	img, err := cbfs.OpenRunning(opts)
	if err != nil {
		return nil, "", err
	}
	defer img.Close()
	files, err := cbfs.UserFiles(img)
	if err != nil {
		return nil, "", err
	}
	out := make([]measure.UserFile, 0, len(files))
	for _, f := range files {
		out = append(out, measure.UserFile{Name: f.Name, Data: f.Data})
	}
	return out, src, nil
}
