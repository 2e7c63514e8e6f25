// Command build is goheads' builder: it turns a board description into a
// kernel, an initramfs and (later) a ROM, and runs the board in QEMU.
//
//	go run ./build <verb> [-board <board>] [-out <dir>]
//
// Verbs:
//
//	check         verify the host tools a build and `make test` need
//	kernel        build (or reuse from the cache) the board's Linux kernel
//	initramfs     build the busybox binary and initrd.cpio.zst
//	all           kernel + initramfs + hashes.txt + sizes.txt
//	run           boot the board in QEMU with swtpm on this terminal
//	bench         print the speed and size table
//	reproducible  build the initramfs in two fresh clones and compare
//	fuzz          run every FuzzXxx target for -fuzztime (default 5s)
//	inject_gpg    put PUBKEY_ASC (and CONFIG_USER) into the board's CBFS or ROM
//	rom           coreboot boards: build out/<b>/<b>.rom from COREBOOT_SRC,
//	              with expected-pcrs.json (the PCR 2 and 7 it will produce)
//
// Outputs go to out/<board>/ (bzImage, initrd.cpio.zst, hashes.txt, sizes.txt).
// Slow artifacts (the kernel, the busybox binary) are cached in
// $GOHEADS_CACHE (default ~/.cache/goheads) keyed by the hash of their inputs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const defaultBoard = "qemu-tpm2"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var fix *fixError
		if errors.As(err, &fix) {
			fmt.Fprintf(os.Stderr, "build: %s\n", fix.Error())
		} else {
			fmt.Fprintf(os.Stderr, "build: %v\n", err)
		}
		os.Exit(1)
	}
}

// fixError is a failure with a one-line remedy for the user.
type fixError struct {
	what, fix string
}

func (e *fixError) Error() string { return e.what + "; fix: " + e.fix }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: go run ./build <check|kernel|initramfs|all|rom|run|bench|reproducible|fuzz|inject_gpg> [-board <b>]")
	}
	verb := args[0]
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	opts := &Options{}
	fs.StringVar(&opts.Board, "board", envOr("BOARD", defaultBoard), "board name (boards/<board>/<board>.config)")
	fs.StringVar(&opts.Out, "out", "out", "output directory")
	fs.StringVar(&opts.Root, "root", ".", "goheads source tree")
	fs.IntVar(&opts.BenchRuns, "runs", 3, "bench: boots per measurement (median is reported)")
	fuzzTime := fs.String("fuzztime", "5s", "fuzz: time per target")
	pubkey := fs.String("pubkey", envOr("PUBKEY_ASC", ""), "inject_gpg: public key (armored or binary)")
	configUser := fs.String("config-user", envOr("CONFIG_USER", ""), "inject_gpg: config.user file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if verb == "fuzz" {
		return Fuzz(ctx, opts.Root, *fuzzTime, os.Stdout)
	}
	b, err := LoadBoard(opts.Root, opts.Board)
	if err != nil {
		return err
	}
	switch verb {
	case "check":
		return checkHost(b, os.Stdout)
	case "kernel":
		_, err := BuildKernel(ctx, opts, b)
		return err
	case "initramfs":
		_, err := BuildInitramfs(ctx, opts, b)
		return err
	case "all":
		_, err := BuildAll(ctx, opts, b)
		return err
	case "rom":
		_, err := BuildROM(ctx, opts, b, os.Stdout)
		return err
	case "run":
		return Run(ctx, opts, b)
	case "bench":
		return Bench(ctx, opts, b, os.Stdout)
	case "reproducible":
		return Reproducible(ctx, opts, b, os.Stdout)
	case "inject_gpg":
		return InjectGPG(ctx, opts, b, *pubkey, *configUser, os.Stdout)
	}
	return fmt.Errorf("unknown verb %q", verb)
}

// Options are the builder's command-line settings.
type Options struct {
	Board     string
	Out       string
	Root      string
	BenchRuns int
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
