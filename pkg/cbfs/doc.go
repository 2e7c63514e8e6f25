// Package cbfs reads and writes coreboot's file system (CBFS) as goheads
// needs it:
//
//   - at boot, in the initramfs, to load the files Heads keeps under
//     "heads/initrd/" (config.user, the GPG keyring) from the running ROM,
//     in CBFS order, so the caller can measure them into PCR 7 (UserFiles);
//   - on the host (builder, tests) to create images and add, remove and
//     replace the raw files Heads adds (`make inject_gpg`, "save settings
//     to the ROM").
//
// Boot (x86 coreboot, or QEMU with the builder's fw_cfg image):
//
//	img, err := cbfs.OpenRunning(cbfs.Options{})
//	defer img.Close()
//	files, err := cbfs.UserFiles(img)
//	for _, f := range files {
//		// extend PCR 7 with H(f.Path), then H(f.Data); then, if
//		// f.CheckPath() == nil, write f.Data to f.Path
//	}
//
// Host:
//
//	img, err := cbfs.OpenFile("coreboot.rom")
//	err = img.Replace(cbfs.ConfigUserName, cfg, cbfs.TypeRaw)
//	err = img.WriteFile("coreboot.rom")
//
// # Format
//
// Following coreboot's src/commonlib/bsd/include/commonlib/bsd/
// cbfs_serialized.h and fmap_serialized.h: a CBFS is a chain of entries,
// each a 64-byte-aligned big-endian header ("LARCHIVE", data length, type,
// attributes offset, data offset) followed by a NUL-terminated name,
// optional attributes (compression, hash, position, alignment, padding)
// and the data. Free space is an entry of type "null" (0xffffffff) or
// "deleted" (0). The CBFS is the COREBOOT area of the image's FMAP; legacy
// images without an FMAP are found through a master header ("ORBC"),
// whose address sits in the image's last 4 bytes.
//
// Reading follows coreboot's own walker (cbfs_walk in
// src/commonlib/bsd/cbfs_private.c); writing follows cbfstool
// (util/cbfstool/cbfs_image.c) byte for byte, see write.go. The tests
// check both against Debian's cbfstool (coreboot-utils 4.15), whose
// behaviour here matches coreboot 25.09's, the version Heads builds.
//
// # Untrusted input
//
// The ROM is attacker-controllable: measurement is what detects changes,
// so the parser must never crash or hang on it. Every offset is
// bounds-checked before use, the walk only moves forward (at most one
// header read per 64 bytes), metadata is capped at 256 bytes as coreboot
// caps it, and errors are *FormatError naming the offset. Entries coreboot
// would skip are skipped and listed in Image.Problems; Add, Remove and
// Replace refuse to modify an image with problems, so goheads never writes
// back an image it only partly understood. FuzzOpen and FuzzParseFMAP
// exercise this.
//
// # The running ROM
//
// x86 maps the top of the flash just below 4 GiB. OpenPhysical reads the
// pointer at 0xfffffffc, the master header it points to (coreboot adds one
// to every x86 image, "cbfs_master_header", at the start of the COREBOOT
// region) and walks the CBFS it describes, as Heads' `cbfs` tool
// (osresearch/flashtools) does. Only headers are read at open, and file
// contents on demand, through a 4 KiB page cache, so boot does not read
// the whole flash. /dev/mem is read with pread or, where the kernel refuses
// that (addresses above its RAM mapping), mmap. The kernel needs
// CONFIG_DEVMEM; STRICT_DEVMEM allows the flash. Like Heads' tool this
// assumes the flash window covers the CBFS (flash chips above 16 MiB whose
// COREBOOT region lies outside the decoded window need the flash read with
// flashprog instead, Heads' CONFIG_CBFS_VIA_FLASHPROG). POWER (Talos) PNOR
// is not supported. QEMU boards without coreboot get a CBFS image through
// fw_cfg (DefaultFwCfg), which OpenRunning reads first.
//
// # Choices and differences
//
//   - Not github.com/linuxboot/fiano/pkg/cbfs (v1.2.0, pinned in go.mod):
//     it only opens images with an FMAP (no legacy master header, no bare
//     region, no physical memory), scans for headers every 16 bytes where
//     coreboot steps by 64, has no first-fit add, writes free entries with
//     0x28 bytes of metadata where cbfstool writes 0x1c, indexes past its
//     file list when removing the last file, and pulls LZMA and LZ4
//     packages (ulikunitz/xz, pierrec/lz4, whose go.sum entries goheads
//     lacks) and encoding/json into the initramfs. This package uses only
//     the standard library; a program listing the running ROM's user files
//     with it is smaller than one only listing an image file with fiano.
//   - Compressed files: Read returns *CompressedError (ErrCompressed);
//     ReadRaw returns the stored bytes. Heads' user files are never
//     compressed, and an LZMA decoder is not worth its size in the
//     initramfs.
//   - Names are compared exactly, as coreboot does; cbfstool's extract and
//     remove ignore case. Add refuses a name that differs only in case from
//     an existing one, as cbfstool does.
//   - Hash attributes are checked on every read (coreboot checks them only
//     with CONFIG_CBFS_VERIFICATION). Images with coreboot's CBFS
//     verification anchor are not modified (ErrVerification): cbfstool
//     would also update the metadata hash in the bootblock.
//   - Remove refuses the master header and the bootblock (ErrProtected).
//   - Add refuses names longer than MaxNameLen and names starting with '['
//     as cbfstool 25.09 does; cbfstool 4.15 (Debian's) still accepts
//     longer names, writing metadata over 256 bytes that coreboot skips.
//   - coreboot 25.09's walker loops forever on a header whose data offset
//     is 0; this walker, like coreboot's main branch, skips it.
package cbfs
